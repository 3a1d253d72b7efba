//! The chardevs' host ends, without a guest: an in-memory console input as
//! the target.

use std::io::{Read, Write};

use super::*;
use crate::events::Backends;
use crate::pvconsole::ConsoleInput;
use crate::ChardevConfig;

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("xenkvm-chardev-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let end = std::time::Instant::now() + Duration::from_secs(5);
    while !f() {
        assert!(std::time::Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn file_takes_output_and_open_registers_by_id() {
    let dir = scratch("file");
    let path = dir.join("out.log");
    let mut cfg = VmConfig::embedded(&[]);
    cfg.chardevs = vec![ChardevConfig { id: "log".into(), backend: ChardevBackend::File { path: path.clone() }, mux: false }];
    cfg.consoles = vec!["log".into()];
    open(&cfg).unwrap();
    let dev = console_chardev(&cfg, 0).unwrap();
    assert_eq!(dev.id, "log");
    assert!(console_chardev(&cfg, 1).is_none());
    dev.write(b"boot log\n");
    assert_eq!(std::fs::read(&path).unwrap(), b"boot log\n");
    // Without -device xen-console, hvc0 is on standard I/O; -serial stdio too.
    let plain = VmConfig::embedded(&[]);
    assert!(console_chardev(&plain, 0).unwrap().is_stdio());
    assert!(same(&serial_chardev(&plain).unwrap(), &console_chardev(&plain, 0).unwrap()));
    // A path that is not a socket is not replaced.
    let e = open_socket("s", &path, false).err().unwrap();
    assert!(matches!(e, OpenChardevError::PathInUse { .. }), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn socket_serves_one_client_at_a_time() {
    let dir = scratch("socket");
    let path = dir.join("c.sock");
    let dev = open_socket("c", &path, false).unwrap();
    let input = Arc::new(ConsoleInput::new(Arc::new(Backends::default())));
    dev.set_target(InputTarget::PvConsole(input.clone()));
    // Output without a client is dropped, not queued.
    dev.write(b"lost");
    let mut a = UnixStream::connect(&path).unwrap();
    a.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    eventually("client a", || matches!(&dev.kind, Kind::Socket(c) if c.lock().unwrap().is_some()));
    dev.write(b"to a");
    let mut buf = [0u8; 4];
    a.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"to a");
    a.write_all(b"from a").unwrap();
    eventually("a's input", || input.queued() == 6);
    // A second client waits until the first hangs up.
    let mut b = UnixStream::connect(&path).unwrap();
    b.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    b.write_all(b"!").unwrap();
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(input.queued(), 6, "b was served while a was connected");
    drop(a);
    eventually("b's input", || input.queued() == 7);
    dev.write(b"to b");
    b.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"to b");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn pty_echoes_both_ways() {
    let dev = match open_pty("p") {
        Ok(d) => d,
        Err(e) => {
            eprintln!("skipped: no pseudo-terminals here: {e}");
            return;
        }
    };
    let Kind::Pty(master) = &dev.kind else { panic!("not a pty") };
    // The slave's path, as printed at start.
    let mut buf = [0 as libc::c_char; 128];
    // SAFETY: ptsname_r writes at most buf.len() bytes into buf.
    let rc = unsafe { libc::ptsname_r(master.as_raw_fd(), buf.as_mut_ptr(), buf.len()) };
    assert_eq!(rc, 0);
    // SAFETY: ptsname_r succeeded: buf is NUL-terminated.
    let name = unsafe { std::ffi::CStr::from_ptr(buf.as_ptr()) }.to_string_lossy().into_owned();
    let mut slave = std::fs::OpenOptions::new().read(true).write(true).open(&name).unwrap();
    let input = Arc::new(ConsoleInput::new(Arc::new(Backends::default())));
    dev.set_target(InputTarget::PvConsole(input.clone()));
    dev.write(b"out\n");
    let mut buf = [0u8; 4];
    slave.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"out\n");
    slave.write_all(b"in").unwrap();
    eventually("pty input", || input.queued() == 2);
}

#[test]
fn config_refers_to_existing_chardevs_only() {
    use crate::ConfigError;
    let mut cfg = VmConfig::embedded(&[]);
    cfg.consoles = vec!["c".into()];
    assert_eq!(cfg.validate(), Err(ConfigError::NoSuchChardev("c".into())));
    cfg.chardevs = vec![ChardevConfig { id: "c".into(), backend: ChardevBackend::Pty, mux: true }];
    assert_eq!(cfg.validate(), Ok(()));
    cfg.serial = SerialConfig::Chardev("s".into());
    assert_eq!(cfg.validate(), Err(ConfigError::NoSuchChardev("s".into())));
    cfg.serial = SerialConfig::Chardev("c".into());
    cfg.consoles = vec!["c".into(); crate::MAX_CONSOLES + 1];
    assert_eq!(cfg.validate(), Err(ConfigError::TooManyConsoles));
}
