//! Boots L1 under QEMU TCG and captures its console with a wall-clock limit.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use super::Settings;

pub const QEMU: &str = "qemu-system-x86_64";

/// The L1 machine of `../shared/docs/NESTED-KVM.md`: an emulated EPYC (AMD SVM
/// with nested paging) under single-threaded TCG, which that document found
/// stable for long nested runs where multi-threaded TCG once killed L1. No
/// network card: L1 needs none, and without one SeaBIOS skips the iPXE ROM.
pub fn args(kernel: &Path, initrd: &Path) -> Vec<String> {
    let mut a: Vec<String> = ["-accel", "tcg,thread=single", "-cpu", "EPYC", "-smp", "2", "-m", "2048"]
        .iter()
        .map(ToString::to_string)
        .collect();
    a.extend(["-nographic", "-no-reboot", "-nic", "none"].map(String::from));
    a.extend(["-kernel".into(), kernel.display().to_string(), "-initrd".into(), initrd.display().to_string()]);
    a.extend(["-append".into(), "console=ttyS0 panic=-1 quiet".into()]);
    a
}

pub fn command(settings: &Settings, initrd: &Path) -> Command {
    let mut c = Command::new(QEMU);
    c.args(args(&settings.l1_kernel(), initrd));
    c
}

/// What a QEMU run left behind.
#[derive(Debug)]
pub struct Capture {
    /// L1's console, one cleaned line each.
    pub lines: Vec<String>,
    pub stderr: String,
    /// `None` when QEMU was killed at the limit.
    pub status: Option<ExitStatus>,
    pub elapsed: Duration,
}

/// A console line as text: no carriage returns, no terminal escape sequences
/// (the VMM colours its log on a terminal, and L1's console is one), no other
/// control characters but tabs.
pub fn clean_line(raw: &[u8]) -> String {
    let text = String::from_utf8_lossy(raw);
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\x1b' => {
                if chars.next_if_eq(&'[').is_some() {
                    // CSI: parameters and intermediates up to a final byte @..~.
                    for f in chars.by_ref() {
                        if ('@'..='~').contains(&f) {
                            break;
                        }
                    }
                } else {
                    chars.next();
                }
            }
            '\t' => out.push(c),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out.truncate(out.trim_end().len());
    out
}

/// Runs `cmd` with stdin closed, echoing each stdout line through `echo` as it
/// arrives, and kills it after `limit`.
pub fn run(mut cmd: Command, limit: Duration, mut echo: impl FnMut(&str)) -> Result<Capture> {
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let start = Instant::now();
    let mut child = cmd.spawn().with_context(|| format!("cannot start {cmd:?}"))?;
    let stdout = child.stdout.take().context("no stdout pipe")?;
    let mut stderr = child.stderr.take().context("no stderr pipe")?;
    let (tx, rx) = mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        let mut r = BufReader::new(stdout);
        let mut buf = Vec::new();
        while matches!(r.read_until(b'\n', &mut buf), Ok(n) if n > 0) {
            if tx.send(clean_line(&buf)).is_err() {
                break;
            }
            buf.clear();
        }
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = stderr.read_to_end(&mut s);
        String::from_utf8_lossy(&s).into_owned()
    });
    let deadline = start + limit;
    let mut lines = Vec::new();
    let mut killed = false;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                echo(&line);
                lines.push(line);
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                // Killing QEMU closes its pipes, which ends both readers.
                let _ = child.kill();
                killed = true;
                break;
            }
        }
    }
    let status = child.wait().context("waiting for QEMU")?;
    // Lines still queued when the limit struck.
    lines.extend(rx.try_iter().inspect(|l| echo(l)));
    let _ = reader.join();
    let stderr = err_reader.join().unwrap_or_default();
    Ok(Capture { lines, stderr, status: (!killed).then_some(status), elapsed: start.elapsed() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_lose_escapes_and_carriage_returns() {
        assert_eq!(clean_line(b"XENKVM-NESTED: L1 up\r\n"), "XENKVM-NESTED: L1 up");
        assert_eq!(
            clean_line(b"\x1b[2m2026-11-22T04:33:07Z\x1b[0m \x1b[32m INFO\x1b[0m \x1b[2mxenkvm_vmm::builder\x1b[0m\x1b[2m:\x1b[0m host KVM: x\n"),
            "2026-11-22T04:33:07Z  INFO xenkvm_vmm::builder: host KVM: x"
        );
        assert_eq!(clean_line(b"a\tb\x07\xff"), "a\tb\u{fffd}");
        assert_eq!(clean_line(b"Press Ctrl-B ...      \r\n"), "Press Ctrl-B ...");
    }

    #[test]
    fn machine_follows_the_nested_recipe() {
        let a = args(Path::new("/k"), Path::new("/i.gz")).join(" ");
        assert_eq!(
            a,
            "-accel tcg,thread=single -cpu EPYC -smp 2 -m 2048 -nographic -no-reboot -nic none -kernel /k -initrd /i.gz \
             -append console=ttyS0 panic=-1 quiet"
        );
    }

    #[test]
    fn captures_echoes_and_enforces_the_limit() {
        let mut sh = Command::new("sh");
        sh.args(["-c", "echo one; echo two >&2; printf 'three\\r\\n'"]);
        let mut seen = Vec::new();
        let c = run(sh, Duration::from_secs(30), |l| seen.push(l.to_string())).unwrap();
        assert_eq!(c.lines, ["one", "three"]);
        assert_eq!(seen, c.lines);
        assert_eq!(c.stderr, "two\n");
        assert!(c.status.unwrap().success());

        let mut slow = Command::new("sh");
        slow.args(["-c", "echo start; exec sleep 30"]);
        let c = run(slow, Duration::from_millis(500), |_| {}).unwrap();
        assert!(c.status.is_none(), "killed at the limit");
        assert_eq!(c.lines, ["start"]);
        assert!(c.elapsed < Duration::from_secs(10));
    }
}
