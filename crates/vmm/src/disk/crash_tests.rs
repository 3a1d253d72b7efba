//! Crash safety of the disk layer: a child process writes numbered blocks
//! through [`open`] and flushes every few writes, printing `ACK n` once a flush
//! covering write `n` returned (the moment the block backend answers the
//! guest's flush). The parent kills it with SIGKILL at a random point, reopens
//! the image and checks that every acknowledged write is there (or a later
//! write of the same block), then runs `qemu-img check` on qcow2 images.
//!
//! `XENKVM_CRASH_POINTS=N` sets the number of kill points per format (default
//! 10, so the test suite stays quick; the reliability runs use 200).

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::*;
use crate::config::{DiskConfig, DiskFormat};

const BLOCK: u64 = 4096;
const BLOCKS: u64 = 256;
const FLUSH_EVERY: u64 = 4;
const CHILD_ENV: &str = "XENKVM_CRASH_CHILD";

fn config(path: &Path, format: DiskFormat) -> DiskConfig {
    DiskConfig { path: path.to_owned(), format, readonly: false, locking: true, vdev: None, cdrom: false }
}

/// Block contents for write number `n`: `n` repeated.
fn pattern(n: u64) -> Vec<u8> {
    n.to_le_bytes().repeat((BLOCK / 8) as usize)
}

/// The write number a block holds: `Some(0)` if never written, `None` if torn.
fn holder(block: &[u8]) -> Option<u64> {
    let first = u64::from_le_bytes(block.get(..8)?.try_into().ok()?);
    (block == pattern(first).as_slice()).then_some(first)
}

/// The child's body: write, flush, acknowledge, forever (until killed).
fn child(path: &Path, format: DiskFormat) -> ! {
    let mut disk = match open(&config(path, format)) {
        Ok(d) => d,
        Err(e) => {
            println!("OPEN-FAILED {e}");
            std::process::exit(1)
        }
    };
    let mut out = std::io::stdout().lock();
    for n in 1u64.. {
        if disk.write_at((n % BLOCKS) * BLOCK, &pattern(n)).is_err() {
            std::process::exit(1);
        }
        if n % FLUSH_EVERY == 0 {
            if disk.flush().is_err() {
                std::process::exit(1);
            }
            let _ = writeln!(out, "ACK {n}");
            let _ = out.flush();
        }
    }
    std::process::exit(0)
}

/// A small xorshift generator (kill delays need no quality).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Runs the child until it acknowledged something, waits a random 0..40 ms
/// more, kills it and returns the last acknowledged write number.
fn run_and_kill(test: &str, path: &Path, format: DiskFormat, rng: &mut Rng) -> u64 {
    let exe = std::env::current_exe().expect("test binary path");
    let mut child = Command::new(exe)
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, format!("{}|{}", if format == DiskFormat::Qcow2 { "qcow2" } else { "raw" }, path.display()))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn the writer");
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(n) = line.strip_prefix("ACK ").and_then(|n| n.parse::<u64>().ok()) {
                let _ = tx.send(n);
            } else if line.starts_with("OPEN-FAILED") {
                panic!("writer: {line}");
            }
        }
    });
    let mut last = rx.recv_timeout(Duration::from_secs(30)).expect("the writer acknowledged nothing in 30 s");
    let until = Instant::now() + Duration::from_millis(rng.next() % 40);
    while let Some(left) = until.checked_duration_since(Instant::now()) {
        if let Ok(n) = rx.recv_timeout(left) {
            last = n;
        }
    }
    child.kill().expect("SIGKILL the writer");
    let _ = child.wait();
    reader.join().expect("reader thread");
    // Acknowledgements read after the kill were sent before it.
    rx.try_iter().fold(last, u64::max)
}

/// Every block whose last acknowledged write is `m` holds `m` or a later
/// write of the same block; blocks never acknowledged may hold anything.
fn violations(path: &Path, format: DiskFormat, acked: u64) -> Vec<String> {
    let mut disk = open(&config(path, format)).expect("reopen after the kill");
    let mut bad = Vec::new();
    let mut buf = vec![0u8; BLOCK as usize];
    for b in 0..BLOCKS {
        // The newest acknowledged write of block b (write numbers start at 1).
        let k = if acked >= b { (acked - b) / BLOCKS } else { continue };
        let want = b + k * BLOCKS;
        if want == 0 {
            continue;
        }
        disk.read_at(b * BLOCK, &mut buf).expect("read back");
        match holder(&buf) {
            Some(n) if n >= want && n % BLOCKS == b => {}
            other => bad.push(format!("block {b}: acknowledged write {want}, found {other:?}")),
        }
    }
    bad
}

fn qemu_img_check(path: &Path) -> Option<String> {
    let out = Command::new("qemu-img").args(["check", "-f", "qcow2"]).arg(path).output().ok()?;
    // 0: clean; 3: leaked clusters only, which a crash may leave (as QEMU's own).
    match out.status.code() {
        Some(0 | 3) => None,
        code => Some(format!("qemu-img check exit {code:?}: {}", String::from_utf8_lossy(&out.stdout))),
    }
}

fn crash_points(test: &str, format: DiskFormat) {
    if let Ok(spec) = std::env::var(CHILD_ENV) {
        let (fmt, path) = spec.split_once('|').expect("child spec");
        child(Path::new(path), if fmt == "qcow2" { DiskFormat::Qcow2 } else { DiskFormat::Raw });
    }
    let points: u32 = std::env::var("XENKVM_CRASH_POINTS").ok().and_then(|v| v.parse().ok()).unwrap_or(10);
    let path = std::env::temp_dir().join(format!("xenkvm-crash-{}-{test}", std::process::id()));
    let file = OpenOptions::new().read(true).write(true).create(true).truncate(true).open(&path).unwrap();
    if format == DiskFormat::Qcow2 {
        use imago::FormatCreateBuilder;
        let storage = ImagoFile::from_open_file(file, StorageOpenOptions::new().filename(&path).write(true)).unwrap();
        Qcow2::<ImagoFile>::create_builder(storage).size(BLOCKS * BLOCK).create().unwrap();
    } else {
        file.set_len(BLOCKS * BLOCK).unwrap();
    }
    let has_qemu_img = Command::new("qemu-img").arg("--version").output().is_ok_and(|o| o.status.success());
    let mut rng = Rng(u64::from(std::process::id()).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let mut failures = Vec::new();
    let mut total_acked = 0;
    for point in 0..points {
        // Each round starts from what the last one left: the image keeps aging.
        let acked = run_and_kill(test, &path, format, &mut rng);
        total_acked += acked;
        failures.extend(violations(&path, format, acked).into_iter().map(|v| format!("kill {point}: {v}")));
        if format == DiskFormat::Qcow2 && has_qemu_img {
            failures.extend(qemu_img_check(&path).map(|v| format!("kill {point}: {v}")));
        }
        // Later rounds overwrite from 1 again: clear the image so old writes
        // with higher numbers cannot satisfy a check.
        let mut d = open(&config(&path, format)).unwrap();
        for b in 0..BLOCKS {
            d.write_at(b * BLOCK, &[0; BLOCK as usize]).unwrap();
        }
        d.flush().unwrap();
    }
    std::fs::remove_file(&path).unwrap();
    eprintln!("{test}: {points} kill points, {total_acked} acknowledged writes, {} violations", failures.len());
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn raw_acknowledged_writes_survive_sigkill() {
    crash_points("disk::crash_tests::raw_acknowledged_writes_survive_sigkill", DiskFormat::Raw);
}

#[test]
fn qcow2_acknowledged_writes_survive_sigkill_and_the_image_checks_clean() {
    crash_points("disk::crash_tests::qcow2_acknowledged_writes_survive_sigkill_and_the_image_checks_clean", DiskFormat::Qcow2);
}
