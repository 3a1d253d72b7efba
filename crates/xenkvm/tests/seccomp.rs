//! The seccomp sandbox on this machine's /dev/kvm, through the real binary:
//! the embedded guest passes under the filters, and a forbidden syscall in
//! any kind of thread kills the process with SIGSYS. Skips where /dev/kvm
//! cannot be opened, like `guest.rs`.

use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

fn kvm_available() -> bool {
    match std::fs::OpenOptions::new().read(true).write(true).open("/dev/kvm") {
        Ok(_) => true,
        Err(e) => {
            eprintln!("SKIP: /dev/kvm is not usable here ({e}); KVM tests skipped");
            false
        }
    }
}

/// SIGSYS on x86-64 Linux: what seccomp's kill action sends.
const SIGSYS: i32 = 31;

/// Runs xenkvm with `args` (and the self-test hook set to `selftest`),
/// killing it if it outlives the limit; its status and standard output.
fn xenkvm(args: &[&str], selftest: Option<&str>) -> (ExitStatus, String) {
    // One guest at a time: the embedded guest's timing checks dislike a
    // crowded host.
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
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
