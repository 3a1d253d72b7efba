//! Command-line tests: every accepted form, the seed command lines, every error.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use xenkvm_vmm::{AccelConfig, ConfigError, CpuConfig, KernelSource, SeccompMode, SerialConfig, VmConfig};

use super::*;

mod boot;
mod machine;

const XEN_ACCEL: &str = "kvm,xen-version=0x40011,kernel-irqchip=split";

fn try_parse(args: &[&str]) -> Result<VmConfig, CliError> {
    parse(std::iter::once("xenkvm").chain(args.iter().copied()))
}

fn ok(args: &[&str]) -> VmConfig {
    try_parse(args).unwrap_or_else(|e| panic!("{args:?} rejected: {e}"))
}

fn err(args: &[&str]) -> CliError {
    match try_parse(args) {
        Ok(cfg) => panic!("{args:?} accepted: {cfg:?}"),
        Err(e) => e,
    }
}

/// Parses `-accel <xen> <args>`, so that the test varies one option only.
fn xen(args: &[&str]) -> Result<VmConfig, CliError> {
    let mut all = vec!["-accel", XEN_ACCEL];
    all.extend_from_slice(args);
    try_parse(&all)
}

fn xen_err(args: &[&str]) -> CliError {
    xen(args)
        .err()
        .unwrap_or_else(|| panic!("{args:?} accepted"))
}

/// Asserts that the message names `option` (and, if given, the bad value).
fn assert_names(e: &CliError, option: &str, value: &str) {
    let text = e.to_string();
    assert!(text.contains(option), "{text:?} does not name {option}");
    assert!(text.contains(value), "{text:?} does not name {value:?}");
}

/// A directory of test files, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("xenkvm-cli-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    fn file(&self, name: &str) -> String {
        let path = self.0.join(name);
        std::fs::write(&path, b"\x7fELF").unwrap();
        path.to_str().unwrap().to_owned()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn accel(xen_version: u32) -> AccelConfig {
    AccelConfig {
        xen_version,
        ..AccelConfig::default()
    }
}

// ---- whole command lines -------------------------------------------------------

#[test]
fn no_arguments_runs_the_embedded_guest() {
    assert_eq!(ok(&[]), VmConfig::embedded(EMBEDDED_IMAGE));
}

#[test]
fn seed_accel_line() {
    let cfg = ok(&["--accel", XEN_ACCEL]);
    assert_eq!(
        cfg,
        VmConfig {
            accel: accel(0x40011),
            ..VmConfig::embedded(EMBEDDED_IMAGE)
        }
    );
}

#[test]
fn seed_accel_and_cpu_line() {
    let cfg = ok(&["--accel", XEN_ACCEL, "--cpu", "host,+xen-vapic"]);
    assert_eq!(cfg.accel, accel(0x40011));
    assert_eq!(cfg.cpu, CpuConfig { xen_vapic: true });
}

#[test]
fn first_seed_spelling_with_xen_4_10() {
    let cfg = ok(&[
        "--accel",
        "kvm,xen-version=0x4000a",
        "--cpu",
        "host,+xen_vapic",
    ]);
    assert_eq!(cfg.accel, accel(0x4000a));
    assert!(cfg.cpu.xen_vapic);
    ok(&[
        "-M",
        "pc",
        "--accel",
        "kvm,xen-version=0x4000a,kernel-irqchip=split",
    ]);
}

#[test]
fn full_linux_command_line() {
    let dir = TempDir::new();
    let (kernel, initrd) = (dir.file("vmlinuz"), dir.file("initrd.img"));
    let cfg = ok(&[
        "--accel",
        XEN_ACCEL,
        "--cpu",
        "host,+xen-vapic",
        "-m",
        "512",
        "-smp",
        "1",
        "-kernel",
        &kernel,
        "-initrd",
        &initrd,
        "-append",
        "console=ttyS0 root=/dev/xvda1",
        "-serial",
        "stdio",
        "-nographic",
    ]);
    let expected = VmConfig {
        accel: accel(0x40011),
        cpu: CpuConfig { xen_vapic: true },
        memory_bytes: 512 << 20,
        vcpus: 1,
        kernel: KernelSource::File(kernel.into()),
        initrd: Some(initrd.into()),
        cmdline: "console=ttyS0 root=/dev/xvda1".to_owned(),
        serial: SerialConfig::Stdio,
        no_reboot: false,
        timeout: None,
        xenstore_socket: None,
        disks: Vec::new(),
        nics: Vec::new(),
        virtio_nics: Vec::new(),
        chardevs: Vec::new(),
        consoles: Vec::new(),
        qmp: Vec::new(),
        no_shutdown: false,
        name: None,
        domid: 1,
        spare_drives: Vec::new(),
        spare_netdevs: Vec::new(),
        seccomp: SeccompMode::On,
    };
    assert_eq!(cfg, expected);
}

#[test]
fn single_and_double_dash_are_equivalent() {
    let dir = TempDir::new();
    let kernel = dir.file("k");
    let words = [
        ("accel", XEN_ACCEL),
        ("machine", "pc"),
        ("cpu", "host,+xen-vapic"),
        ("smp", "2"),
        ("kernel", &kernel),
        ("append", "a b"),
        ("serial", "none"),
        ("display", "none"),
        ("vnc", "none"),
        ("name", "g0"),
        ("timeout", "5"),
    ];
    let flags = ["nographic", "no-reboot", "nodefaults", "no-user-config"];
    let spell = |dashes: &str| -> Vec<String> {
        let options = words
            .iter()
            .flat_map(|(w, v)| [format!("{dashes}{w}"), (*v).to_owned()]);
        options
            .chain(flags.iter().map(|f| format!("{dashes}{f}")))
            .collect()
    };
    let single = spell("-");
    let double = spell("--");
    assert_eq!(ok(&as_strs(&single)), ok(&as_strs(&double)));
    assert_eq!(ok(&["-m", "1G"]), ok(&["--m", "1G"]));
}

fn as_strs(strings: &[String]) -> Vec<&str> {
    strings.iter().map(String::as_str).collect()
}

#[test]
fn last_occurrence_wins() {
    assert_eq!(ok(&["-m", "256", "-m", "512"]).memory_bytes, 512 << 20);
}

#[test]
fn values_may_start_with_a_dash() {
    let cfg = ok(&["-append", "-v --", "-name", "-x"]);
    assert_eq!(cfg.cmdline, "-v --");
    assert_eq!(ok(&["-append", "-smp"]).cmdline, "-smp");
}

// ---- argv normalisation ----------------------------------------------------------

fn normalized(args: &[&str]) -> Vec<String> {
    let mut cmd = command();
    cmd.build();
    let argv = std::iter::once("xenkvm")
        .chain(args.iter().copied())
        .map(OsString::from)
        .collect();
    let out = normalize_args(argv, &ValueOptions::of(&cmd));
    out.into_iter()
        .skip(1)
        .map(|a| a.into_string().unwrap())
        .collect()
}

#[test]
fn normalisation_rewrites_single_dash_words_only() {
    assert_eq!(
        normalized(&["-smp", "2", "-m", "1G", "-M", "pc"]),
        ["--smp", "2", "-m", "1G", "-M", "pc"]
    );
    assert_eq!(
        normalized(&["--accel", "kvm", "-nographic"]),
        ["--accel", "kvm", "--nographic"]
    );
    assert_eq!(
        normalized(&["-append", "-foo", "-5", "-h"]),
        ["--append", "-foo", "-5", "-h"]
    );
    assert_eq!(
        normalized(&["--append=-x", "-no-reboot"]),
        ["--append=-x", "--no-reboot"]
    );
    assert_eq!(normalized(&["--", "-smp"]), ["--", "-smp"]);
    assert_eq!(normalized(&["im", "-smp"]), ["im", "--smp"]);
}

// ---- unsupported and unknown options ------------------------------------------------

#[test]
fn unsupported_options_are_named() {
    for u in UNSUPPORTED.iter().filter(|u| u.name != "xen-attach") {
        let option = format!("-{}", u.name);
        let mut args = vec![option.as_str()];
        args.extend(u.takes_value.then_some("x"));
        let e = xen_err(&args);
        assert!(
            matches!(&e, CliError::Unsupported(o) if *o == option),
            "{e:?}"
        );
        assert_eq!(
            e.to_string(),
            format!("option {option} is not supported yet")
        );
    }
    assert_eq!(
        xen_err(&["--device", "xen-pvdevice"]).to_string(),
        "option -device xen-pvdevice is not supported yet"
    );
    let e = xen_err(&["-xen-attach"]);
    assert!(matches!(e, CliError::XenAttach), "{e:?}");
    assert_eq!(
        e.to_string(),
        "-xen-attach needs a real Xen host; xenkvm emulates Xen on KVM"
    );
}

#[test]
fn seed_pv_shim_line_is_accepted() {
    let dir = TempDir::new();
    let (xen_img, bz_image, disk) = (dir.file("xen"), dir.file("bzImage"), dir.file("guest.img"));
    let drive = format!("file={disk},if=xen");
    let cfg = xen(&[
        "-chardev",
        "stdio,id=char0",
        "-device",
        "xen-console,chardev=char0",
        "-display",
        "none",
        "-m",
        "1G",
        "-kernel",
        &xen_img,
        "-initrd",
        &bz_image,
        "-append",
        "pv-shim console=xen,pv -- console=hvc0",
        "-drive",
        &drive,
    ])
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cfg.consoles, vec!["char0".to_string()]);
    assert_eq!(cfg.disks.len(), 1);
}

#[test]
fn xen_domid_sets_the_domain_id() {
    assert_eq!(ok(&["-xen-domid", "3"]).domid, 3);
    assert!(err(&["-xen-domid", "0"]).to_string().contains("-xen-domid"));
    assert!(err(&["-xen-domid", "32752"]).to_string().contains("-xen-domid"));
    assert!(err(&["-xen-domid", "x"]).to_string().contains("-xen-domid"));
}

#[test]
fn seed_xenpvh_line_names_its_first_unsupported_option() {
    let e = err(&[
        "-xen-domid",
        "3",
        "-no-shutdown",
        "-chardev",
        "socket,id=libxl-cmd,server=on,wait=off",
        "-mon",
        "chardev=libxl-cmd,mode=control",
        "-nodefaults",
        "-no-user-config",
        "-xen-attach",
        "-name",
        "g0",
        "-vnc",
        "none",
        "-display",
        "none",
        "-smp",
        "4,maxcpus=4",
        "-nographic",
        "-machine",
        "xenpvh,ram-low-base=0",
        "-m",
        "4096",
    ]);
    assert!(
        matches!(&e, CliError::XenAttach),
        "{e:?}"
    );
}

#[test]
fn unknown_option_is_named_by_clap() {
    let e = err(&["-accel", XEN_ACCEL, "-frobnicate"]);
    assert!(matches!(&e, CliError::Clap(c) if c.kind() == clap::error::ErrorKind::UnknownArgument));
    assert!(e.to_string().contains("frobnicate"), "{e}");
    let e = err(&["-smp"]);
    assert!(e.to_string().contains("smp"), "{e}");
}

// ---- help ------------------------------------------------------------------------------

#[test]
fn help_is_a_clap_display_error() {
    for spelling in ["--help", "-help", "-h"] {
        let e = err(&[spelling]);
        assert!(
            matches!(&e, CliError::Clap(c) if !c.use_stderr()),
            "{spelling}: {e:?}"
        );
    }
}

#[test]
fn help_lists_every_supported_option_with_its_qemu_spelling() {
    let help = command().render_long_help().to_string();
    let options = [
        "accel",
        "machine",
        "cpu",
        "m",
        "smp",
        "kernel",
        "initrd",
        "append",
        "serial",
        "nographic",
        "display",
        "vnc",
        "no-reboot",
        "nodefaults",
        "no-user-config",
        "name",
    ];
    for option in options {
        assert!(
            help.contains(&format!("--{option} ")) || help.contains(&format!("--{option}\n")),
            "--{option}"
        );
        assert!(
            help.contains(&format!(": -{option}")) || help.contains(&format!(", -{option}")),
            "-{option}"
        );
    }
    assert!(help.contains("-accel kvm,xen-version=0x40011,kernel-irqchip=split"));
    assert!(help.contains("--timeout <SECONDS>"));
    assert!(help.contains("-M pc"));
    for u in &UNSUPPORTED {
        assert!(help.contains(&format!("-{}", u.name)), "-{}", u.name);
    }
}

#[test]
fn xenstore_socket_flag() {
    let cfg = parse(["xenkvm", "--xenstore-socket", "/tmp/xs.sock"]).unwrap();
    assert_eq!(cfg.xenstore_socket, Some(std::path::PathBuf::from("/tmp/xs.sock")));
    assert_eq!(cfg.xenstore_socket_path(), std::path::PathBuf::from("/tmp/xs.sock"));
    let default = parse(["xenkvm", "-m", "256"]).unwrap();
    assert!(default.xenstore_socket_path().to_string_lossy().ends_with(".xenstored"));
}

// ---- NICs -----------------------------------------------------------------------------

#[test]
fn nics_in_qemu_spelling() {
    let cfg = xen(&[
        "-netdev",
        "tap,id=n0,ifname=xk0,script=no,downscript=no",
        "-device",
        "xen-net-device,netdev=n0,mac=52:54:00:aa:bb:cc",
        "-nic",
        "tap,ifname=xk1",
    ])
    .unwrap();
    let macs: Vec<(&str, [u8; 6])> = cfg.nics.iter().map(|n| (n.ifname.as_str(), n.mac)).collect();
    assert_eq!(macs, [("xk0", [0x52, 0x54, 0, 0xaa, 0xbb, 0xcc]), ("xk1", [0x52, 0x54, 0, 0x12, 0x34, 0x56])]);
    assert_eq!(xen(&["-net", "nic", "-net", "tap,ifname=xk2,script=no"]).unwrap().nics.len(), 1);
    let e = xen_err(&["-nic", "tap,ifname=xk0", "-nic", "tap,ifname=xk0"]);
    assert_eq!(e.to_string(), "-netdev/-nic/-net: two NICs use tap xk0");
    let e = xen_err(&["-netdev", "tap,id=n0,ifname=xk0,script=/etc/qemu-ifup"]);
    assert!(e.to_string().contains("script=/etc/qemu-ifup"), "{e}");
}

#[test]
fn virtio_net_pci_nics() {
    let cfg = xen(&[
        "-netdev",
        "tap,id=n0,ifname=xk0,script=no,downscript=no",
        "-device",
        "virtio-net-pci,netdev=n0,id=nic0",
        "-netdev",
        "tap,id=n1,ifname=xk1,script=no,downscript=no",
        "-device",
        "xen-net-device,netdev=n1",
        "-nic",
        "tap,ifname=xk2,model=virtio-net-pci,mac=52:54:00:00:00:02",
    ])
    .unwrap();
    let virtio: Vec<(&str, [u8; 6])> = cfg.virtio_nics.iter().map(|n| (n.ifname.as_str(), n.mac)).collect();
    assert_eq!(virtio, [("xk0", [0x52, 0x54, 0, 0x12, 0x34, 0x56]), ("xk2", [0x52, 0x54, 0, 0, 0, 2])]);
    assert_eq!(cfg.nics, vec![xenkvm_vmm::NicConfig { ifname: "xk1".into(), mac: [0x52, 0x54, 0, 0x12, 0x34, 0x57] }], "MACs unique across models");
    let e = xen_err(&["-device", "virtio-net-pci,netdev=nope"]);
    assert_eq!(e.to_string(), "-device virtio-net-pci,netdev=nope: no -netdev tap,id=nope");
    let e = xen_err(&["-netdev", "tap,id=n0,ifname=xk0", "-device", "virtio-net-pci,netdev=n0", "-device", "virtio-net-pci,netdev=n0"]);
    assert_eq!(e.to_string(), "-device virtio-net-pci,netdev=n0: that netdev is already used by another NIC");
    let e = xen_err(&["-nic", "tap,ifname=xk0,model=virtio-net-pci", "-nic", "tap,ifname=xk0"]);
    assert_eq!(e.to_string(), "-netdev/-nic/-net: two NICs use tap xk0");
    let many: Vec<String> = (0..9).flat_map(|i| ["-nic".to_string(), format!("tap,ifname=v{i},model=virtio-net-pci")]).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    assert_eq!(xen_err(&many).to_string(), "-netdev/-nic/-net: more than 8 virtio-net-pci NICs");
}

#[test]
fn seccomp_is_on_unless_turned_off() {
    assert_eq!(ok(&[]).seccomp, SeccompMode::On);
    assert_eq!(ok(&["--seccomp", "off"]).seccomp, SeccompMode::Off);
    assert_eq!(ok(&["--seccomp=log"]).seccomp, SeccompMode::Log);
}
