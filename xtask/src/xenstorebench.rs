//! `cargo xtask bench xenstore`: one client workload against our
//! `xenkvm xenstored` and Debian's C `xenstored` (and `oxenstored` when it
//! starts), side by side in the dom0 of a real Xen 4.17 that the kit in
//! `../shared/nested/realxen` boots under QEMU TCG (`../shared/docs/REAL-XEN.md`:
//! the C xenstored only runs under a real Xen).
//!
//! The client is `xsbench` (`crates/xenstore/examples/xsbench.rs`): reads,
//! writes, directory listings, watch events, transactions with and without a
//! conflict, and a mix of all, each for a fixed time, with 1 and with 16
//! requests in flight. The stores take turns, round after round, in one boot;
//! Xen's `test-xenstore` timed tests run against each too. This module builds
//! the dom0 image, boots it with a wall-clock limit, parses the lines dom0
//! prints and reports medians and ratios.
//!
//! The machine has one vCPU under single-threaded TCG: client and store then
//! share a CPU, which keeps the numbers steady on a busy host (with two vCPUs,
//! every cross-CPU wakeup waits for the host scheduler).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};

use crate::nested::{self, qemu, Settings};

/// Rounds (each store in turn) and seconds per class and depth.
const ROUNDS: u32 = 3;
const SECS: u32 = 1;
/// Requests in flight: one at a time, and a pipelined client.
const DEPTHS: &[u32] = &[1, 16];
/// Iterations of each `test-xenstore` timed test.
const TEST_ITERS: u32 = 100;
/// The client classes in report order (xsbench's names).
const CLASSES: &[&str] = &["read", "write", "dir", "watch", "tx", "tx-conflict", "mixed"];
const GOAL: f64 = 3.0;

/// Printed by the dom0 script before and after the benchmark.
const MARK_UP: &str = "XSB: up";
const MARK_DONE: &str = "XSB: done";

/// One xsbench result line:
/// `XSBENCH store=S depth=D class=C ops=N secs=T ops_per_s=R`.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub store: String,
    pub depth: u32,
    pub class: String,
    pub ops_per_s: f64,
}

/// One `test-xenstore` timing, as dom0 prefixes it:
/// `XSTEST store=S read 1    : avg: 1046788 ns (...)`.
#[derive(Debug, Clone, PartialEq)]
pub struct TestTiming {
    pub store: String,
    pub test: String,
    pub avg_ns: f64,
}

fn field<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    line.split_whitespace().find_map(|w| w.strip_prefix(name)?.strip_prefix('='))
}

pub fn parse_samples(out: &str) -> Vec<Sample> {
    out.lines()
        .filter_map(|l| l.find("XSBENCH ").map(|i| &l[i..]))
        .filter_map(|l| {
            Some(Sample {
                store: field(l, "store")?.to_string(),
                depth: field(l, "depth")?.parse().ok()?,
                class: field(l, "class")?.to_string(),
                ops_per_s: field(l, "ops_per_s")?.parse().ok()?,
            })
        })
        .collect()
}

pub fn parse_tests(out: &str) -> Vec<TestTiming> {
    out.lines()
        .filter_map(|l| l.find("XSTEST ").map(|i| &l[i + "XSTEST ".len()..]))
        .filter_map(|l| {
            let (store, rest) = l.split_once(' ')?;
            let store = store.strip_prefix("store=")?;
            let (test, timing) = rest.split_once(": avg:")?;
            let avg_ns = timing.split_whitespace().next()?.parse().ok()?;
            Some(TestTiming { store: store.to_string(), test: test.trim().to_string(), avg_ns })
        })
        .collect()
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => v.get(n / 2).copied(),
        _ => Some((v.get(n / 2 - 1)? + v.get(n / 2)?) / 2.0),
    }
}

fn median_of(samples: &[Sample], store: &str, depth: u32, class: &str) -> Option<f64> {
    median(
        samples
            .iter()
            .filter(|s| s.store == store && s.depth == depth && s.class == class)
            .map(|s| s.ops_per_s)
            .collect(),
    )
}

fn rate(v: Option<f64>) -> String {
    v.map_or("-".into(), |r| format!("{r:.0}"))
}

fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    Some(a? / b.filter(|b| *b > 0.0)?)
}

fn ratio_text(r: Option<f64>) -> String {
    r.map_or("-".into(), |r| format!("{r:.2}x"))
}

fn verdict(r: f64) -> &'static str {
    if r >= GOAL {
        "met"
    } else {
        "missed"
    }
}

/// The report; `Err` when the C store or ours has no complete set of results.
pub fn report(samples: &[Sample], tests: &[TestTiming]) -> Result<Vec<String>, String> {
    for store in ["c", "xenkvm"] {
        for &depth in DEPTHS {
            if let Some(class) = CLASSES.iter().find(|c| median_of(samples, store, depth, c).is_none()) {
                return Err(format!("no {store} result for class {class} at depth {depth}"));
            }
        }
    }
    let ox = samples.iter().any(|s| s.store == "oxenstored");
    let mut out = vec![format!(
        "bench xenstore: real Xen 4.17 dom0 under QEMU TCG (1 vCPU), same client (xsbench) against each store; \
         ops/s, median of {ROUNDS} rounds of {SECS} s per class"
    )];
    for &depth in DEPTHS {
        let inflight =
            if depth == 1 { "one request in flight".to_string() } else { format!("{depth} requests in flight") };
        out.push(format!("depth {depth} ({inflight}):"));
        let mut head = format!("  {:<12} {:>12} {:>12} {:>12}", "class", "C xenstored", "xenkvm", "xenkvm/C");
        if ox {
            head.push_str(&format!(" {:>12} {:>12}", "oxenstored", "xenkvm/ox"));
        }
        out.push(head);
        for class in CLASSES {
            let c = median_of(samples, "c", depth, class);
            let ours = median_of(samples, "xenkvm", depth, class);
            let mut line =
                format!("  {class:<12} {:>12} {:>12} {:>12}", rate(c), rate(ours), ratio_text(ratio(ours, c)));
            if ox {
                let o = median_of(samples, "oxenstored", depth, class);
                line.push_str(&format!(" {:>12} {:>12}", rate(o), ratio_text(ratio(ours, o))));
            }
            out.push(line);
        }
    }
    if !tests.is_empty() {
        out.push(format!("test-xenstore timed tests (-i {TEST_ITERS}; ops/s = 1e9 / avg ns):"));
        let mut head = format!("  {:<12} {:>12} {:>12} {:>12}", "test", "C xenstored", "xenkvm", "xenkvm/C");
        if tests.iter().any(|t| t.store == "oxenstored") {
            head.push_str(&format!(" {:>12}", "oxenstored"));
        }
        out.push(head);
        let mut names: Vec<&str> = Vec::new();
        for t in tests {
            if !names.contains(&t.test.as_str()) {
                names.push(&t.test);
            }
        }
        let rate_of = |store: &str, test: &str| {
            tests.iter().find(|t| t.store == store && t.test == test).filter(|t| t.avg_ns > 0.0).map(|t| 1e9 / t.avg_ns)
        };
        for name in names {
            let (c, ours) = (rate_of("c", name), rate_of("xenkvm", name));
            let mut line =
                format!("  {name:<12} {:>12} {:>12} {:>12}", rate(c), rate(ours), ratio_text(ratio(ours, c)));
            if tests.iter().any(|t| t.store == "oxenstored") {
                line.push_str(&format!(" {:>12}", rate(rate_of("oxenstored", name))));
            }
            out.push(line);
        }
    }
    let goals: Vec<String> = DEPTHS
        .iter()
        .filter_map(|&d| {
            let r = ratio(median_of(samples, "xenkvm", d, "mixed"), median_of(samples, "c", d, "mixed"))?;
            Some(format!("depth {d}: {r:.2}x {}", verdict(r)))
        })
        .collect();
    out.push(format!("goal xenkvm/C >= {GOAL}x on the mixed workload: {}", goals.join("; ")));
    if !ox {
        out.push("oxenstored: no results (see the dom0 output for why)".into());
    }
    Ok(out)
}

/// The dom0 script (after the kit's `/etc/dom0-up.sh` started C xenstored):
/// start ours, let the stores take turns, run test-xenstore against each,
/// then replace C xenstored by oxenstored and run it the same way.
pub fn dom0_script() -> String {
    let depths: Vec<String> = DEPTHS.iter().map(ToString::to_string).collect();
    format!(
        r#"echo '{MARK_UP}'
C=/var/run/xenstored/socket
XK=/tmp/xenkvm-xenstored.sock
T=/usr/lib/xen-4.17/bin/test-xenstore
[ -S $C ] || echo "XSB: C xenstored has no socket at $C"
/extra/xenkvm xenstored --socket $XK 2>/dev/null &
for i in $(seq 50); do [ -S $XK ] && break; sleep 0.2; done
bench() {{
  for d in {depths}; do
    timeout 120 /extra/xsbench --socket $2 --store $1 --depth $d --secs {SECS} || echo "XSB: xsbench failed store=$1 depth=$d rc=$?"
  done
}}
tests() {{
  XENSTORED_PATH=$2 timeout 120 $T -i {TEST_ITERS} 2>&1 | sed "s/^/XSTEST store=$1 /"
}}
for r in $(seq {ROUNDS}); do bench c $C; bench xenkvm $XK; done
tests c $C
tests xenkvm $XK
kill $(pidof xenstored) 2>/dev/null
for i in $(seq 25); do pidof xenstored >/dev/null || break; sleep 0.2; done
rm -f $C
mkdir -p /etc/xen /var/log/xen /var/lib/xenstored
printf 'xenstored-kva = /proc/xen/xsd_kva\nxenstored-port = /proc/xen/xsd_port\n' > /etc/xen/oxenstored.conf
/usr/lib/xen-4.17/bin/oxenstored --no-fork --no-access-log > /tmp/oxenstored.log 2>&1 &
for i in $(seq 50); do [ -S $C ] && break; sleep 0.2; done
if timeout 60 /extra/xsbench --socket $C --store probe --secs 0.1 --classes read >/dev/null 2>&1; then
  for r in $(seq {ROUNDS}); do bench oxenstored $C; done
  tests oxenstored $C
else
  echo "XSB: oxenstored does not serve its socket:"; tail -5 /tmp/oxenstored.log /var/log/xen/xenstored.log 2>/dev/null
fi
echo '{MARK_DONE}'
poweroff -f
"#,
        depths = depths.join(" ")
    )
}

/// What the kit must hold (REAL-XEN.md), relative to the nested directory.
const KIT: &[&str] = &[
    "realxen/xen-4.17",
    "realxen/make-dom0-initramfs.sh",
    "l2/vmlinuz",
    "busybox",
    "l2/modules/xen-evtchn.ko",
    "l2/modules/xen-privcmd.ko",
    "l2/modules/xenfs.ko",
];

/// The kit files that are missing.
pub fn missing_kit(dir: &Path) -> Vec<PathBuf> {
    KIT.iter().map(|f| dir.join(f)).filter(|p| !p.exists()).collect()
}

/// The real-Xen machine of REAL-XEN.md with one vCPU under single-threaded
/// TCG, no network card.
pub fn qemu_args(xen: &Path, vmlinuz: &Path, initrd: &Path) -> Vec<String> {
    let mut a: Vec<String> =
        ["-accel", "tcg,thread=single", "-cpu", "EPYC,-monitor,-smap,-smep", "-smp", "1", "-m", "2048"]
            .iter()
            .map(ToString::to_string)
            .collect();
    a.extend(["-nographic", "-no-reboot", "-nic", "none"].map(String::from));
    a.extend(["-kernel".into(), xen.display().to_string()]);
    a.extend(["-append".into(), "console=com1 com1=115200 dom0_mem=1024M noreboot".into()]);
    a.extend(["-initrd".into(), format!("{} console=hvc0 quiet,{}", vmlinuz.display(), initrd.display())]);
    a
}

fn build(settings: &Settings) -> Result<(PathBuf, PathBuf)> {
    let mut b = crate::cargo();
    b.args(["build", "--release", "--package", "xenkvm"]).current_dir(&settings.workspace);
    crate::run(b)?;
    let mut b = crate::cargo();
    b.args(["build", "--release", "--package", "xenkvm-xenstore", "--example", "xsbench"])
        .current_dir(&settings.workspace);
    crate::run(b)?;
    let release = settings.target_dir.join("release");
    Ok((release.join("xenkvm"), release.join("examples/xsbench")))
}

pub fn run() -> Result<()> {
    let settings = Settings::from_env()?;
    let missing = missing_kit(&settings.dir);
    if !missing.is_empty() {
        let list: Vec<String> = missing.iter().map(|p| p.display().to_string()).collect();
        println!(
            "bench xenstore: SKIPPED: the real-Xen kit is incomplete (missing {}); it comes from \
             ../shared/nested (set {}), see ../shared/docs/REAL-XEN.md",
            list.join(", "),
            nested::DIR_ENV
        );
        return Ok(());
    }
    nested::ensure_tools()?;
    let started = Instant::now();
    let (xenkvm, xsbench) = build(&settings)?;
    let work = settings.target_dir.join("nested/bench-xenstore");
    std::fs::create_dir_all(&work).with_context(|| format!("cannot create {}", work.display()))?;
    let script = work.join("dom0.sh");
    std::fs::write(&script, dom0_script())?;
    let initrd = work.join("dom0.cpio.gz");
    let mut make = Command::new(settings.dir.join("realxen/make-dom0-initramfs.sh"));
    make.arg(&initrd).arg(&script).arg(&xenkvm).arg(&xsbench);
    eprintln!("xtask: running {make:?}");
    let built = qemu::run(make, Duration::from_secs(600), |l| eprintln!("[kit] {l}"))?;
    match built.status {
        Some(s) if s.success() && initrd.is_file() => {}
        Some(s) => bail!("make-dom0-initramfs.sh failed ({s}):\n{}", built.stderr),
        None => bail!("make-dom0-initramfs.sh did not finish within 600 s"),
    }
    let mut cmd = Command::new(qemu::QEMU);
    cmd.args(qemu_args(&settings.dir.join("realxen/xen-4.17"), &settings.dir.join("l2/vmlinuz"), &initrd));
    eprintln!(
        "xtask: bench xenstore: dom0 image ready after {:.1} s; booting Xen (limit {} s, {} to change)",
        started.elapsed().as_secs_f64(),
        settings.timeout.as_secs(),
        nested::TIMEOUT_ENV
    );
    eprintln!("xtask: running {cmd:?}");
    let cap = qemu::run(cmd, settings.timeout, |l| {
        if !l.starts_with("(XEN)") {
            println!("[dom0] {l}");
        }
    })?;
    let text = cap.lines.join("\n") + "\n";
    std::fs::write(work.join("console.log"), &text)?;
    println!(
        "bench xenstore: QEMU run {:.1} s wall, total {:.1} s",
        cap.elapsed.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    let samples = parse_samples(&text);
    let tests = parse_tests(&text);
    let judged = report(&samples, &tests);
    if let Ok(lines) = &judged {
        for l in lines {
            println!("{l}");
        }
    }
    let console = work.join("console.log");
    ensure!(
        cap.status.is_some(),
        "timed out after {} s ({} to change); QEMU killed (console in {})",
        settings.timeout.as_secs(),
        nested::TIMEOUT_ENV,
        console.display()
    );
    ensure!(text.contains(MARK_UP), "dom0 never ran the benchmark (console in {})", console.display());
    ensure!(text.contains(MARK_DONE), "the benchmark did not finish (console in {})", console.display());
    // oxenstored is optional; the C store and ours must have run clean.
    let fatal =
        |l: &&str| ["store=c ", "store=xenkvm "].iter().any(|s| l.contains(&format!("XSB: xsbench failed {s}")));
    if let Some(l) = text.lines().find(fatal) {
        bail!("{l} (console in {})", console.display());
    }
    judged.map(|_| ()).map_err(|e| anyhow::anyhow!("{e} (console in {})", console.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(store: &str, depth: u32, rate: f64) -> String {
        CLASSES
            .iter()
            .map(|c| {
                format!("[dom0] XSBENCH store={store} depth={depth} class={c} ops=10 secs=1.000 ops_per_s={rate:.1}\n")
            })
            .collect()
    }

    #[test]
    fn parses_xsbench_and_test_xenstore_lines() {
        let s = parse_samples("noise\nXSBENCH store=c depth=16 class=tx-conflict ops=112 secs=1.013 ops_per_s=110.5\n");
        assert_eq!(s, [Sample { store: "c".into(), depth: 16, class: "tx-conflict".into(), ops_per_s: 110.5 }]);
        let t = parse_tests(
            "XSTEST store=xenkvm read 1    : avg: 1275364 ns (865075 ns .. 1631644 ns)\nXSTEST store=c garbage\n",
        );
        assert_eq!(t, [TestTiming { store: "xenkvm".into(), test: "read 1".into(), avg_ns: 1_275_364.0 }]);
        assert_eq!(parse_tests("XSTEST store=c ta empty x: avg: 2000 ns")[0].test, "ta empty x");
    }

    #[test]
    fn report_takes_medians_and_ratios() {
        let mut out = String::new();
        for (c, ours) in [(100.0, 300.0), (120.0, 200.0), (80.0, 900.0)] {
            out += &lines("c", 1, c);
            out += &lines("xenkvm", 1, ours);
            out += &lines("c", 16, c * 2.0);
            out += &lines("xenkvm", 16, ours * 20.0);
        }
        out += "XSTEST store=c read 1    : avg: 1000000 ns (1 ns .. 2 ns)\nXSTEST store=xenkvm read 1    : avg: 500000 ns\n";
        let r = report(&parse_samples(&out), &parse_tests(&out)).unwrap().join("\n");
        let row = |words: &[&str]| r.lines().any(|l| l.split_whitespace().eq(words.iter().copied()));
        assert!(row(&["mixed", "100", "300", "3.00x"]), "{r}");
        assert!(row(&["read", "1", "1000", "2000", "2.00x"]), "{r}");
        assert!(
            r.contains("goal xenkvm/C >= 3x on the mixed workload: depth 1: 3.00x met; depth 16: 30.00x met"),
            "{r}"
        );
        assert!(r.contains("oxenstored: no results"), "{r}");
        let with_ox = out.clone() + &lines("oxenstored", 1, 50.0);
        let r = report(&parse_samples(&with_ox), &[]).unwrap().join("\n");
        assert!(r.contains("xenkvm/ox") && r.contains("6.00x"), "{r}");
    }

    #[test]
    fn a_missing_store_or_class_fails() {
        assert!(report(&[], &[]).unwrap_err().contains("no c result"));
        let out = lines("c", 1, 1.0) + &lines("c", 16, 1.0) + &lines("xenkvm", 1, 1.0);
        assert!(report(&parse_samples(&out), &[]).unwrap_err().contains("no xenkvm result for class read at depth 16"));
    }

    #[test]
    fn script_runs_every_store_and_depth() {
        let s = dom0_script();
        for needle in [
            "bench c $C",
            "bench xenkvm $XK",
            "bench oxenstored $C",
            "--depth $d",
            "for d in 1 16",
            MARK_DONE,
            "poweroff -f",
        ] {
            assert!(s.contains(needle), "{needle}: {s}");
        }
        assert!(s.contains("tests c $C") && s.contains("tests xenkvm $XK"));
    }

    #[test]
    fn kit_check_and_machine() {
        let d = nested::test_dir("xsbench-kit");
        assert_eq!(missing_kit(&d).len(), KIT.len());
        for f in KIT {
            let p = d.join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, "x").unwrap();
        }
        assert!(missing_kit(&d).is_empty());
        std::fs::remove_dir_all(d).unwrap();
        let a = qemu_args(Path::new("/x"), Path::new("/v"), Path::new("/i.gz")).join(" ");
        assert!(a.contains("-cpu EPYC,-monitor,-smap,-smep -smp 1"), "{a}");
        assert!(a.ends_with("-initrd /v console=hvc0 quiet,/i.gz"), "{a}");
    }
}
