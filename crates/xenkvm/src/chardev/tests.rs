//! Tests of the character-device options, alone and on whole command lines.

use std::path::PathBuf;

use xenkvm_vmm::{ChardevBackend, ChardevConfig, SerialConfig, VmConfig};

use super::*;

const XEN_ACCEL: &str = "kvm,xen-version=0x40011,kernel-irqchip=split";

fn parse(args: &[&str]) -> Result<VmConfig, CliError> {
    let all = ["xenkvm", "-accel", XEN_ACCEL].into_iter().chain(args.iter().copied());
    crate::cli::parse(all)
}

fn ok(args: &[&str]) -> VmConfig {
    parse(args).unwrap_or_else(|e| panic!("{args:?} rejected: {e}"))
}

/// The error's text, which must name `option`.
fn err(args: &[&str], option: &str) -> String {
    let text = match parse(args) {
        Ok(cfg) => panic!("{args:?} accepted: {cfg:?}"),
        Err(e) => e.to_string(),
    };
    assert!(text.contains(option), "{text:?} does not name {option}");
    text
}

fn stdio(id: &str, mux: bool) -> ChardevConfig {
    ChardevConfig { id: id.into(), backend: ChardevBackend::Stdio { signal: true }, mux }
}

#[test]
fn every_backend_parses() {
    assert_eq!(parse_chardev("stdio,id=c0").unwrap(), stdio("c0", false));
    assert_eq!(parse_chardev("stdio,id=c0,mux=on").unwrap(), stdio("c0", true));
    assert_eq!(
        parse_chardev("stdio,id=c0,mux=on,signal=off").unwrap().backend,
        ChardevBackend::Stdio { signal: false }
    );
    assert_eq!(
        parse_chardev("socket,id=s,path=/tmp/a,,b.sock,server=on,wait=off").unwrap(),
        ChardevConfig {
            id: "s".into(),
            backend: ChardevBackend::Socket { path: PathBuf::from("/tmp/a,b.sock"), wait: false },
            mux: false
        }
    );
    assert_eq!(
        parse_chardev("socket,id=s,path=/x,server=on").unwrap().backend,
        ChardevBackend::Socket { path: "/x".into(), wait: true }
    );
    assert_eq!(
        parse_chardev("backend=file,id=f,path=/tmp/out").unwrap().backend,
        ChardevBackend::File { path: "/tmp/out".into() }
    );
    assert_eq!(parse_chardev("pty,id=p").unwrap().backend, ChardevBackend::Pty);
}

#[test]
fn bad_chardevs_are_named() {
    let cases = [
        ("stdio", "id=ID"),
        ("stdio,id=", "id=ID"),
        ("socket,id=s,server=on", "path=P"),
        ("file,id=f", "path=P"),
        ("tcp,id=t", "stdio, socket, file or pty"),
        ("stdio,id=c,mux=maybe", "on or off"),
        ("id=c", "stdio|socket|file|pty"),
    ];
    for (value, expected) in cases {
        let text = parse_chardev(value).unwrap_err().to_string();
        assert!(text.contains("-chardev") && text.contains(expected), "{value}: {text}");
    }
    let text = parse_chardev("file,id=f,path=/x,server=on").unwrap_err().to_string();
    assert!(text.contains("-chardev: unknown parameter \"server\""), "{text}");
    let text = parse_chardev("stdio,id=c,speed=9600").unwrap_err().to_string();
    assert!(text.contains("unknown parameter \"speed\""), "{text}");
    for value in ["socket,id=s,path=/x", "socket,id=s,path=/x,server=off", "null,id=n", "socket,id=s,host=h,port=1"] {
        let e = parse_chardev(value).unwrap_err();
        assert!(matches!(e, CliError::Unsupported(_)), "{value}: {e:?}");
        assert!(e.to_string().contains("-chardev"), "{e}");
    }
}

#[test]
fn serial_forms() {
    assert_eq!(parse_serial("stdio").unwrap(), SerialConfig::Stdio);
    assert_eq!(parse_serial("mon:stdio").unwrap(), SerialConfig::Stdio);
    assert_eq!(parse_serial("null").unwrap(), SerialConfig::None);
    assert_eq!(parse_serial("chardev:c0").unwrap(), SerialConfig::Chardev("c0".into()));
    for bad in ["chardev:", "pty", "mon:pty", "tcp::4444"] {
        let text = parse_serial(bad).unwrap_err().to_string();
        assert!(text.starts_with(&format!("-serial {bad}:")), "{text}");
    }
}

#[test]
fn console_and_mon_values() {
    assert_eq!(parse_console("xen-console,chardev=c1").unwrap(), "c1");
    assert_eq!(parse_console("driver=xen-console,id=con1,chardev=c1").unwrap(), "c1");
    assert!(parse_console("xen-console").unwrap_err().to_string().contains("-device xen-console"));
    let text = parse_console("xen-console,chardev=c,port=1").unwrap_err().to_string();
    assert!(text.contains("-device xen-console: unknown parameter \"port\""), "{text}");
    assert_eq!(parse_mon("c0").unwrap(), ("c0".to_string(), false));
    assert_eq!(parse_mon("chardev=c0,mode=readline,pretty=off").unwrap(), ("c0".to_string(), false));
    assert_eq!(parse_mon("chardev=qmp,mode=control").unwrap(), ("qmp".to_string(), true));
    assert!(parse_mon("c0,mode=telnet").unwrap_err().to_string().contains("-mon"));
    assert!(parse_mon("mode=readline").unwrap_err().to_string().contains("-mon"));
}

#[test]
fn qmp_sockets_from_mon_and_qmp() {
    // The seeds' libxl form: two control monitors on socket chardevs.
    let cfg = ok(&[
        "-chardev",
        "socket,id=libxl-cmd,path=/tmp/qmp-libxl-3,server=on,wait=off",
        "-mon",
        "chardev=libxl-cmd,mode=control",
        "-chardev",
        "socket,id=libxenstat-cmd,path=/tmp/qmp-libxenstat-3,server=on,wait=off",
        "-mon",
        "chardev=libxenstat-cmd,mode=control",
        "-qmp",
        "unix:/tmp/q3,server,nowait",
        "-qmp",
        "unix:/tmp/q4,server=on",
    ]);
    let q = |p: &str, wait| QmpConfig { path: p.into(), wait };
    assert_eq!(cfg.qmp, vec![q("/tmp/qmp-libxl-3", false), q("/tmp/qmp-libxenstat-3", false), q("/tmp/q3", false), q("/tmp/q4", true)]);
    assert!(cfg.chardevs.is_empty(), "control chardevs belong to QMP: {:?}", cfg.chardevs);
    assert!(parse_qmp("tcp:localhost:4444,server").unwrap_err().to_string().contains("unix:PATH"));
    assert!(parse_qmp("unix:/tmp/q").unwrap_err().to_string().contains("client socket"));
    assert!(parse_qmp("unix:,server").is_err());
    assert!(parse_qmp("unix:/tmp/q,server,telnet").unwrap_err().to_string().contains("telnet"));
}

#[test]
fn command_lines_with_consoles() {
    // The seeds' pv-shim form: hvc0 on stdio.
    let cfg = ok(&["-chardev", "stdio,id=char0", "-device", "xen-console,chardev=char0", "-serial", "none"]);
    assert_eq!(cfg.chardevs, vec![stdio("char0", false)]);
    assert_eq!(cfg.consoles, vec!["char0".to_string()]);
    assert_eq!(cfg.serial, SerialConfig::None);
    // Two consoles: hvc0 and the serial port share muxed stdio, hvc1 on a socket,
    // and -mon on the muxed chardev (the -serial mon:stdio equivalent).
    let cfg = ok(&[
        "-chardev",
        "stdio,id=con,mux=on,signal=off",
        "-chardev",
        "socket,id=sock,path=/tmp/x.sock,server=on,wait=off",
        "-serial",
        "chardev:con",
        "-device",
        "xen-console,chardev=con",
        "-device",
        "xen-console,chardev=sock",
        "-mon",
        "con",
        "-device",
        "xen-disk,drive=d0",
        "-drive",
        "file=/dev/null,if=none,id=d0",
    ]);
    assert_eq!(cfg.serial, SerialConfig::Chardev("con".into()));
    assert_eq!(cfg.consoles, vec!["con".to_string(), "sock".into()]);
    assert_eq!(cfg.chardevs.len(), 2);
    assert_eq!(cfg.disks.len(), 1);
    let cfg = ok(&["-chardev", "pty,id=p", "-chardev", "file,id=f,path=/tmp/log", "-device", "xen-console,chardev=p", "-device", "xen-console,chardev=f"]);
    assert_eq!(cfg.consoles, vec!["p".to_string(), "f".into()]);
    // -serial mon:stdio still works on its own.
    assert_eq!(ok(&["-serial", "mon:stdio"]).serial, SerialConfig::Stdio);
}

#[test]
fn inconsistent_command_lines_are_named() {
    let t = err(&["-device", "xen-console,chardev=nope"], "-device xen-console");
    assert!(t.contains("no -chardev ...,id=nope"), "{t}");
    let t = err(&["-serial", "chardev:nope"], "-serial");
    assert!(t.contains("no -chardev"), "{t}");
    let t = err(&["-chardev", "stdio,id=a", "-chardev", "pty,id=a"], "-chardev");
    assert!(t.contains("another -chardev has that id"), "{t}");
    let t = err(&["-chardev", "stdio,id=a", "-chardev", "stdio,id=b"], "-chardev");
    assert!(t.contains("stdio is already used"), "{t}");
    let t = err(&["-chardev", "stdio,id=a", "-serial", "chardev:a", "-device", "xen-console,chardev=a"], "-serial");
    assert!(t.contains("mux=on"), "{t}");
    let t = err(&["-chardev", "stdio,id=a,mux=on", "-mon", "a"], "-mon");
    assert!(t.contains("there is no monitor"), "{t}");
    let t = err(&["-chardev", "stdio,id=q", "-mon", "chardev=q,mode=control"], "-mon mode=control");
    assert!(t.contains("needs a socket chardev of its own"), "{t}");
    let t = err(&["-mon", "chardev=q,mode=control"], "-mon mode=control");
    assert!(t.contains("no -chardev"), "{t}");
    let mut many = Vec::new();
    for _ in 0..17 {
        many.extend(["-device", "xen-console,chardev=c"]);
    }
    many.extend(["-chardev", "file,id=c,path=/tmp/c,mux=on"]);
    err(&many, "-device xen-console");
}
