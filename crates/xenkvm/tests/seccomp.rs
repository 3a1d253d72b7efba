//! The seccomp sandbox on this machine's /dev/kvm, through the real binary:
//! the embedded guest passes under the filters, and a forbidden syscall in
//! any kind of thread kills the process with SIGSYS. Skips where /dev/kvm
//! cannot be opened, like `guest.rs`.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::json;

fn kvm_available() -> bool {
    match std::fs::OpenOptions::new().read(true).write(true).open("/dev/kvm") {
        Ok(_) => true,
        Err(e) => {
            eprintln!("SKIP: /dev/kvm is not usable here ({e}); KVM tests skipped");
            false
        }
    }
}

/// One guest at a time: the embedded guest's timing checks dislike a
/// crowded host.
fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static TURN: Mutex<()> = Mutex::new(());
    TURN.lock().unwrap_or_else(|e| e.into_inner())
}

/// SIGSYS on x86-64 Linux: what seccomp's kill action sends.
const SIGSYS: i32 = 31;

/// Runs xenkvm with `args` (and the self-test hook set to `selftest`),
/// killing it if it outlives the limit; its status and standard output.
fn xenkvm(args: &[&str], selftest: Option<&str>) -> (ExitStatus, String) {
    let _turn = one_at_a_time();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_xenkvm"));
    cmd.args(args).stdout(Stdio::piped()).stderr(Stdio::null());
    if let Some(kind) = selftest {
        cmd.env("XENKVM_SECCOMP_SELFTEST", kind);
    }
    let mut child = cmd.spawn().expect("start xenkvm");
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if start.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("xenkvm {args:?} ran past 60 s and was killed");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stdout = String::new();
    child.stdout.take().expect("stdout").read_to_string(&mut stdout).expect("read stdout");
    (status, stdout)
}

#[test]
fn the_embedded_guest_passes_under_the_filters() {
    if !kvm_available() {
        return;
    }
    let (status, stdout) = xenkvm(&["--timeout", "30", "--seccomp", "on"], None);
    assert_eq!(status.code(), Some(0), "{status:?}\n{stdout}");
    assert!(stdout.contains(" passed, 0 failed"), "{stdout}");
}

#[test]
fn a_forbidden_syscall_kills_the_process_with_sigsys() {
    if !kvm_available() {
        return;
    }
    for kind in ["main", "vcpu", "worker", "service"] {
        let (status, _) = xenkvm(&["--timeout", "30"], Some(kind));
        assert_eq!(status.signal(), Some(SIGSYS), "{kind}: {status:?}");
    }
}

#[test]
fn log_mode_lets_a_forbidden_syscall_through() {
    if !kvm_available() {
        return;
    }
    let (status, stdout) = xenkvm(&["--timeout", "30", "--seccomp=log"], Some("worker"));
    assert_eq!(status.code(), Some(0), "{status:?}\n{stdout}");
}

#[test]
fn off_runs_without_filters() {
    if !kvm_available() {
        return;
    }
    let (status, stdout) = xenkvm(&["--timeout", "30", "--seccomp=off"], Some("worker"));
    assert_eq!(status.code(), Some(0), "{status:?}\n{stdout}");
}

/// A path for this test's sockets and images.
fn temp(tag: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("xenkvm-seccomp-test-{}-{tag}", std::process::id()))
}

fn connect(path: &std::path::Path) -> UnixStream {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match UnixStream::connect(path) {
            Ok(s) => {
                s.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
                return s;
            }
            Err(e) if Instant::now() > deadline => panic!("no socket at {}: {e}", path.display()),
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// Sends a QMP command; its reply (events before it are skipped).
fn qmp(reader: &mut BufReader<UnixStream>, command: serde_json::Value) -> serde_json::Value {
    let mut text = command.to_string();
    text.push('\n');
    reader.get_mut().write_all(text.as_bytes()).expect("send");
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).expect("QMP line");
        let v: serde_json::Value = serde_json::from_str(&line).expect("QMP JSON");
        if v.get("event").is_none() {
            return v;
        }
    }
}

/// A xenstore read over the host tools' socket (`XS_READ`, request id 7).
fn xenstore_read(path: &std::path::Path, node: &str) -> String {
    let mut s = connect(path);
    let mut body = node.as_bytes().to_vec();
    body.push(0);
    let header: Vec<u8> = [2u32, 7, 0, body.len() as u32].iter().flat_map(|v| v.to_le_bytes()).collect();
    s.write_all(&[header, body].concat()).expect("send");
    let mut head = [0u8; 16];
    s.read_exact(&mut head).expect("reply header");
    let len = u32::from_le_bytes([head[12], head[13], head[14], head[15]]) as usize;
    let mut reply = vec![0u8; len];
    s.read_exact(&mut reply).expect("reply");
    String::from_utf8_lossy(&reply).into_owned()
}

/// The service and worker paths on a guest that keeps running (the hypercall
/// benchmark): a xenstore tool, a chardev client, disk and console hotplug,
/// the balloon and an unplug, then `quit`; any forbidden syscall is a SIGSYS.
#[test]
fn hotplug_and_socket_clients_pass_the_filters() {
    if !kvm_available() {
        return;
    }
    let _turn = one_at_a_time();
    let (xs, q, cs, img) = (temp("xs.sock"), temp("qmp.sock"), temp("cs.sock"), temp("disk.img"));
    std::fs::write(&img, vec![0u8; 1 << 20]).expect("image");
    let args = [
        "--seccomp=on".to_owned(),
        "-append".to_owned(),
        "bench=hypercall iters=50000000".to_owned(),
        "--timeout".to_owned(),
        "60".to_owned(),
        format!("--xenstore-socket={}", xs.display()),
        format!("-qmp=unix:{},server=on,wait=off", q.display()),
        format!("-drive=file={},if=none,id=d0", img.display()),
        format!("-chardev=socket,id=cs,path={},server=on,wait=off", cs.display()),
    ];
    let mut child = Command::new(env!("CARGO_BIN_EXE_xenkvm")).args(&args).stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("start");
    let mut c = BufReader::new(connect(&q));
    let mut greeting = String::new();
    c.read_line(&mut greeting).expect("greeting");
    qmp(&mut c, json!({"execute": "qmp_capabilities"}));
    assert_eq!(xenstore_read(&xs, "/local/domain/1/name"), "xenkvm-guest");
    let _chardev_client = connect(&cs);
    for cmd in [
        json!({"execute": "device_add", "arguments": {"driver": "xen-disk", "id": "disk1", "drive": "d0"}}),
        json!({"execute": "device_add", "arguments": {"driver": "xen-console", "id": "con1", "chardev": "cs"}}),
        json!({"execute": "balloon", "arguments": {"value": 64 << 20}}),
        json!({"execute": "device_del", "arguments": {"id": "disk1"}}),
    ] {
        let r = qmp(&mut c, cmd.clone());
        assert!(r.get("return").is_some(), "{cmd} -> {r}");
    }
    qmp(&mut c, json!({"execute": "quit"}));
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if start.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            panic!("xenkvm did not quit");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let _ = std::fs::remove_file(&img);
    assert_eq!(status.code(), Some(0), "{status:?}");
}
