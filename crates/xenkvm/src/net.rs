//! NICs in QEMU's spelling; every NIC is a `xen-net-device` (PV) or a
//! `virtio-net-pci` on a tap:
//!
//! * `-netdev tap,id=N,ifname=X[,script=no,downscript=no]` with
//!   `-device xen-net-device|virtio-net-pci,netdev=N[,mac=52:54:00:...]`;
//! * `-nic tap,ifname=X[,model=xen-net-device|virtio-net-pci][,mac=...]`
//!   (xen-net-device is the default model), `-nic none`;
//! * the legacy pair `-net nic[,model=xen-net-device][,macaddr=...]` and
//!   `-net tap,ifname=X,...` (the nth `nic` goes with the nth `tap`).
//!
//! xenkvm runs no interface scripts: `script` and `downscript` may only be
//! `no` (or absent); the tap is configured from outside.

use xenkvm_vmm::{NicConfig, VirtioNicConfig};

use crate::error::CliError;
use crate::options::{parse_bool, parse_pairs};

const NETDEV_KEYS: &str = "type, id, ifname, script, downscript, vhost, br";
const NIC_KEYS: &str = "ifname, model, mac, id, script, downscript, vhost, br";
const NET_NIC_KEYS: &str = "model, macaddr, mac, id, name";
const DEVICE_KEYS: &str = "netdev, mac, id";
pub const MODEL: &str = "xen-net-device";
/// The emulated PCI NIC model.
pub const VIRTIO_MODEL: &str = "virtio-net-pci";

/// Which device a NIC is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Model {
    Xen,
    Virtio,
}

impl Model {
    fn parse(name: &str) -> Option<Self> {
        match name {
            MODEL => Some(Model::Xen),
            VIRTIO_MODEL => Some(Model::Virtio),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Model::Xen => MODEL,
            Model::Virtio => VIRTIO_MODEL,
        }
    }
}

fn bad(option: &'static str, value: &str, expected: &'static str) -> CliError {
    CliError::invalid(option, value, expected)
}

/// The `-device` values that name a NIC model, and the others (disks).
pub fn split_devices(devices: &[String]) -> (Vec<String>, Vec<String>) {
    devices.iter().cloned().partition(|d| {
        parse_pairs(d, "driver").iter().any(|(k, v)| k == "driver" && Model::parse(v).is_some())
    })
}

fn mac_of(option: &'static str, key: &str, val: &str) -> Result<[u8; 6], CliError> {
    let mac = xenkvm_vmm::parse_mac(val).ok_or_else(|| bad(option, &format!("{key}={val}"), "a MAC address like 52:54:00:12:34:56"))?;
    if mac[0] & 1 != 0 {
        return Err(bad(option, &format!("{key}={val}"), "a unicast MAC address (first byte even)"));
    }
    Ok(mac)
}

/// The keys a tap back end takes; `Ok(true)` if `key` was one of them.
fn tap_key(option: &'static str, key: &str, val: &str, ifname: &mut Option<String>) -> Result<bool, CliError> {
    match key {
        "ifname" => *ifname = Some(val.to_owned()),
        "script" | "downscript" => {
            if !matches!(val, "no" | "") {
                return Err(bad(option, &format!("{key}={val}"), "no (xenkvm runs no interface scripts)"));
            }
        }
        "br" => {
            // As in QEMU, `br=` only names the bridge for a helper program;
            // with `script=no` the toolstack's vif script attaches the tap.
            tracing::info!("{option}: br={val}: the tap is not attached by xenkvm (no helper runs; attach it to {val} yourself)");
        }
        "vhost" => {
            if parse_bool(val) != Some(false) {
                return Err(bad(option, &format!("vhost={val}"), "off (the backend is xenkvm's own)"));
            }
        }
        _ => return Ok(false),
    }
    Ok(true)
}

fn need_ifname(option: &'static str, value: &str, ifname: Option<String>) -> Result<String, CliError> {
    ifname.filter(|n| !n.is_empty()).ok_or_else(|| bad(option, value, "an ifname=NAME for the tap"))
}

/// A `-netdev`: its id and tap name.
fn parse_netdev(value: &str) -> Result<(String, String), CliError> {
    let pairs = parse_pairs(value, "type");
    let mut id = None;
    let mut ifname = None;
    for (key, val) in pairs {
        match key.as_str() {
            "type" if val == "tap" => {}
            "type" => return Err(CliError::Unsupported(format!("-netdev {val} (only tap)"))),
            "id" => id = Some(val),
            k => {
                if !tap_key("-netdev", k, &val, &mut ifname)? {
                    return Err(CliError::UnknownKey { option: "-netdev", key, supported: NETDEV_KEYS });
                }
            }
        }
    }
    let id = id.ok_or_else(|| bad("-netdev", value, "an id=ID for -device xen-net-device,netdev=ID"))?;
    Ok((id, need_ifname("-netdev", value, ifname)?))
}

/// A NIC before MACs are assigned: its tap, the MAC given if any, its model.
type Pending = (String, Option<[u8; 6]>, Model);

/// NICs without an explicit MAC get QEMU's defaults, skipping any taken.
struct Nics {
    out: Vec<Pending>,
}

impl Nics {
    /// PV and virtio NICs, MACs unique across both.
    fn finish(self) -> (Vec<NicConfig>, Vec<VirtioNicConfig>) {
        let taken: Vec<[u8; 6]> = self.out.iter().filter_map(|(_, m, _)| *m).collect();
        let mut next = 0;
        let mut fresh = || loop {
            let mac = NicConfig::default_mac(next);
            next += 1;
            if !taken.contains(&mac) {
                break mac;
            }
        };
        let (mut pv, mut virtio) = (Vec::new(), Vec::new());
        for (ifname, mac, model) in self.out {
            let mac = mac.unwrap_or_else(&mut fresh);
            match model {
                Model::Xen => pv.push(NicConfig { ifname, mac }),
                Model::Virtio => virtio.push(VirtioNicConfig { ifname, mac }),
            }
        }
        (pv, virtio)
    }
}

/// Turns every `-netdev`, `-nic`, `-net` and `-device xen-net-device` into
/// the VM's NICs (`-device` ones first, then `-nic`, then `-net`).
/// The VM's PV NICs, its virtio NICs, and the `-netdev`s (id, tap) no
/// `-device` uses (kept for QMP `device_add`).
pub type NicsAndSpares = (Vec<NicConfig>, Vec<VirtioNicConfig>, Vec<(String, String)>);

pub fn parse_nics(netdevs: &[String], nics: &[String], nets: &[String], devices: &[String]) -> Result<NicsAndSpares, CliError> {
    let mut pool: Vec<(String, String, bool)> = Vec::new();
    for value in netdevs {
        let (id, ifname) = parse_netdev(value)?;
        if pool.iter().any(|(other, _, _)| *other == id) {
            return Err(bad("-netdev", value, "a unique id"));
        }
        pool.push((id, ifname, false));
    }
    let mut out = Nics { out: Vec::new() };
    for value in devices {
        out.out.push(parse_device(value, &mut pool)?);
    }
    for value in nics {
        if let Some(nic) = parse_nic(value)? {
            out.out.push(nic);
        }
    }
    out.out.extend(parse_legacy(nets)?);
    let spare = pool.into_iter().filter(|(_, _, used)| !used).map(|(id, ifname, _)| (id, ifname)).collect();
    let (pv, virtio) = out.finish();
    Ok((pv, virtio, spare))
}

fn parse_device(value: &str, pool: &mut [(String, String, bool)]) -> Result<Pending, CliError> {
    let mut netdev = None;
    let mut mac = None;
    let mut model = Model::Xen;
    for (key, val) in parse_pairs(value, "driver") {
        match key.as_str() {
            "driver" => model = Model::parse(&val).unwrap_or(Model::Xen),
            "id" => {}
            "netdev" => netdev = Some(val),
            "mac" => mac = Some(mac_of("-device", &key, &val)?),
            _ => return Err(CliError::UnknownKey { option: "-device", key, supported: DEVICE_KEYS }),
        }
    }
    let netdev = netdev.ok_or_else(|| bad("-device", value, "a netdev=ID naming a -netdev tap,id=ID"))?;
    let driver = model.name();
    let Some((_, ifname, used)) = pool.iter_mut().find(|(id, _, _)| *id == netdev) else {
        return Err(CliError::NoSuchNetdev { driver, netdev });
    };
    if *used {
        return Err(CliError::NetdevInUse { driver, netdev });
    }
    *used = true;
    Ok((ifname.clone(), mac, model))
}

fn check_model(option: &'static str, model: &str) -> Result<Model, CliError> {
    Model::parse(model).ok_or_else(|| CliError::Unsupported(format!("{option} model={model} (only {MODEL} or {VIRTIO_MODEL})")))
}

fn parse_nic(value: &str) -> Result<Option<Pending>, CliError> {
    let mut ifname = None;
    let mut mac = None;
    let mut model = Model::Xen;
    for (key, val) in parse_pairs(value, "type") {
        match key.as_str() {
            "type" if val == "tap" => {}
            "type" if val == "none" => return Ok(None),
            "type" => return Err(CliError::Unsupported(format!("-nic {val} (only tap)"))),
            "model" => model = check_model("-nic", &val)?,
            "mac" => mac = Some(mac_of("-nic", &key, &val)?),
            "id" => {}
            k => {
                if !tap_key("-nic", k, &val, &mut ifname)? {
                    return Err(CliError::UnknownKey { option: "-nic", key, supported: NIC_KEYS });
                }
            }
        }
    }
    Ok(Some((need_ifname("-nic", value, ifname)?, mac, model)))
}

/// `-net nic` and `-net tap` entries, paired in order.
fn parse_legacy(nets: &[String]) -> Result<Vec<Pending>, CliError> {
    let mut nics = Vec::new();
    let mut taps = Vec::new();
    for value in nets {
        let pairs = parse_pairs(value, "type");
        let kind = pairs.first().map(|(_, v)| v.clone()).unwrap_or_default();
        match kind.as_str() {
            "none" => return Ok(Vec::new()),
            "nic" => {
                let mut mac = None;
                for (key, val) in pairs.into_iter().skip(1) {
                    match key.as_str() {
                        "model" => {
                            if check_model("-net nic", &val)? != Model::Xen {
                                return Err(CliError::Unsupported(format!("-net nic,model={val} (only {MODEL}; use -device or -nic)")));
                            }
                        }
                        "macaddr" | "mac" => mac = Some(mac_of("-net nic", &key, &val)?),
                        "id" | "name" => {}
                        _ => return Err(CliError::UnknownKey { option: "-net nic", key, supported: NET_NIC_KEYS }),
                    }
                }
                nics.push(mac);
            }
            "tap" => {
                let mut ifname = None;
                for (key, val) in pairs.into_iter().skip(1) {
                    if !matches!(key.as_str(), "id" | "name") && !tap_key("-net tap", &key, &val, &mut ifname)? {
                        return Err(CliError::UnknownKey { option: "-net tap", key, supported: NETDEV_KEYS });
                    }
                }
                taps.push(need_ifname("-net tap", value, ifname)?);
            }
            other => return Err(CliError::Unsupported(format!("-net {other} (only nic and tap)"))),
        }
    }
    if nics.len() != taps.len() {
        return Err(CliError::NetPairs { nics: nics.len(), taps: taps.len() });
    }
    Ok(taps.into_iter().zip(nics).map(|(tap, mac)| (tap, mac, Model::Xen)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    fn nic(ifname: &str, last: u8) -> NicConfig {
        NicConfig { ifname: ifname.into(), mac: [0x52, 0x54, 0, 0x12, 0x34, last] }
    }

    #[test]
    fn netdev_with_device() {
        let (net, disks) = split_devices(&s(&["xen-net-device,netdev=n0,mac=52:54:00:12:34:99", "xen-disk,drive=d0"]));
        assert_eq!(disks, s(&["xen-disk,drive=d0"]));
        let got = parse_nics(&s(&["tap,id=n0,ifname=tap0,script=no,downscript=no"]), &[], &[], &net).unwrap().0;
        let spare = parse_nics(&s(&["tap,id=n9,ifname=tap9"]), &[], &[], &[]).unwrap().2;
        // The seed's xenpvh form: type= and br= are accepted.
        let seed = parse_nics(&s(&["type=tap,id=net0,ifname=vif3.0-emu,br=xenbr0,script=no,downscript=no"]), &[], &[], &[]).unwrap().2;
        assert_eq!(seed, vec![("net0".to_string(), "vif3.0-emu".to_string())]);
        assert_eq!(spare, vec![("n9".to_string(), "tap9".to_string())]);
        assert_eq!(got, vec![nic("tap0", 0x99)]);
    }

    #[test]
    fn nic_and_legacy_net_default_to_xen_net_device() {
        let got = parse_nics(&[], &s(&["tap,ifname=tap0,script=no,downscript=no", "tap,ifname=tap1,model=xen-net-device"]), &[], &[]).unwrap().0;
        assert_eq!(got, vec![nic("tap0", 0x56), nic("tap1", 0x57)]);
        let got = parse_nics(&[], &[], &s(&["nic", "tap,ifname=tapx,script=no"]), &[]).unwrap().0;
        assert_eq!(got, vec![nic("tapx", 0x56)]);
        let got = parse_nics(&[], &s(&["none"]), &s(&["none"]), &[]).unwrap().0;
        assert!(got.is_empty());
        // A default MAC skips one given explicitly.
        let got = parse_nics(&[], &s(&["tap,ifname=a,mac=52:54:00:12:34:56", "tap,ifname=b"]), &[], &[]).unwrap().0;
        assert_eq!(got, vec![nic("a", 0x56), nic("b", 0x57)]);
    }

    #[test]
    fn bad_options_are_named() {
        let msg = |nd: &[&str], nic: &[&str], net: &[&str], dev: &[&str]| {
            parse_nics(&s(nd), &s(nic), &s(net), &s(dev)).unwrap_err().to_string()
        };
        assert!(msg(&["user,id=n0"], &[], &[], &[]).contains("-netdev user"));
        assert!(msg(&["tap,ifname=t"], &[], &[], &[]).contains("id=ID"));
        assert!(msg(&["tap,id=n0"], &[], &[], &[]).contains("ifname"));
        assert!(msg(&["tap,id=n0,ifname=t,script=/etc/qemu-ifup"], &[], &[], &[]).contains("script=/etc/qemu-ifup"));
        assert!(msg(&["tap,id=n0,ifname=t,vhost=on"], &[], &[], &[]).contains("vhost=on"));
        assert!(msg(&["tap,id=n0,ifname=t,queues=4"], &[], &[], &[]).contains("queues"));
        assert!(msg(&["tap,id=n0,ifname=t", "tap,id=n0,ifname=u"], &[], &[], &[]).contains("unique"));
        assert!(msg(&[], &[], &[], &["xen-net-device,netdev=n9"]).contains("n9"));
        assert!(msg(&["tap,id=n0,ifname=t"], &[], &[], &["xen-net-device,netdev=n0", "xen-net-device,netdev=n0"]).contains("already used"));
        assert_eq!(msg(&[], &[], &[], &["virtio-net-pci,netdev=n9"]), "-device virtio-net-pci,netdev=n9: no -netdev tap,id=n9");
        assert_eq!(
            msg(&["tap,id=n0,ifname=t"], &[], &[], &["xen-net-device,netdev=n0", "virtio-net-pci,netdev=n0"]),
            "-device virtio-net-pci,netdev=n0: that netdev is already used by another NIC"
        );
        assert!(msg(&["tap,id=n0,ifname=t"], &[], &[], &["xen-net-device,netdev=n0,mac=52:54:00"]).contains("mac=52:54:00"));
        assert!(msg(&["tap,id=n0,ifname=t"], &[], &[], &["xen-net-device,netdev=n0,mac=01:00:5e:00:00:01"]).contains("unicast"));
        assert!(msg(&[], &[], &[], &["xen-net-device"]).contains("netdev=ID"));
        assert!(msg(&[], &["tap,ifname=t,model=e1000"], &[], &[]).contains("model=e1000"));
        assert!(msg(&[], &[], &["nic,model=virtio-net-pci", "tap,ifname=t"], &[]).contains("use -device"));
        assert!(msg(&[], &["user"], &[], &[]).contains("-nic user"));
        assert!(msg(&[], &["tap"], &[], &[]).contains("ifname"));
        assert!(msg(&[], &[], &["nic", "nic", "tap,ifname=t"], &[]).contains("2 -net nic"));
        assert!(msg(&[], &[], &["nic,model=e1000", "tap,ifname=t"], &[]).contains("model=e1000"));
        assert!(msg(&[], &[], &["bridge,br=br0"], &[]).contains("-net bridge"));
    }
}
