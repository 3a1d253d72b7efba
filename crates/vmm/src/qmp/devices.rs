//! The arguments of the hotplug commands (`device_add`, `device_del`,
//! `blockdev-add`, `netdev_add`), checked and turned into typed requests.

use serde_json::{Map, Value};

use super::QmpError;
use crate::hotplug::DeviceRequest;
use crate::{parse_mac, DiskConfig, DiskFormat};

type Args = Map<String, Value>;

/// The argument list of commands that check their own arguments.
pub const ANY: &[&str] = &["*"];

fn missing(name: &str) -> QmpError {
    QmpError::generic(format!("Parameter '{name}' is missing"))
}

fn wrong(name: &str, expected: &str) -> QmpError {
    QmpError::generic(format!("Invalid parameter type for '{name}', expected: {expected}"))
}

/// A string argument, if present.
fn opt_str<'a>(args: &'a Args, name: &str) -> Result<Option<&'a str>, QmpError> {
    match args.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(wrong(name, "string")),
    }
}

fn req_str<'a>(args: &'a Args, name: &str) -> Result<&'a str, QmpError> {
    opt_str(args, name)?.ok_or_else(|| missing(name))
}

fn opt_bool(args: &Args, name: &str) -> Result<Option<bool>, QmpError> {
    match args.get(name) {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(wrong(name, "boolean")),
    }
}

/// An id: 1 to 64 characters, letters, digits, `-`, `.` and `_`, starting
/// with a letter (QEMU's rule for ids).
fn id(args: &Args, name: &str) -> Result<String, QmpError> {
    let id = req_str(args, name)?;
    let ok = id.len() <= 64
        && id.starts_with(|c: char| c.is_ascii_alphabetic())
        && id.chars().all(|c| c.is_ascii_alphanumeric() || "-._".contains(c));
    if !ok {
        return Err(QmpError::generic(format!("Parameter '{name}' expects an identifier")));
    }
    Ok(id.to_owned())
}

/// Fails on the first key not in `allowed`.
fn only(args: &Args, allowed: &[&str]) -> Result<(), QmpError> {
    match args.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => Err(QmpError::generic(format!("Parameter '{k}' is unexpected"))),
        None => Ok(()),
    }
}

/// `device_add`: xen-disk / xen-block / xen-cdrom with `drive` (and `vdev`),
/// or xen-net-device with `netdev` (and `mac`).
pub fn device_add(args: &Args) -> Result<DeviceRequest, QmpError> {
    let driver = req_str(args, "driver")?;
    let id = id(args, "id")?;
    match driver {
        "xen-disk" | "xen-block" | "xen-cdrom" => {
            only(args, &["driver", "id", "drive", "vdev"])?;
            let drive = req_str(args, "drive")?.to_owned();
            let vdev = opt_str(args, "vdev")?.map(str::to_owned);
            Ok(DeviceRequest::Disk { id, drive, vdev, cdrom: driver == "xen-cdrom" })
        }
        "xen-net-device" => {
            only(args, &["driver", "id", "netdev", "mac"])?;
            let netdev = req_str(args, "netdev")?.to_owned();
            let mac = match opt_str(args, "mac")? {
                None => None,
                Some(m) => Some(parse_mac(m).ok_or_else(|| QmpError::generic(format!("Property 'mac' doesn't take value '{m}'")))?),
            };
            Ok(DeviceRequest::Nic { id, netdev, mac })
        }
        "xen-console" => {
            only(args, &["driver", "id", "chardev"])?;
            Ok(DeviceRequest::Console { id, chardev: req_str(args, "chardev")?.to_owned() })
        }
        other => Err(QmpError::generic(format!(
            "device '{other}' cannot be hotplugged (xen-disk, xen-block, xen-cdrom, xen-net-device and xen-console can)"
        ))),
    }
}

/// `blockdev-add`: `{"driver": "raw"|"qcow2", "node-name": ID, "file":
/// {"driver": "file", "filename": PATH[, "locking": "on"|"off"]} | PATH,
/// "read-only": bool}`.
pub fn blockdev_add(args: &Args) -> Result<(String, DiskConfig), QmpError> {
    only(args, &["driver", "node-name", "file", "read-only"])?;
    let format = match req_str(args, "driver")? {
        "raw" => DiskFormat::Raw,
        "qcow2" => DiskFormat::Qcow2,
        other => return Err(QmpError::generic(format!("blockdev driver '{other}' is not supported (raw or qcow2)"))),
    };
    let node = id(args, "node-name")?;
    let (path, locking) = match args.get("file") {
        None => return Err(missing("file")),
        Some(Value::String(p)) => (p.clone(), true),
        Some(Value::Object(file)) => {
            only(file, &["driver", "filename", "locking"])?;
            if let Some(d) = opt_str(file, "driver")?.filter(|d| *d != "file") {
                return Err(QmpError::generic(format!("protocol driver '{d}' is not supported (file)")));
            }
            let locking = match opt_str(file, "locking")? {
                None | Some("on") | Some("auto") => true,
                Some("off") => false,
                Some(other) => return Err(QmpError::generic(format!("Parameter 'locking' does not accept value '{other}'"))),
            };
            (req_str(file, "filename")?.to_owned(), locking)
        }
        Some(_) => return Err(wrong("file", "object or string")),
    };
    if path.is_empty() {
        return Err(QmpError::generic("Parameter 'filename' expects a path"));
    }
    let readonly = opt_bool(args, "read-only")?.unwrap_or(false);
    Ok((node, DiskConfig { format, readonly, locking, ..DiskConfig::raw(path) }))
}

/// `netdev_add`: `{"type": "tap", "id": ID, "ifname": NAME[, "script": "no",
/// "downscript": "no"]}`; xenkvm runs no scripts.
pub fn netdev_add(args: &Args) -> Result<(String, String), QmpError> {
    only(args, &["type", "id", "ifname", "script", "downscript", "vhost"])?;
    let kind = req_str(args, "type")?;
    if kind != "tap" {
        return Err(QmpError::generic(format!("netdev type '{kind}' is not supported (tap)")));
    }
    for key in ["script", "downscript"] {
        if let Some(v) = opt_str(args, key)?.filter(|v| *v != "no") {
            return Err(QmpError::generic(format!("{key}={v}: xenkvm runs no scripts; use {key}=no")));
        }
    }
    if opt_bool(args, "vhost")? == Some(true) {
        return Err(QmpError::generic("vhost is not supported by xen-net-device"));
    }
    let ifname = req_str(args, "ifname")?;
    if ifname.is_empty() || ifname.len() > 15 || ifname.contains(['/', ' ']) {
        return Err(QmpError::generic(format!("Parameter 'ifname' expects an interface name, not '{ifname}'")));
    }
    Ok((id(args, "id")?, ifname.to_owned()))
}

/// `device_del`: the id.
pub fn device_del(args: &Args) -> Result<String, QmpError> {
    Ok(req_str(args, "id")?.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn args(v: Value) -> Args {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn device_add_parses_disks_and_nics() {
        let d = device_add(&args(json!({"driver": "xen-disk", "id": "d1", "drive": "x", "vdev": "xvdb"}))).unwrap();
        assert_eq!(d, DeviceRequest::Disk { id: "d1".into(), drive: "x".into(), vdev: Some("xvdb".into()), cdrom: false });
        let n = device_add(&args(json!({"driver": "xen-net-device", "id": "n1", "netdev": "t", "mac": "52:54:00:aa:bb:cc"}))).unwrap();
        assert_eq!(n, DeviceRequest::Nic { id: "n1".into(), netdev: "t".into(), mac: Some([0x52, 0x54, 0, 0xaa, 0xbb, 0xcc]) });
    }

    #[test]
    fn device_add_refuses_bad_arguments() {
        for (a, want) in [
            (json!({"driver": "virtio-blk-pci", "id": "d"}), "cannot be hotplugged"),
            (json!({"driver": "xen-disk", "drive": "x"}), "'id' is missing"),
            (json!({"driver": "xen-disk", "id": "1bad", "drive": "x"}), "identifier"),
            (json!({"driver": "xen-disk", "id": "d", "drive": "x", "mac": "1"}), "'mac' is unexpected"),
            (json!({"driver": "xen-net-device", "id": "n", "netdev": "t", "mac": "zz"}), "doesn't take value"),
            (json!({"driver": "xen-net-device", "id": "n"}), "'netdev' is missing"),
            (json!({"driver": 5, "id": "n"}), "expected: string"),
        ] {
            let e = device_add(&args(a.clone())).unwrap_err();
            assert!(e.desc.contains(want), "{a}: {}", e.desc);
        }
    }

    #[test]
    fn blockdev_and_netdev_add() {
        let (id, d) = blockdev_add(&args(json!({"driver": "qcow2", "node-name": "img1", "file": {"driver": "file", "filename": "/tmp/a.qcow2", "locking": "off"}, "read-only": true}))).unwrap();
        assert_eq!(id, "img1");
        assert_eq!(d, DiskConfig { format: DiskFormat::Qcow2, readonly: true, locking: false, ..DiskConfig::raw("/tmp/a.qcow2") });
        assert_eq!(blockdev_add(&args(json!({"driver": "raw", "node-name": "r", "file": "/tmp/r"}))).unwrap().1, DiskConfig::raw("/tmp/r"));
        assert!(blockdev_add(&args(json!({"driver": "vmdk", "node-name": "r", "file": "/x"}))).is_err());
        assert!(blockdev_add(&args(json!({"driver": "raw", "node-name": "r", "file": {"driver": "nbd", "filename": "x"}}))).is_err());
        assert_eq!(netdev_add(&args(json!({"type": "tap", "id": "t1", "ifname": "tap1", "script": "no"}))).unwrap(), ("t1".into(), "tap1".into()));
        assert!(netdev_add(&args(json!({"type": "tap", "id": "t1", "ifname": "tap1", "script": "/etc/qemu-ifup"}))).unwrap_err().desc.contains("no scripts"));
        assert!(netdev_add(&args(json!({"type": "user", "id": "t1"}))).is_err());
        assert!(netdev_add(&args(json!({"type": "tap", "id": "t1", "ifname": "a/b"}))).is_err());
    }
}
