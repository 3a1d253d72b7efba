//! `-drive` and `-device` for PV disks, in QEMU's spelling:
//!
//! * `-drive file=F,if=xen[,format=raw|qcow2][,readonly=on][,media=cdrom][,index=N][,file.locking=off]`
//!   is a disk on its own (vdev `xvda` onwards, or the `index`th name);
//! * `-drive file=F,if=none,id=X,...` is only an image, which
//!   `-device xen-disk,drive=X[,vdev=xvdN]` (or `xen-block`, or `xen-cdrom`
//!   for a read-only CD-ROM) turns into a disk.
//!
//! Without `format`, the image is probed as QEMU does (qcow2 magic, else raw).

use std::io::Read;
use std::path::{Path, PathBuf};

use xenkvm_vmm::{DiskConfig, DiskFormat};

use crate::error::CliError;
use crate::options::{parse_bool, parse_pairs, parse_u32};

const DRIVE_KEYS: &str = "file, if, format, readonly, id, media, index, file.locking";
const DEVICE_KEYS: &str = "drive, vdev, id";

/// One `-drive`, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Drive {
    disk: DiskConfig,
    id: Option<String>,
    /// `if=xen` (a disk by itself) rather than `if=none`.
    xen: bool,
}

fn bad(option: &'static str, value: &str, expected: &'static str) -> CliError {
    CliError::invalid(option, value, expected)
}

fn parse_drive(value: &str) -> Result<Drive, CliError> {
    let mut file = None;
    let mut interface = None;
    let mut format = None;
    let mut readonly = false;
    let mut cdrom = false;
    let mut locking = true;
    let mut id = None;
    let mut index = None;
    for (key, val) in parse_pairs(value, "file") {
        let flag = || parse_bool(&val).ok_or_else(|| bad("-drive", &format!("{key}={val}"), "on or off"));
        match key.as_str() {
            "file" => file = Some(PathBuf::from(&val)),
            "if" => interface = Some(val.clone()),
            "format" => {
                format = Some(match val.as_str() {
                    "raw" => DiskFormat::Raw,
                    "qcow2" => DiskFormat::Qcow2,
                    _ => return Err(bad("-drive", &format!("format={val}"), "raw or qcow2")),
                })
            }
            "readonly" => readonly = flag()?,
            "file.locking" => {
                locking = match val.as_str() {
                    "auto" => true,
                    _ => flag()?,
                }
            }
            "media" => {
                cdrom = match val.as_str() {
                    "disk" => false,
                    "cdrom" => true,
                    _ => return Err(bad("-drive", &format!("media={val}"), "disk or cdrom")),
                }
            }
            "id" => id = Some(val.clone()),
            "index" => {
                index = Some(parse_u32(&val).filter(|&n| n < 702).ok_or_else(|| bad("-drive", &format!("index={val}"), "a disk index from 0"))?)
            }
            _ => {
                return Err(CliError::UnknownKey { option: "-drive", key, supported: DRIVE_KEYS });
            }
        }
    }
    let file = file.ok_or_else(|| bad("-drive", value, "file=PATH,if=xen or file=PATH,if=none,id=ID"))?;
    let xen = match interface.as_deref() {
        Some("xen") => true,
        Some("none") => false,
        Some(other) => return Err(CliError::DriveInterface(other.to_owned())),
        None => return Err(CliError::DriveInterface("ide (the default)".to_owned())),
    };
    if !xen && id.is_none() {
        return Err(bad("-drive", value, "an id=ID with if=none, for -device ...,drive=ID"));
    }
    let format = match format {
        Some(f) => f,
        None => probe(&file)?,
    };
    let vdev = index.map(xenkvm_vmm::disk_name);
    let disk = DiskConfig { path: file, format, readonly: readonly || cdrom, locking, vdev, cdrom };
    Ok(Drive { disk, id, xen })
}

/// qcow2 if the file starts with its magic, raw otherwise.
fn probe(path: &Path) -> Result<DiskFormat, CliError> {
    let mut magic = [0u8; 4];
    let read = std::fs::File::open(path).and_then(|mut f| f.read(&mut magic));
    match read {
        Ok(4) if magic == *b"QFI\xfb" => Ok(DiskFormat::Qcow2),
        Ok(_) => {
            tracing::warn!("-drive file={}: no format given; probed as raw (add format=raw)", path.display());
            Ok(DiskFormat::Raw)
        }
        Err(e) => Err(CliError::File { option: "-drive", path: path.to_owned(), reason: e.to_string() }),
    }
}

/// The VM's disks, and the `if=none` drives no `-device` uses (kept for
/// QMP `device_add`).
pub type Disks = (Vec<DiskConfig>, Vec<(String, DiskConfig)>);

/// Turns every `-drive` and `-device` into the VM's disks (drives with
/// `if=xen` first, in order, then devices in order).
pub fn parse_disks(drives: &[String], devices: &[String]) -> Result<Disks, CliError> {
    let mut disks = Vec::new();
    let mut pool: Vec<(String, DiskConfig, bool)> = Vec::new();
    for value in drives {
        let d = parse_drive(value)?;
        if let Some(id) = &d.id {
            if pool.iter().any(|(other, _, _)| other == id) {
                return Err(bad("-drive", value, "a unique id"));
            }
        }
        if d.xen {
            disks.push(d.disk.clone());
            if let Some(id) = d.id {
                // Named, but already a disk: -device may not take it again.
                pool.push((id, d.disk, true));
            }
        } else if let Some(id) = d.id {
            pool.push((id, d.disk, false));
        }
    }
    for value in devices {
        disks.push(parse_device(value, &mut pool)?);
    }
    let spare = pool.into_iter().filter(|(_, _, used)| !used).map(|(id, disk, _)| (id, disk)).collect();
    Ok((disks, spare))
}

fn parse_device(value: &str, pool: &mut [(String, DiskConfig, bool)]) -> Result<DiskConfig, CliError> {
    let pairs = parse_pairs(value, "driver");
    let driver = pairs.iter().find(|(k, _)| k == "driver").map(|(_, v)| v.clone()).unwrap_or_default();
    let cdrom = match driver.as_str() {
        "xen-disk" | "xen-block" => false,
        "xen-cdrom" => true,
        "" => return Err(bad("-device", value, "xen-disk,drive=ID[,vdev=xvdN]")),
        other => return Err(CliError::Unsupported(format!("-device {other}"))),
    };
    let mut drive = None;
    let mut vdev = None;
    for (key, val) in pairs {
        match key.as_str() {
            "driver" | "id" => {}
            "drive" => drive = Some(val),
            "vdev" => {
                xenkvm_vmm::parse_vdev(&val).map_err(|_| bad("-device", &format!("vdev={val}"), "xvda, xvdb, ..."))?;
                vdev = Some(val)
            }
            _ => return Err(CliError::UnknownKey { option: "-device", key, supported: DEVICE_KEYS }),
        }
    }
    let drive = drive.ok_or_else(|| bad("-device", value, "a drive=ID naming a -drive ...,if=none,id=ID"))?;
    let Some((_, disk, used)) = pool.iter_mut().find(|(id, _, _)| *id == drive) else {
        return Err(CliError::NoSuchDrive(drive));
    };
    if *used {
        return Err(CliError::DriveInUse(drive));
    }
    *used = true;
    let mut disk = disk.clone();
    if vdev.is_some() {
        disk.vdev = vdev;
    }
    if cdrom {
        disk.cdrom = true;
        disk.readonly = true;
    }
    Ok(disk)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(name: &str, bytes: &[u8]) -> String {
        let p = std::env::temp_dir().join(format!("xenkvm-cli-{}-{name}", std::process::id()));
        std::fs::write(&p, bytes).unwrap();
        p.display().to_string()
    }

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn if_xen_drives_in_order() {
        let (a, b) = (image("a", b"raw"), image("b", b"QFI\xfb\0\0\0\x03"));
        let disks = parse_disks(&s(&[&format!("file={a},if=xen,format=raw"), &format!("file={b},if=xen,readonly=on")]), &[]).unwrap().0;
        assert_eq!(disks.len(), 2);
        assert_eq!(disks[0], DiskConfig { format: DiskFormat::Raw, ..DiskConfig::raw(&a) });
        assert_eq!(disks[1].format, DiskFormat::Qcow2, "probed");
        assert!(disks[1].readonly);
        assert_eq!(disks[1].vdev, None);
    }

    #[test]
    fn if_none_with_device() {
        let a = image("dev", b"x");
        let drives = s(&[&format!("file={a},if=none,id=d0,format=raw,file.locking=off")]);
        let disks = parse_disks(&drives, &s(&["xen-disk,drive=d0,vdev=xvdc"])).unwrap().0;
        assert_eq!(disks, vec![DiskConfig { vdev: Some("xvdc".into()), locking: false, ..DiskConfig::raw(&a) }]);
        let cd = parse_disks(&drives, &s(&["xen-cdrom,drive=d0"])).unwrap().0;
        assert!(cd[0].cdrom && cd[0].readonly);
        assert!(parse_disks(&drives, &s(&["xen-block,drive=d0"])).is_ok());
        // Without a -device the drive waits for QMP device_add.
        let (disks, spare) = parse_disks(&drives, &[]).unwrap();
        assert!(disks.is_empty());
        assert_eq!(spare, vec![("d0".to_string(), DiskConfig { locking: false, ..DiskConfig::raw(&a) })]);
    }

    #[test]
    fn bad_options_are_named() {
        let a = image("bad", b"x");
        let msg = |d: &[&str], dev: &[&str]| parse_disks(&s(d), &s(dev)).unwrap_err().to_string();
        assert!(msg(&[&format!("file={a},if=virtio")], &[]).contains("if=virtio"));
        assert!(msg(&[&format!("file={a}")], &[]).contains("if="));
        assert!(msg(&[&format!("file={a},if=xen,format=vmdk")], &[]).contains("format=vmdk"));
        assert!(msg(&[&format!("file={a},if=xen,readonly=maybe")], &[]).contains("readonly=maybe"));
        assert!(msg(&[&format!("file={a},if=xen,cache=none")], &[]).contains("cache"));
        assert!(msg(&[&format!("file={a},if=none")], &[]).contains("id="));
        assert!(msg(&["file=/nonexistent/x,if=xen"], &[]).contains("/nonexistent/x"));
        let none = format!("file={a},if=none,id=d0,format=raw");
        assert!(msg(&[&none], &["xen-disk,drive=d1"]).contains("d1"));
        assert!(msg(&[&none], &["xen-disk,drive=d0", "xen-disk,drive=d0"]).contains("d0"));
        assert!(msg(&[&none], &["xen-disk"]).contains("drive=ID"));
        assert!(msg(&[&none], &["xen-disk,drive=d0,vdev=hda"]).contains("vdev=hda"));
        assert_eq!(msg(&[&none], &["virtio-blk,drive=d0"]), "option -device virtio-blk is not supported yet");
    }
}
