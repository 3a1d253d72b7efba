//! `xenkvm xenstored --socket PATH`: the store on its own, as a daemon for
//! Xen's tools, tests and benchmarks (`XENSTORED_PATH=PATH xenstore-ls /`).

use std::ffi::OsString;
use std::path::PathBuf;

use xenkvm_xenstore::server::{Shared, SocketServer};
use xenkvm_xenstore::{Quotas, Xenstore};

use crate::error::CliError;

/// Parses the arguments after `xenstored`.
pub fn parse(args: &[OsString]) -> Result<PathBuf, CliError> {
    match args {
        [flag, path] if flag == "--socket" || flag == "-socket" => Ok(PathBuf::from(path)),
        _ => Err(CliError::invalid("xenstored", &format!("{args:?}"), "xenkvm xenstored --socket PATH")),
    }
}

/// Serves until killed.
pub fn run(path: PathBuf) -> std::io::Result<()> {
    let server = SocketServer::spawn(&path, Shared::new(Xenstore::new(Quotas::default())))?;
    eprintln!("xenkvm: xenstored listening on {}", server.path().display());
    server.join();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn needs_a_socket_path() {
        let ok = parse(&["--socket".into(), "/tmp/x.sock".into()]).unwrap();
        assert_eq!(ok, PathBuf::from("/tmp/x.sock"));
        assert!(parse(&[]).is_err());
        assert!(parse(&["--port".into(), "1".into()]).is_err());
    }
}
