//! -kernel, -initrd, -append, -no-reboot, front ends, --timeout.

use super::*;

// ---- -kernel, -initrd, -append, -no-reboot -------------------------------------------

#[test]
fn kernel_must_be_a_readable_file() {
    let dir = TempDir::new();
    let missing = dir.0.join("missing").to_str().unwrap().to_owned();
    let e = err(&["-kernel", &missing]);
    assert!(
        matches!(
            e,
            CliError::File {
                option: "-kernel",
                ..
            }
        ),
        "{e:?}"
    );
    assert_names(&e, "-kernel", &missing);
    let e = err(&["-kernel", dir.0.to_str().unwrap()]);
    assert!(e.to_string().contains("not a regular file"), "{e}");
    let kernel = dir.file("k");
    let e = err(&["-kernel", &kernel, "-initrd", &missing]);
    assert!(
        matches!(
            e,
            CliError::File {
                option: "-initrd",
                ..
            }
        ),
        "{e:?}"
    );
}

#[test]
fn initrd_errors() {
    let dir = TempDir::new();
    let initrd = dir.file("initrd");
    let e = err(&["-initrd", &initrd]);
    assert!(matches!(e, CliError::InitrdWithoutKernel), "{e:?}");
    assert_names(&e, "-initrd", "-kernel");
    let kernel = dir.file("xen");
    let e = err(&["-kernel", &kernel, "-initrd", &format!("{initrd},{initrd}")]);
    assert!(matches!(e, CliError::MultipleInitrd(_)), "{e:?}");
    assert!(e
        .to_string()
        .contains("multiple -initrd modules are not supported yet"));
}

#[test]
fn append_applies_to_the_embedded_guest() {
    let cfg = ok(&["-append", "bench=hypercall"]);
    assert_eq!(cfg.kernel, KernelSource::Embedded(EMBEDDED_IMAGE));
    assert_eq!(cfg.cmdline, "bench=hypercall");
}

#[test]
fn no_reboot_defaults() {
    let dir = TempDir::new();
    let kernel = dir.file("k");
    assert!(ok(&[]).no_reboot);
    assert!(
        ok(&["-smp", "2"]).no_reboot,
        "the embedded guest always has no_reboot"
    );
    assert!(!ok(&["-kernel", &kernel]).no_reboot);
    assert!(ok(&["-kernel", &kernel, "-no-reboot"]).no_reboot);
}

// ---- front ends and accepted no-ops ----------------------------------------------------

#[test]
fn serial_forms() {
    assert_eq!(ok(&["-serial", "stdio"]).serial, SerialConfig::Stdio);
    assert_eq!(ok(&["-serial", "none"]).serial, SerialConfig::None);
    assert_eq!(ok(&["-serial", "null"]).serial, SerialConfig::None);
    assert_eq!(
        ok(&["-nographic", "-serial", "none"]).serial,
        SerialConfig::None
    );
    assert_eq!(ok(&["-serial", "mon:stdio"]).serial, SerialConfig::Stdio);
    let e = err(&["-serial", "pty"]);
    assert!(matches!(e, CliError::Serial(_)), "{e:?}");
    assert_names(&e, "-serial", "pty");
    assert!(e.to_string().contains("supported are stdio, mon:stdio, none, null and chardev:ID"));
}

#[test]
fn accepted_compatibility_options() {
    let args = [
        "-nographic",
        "-display",
        "none",
        "-vnc",
        "none",
        "-nodefaults",
        "-no-user-config",
    ];
    assert_eq!(ok(&args), ok(&[]));
    assert_eq!(ok(&["-name", "g0"]).name.as_deref(), Some("g0"));
    assert_eq!(ok(&["-name", "guest=g1,debug-threads=on"]).name.as_deref(), Some("g1"));
    assert!(err(&["-name", "a/b"]).to_string().contains("-name"));
    assert!(ok(&["-no-shutdown"]).no_shutdown);
}

#[test]
fn display_errors() {
    let e = err(&["-display", "gtk"]);
    assert!(
        matches!(
            e,
            CliError::Display {
                option: "-display",
                ..
            }
        ),
        "{e:?}"
    );
    assert_names(&e, "-display", "gtk");
    let e = err(&["-vnc", ":0"]);
    assert!(
        matches!(e, CliError::Display { option: "-vnc", .. }),
        "{e:?}"
    );
    assert_names(&e, "-vnc", ":0");
}

#[test]
fn timeout_forms_and_errors() {
    assert_eq!(
        ok(&["--timeout", "30"]).timeout,
        Some(Duration::from_secs(30))
    );
    assert_eq!(
        ok(&["-timeout", "2.5"]).timeout,
        Some(Duration::from_millis(2500))
    );
    for bad in ["0", "-1", "abc", "inf"] {
        let e = err(&["--timeout", bad]);
        assert!(
            matches!(
                e,
                CliError::InvalidValue {
                    option: "--timeout",
                    ..
                }
            ),
            "{bad}: {e:?}"
        );
        assert_names(&e, "--timeout", bad);
    }
}
