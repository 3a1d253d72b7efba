//! Tests of the QemuOpts-style value parsers.

use super::*;

fn pairs(value: &str, implied: &str) -> Vec<(String, String)> {
    parse_pairs(value, implied)
}

fn pair(key: &str, value: &str) -> (String, String) {
    (key.to_owned(), value.to_owned())
}

#[test]
fn split_list_handles_escaped_commas_and_empty_elements() {
    assert_eq!(split_list("a,b=c"), ["a", "b=c"]);
    assert_eq!(split_list("file=a,,b,if=xen"), ["file=a,b", "if=xen"]);
    assert_eq!(split_list("kvm,"), ["kvm"]);
    assert!(split_list("").is_empty());
}

#[test]
fn pairs_use_the_implied_key_first_and_on_for_bare_words() {
    assert_eq!(
        pairs("kvm,xen-version=1", "accel"),
        [pair("accel", "kvm"), pair("xen-version", "1")]
    );
    assert_eq!(pairs("size=1G", "size"), [pair("size", "1G")]);
    assert_eq!(
        pairs("pc,usb", "type"),
        [pair("type", "pc"), pair("usb", "on")]
    );
}

#[test]
fn numbers_are_decimal_or_hex() {
    assert_eq!(parse_u64("42"), Some(42));
    assert_eq!(parse_u64("0x40011"), Some(0x40011));
    assert_eq!(parse_u64("0X1f"), Some(0x1f));
    assert_eq!(parse_u64("0x"), None);
    assert_eq!(parse_u64("4.17"), None);
    assert_eq!(parse_u32("0x100000000"), None);
}

#[test]
fn sizes_default_to_mib() {
    assert_eq!(parse_size("512"), Some(512 << 20));
    assert_eq!(parse_size("4096B"), Some(4096));
    assert_eq!(parse_size("64k"), Some(64 << 10));
    assert_eq!(parse_size("2g"), Some(2 << 30));
    assert_eq!(parse_size("1T"), Some(1 << 40));
    assert_eq!(parse_size("1MB"), None);
    assert_eq!(parse_size("G"), None);
    assert_eq!(parse_size("99999999999999T"), None);
}

#[test]
fn booleans() {
    assert_eq!(parse_bool("on"), Some(true));
    assert_eq!(parse_bool("no"), Some(false));
    assert_eq!(parse_bool("1"), None);
}

#[test]
fn accel_keeps_defaults_for_absent_properties() {
    let accel = parse_accel("kvm,xen-version=0x40011").unwrap();
    assert_eq!(
        accel,
        AccelConfig {
            xen_version: 0x40011,
            ..AccelConfig::default()
        }
    );
}

#[test]
fn accel_requires_a_name() {
    let e = parse_accel("xen-version=0x40011").unwrap_err();
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
}

#[test]
fn smp_topology_follows_qemu() {
    let cases = [
        ("4", 4),
        ("4,sockets=1", 4),
        ("4,cores=2", 4),
        ("4,sockets=2,cores=2", 4),
        ("4,threads=2", 4),
        ("maxcpus=2", 2),
        ("cores=3", 3),
    ];
    for (spec, vcpus) in cases {
        assert_eq!(parse_smp(spec).unwrap(), vcpus, "{spec}");
    }
    for spec in ["3,sockets=2", "4,sockets=3,cores=1", "sockets=2,maxcpus=3"] {
        assert!(
            matches!(parse_smp(spec), Err(CliError::Topology { .. })),
            "{spec}"
        );
    }
    assert!(matches!(
        parse_smp("4,maxcpus=2"),
        Err(CliError::InvalidValue { .. })
    ));
}

#[test]
fn timeouts() {
    assert_eq!(parse_timeout("0.5").unwrap(), Duration::from_millis(500));
    assert!(parse_timeout("nan").is_err());
}

#[test]
fn accel_selects_the_hypercall_transport() {
    use xenkvm_vmm::HypercallPath;
    let path = |v: &str| parse_accel(&format!("kvm,xen-version=0x40011,x-xen-hypercalls={v}")).map(|a| a.hypercalls);
    assert_eq!(path("auto").unwrap(), HypercallPath::Auto);
    assert_eq!(path("kernel").unwrap(), HypercallPath::Kernel);
    assert_eq!(path("userspace").unwrap(), HypercallPath::Userspace);
    let e = path("fast").unwrap_err().to_string();
    assert!(e.contains("x-xen-hypercalls=fast"), "{e}");
    assert_eq!(parse_accel("kvm,xen-version=0x40011").unwrap().hypercalls, HypercallPath::Auto);
}

#[test]
fn seccomp_modes() {
    use xenkvm_vmm::SeccompMode;
    assert_eq!(parse_seccomp("on").unwrap(), SeccompMode::On);
    assert_eq!(parse_seccomp("off").unwrap(), SeccompMode::Off);
    assert_eq!(parse_seccomp("log").unwrap(), SeccompMode::Log);
    assert!(parse_seccomp("yes").is_err());
}
