//! `xenkvm console PATH`: attaches standard input and output to a console on a
//! `-chardev socket,path=PATH,server=on` (as `xl console` does on Xen). Ends
//! when xenkvm closes the socket; at the end of standard input it stops
//! sending and keeps printing until then.

use std::ffi::OsString;
use std::io::{Read, Write};
use std::net::Shutdown;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use crate::error::CliError;

/// Parses the arguments after `console`.
pub fn parse(args: &[OsString]) -> Result<PathBuf, CliError> {
    match args {
        [path] if !path.is_empty() && !path.to_string_lossy().starts_with('-') => Ok(PathBuf::from(path)),
        _ => Err(CliError::invalid("console", &format!("{args:?}"), "xenkvm console SOCKET-PATH")),
    }
}

/// Relays until the console's socket closes.
pub fn run(path: &Path) -> std::io::Result<()> {
    let stream = UnixStream::connect(path)?;
    let mut to_guest = stream.try_clone()?;
    // Detached: a read blocked on a terminal must not keep us alive.
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin().lock();
        let mut buf = [0u8; 256];
        while let Ok(n) = stdin.read(&mut buf) {
            match buf.get(..n) {
                Some(bytes) if !bytes.is_empty() => {
                    if to_guest.write_all(bytes).is_err() {
                        return;
                    }
                }
                _ => break,
            }
        }
        let _ = to_guest.shutdown(Shutdown::Write);
    });
    let mut from_guest = stream;
    let mut out = std::io::stdout().lock();
    let mut buf = [0u8; 4096];
    loop {
        let n = from_guest.read(&mut buf)?;
        let Some(bytes) = buf.get(..n).filter(|b| !b.is_empty()) else { return Ok(()) };
        out.write_all(bytes)?;
        out.flush()?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn needs_one_socket_path() {
        assert_eq!(parse(&["/tmp/c.sock".into()]).unwrap(), PathBuf::from("/tmp/c.sock"));
        for bad in [vec![], vec!["a".into(), "b".into()], vec!["--help".into()]] {
            let e = parse(&bad).unwrap_err().to_string();
            assert!(e.contains("xenkvm console SOCKET-PATH"), "{e}");
        }
    }
}
