//! T2: the embedded test guest on this machine's /dev/kvm, through the real
//! binary. Skips with a message where /dev/kvm cannot be opened; every run has a
//! wall-clock limit inside the VMM and a kill deadline here, so it cannot hang.

use std::io::Read;
use std::process::{Command, Stdio};
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

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Runs xenkvm with `args`, killing it if it outlives `limit`.
fn xenkvm(args: &[&str], limit: Duration) -> Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_xenkvm"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start xenkvm");
    let start = Instant::now();
    let code = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status.code();
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("xenkvm {args:?} ran past {limit:?} and was killed");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stdout = String::new();
    let mut stderr = String::new();
    child.stdout.take().unwrap().read_to_string(&mut stdout).unwrap();
    child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    Run { code, stdout, stderr }
}

fn summary(out: &str) -> Option<(u32, u32)> {
    let line = out.lines().find(|l| l.starts_with("guest selftest:"))?;
    let nums: Vec<u32> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .filter_map(|s| s.parse().ok())
        .collect();
    Some((*nums.first()?, *nums.get(1)?))
}

#[test]
fn embedded_guest_passes_its_selftest() {
    if !kvm_available() {
        return;
    }
    let run = xenkvm(&["--timeout", "60"], Duration::from_secs(90));
    let report = format!("stdout:\n{}\nstderr:\n{}", run.stdout, run.stderr);
    let (passed, failed) = summary(&run.stdout).unwrap_or_else(|| panic!("no summary line\n{report}"));
    assert_eq!(failed, 0, "{report}");
    assert!(passed >= 40, "only {passed} checks ran\n{report}");
    assert!(run.stdout.contains("(d1) xenkvm test guest: hello through console_io"), "{report}");
    assert_eq!(run.code, Some(0), "{report}");
}

#[test]
fn benchmark_mode_reports_both_timings() {
    if !kvm_available() {
        return;
    }
    let run = xenkvm(&["-append", "bench=hypercall iters=2000", "--timeout", "60"], Duration::from_secs(90));
    let line = run.stdout.lines().find(|l| l.starts_with("bench hypercall:"));
    let line = line.unwrap_or_else(|| panic!("no bench line\n{}\n{}", run.stdout, run.stderr));
    assert!(line.contains("iters=2000") && line.contains("bare_ns=") && line.contains("hcall_ns="), "{line}");
    assert_eq!(run.code, Some(0));
}

#[test]
fn a_wall_clock_limit_stops_a_guest() {
    if !kvm_available() {
        return;
    }
    // A long benchmark cannot finish in 1 s: the VMM must stop it and say so.
    let run = xenkvm(&["-append", "bench=hypercall iters=100000000", "--timeout", "1"], Duration::from_secs(30));
    assert_eq!(run.code, Some(124), "stdout:\n{}\nstderr:\n{}", run.stdout, run.stderr);
    assert!(run.stderr.contains("wall-clock limit"), "{}", run.stderr);
}

#[test]
fn hostile_pv_block_frontend_gets_errors_and_the_vmm_survives() {
    if !kvm_available() {
        return;
    }
    // The guest's good read expects the disk to start with this.
    let img = std::env::temp_dir().join(format!("xenkvm-pvtest-{}.img", std::process::id()));
    let mut data = b"XENKVM-PVTEST".to_vec();
    data.resize(1 << 20, 0);
    std::fs::write(&img, &data).unwrap();
    let drive = format!("file={},if=xen,format=raw", img.display());
    let run = xenkvm(&["-append", "pvtest=blk", "-drive", &drive, "--timeout", "60"], Duration::from_secs(90));
    let _ = std::fs::remove_file(&img);
    let report = format!("stdout:\n{}\nstderr:\n{}", run.stdout, run.stderr);
    let (passed, failed) = summary(&run.stdout).unwrap_or_else(|| panic!("no summary line\n{report}"));
    assert_eq!(failed, 0, "{report}");
    assert_eq!(passed, 16, "{report}");
    for what in ["bad grant ref gets an error", "runaway producer gets no responses", "still answers hypercalls"] {
        assert!(run.stdout.contains(what), "{what}\n{report}");
    }
    assert!(run.stderr.contains("ring stopped"), "the backend did not stop the broken ring\n{report}");
    assert_eq!(run.code, Some(0), "{report}");
}
