//! -accel, -machine, -cpu, -m and -smp.

use super::*;

// ---- -accel and -machine -------------------------------------------------------------

#[test]
fn accel_properties_in_decimal_and_hex() {
    let cfg = ok(&[
        "-accel",
        "kvm,xen-version=262161,xen-gnttab-max-frames=0x80,xen-evtchn-max-pirq=512",
    ]);
    let expected = AccelConfig {
        xen_version: 0x40011,
        gnttab_max_frames: 128,
        evtchn_max_pirq: 512,
        ..accel(0)
    };
    assert_eq!(cfg.accel, expected);
}

#[test]
fn accel_errors() {
    let e = err(&["-accel", "tcg"]);
    assert!(
        matches!(&e, CliError::Accelerator(s) if s == "-accel tcg"),
        "{e:?}"
    );
    assert!(e
        .to_string()
        .contains("only the kvm accelerator is supported"));
    for irqchip in ["on", "off", "foo"] {
        let e = err(&[
            "-accel",
            &format!("kvm,xen-version=0x40011,kernel-irqchip={irqchip}"),
        ]);
        assert!(matches!(e, CliError::IrqChip(_)), "{e:?}");
        assert_names(&e, "-accel", &format!("kernel-irqchip={irqchip}"));
        assert!(e
            .to_string()
            .contains("Xen guests need kernel-irqchip=split"));
    }
    let e = err(&["-accel", "kvm,kernel-irqchip=split"]);
    assert!(matches!(e, CliError::XenVersionRequired(_)), "{e:?}");
    assert!(e
        .to_string()
        .contains("xen-version=... is required: xenkvm only runs Xen guests"));
    let e = err(&["-accel", "kvm,xen-version=0x40011,dirty-ring-size=4096"]);
    assert!(
        matches!(&e, CliError::UnknownKey { key, .. } if key == "dirty-ring-size"),
        "{e:?}"
    );
    assert_names(&e, "-accel", "dirty-ring-size");
    let e = err(&["-accel", "kvm,xen-version=4.17"]);
    assert!(
        matches!(
            e,
            CliError::InvalidValue {
                option: "-accel",
                ..
            }
        ),
        "{e:?}"
    );
    assert_names(&e, "-accel", "xen-version=4.17");
}

#[test]
fn accel_values_checked_by_validate() {
    let e = err(&["-accel", "kvm,xen-version=0x30002"]);
    assert!(matches!(
        e,
        CliError::Config {
            option: "-accel",
            source: ConfigError::XenVersion(0x30002)
        }
    ));
    let e = err(&["-accel", "kvm,xen-version=0x40011,xen-gnttab-max-frames=0"]);
    assert!(matches!(
        e,
        CliError::Config {
            option: "-accel",
            source: ConfigError::GnttabFrames(0)
        }
    ));
}

#[test]
fn machine_pc_forms() {
    let plain = ok(&[]);
    assert_eq!(ok(&["-M", "pc"]), plain);
    assert_eq!(
        ok(&["-machine", "pc,accel=kvm,kernel-irqchip=split"]),
        plain
    );
    assert_eq!(ok(&["-machine", "accel=kvm"]), plain);
    assert_eq!(ok(&["-machine", "type=pc-i440fx-8.2"]), plain);
}

#[test]
fn machine_errors() {
    let e = err(&["-machine", "q35"]);
    assert!(
        matches!(&e, CliError::MachineNotSupported(m) if m == "q35"),
        "{e:?}"
    );
    assert!(e.to_string().contains("not supported yet"));
    let seed = "xenpvh,ram-low-base=0,ram-low-size=2147483648,pci-ecam-base=824633720832";
    let e = err(&["-machine", seed]);
    assert_eq!(
        e.to_string(),
        "-machine xenpvh: the xenpvh machine is not supported yet"
    );
    let e = err(&["-M", "pc,accel=tcg"]);
    assert!(
        matches!(&e, CliError::Accelerator(s) if s == "-machine accel=tcg"),
        "{e:?}"
    );
    let e = err(&["-M", "pc,kernel-irqchip=on"]);
    assert!(matches!(e, CliError::IrqChip(_)), "{e:?}");
    assert_names(&e, "-machine", "kernel-irqchip=on");
    let e = err(&["-M", "pc,smm=off"]);
    assert!(
        matches!(&e, CliError::UnknownKey { option: "-machine", key, .. } if key == "smm"),
        "{e:?}"
    );
    let e = err(&["-M", "virt"]);
    assert!(matches!(e, CliError::UnknownMachine(_)), "{e:?}");
    assert_names(&e, "-machine", "virt");
}

// ---- -cpu ----------------------------------------------------------------------------

#[test]
fn cpu_forms() {
    let vapic = |spec: &str| ok(&["-cpu", spec]).cpu.xen_vapic;
    assert!(!vapic("host"));
    assert!(!vapic("max"));
    assert!(vapic("host,+xen-vapic"));
    assert!(vapic("host,+xen_vapic"));
    assert!(vapic("max,xen-vapic"));
    assert!(vapic("host,xen-vapic=on"));
    assert!(!vapic("host,xen-vapic=off"));
    assert!(!vapic("host,+xen-vapic,-xen-vapic"));
}

#[test]
fn cpu_errors() {
    let e = err(&["-cpu", "qemu64"]);
    assert!(
        matches!(&e, CliError::CpuModel(m) if m == "qemu64"),
        "{e:?}"
    );
    assert_names(&e, "-cpu", "qemu64");
    let e = err(&["-cpu", "host,+hv-relaxed"]);
    assert!(
        matches!(&e, CliError::CpuFlag(f) if f == "+hv-relaxed"),
        "{e:?}"
    );
    assert_names(&e, "-cpu", "+hv-relaxed");
    let e = err(&["-cpu", "host,xen-vapic=maybe"]);
    assert!(
        matches!(e, CliError::InvalidValue { option: "-cpu", .. }),
        "{e:?}"
    );
    assert_names(&e, "-cpu", "xen-vapic=maybe");
}

// ---- -m ------------------------------------------------------------------------------

#[test]
fn memory_forms() {
    let bytes = |spec: &str| ok(&["-m", spec]).memory_bytes;
    assert_eq!(bytes("512"), 512 << 20);
    assert_eq!(bytes("512M"), 512 << 20);
    assert_eq!(bytes("512m"), 512 << 20);
    assert_eq!(bytes("1G"), 1 << 30);
    assert_eq!(bytes("32768k"), 32 << 20);
    assert_eq!(bytes("size=512M"), 512 << 20);
    assert_eq!(bytes("size=1G"), 1 << 30);
}

#[test]
fn memory_errors() {
    let e = err(&["-m", "12X"]);
    assert!(
        matches!(e, CliError::InvalidValue { option: "-m", .. }),
        "{e:?}"
    );
    assert_eq!(
        e.to_string(),
        r#"invalid -m value "12X": expected a size like 512, 512M or 1G"#
    );
    for key in ["slots", "maxmem"] {
        let e = err(&["-m", &format!("size=1G,{key}=4")]);
        assert!(
            matches!(&e, CliError::MemoryHotplug(k) if k == key),
            "{e:?}"
        );
        assert_names(&e, "-m", key);
    }
    let e = err(&["-m", "size=1G,foo=1"]);
    assert!(
        matches!(e, CliError::UnknownKey { option: "-m", .. }),
        "{e:?}"
    );
    let e = err(&["-m", "8"]);
    assert!(matches!(
        e,
        CliError::Config {
            option: "-m",
            source: ConfigError::MemorySize(_)
        }
    ));
    let e = err(&["-m", "1024k"]);
    assert!(matches!(e, CliError::Config { option: "-m", .. }), "{e:?}");
}

// ---- -smp ----------------------------------------------------------------------------

#[test]
fn smp_forms() {
    let vcpus = |spec: &str| ok(&["-smp", spec]).vcpus;
    assert_eq!(vcpus("4"), 4);
    assert_eq!(vcpus("cpus=4"), 4);
    assert_eq!(vcpus("4,maxcpus=4"), 4);
    assert_eq!(vcpus("4,sockets=2,cores=2,threads=1"), 4);
    assert_eq!(vcpus("8,sockets=2"), 8);
    assert_eq!(vcpus("sockets=2,cores=2,threads=2"), 8);
}

#[test]
fn smp_errors() {
    let e = err(&["-smp", "2,maxcpus=4"]);
    assert!(
        matches!(
            e,
            CliError::CpuHotplug {
                cpus: 2,
                maxcpus: 4
            }
        ),
        "{e:?}"
    );
    assert!(e.to_string().contains("CPU hotplug is not supported yet"));
    assert_names(&e, "-smp", "maxcpus=4");
    let e = err(&["-smp", "4,sockets=2,cores=2,threads=2"]);
    assert!(
        matches!(
            e,
            CliError::Topology {
                product: 8,
                maxcpus: 4,
                ..
            }
        ),
        "{e:?}"
    );
    assert_names(&e, "-smp", "4,sockets=2");
    let e = err(&["-smp", "4,dies=2"]);
    assert!(
        matches!(&e, CliError::UnknownKey { option: "-smp", key, .. } if key == "dies"),
        "{e:?}"
    );
    for bad in ["0", "x", "-1", "cpus="] {
        let e = err(&["-smp", bad]);
        assert!(
            matches!(e, CliError::InvalidValue { option: "-smp", .. }),
            "{bad}: {e:?}"
        );
    }
    let e = err(&["-smp", "1000"]);
    assert!(matches!(
        e,
        CliError::Config {
            option: "-smp",
            source: ConfigError::VcpuCount(1000)
        }
    ));
}
