//! `cargo xtask nested <scenario>`: runs xenkvm on a real KVM with Xen support,
//! inside a Linux (L1) booted under QEMU TCG with an emulated AMD SVM CPU
//! (`../shared/docs/NESTED-KVM.md`, `docs/nested.md`).

pub mod cpio;
pub mod l2mods;
pub mod initramfs;
pub mod qemu;
pub mod scenarios;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};

use scenarios::Scenario;

/// Where the nested files are (default `<workspace>/../shared/nested`).
pub const DIR_ENV: &str = "XENKVM_NESTED_DIR";
/// The wall-clock limit of one QEMU run, in seconds (default 600).
pub const TIMEOUT_ENV: &str = "XENKVM_NESTED_TIMEOUT";
/// Where the anchor QEMU is (default `<nested dir>/../anchors/qemu-10.2-xen`).
pub const ANCHOR_ENV: &str = "XENKVM_ANCHOR_DIR";
const DEFAULT_TIMEOUT_SECS: u64 = 600;

/// The QEMU run's wall-clock limit: the setting, or more for a scenario whose
/// own L1 limit needs it (L1's boot gets a minute on top).
pub fn run_limit(settings: &Settings, scenario: &Scenario) -> Duration {
    settings.timeout.max(Duration::from_secs(scenario.l1_timeout_secs + 60))
}

/// What the nested directory must hold, for the error message and docs/nested.md.
pub const NEEDED: &str = "\
the nested harness needs these files (directory from XENKVM_NESTED_DIR, default <workspace>/../shared/nested):
  l1-bzImage   L1 kernel: Debian linux-source 6.1 (x86_64_defconfig) with CONFIG_KVM_AMD=y and
               CONFIG_KVM_XEN=y, no modules; build-l1-kernel.sh OUT_DIR builds it
  busybox      a static busybox (Debian busybox-static), the userspace of L1 and L2
  l2/vmlinuz   the L2 guest kernel: vmlinuz of Debian linux-image-6.1 (amd64), for Linux-guest scenarios
  l2/modules/  *.ko modules of that kernel (xen-blkfront, xen-netfront, ...) for Linux-guest scenarios";

pub struct Settings {
    pub dir: PathBuf,
    pub timeout: Duration,
    pub workspace: PathBuf,
    pub target_dir: PathBuf,
}

impl Settings {
    pub fn from_env() -> Result<Self> {
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().context("xtask has no parent")?.to_path_buf();
        let dir = std::env::var_os(DIR_ENV).map_or_else(|| workspace.join("../shared/nested"), PathBuf::from);
        let timeout = parse_timeout(std::env::var(TIMEOUT_ENV).ok().as_deref())?;
        let target_dir = std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| workspace.join("target"), PathBuf::from);
        Ok(Self { dir, timeout, workspace, target_dir })
    }

    pub fn l1_kernel(&self) -> PathBuf {
        self.dir.join("l1-bzImage")
    }
    pub fn busybox(&self) -> PathBuf {
        self.dir.join("busybox")
    }
    pub fn l2_kernel(&self) -> PathBuf {
        self.dir.join("l2/vmlinuz")
    }
    pub fn l2_modules(&self) -> PathBuf {
        self.dir.join("l2/modules")
    }
    /// The anchor QEMU 10.2 build with Xen emulation (`../shared/docs/ANCHORS.md`).
    pub fn anchor_dir(&self) -> PathBuf {
        std::env::var_os(ANCHOR_ENV).map_or_else(|| self.dir.join("../anchors/qemu-10.2-xen"), PathBuf::from)
    }

    /// Fails, naming what is needed, when a file `scenario` uses is missing.
    pub fn check(&self, scenario: &Scenario) -> Result<()> {
        if !self.dir.is_dir() {
            bail!("nested directory {} does not exist\n{NEEDED}", self.dir.display());
        }
        let mut needed = vec![self.l1_kernel(), self.busybox()];
        if scenario.l2.is_some() {
            needed.extend([self.l2_kernel(), self.l2_modules()]);
        }
        let missing: Vec<String> = needed.iter().filter(|p| !p.exists()).map(|p| p.display().to_string()).collect();
        ensure!(missing.is_empty(), "missing: {}\n{NEEDED}", missing.join(", "));
        Ok(())
    }
}

fn parse_timeout(value: Option<&str>) -> Result<Duration> {
    let Some(v) = value.map(str::trim).filter(|v| !v.is_empty()) else {
        return Ok(Duration::from_secs(DEFAULT_TIMEOUT_SECS));
    };
    match v.parse::<u64>() {
        Ok(s) if s > 0 => Ok(Duration::from_secs(s)),
        _ => bail!("{TIMEOUT_ENV}={v:?}: expected a whole number of seconds > 0"),
    }
}

pub fn usage() -> String {
    let mut u = String::from("usage: cargo xtask nested <scenario>\nscenarios:\n");
    for s in scenarios::SCENARIOS {
        u.push_str(&format!("  {:<16} {}\n", s.name, s.about));
    }
    u.push_str(&format!("environment: {DIR_ENV} (default <workspace>/../shared/nested), {TIMEOUT_ENV} (seconds, default {DEFAULT_TIMEOUT_SECS})"));
    u
}

fn on_path(tool: &str) -> bool {
    Command::new("sh").args(["-c", &format!("command -v {tool} >/dev/null")]).status().is_ok_and(|s| s.success())
}

/// QEMU and cpio come from Debian's `qemu-system-x86` and `cpio`; installs them
/// when missing (the build machines run as root).
pub(crate) fn ensure_tools() -> Result<()> {
    if !on_path(qemu::QEMU) || !on_path("cpio") {
        eprintln!("xtask: {} or cpio missing; installing qemu-system-x86 and cpio with apt-get", qemu::QEMU);
        let st = Command::new("sh")
            .args(["-c", "apt-get update && apt-get install -y qemu-system-x86 cpio"])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .context("cannot run apt-get")?;
        ensure!(
            st.success() && on_path(qemu::QEMU),
            "could not install qemu-system-x86 (apt-get: {st}); install it and retry"
        );
    }
    ensure!(on_path("gzip"), "gzip is missing; install the gzip package");
    Ok(())
}

/// The Debian package of a host program an image carries, for installing it.
fn package_of(program: &str) -> Option<&'static str> {
    let name = program.rsplit('/').next().unwrap_or(program);
    match name {
        n if n.starts_with("xenstore") => Some("xenstore-utils"),
        "mke2fs" | "e2fsck" | "debugfs" => Some("e2fsprogs"),
        "qemu-img" => Some("qemu-utils"),
        "kexec" => Some("kexec-tools"),
        "fio" => Some("fio"),
        _ => None,
    }
}

/// Every host program of `scenario` (L1's and L2's).
fn scenario_programs(scenario: &Scenario) -> Vec<&'static str> {
    let mut all = scenario.extra_programs.to_vec();
    if let Some(l2) = &scenario.l2 {
        all.extend(l2.extra_programs.iter().filter(|p| !scenario.extra_programs.contains(p)));
    }
    all
}

/// Installs the packages of the scenario's host programs that are missing
/// (xenstore-utils for the xenstore tools) with apt-get.
fn ensure_programs(scenario: &Scenario) -> Result<()> {
    let programs = scenario_programs(scenario);
    let missing: Vec<&str> = programs.iter().copied().filter(|p| initramfs::find_program(p).is_none()).collect();
    if missing.is_empty() {
        return Ok(());
    }
    let mut packages: Vec<&str> = Vec::new();
    for p in &missing {
        let Some(pkg) = package_of(p) else { bail!("host program {p:?} is missing and xtask knows no package for it") };
        if !packages.contains(&pkg) {
            packages.push(pkg);
        }
    }
    eprintln!("xtask: {} missing; installing {} with apt-get", missing.join(", "), packages.join(" "));
    let st = Command::new("sh")
        .args(["-c", &format!("apt-get update && apt-get install -y {}", packages.join(" "))])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()
        .context("cannot run apt-get")?;
    let still: Vec<&str> = missing.into_iter().filter(|p| initramfs::find_program(p).is_none()).collect();
    ensure!(st.success() && still.is_empty(), "could not install {} (apt-get: {st}); install it and retry", packages.join(" "));
    Ok(())
}

/// Builds the VMM the normal way (release, dynamically linked); L1 gets the
/// libraries `ldd` lists at the same paths.
fn build_xenkvm(settings: &Settings) -> Result<(PathBuf, Vec<PathBuf>)> {
    let mut b = crate::cargo();
    b.args(["build", "--release", "--package", "xenkvm"]).current_dir(&settings.workspace);
    crate::run(b)?;
    let exe = settings.target_dir.join("release/xenkvm");
    let libs = initramfs::shared_libraries(&exe)?;
    Ok((exe, libs))
}

/// Builds the images, boots L1 and judges the scenario.
pub fn run(name: &str) -> Result<()> {
    let scenario = scenarios::find(name)?;
    let settings = Settings::from_env()?;
    settings.check(scenario)?;
    ensure_tools()?;
    ensure_programs(scenario)?;
    let started = Instant::now();
    let (exe, libs) = build_xenkvm(&settings)?;
    let work = settings.target_dir.join("nested").join(scenario.name);
    std::fs::create_dir_all(&work).with_context(|| format!("cannot create {}", work.display()))?;
    let l2 = match &scenario.l2 {
        Some(spec) => {
            let p = work.join("l2.cpio.gz");
            initramfs::build_l2_initramfs(&settings, spec, &p)?;
            Some(p)
        }
        None => None,
    };
    let mut extra = if scenario.anchor { initramfs::anchor_files(&settings)? } else { Vec::new() };
    extra.extend(initramfs::program_files(scenario.extra_programs)?);
    let initrd = work.join("l1.cpio.gz");
    initramfs::l1_archive(&settings, scenario, &exe, &libs, l2.as_deref(), &extra)?.write_gz(&initrd)?;
    let prepared = started.elapsed();
    eprintln!(
        "xtask: nested {}: L1 image {} ({} KiB) ready after {:.1} s; booting L1 (limit {} s)",
        scenario.name,
        initrd.display(),
        std::fs::metadata(&initrd)?.len() / 1024,
        prepared.as_secs_f64(),
        run_limit(&settings, scenario).as_secs()
    );
    let cmd = qemu::command(&settings, &initrd);
    eprintln!("xtask: running {cmd:?}");
    let limit = run_limit(&settings, scenario);
    let cap = qemu::run(cmd, limit, |l| println!("[L1] {l}"))?;
    std::fs::write(work.join("console.log"), cap.lines.join("\n") + "\n")?;
    std::fs::write(work.join("qemu-stderr.log"), &cap.stderr)?;
    let verdict = judge(scenario, &cap, limit);
    println!(
        "nested {}: QEMU run {:.1} s wall, total {:.1} s",
        scenario.name,
        cap.elapsed.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    match verdict {
        Ok(report) => {
            for l in report {
                println!("{l}");
            }
            println!("nested {}: PASS", scenario.name);
            Ok(())
        }
        Err((report, err)) => {
            for l in report {
                println!("{l}");
            }
            let tail: Vec<&str> =
                cap.stderr.lines().filter(|l| !l.contains("TCG doesn't support requested feature")).collect();
            if !tail.is_empty() {
                eprintln!("QEMU stderr:\n{}", tail[tail.len().saturating_sub(20)..].join("\n"));
            }
            Err(err.context(format!(
                "nested {} FAILED (console in {})",
                scenario.name,
                work.join("console.log").display()
            )))
        }
    }
}

/// The report and the verdict: timeout, QEMU failure, markers, then the
/// scenario's own check.
fn judge(
    scenario: &Scenario,
    cap: &qemu::Capture,
    limit: Duration,
) -> Result<Vec<String>, (Vec<String>, anyhow::Error)> {
    let console = scenarios::Console::parse(&cap.lines);
    let mut report = Vec::new();
    let checked = (|| {
        let Some(status) = cap.status else {
            // What the scenario printed so far still helps.
            let _ = (scenario.check)(&console, &mut report);
            bail!("timed out after {} s ({TIMEOUT_ENV} to change); QEMU killed", limit.as_secs());
        };
        let markers = console.require_markers();
        if markers.is_err() && !status.success() {
            bail!("QEMU exited with {status} before the scenario ended");
        }
        markers?;
        (scenario.check)(&console, &mut report)
    })();
    match checked {
        Ok(()) => Ok(report),
        Err(e) => Err((report, e)),
    }
}

#[cfg(test)]
pub fn test_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("xtask-nested-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Settings over a fake nested directory (tiny stand-ins for every file).
#[cfg(test)]
pub fn test_settings(tag: &str) -> (Settings, PathBuf) {
    let d = test_dir(tag);
    let nested = d.join("nested");
    std::fs::create_dir_all(nested.join("l2/modules")).unwrap();
    for f in ["l1-bzImage", "busybox", "l2/vmlinuz", "l2/modules/xen-evtchn.ko"] {
        std::fs::write(nested.join(f), f).unwrap();
    }
    let s =
        Settings { dir: nested, timeout: Duration::from_secs(1), workspace: d.clone(), target_dir: d.join("target") };
    (s, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeout_defaults_and_validates() {
        assert_eq!(parse_timeout(None).unwrap(), Duration::from_secs(600));
        assert_eq!(parse_timeout(Some(" 90 ")).unwrap(), Duration::from_secs(90));
        assert!(parse_timeout(Some("0")).is_err());
        assert!(parse_timeout(Some("10m")).is_err());
    }

    #[test]
    fn missing_files_are_named_with_what_is_needed() {
        let (mut s, d) = test_settings("check");
        let probe = scenarios::find("probe").unwrap();
        s.check(probe).unwrap();
        std::fs::remove_file(s.busybox()).unwrap();
        let e = s.check(probe).unwrap_err().to_string();
        assert!(e.contains("busybox") && e.contains("CONFIG_KVM_XEN") && e.contains("l2/vmlinuz"), "{e}");
        s.dir = d.join("absent");
        assert!(s.check(probe).unwrap_err().to_string().contains("does not exist"));
        std::fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn xenstore_tools_come_from_xenstore_utils() {
        assert_eq!(package_of("xenstore-watch"), Some("xenstore-utils"));
        assert_eq!(package_of("/usr/bin/xenstore-ls"), Some("xenstore-utils"));
        assert_eq!(package_of("strace"), None);
        let s = scenarios::find("linux-xenstore").unwrap();
        assert_eq!(scenario_programs(s), ["xenstore-ls", "xenstore-read", "xenstore-write", "xenstore-watch"]);
        assert!(scenario_programs(scenarios::find("linux-boot").unwrap()).is_empty());
    }

    #[test]
    fn usage_lists_every_scenario() {
        let u = usage();
        for name in scenarios::names() {
            assert!(u.contains(name), "{u}");
        }
    }

    #[test]
    fn judge_fails_on_timeout_missing_markers_and_bad_checks() {
        let probe = scenarios::find("probe").unwrap();
        let ok_status = Command::new("true").status().unwrap();
        let cap = |lines: &[&str], status| qemu::Capture {
            lines: lines.iter().map(|l| l.to_string()).collect(),
            stderr: String::new(),
            status,
            elapsed: Duration::ZERO,
        };
        let good = ["XENKVM-NESTED: L1 up", "INFO host KVM: xen_hvm=0x3f", "XENKVM-NESTED: rc=0"];
        assert!(judge(probe, &cap(&good, Some(ok_status)), Duration::from_secs(1)).is_ok());
        let (_, e) = judge(probe, &cap(&good[..2], None), Duration::from_secs(7)).unwrap_err();
        assert!(e.to_string().contains("timed out after 7 s"), "{e}");
        let (_, e) = judge(probe, &cap(&good[..2], Some(ok_status)), Duration::from_secs(1)).unwrap_err();
        assert!(e.to_string().contains("rc=N"), "{e}");
        let (_, e) = judge(probe, &cap(&[good[0], good[2]], Some(ok_status)), Duration::from_secs(1)).unwrap_err();
        assert!(e.to_string().contains("host KVM"), "{e}");
    }
}
