//! The L1 and L2 initramfs images: busybox, an `/init` script, the VMM with its
//! shared libraries, and for Linux-guest scenarios the L2 kernel and image.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, ensure, Context, Result};

use super::cpio::Archive;
use super::scenarios::{L2Spec, Scenario};
use super::Settings;

/// Printed by L1's `/init` before the scenario runs.
pub const MARK_UP: &str = "XENKVM-NESTED: L1 up";
/// Printed by L1's `/init` after the scenario, followed by its exit status.
pub const MARK_RC: &str = "XENKVM-NESTED: rc=";

/// Where things go inside L1.
pub const L1_XENKVM: &str = "/xenkvm";
pub const L1_SCENARIO: &str = "/scenario.sh";
pub const L1_L2_KERNEL: &str = "/l2/vmlinuz";
pub const L1_L2_INITRD: &str = "/l2/initrd.gz";
/// The anchor QEMU and its firmware directory (`-L`), for scenarios that run it.
pub const L1_ANCHOR_QEMU: &str = "/anchor/qemu-system-x86_64";
pub const L1_ANCHOR_BIOS: &str = "/anchor/pc-bios";

/// The directories every image needs before `/init` can mount anything.
const BASE_DIRS: &[&str] = &["/bin", "/sbin", "/usr/bin", "/usr/sbin", "/proc", "/sys", "/dev", "/tmp", "/root"];

/// busybox as `/bin/busybox` plus `/bin/sh`; `/init` installs the other applets.
fn base(busybox: &Path, init: &str) -> Result<Archive> {
    let mut a = Archive::new();
    for d in BASE_DIRS {
        a.dir(d)?;
    }
    a.host_file("/bin/busybox", busybox)?;
    a.symlink("/bin/sh", "busybox")?;
    a.file("/init", 0o755, init)?;
    Ok(a)
}

/// The prologue both `/init` scripts share.
const PROLOGUE: &str = "#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin:/sbin:/usr/bin:/usr/sbin HOME=/root
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
";

/// L1's `/init`: mounts, marks, runs `/scenario.sh` (the scenario's command
/// line) under `timeout`, prints its status and powers off.
pub fn l1_init(timeout_secs: u64) -> String {
    format!(
        "{PROLOGUE}echo '{MARK_UP}'
cd /
timeout -s KILL {timeout_secs} sh {L1_SCENARIO} </dev/null 2>&1
rc=$?
echo \"{MARK_RC}$rc\"
poweroff -f
"
    )
}

/// An L2 `/init`: the shared prologue, `insmod` of the chosen modules (copied to
/// `/modules`), then the scenario's own script.
pub fn l2_init(body: &str, modules: &[&str]) -> String {
    let mut s = String::from(PROLOGUE);
    for m in modules {
        s.push_str(&format!("insmod /modules/{m}.ko\n"));
    }
    s.push_str(body);
    if !body.ends_with('\n') {
        s.push('\n');
    }
    s
}

/// The L2 image: busybox, an `/init` from `body`, the chosen modules of
/// `l2/modules` (names without `.ko`, loaded in the given order) and `files`
/// (image paths and host files, e.g. from `program_files`).
pub fn l2_archive(settings: &Settings, body: &str, modules: &[&str], files: &[(String, PathBuf)]) -> Result<Archive> {
    let mut a = base(&settings.busybox(), &l2_init(body, modules))?;
    for (path, host) in files {
        a.host_file(path, host)?;
    }
    for m in modules {
        ensure!(!m.contains('/') && !m.is_empty(), "bad module name {m:?}");
        let host = super::l2mods::module_path(settings, m)?;
        a.host_file(&format!("/modules/{m}.ko"), &host)?;
    }
    Ok(a)
}

/// Builds the gzipped L2 initramfs of `spec` at `dest`, with its host programs.
pub fn build_l2_initramfs(settings: &Settings, spec: &L2Spec, dest: &Path) -> Result<()> {
    let files = program_files(spec.extra_programs)?;
    l2_archive(settings, spec.init, spec.modules, &files)?.write_gz(dest)
}

/// Where `program` is on the host: itself when it has a `/`, else the first
/// executable file of that name in a `PATH` directory.
pub fn find_program(program: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let runnable = |p: &Path| std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0);
    if program.contains('/') {
        let p = PathBuf::from(program);
        return runnable(&p).then_some(p);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join(program)).find(|p| runnable(p))
}

/// Host programs for an image: each at its host path (symlinks followed, so the
/// image gets the file itself) plus the libraries and loader `ldd` lists, at
/// their host paths; no path twice.
pub fn program_files(programs: &[&str]) -> Result<Vec<(String, PathBuf)>> {
    let mut files: Vec<(String, PathBuf)> = Vec::new();
    for program in programs {
        let exe = find_program(program).with_context(|| format!("program {program:?} not found on the host"))?;
        let mut add = |p: PathBuf| -> Result<()> {
            let s = p.to_str().with_context(|| format!("non-UTF-8 path {}", p.display()))?.to_string();
            if !files.iter().any(|(f, _)| *f == s) {
                files.push((s, p));
            }
            Ok(())
        };
        let libs = shared_libraries(&exe)?;
        add(exe)?;
        for lib in libs {
            add(lib)?;
        }
    }
    Ok(files)
}

/// The L1 image of `scenario`: busybox, `/init`, `/scenario.sh`, the VMM at
/// `/xenkvm` with its libraries at their host paths, and with an L2 spec the
/// L2 kernel at `/l2/vmlinuz` and the gzipped L2 image `l2_initrd`; `extra`
/// adds host files at the given L1 paths (the anchor QEMU, for one).
pub fn l1_archive(
    settings: &Settings,
    scenario: &Scenario,
    xenkvm: &Path,
    libs: &[PathBuf],
    l2_initrd: Option<&Path>,
    extra: &[(String, PathBuf)],
) -> Result<Archive> {
    let mut a = base(&settings.busybox(), &l1_init(scenario.l1_timeout_secs))?;
    a.file(L1_SCENARIO, 0o755, format!("#!/bin/sh\n{}\n", scenario.command))?;
    a.host_file(L1_XENKVM, xenkvm)?;
    for lib in libs {
        let p = lib.to_str().with_context(|| format!("non-UTF-8 library path {}", lib.display()))?;
        a.host_file(p, lib)?;
    }
    if scenario.l2.is_some() {
        a.host_file(L1_L2_KERNEL, &settings.l2_kernel())?;
        let initrd = l2_initrd.context("the scenario needs an L2 initramfs")?;
        a.host_file(L1_L2_INITRD, initrd)?;
    }
    for (l1_path, host) in extra {
        a.host_file(l1_path, host)?;
    }
    Ok(a)
}

/// The anchor QEMU (`../shared/anchors/qemu-10.2-xen`, see ANCHORS.md) with its
/// libraries at their host paths and its firmware files, as L1 paths and host files.
pub fn anchor_files(settings: &Settings) -> Result<Vec<(String, PathBuf)>> {
    let dir = settings.anchor_dir();
    let exe = dir.join("qemu-system-x86_64");
    ensure!(exe.is_file(), "the anchor QEMU is missing: {} (see ../shared/docs/ANCHORS.md)", exe.display());
    let mut files = vec![(L1_ANCHOR_QEMU.to_string(), exe.clone())];
    for lib in shared_libraries(&exe)? {
        let p = lib.to_str().with_context(|| format!("non-UTF-8 library path {}", lib.display()))?.to_string();
        files.push((p, lib));
    }
    let bios = dir.join("pc-bios");
    for entry in std::fs::read_dir(&bios).with_context(|| format!("cannot list {}", bios.display()))? {
        let path = entry?.path();
        if path.is_file() {
            let name = path.file_name().and_then(|n| n.to_str()).context("odd firmware file name")?.to_string();
            files.push((format!("{L1_ANCHOR_BIOS}/{name}"), path));
        }
    }
    Ok(files)
}

/// The shared libraries and the dynamic loader `ldd` lists for a program
/// (none for a static program).
pub fn parse_ldd(out: &str) -> Vec<PathBuf> {
    let mut libs = Vec::new();
    for line in out.lines() {
        let line = line.trim();
        let path = match line.split_once("=>") {
            Some((_, rest)) => rest.split_whitespace().next(),
            None => line.split_whitespace().next(),
        };
        if let Some(p) = path.filter(|p| p.starts_with('/')) {
            if !libs.iter().any(|l: &PathBuf| l == Path::new(p)) {
                libs.push(PathBuf::from(p));
            }
        }
    }
    libs
}

/// Runs `ldd` on `exe` and returns what it needs at run time.
pub fn shared_libraries(exe: &Path) -> Result<Vec<PathBuf>> {
    let out = Command::new("ldd").arg(exe).output().context("cannot run ldd")?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() || text.contains("statically linked") {
        let err = String::from_utf8_lossy(&out.stderr);
        if text.contains("statically linked")
            || text.contains("not a dynamic executable")
            || err.contains("not a dynamic executable")
        {
            return Ok(Vec::new());
        }
        bail!("ldd {} failed: {text}{err}", exe.display());
    }
    let libs = parse_ldd(&text);
    if let Some(missing) = text.lines().find(|l| l.contains("not found")) {
        bail!("{} needs a library that is missing: {}", exe.display(), missing.trim());
    }
    Ok(libs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nested::scenarios::{self, L2Spec};
    use crate::nested::test_settings;

    #[test]
    fn ldd_output_gives_libraries_and_loader() {
        let out = "\tlinux-vdso.so.1 (0x00007ffd)\n\
                   \tlibgcc_s.so.1 => /lib/x86_64-linux-gnu/libgcc_s.so.1 (0x00007f8d)\n\
                   \tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f8c)\n\
                   \t/lib64/ld-linux-x86-64.so.2 (0x00007f8e)\n";
        let libs = parse_ldd(out);
        assert_eq!(
            libs,
            ["/lib/x86_64-linux-gnu/libgcc_s.so.1", "/lib/x86_64-linux-gnu/libc.so.6", "/lib64/ld-linux-x86-64.so.2"]
                .map(PathBuf::from)
        );
        assert!(parse_ldd("\tstatically linked\n").is_empty());
    }

    #[test]
    fn programs_come_with_their_libraries_once() {
        let files = program_files(&["sh", "sh", "/bin/sh"]).unwrap();
        let sh = find_program("sh").unwrap();
        assert_eq!(files[0], (sh.to_str().unwrap().to_string(), sh.clone()));
        let names: Vec<&str> = files.iter().map(|(p, _)| p.as_str()).collect();
        for (i, n) in names.iter().enumerate() {
            assert!(!names[i + 1..].contains(n), "{n} twice in {names:?}");
        }
        assert_eq!(files.len() > 1, !shared_libraries(&sh).unwrap().is_empty(), "{names:?}");
        assert!(program_files(&["no-such-program-xtask"]).unwrap_err().to_string().contains("not found"));
        assert!(find_program("/no/such/prog").is_none());

        let (settings, dir) = test_settings("programs");
        let l2 = l2_archive(&settings, "true", &[], &files).unwrap();
        for n in &names {
            assert!(l2.paths().iter().any(|p| p == n), "{n} missing from the L2 image");
        }
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn l1_init_marks_runs_the_scenario_and_powers_off() {
        let s = l1_init(90);
        assert!(s.starts_with("#!/bin/busybox sh\n/bin/busybox --install -s /bin\n"));
        for needed in
            ["mount -t proc", "mount -t sysfs", "mount -t devtmpfs devtmpfs /dev", "echo 'XENKVM-NESTED: L1 up'"]
        {
            assert!(s.contains(needed), "{needed} missing from\n{s}");
        }
        let run = s.find("timeout -s KILL 90 sh /scenario.sh").unwrap();
        let rc = s.find("echo \"XENKVM-NESTED: rc=$rc\"").unwrap();
        let off = s.find("poweroff -f").unwrap();
        assert!(s.find(MARK_UP).unwrap() < run && run < rc && rc < off);
    }

    #[test]
    fn l1_image_holds_init_busybox_the_vmm_and_its_libraries() {
        let (settings, dir) = test_settings("l1");
        let exe = dir.join("xenkvm");
        std::fs::write(&exe, "ELF").unwrap();
        let lib = dir.join("libfake.so.6");
        std::fs::write(&lib, "lib").unwrap();
        let probe = scenarios::find("probe").unwrap();
        let a = l1_archive(&settings, probe, &exe, std::slice::from_ref(&lib), None, &[]).unwrap();
        let paths = a.paths();
        for p in ["/init", "/bin/busybox", "/bin/sh", "/xenkvm", "/scenario.sh", "/proc", "/sys", "/dev", "/tmp"] {
            assert!(paths.iter().any(|x| x == p), "{p} missing from {paths:?}");
        }
        assert!(paths.iter().any(|x| Path::new(x) == lib), "{lib:?} not at its host path in {paths:?}");
        assert!(!paths.iter().any(|x| x.starts_with("/l2")), "no L2 files without an L2 spec");
        let Some(super::super::cpio::Node::File { data, mode }) = a.get("/scenario.sh") else { panic!() };
        assert_eq!(*mode, 0o755);
        assert_eq!(String::from_utf8_lossy(data), format!("#!/bin/sh\n{}\n", probe.command));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn l2_scenarios_carry_the_kernel_and_their_image() {
        let (settings, dir) = test_settings("l2");
        let exe = dir.join("xenkvm");
        std::fs::write(&exe, "ELF").unwrap();
        let spec = L2Spec { init: "echo L2 up\npoweroff -f", modules: &["xen-evtchn"], extra_programs: &[] };
        let l2 = l2_archive(&settings, spec.init, spec.modules, &[]).unwrap();
        assert!(l2.paths().contains(&"/modules/xen-evtchn.ko".to_string()));
        let Some(super::super::cpio::Node::File { data, .. }) = l2.get("/init") else { panic!() };
        let init = String::from_utf8_lossy(data);
        assert!(init.contains("insmod /modules/xen-evtchn.ko\necho L2 up\npoweroff -f\n"), "{init}");
        assert!(l2_archive(&settings, "true", &["no-such-module"], &[]).is_err());

        let initrd = dir.join("l2.cpio.gz");
        build_l2_initramfs(&settings, &spec, &initrd).unwrap();
        let scenario = Scenario { l2: Some(spec), ..*scenarios::find("probe").unwrap() };
        let a = l1_archive(&settings, &scenario, &exe, &[], Some(&initrd), &[]).unwrap();
        assert!(a.paths().contains(&L1_L2_KERNEL.to_string()));
        assert!(a.paths().contains(&L1_L2_INITRD.to_string()));
        assert!(l1_archive(&settings, &scenario, &exe, &[], None, &[]).is_err());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
