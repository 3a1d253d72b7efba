//! T2: the QMP control socket of the real binary, on the embedded test guest
//! and this machine's /dev/kvm. Skips where /dev/kvm cannot be opened (and the
//! Python client test where `qemu.qmp` is not installed). Every run has a
//! wall-clock limit in the VMM and a kill deadline here.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

fn kvm_available() -> bool {
    match std::fs::OpenOptions::new().read(true).write(true).open("/dev/kvm") {
        Ok(_) => true,
        Err(e) => {
            eprintln!("SKIP: /dev/kvm is not usable here ({e}); QMP tests skipped");
            false
        }
    }
}

fn socket_path(tag: &str) -> PathBuf {
    std::env::temp_dir().join(format!("xenkvm-qmp-test-{}-{tag}.sock", std::process::id()))
}

/// xenkvm on the embedded guest with `-no-shutdown` and a QMP socket.
fn start(path: &Path) -> Child {
    let qmp = format!("unix:{},server=on,wait=off", path.display());
    Command::new(env!("CARGO_BIN_EXE_xenkvm"))
        .args(["-no-shutdown", "-qmp", &qmp, "--timeout", "60"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start xenkvm")
}

/// Waits for the child to exit, killing it past `limit`.
fn finish(mut child: Child, limit: Duration) -> (Option<i32>, String) {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            let mut out = String::new();
            std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut out).unwrap();
            return (status.code(), out);
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("xenkvm ran past {limit:?} and was killed");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

struct Client {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
    events: Vec<Value>,
}

impl Client {
    fn connect(path: &Path) -> Client {
        let deadline = Instant::now() + Duration::from_secs(20);
        let stream = loop {
            match UnixStream::connect(path) {
                Ok(s) => break s,
                Err(e) if Instant::now() > deadline => panic!("no QMP socket at {}: {e}", path.display()),
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        };
        stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let writer = stream.try_clone().unwrap();
        let mut c = Client { reader: BufReader::new(stream), writer, events: Vec::new() };
        let greeting = c.line();
        assert!(greeting["QMP"]["version"]["package"].as_str().unwrap().starts_with("xenkvm"), "{greeting}");
        c
    }

    fn line(&mut self) -> Value {
        let mut text = String::new();
        self.reader.read_line(&mut text).expect("read a QMP line");
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("bad QMP line {text:?}: {e}"))
    }

    /// Sends a command and returns its reply, keeping events that came first.
    fn execute(&mut self, command: Value) -> Value {
        let mut text = command.to_string();
        text.push('\n');
        self.writer.write_all(text.as_bytes()).unwrap();
        loop {
            let v = self.line();
            if v.get("event").is_some() {
                self.events.push(v);
            } else {
                return v;
            }
        }
    }

    fn status(&mut self) -> String {
        let r = self.execute(json!({"execute": "query-status"}));
        r["return"]["status"].as_str().unwrap_or("?").to_owned()
    }

    fn wait_for_status(&mut self, want: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.status() != want {
            assert!(Instant::now() < deadline, "status never became {want}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

#[test]
fn qmp_reset_and_quit_drive_a_no_shutdown_guest() {
    if !kvm_available() {
        return;
    }
    let path = socket_path("raw");
    let child = start(&path);
    let mut c = Client::connect(&path);
    let early = c.execute(json!({"execute": "query-status", "id": 1}));
    assert_eq!(early["error"]["class"], "CommandNotFound", "{early}");
    assert_eq!(c.execute(json!({"execute": "qmp_capabilities", "id": 2})), json!({"return": {}, "id": 2}));
    // The embedded guest runs its selftest and powers off; -no-shutdown keeps xenkvm.
    c.wait_for_status("shutdown");
    assert!(c.events.iter().any(|e| e["event"] == "SHUTDOWN" && e["data"]["guest"] == true), "{:?}", c.events);
    // A reset runs the guest again, and it powers off again.
    assert_eq!(c.execute(json!({"execute": "system_reset"})), json!({"return": {}}));
    c.wait_for_status("shutdown");
    let bad = c.execute(json!({"execute": "balloon", "arguments": {"value": "big"}}));
    assert_eq!(bad["error"]["desc"], "Parameter 'value' expects a size", "{bad}");
    let down = c.execute(json!({"execute": "system_powerdown"}));
    assert!(down["error"]["desc"].as_str().unwrap().contains("not running"), "{down}");
    // The command-line client, as scripts use it.
    let cli = Command::new(env!("CARGO_BIN_EXE_xenkvm")).arg("qmp").arg(&path).arg("query-status").output().unwrap();
    let status: Value = serde_json::from_slice(&cli.stdout).expect("xenkvm qmp prints JSON");
    assert_eq!(status, json!({"status": "shutdown", "running": false}));
    let cli = Command::new(env!("CARGO_BIN_EXE_xenkvm")).arg("qmp").arg(&path).args(["xen-shutdown", r#"{"reason":"x"}"#]).output().unwrap();
    assert_eq!(cli.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&cli.stderr).contains("QMP error GenericError"));
    assert_eq!(c.execute(json!({"execute": "quit"})), json!({"return": {}}));
    let (code, out) = finish(child, Duration::from_secs(30));
    assert_eq!(code, Some(0), "quit ends xenkvm with status 0");
    let runs = out.lines().filter(|l| l.starts_with("guest selftest:")).count();
    assert_eq!(runs, 2, "one guest run, then one more after system_reset:\n{out}");
    assert!(!path.exists(), "the QMP socket is removed at exit");
}

#[test]
fn the_qemu_qmp_python_client_drives_xenkvm() {
    if !kvm_available() {
        return;
    }
    let probe = Command::new("python3").args(["-c", "import qemu.qmp"]).output();
    if !probe.is_ok_and(|o| o.status.success()) {
        eprintln!("SKIP: python3 with qemu.qmp (pip install qemu.qmp) is missing; Python QMP client test skipped");
        return;
    }
    let path = socket_path("py");
    let child = start(&path);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !path.exists() {
        assert!(Instant::now() < deadline, "no QMP socket");
        std::thread::sleep(Duration::from_millis(20));
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/qmp/client.py");
    let out = Command::new("timeout").args(["90", "python3", script]).arg(&path).output().expect("run python3");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "client failed:\n{text}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("status shutdown") && text.contains("quit sent"), "{text}");
    assert!(text.contains("error ExecuteError"), "{text}");
    let (code, _) = finish(child, Duration::from_secs(30));
    assert_eq!(code, Some(0));
}
