//! Hotplug end to end on plain memory: a disk plugged into a running VM
//! appears in the store for the guest's xenbus, a simulated frontend
//! follows the unplug handshake, and the device is gone afterwards.

use std::sync::Mutex;

use xenkvm_xen_pv::xenbus::XenbusState;

use super::*;
use crate::test_support::{eventually, TestVm};
use crate::vcpu::GuestEnd;

fn image(tag: &str) -> std::path::PathBuf {
    let p = std::env::temp_dir().join(format!("xenkvm-hotplug-{}-{tag}.img", std::process::id()));
    std::fs::write(&p, vec![0u8; 1 << 20]).unwrap();
    p
}

fn config(spare: &std::path::Path) -> VmConfig {
    let mut cfg = VmConfig::embedded(&[]);
    cfg.disks = vec![DiskConfig::raw(image("cold"))];
    cfg.spare_drives = vec![("img".into(), DiskConfig::raw(spare))];
    cfg.spare_netdevs = vec![("t0".into(), "xktap-test0".into())];
    cfg
}

#[test]
fn a_plugged_disk_appears_and_unplugs_through_the_xenbus_handshake() {
    let spare = image("spare");
    let vm = TestVm::new();
    let deleted = Arc::new(Mutex::new(Vec::<String>::new()));
    let seen = deleted.clone();
    let hp = Hotplug::new(&config(&spare), Box::new(move |id: &str| seen.lock().unwrap().push(id.to_owned())));
    let req = |id: &str, drive: &str, vdev: Option<&str>| DeviceRequest::Disk { id: id.into(), drive: drive.into(), vdev: vdev.map(Into::into), cdrom: false };

    assert_eq!(hp.add(req("d1", "img", None)), Err(HotplugError::NotRunning));
    hp.attach(&vm.ctx);
    assert_eq!(hp.add(req("d1", "nope", None)), Err(HotplugError::NoDrive("nope".into())));
    assert_eq!(hp.add(req("d1", "img", Some("xvda"))), Err(HotplugError::VdevInUse("xvda".into())), "xvda is the cold disk's");
    hp.add(req("d1", "img", None)).unwrap();
    assert_eq!(hp.ids(), ["d1"]);
    assert_eq!(hp.add(req("d1", "img", None)), Err(HotplugError::DuplicateId("d1".into())));
    assert_eq!(hp.add(req("d2", "img", None)), Err(HotplugError::InUse("img".into(), "d1".into())));

    // xvdb (51728): the backend offers the device to the guest.
    let back = "/local/domain/0/backend/vbd/1/51728";
    let front = "/local/domain/1/device/vbd/51728";
    eventually("InitWait", || vm.read(&format!("{back}/state")).as_deref() == Some("2"));
    assert_eq!(vm.read(&format!("{front}/backend")).as_deref(), Some(back));
    assert_eq!(vm.read(&format!("{back}/dev")).as_deref(), Some("xvdb"));

    // Unplug: the backend asks the frontend to close, the frontend closes.
    hp.remove("d1").unwrap();
    assert_eq!(hp.remove("d1"), Err(HotplugError::Removing("d1".into())));
    vm.guest_write(&format!("{front}/state"), &XenbusState::Connected.value());
    eventually("Closing", || vm.read(&format!("{back}/state")).as_deref() == Some("5"));
    vm.guest_write(&format!("{front}/state"), &XenbusState::Closed.value());
    eventually("the device removed", || deleted.lock().unwrap().as_slice() == ["d1"]);
    assert_eq!(vm.read(&format!("{back}/state")), None);
    assert_eq!(vm.read(&format!("{front}/state")), None);
    assert!(hp.ids().is_empty());
    assert_eq!(hp.remove("d1"), Err(HotplugError::NoDevice("d1".into())));

    // The image is free again: plug it once more, then end the run.
    hp.add(req("d3", "img", Some("xvdc"))).unwrap();
    eventually("xvdc", || vm.read("/local/domain/0/backend/vbd/1/51744/state").as_deref() == Some("2"));
    vm.ctx.control.finish(GuestEnd::Timeout);
    hp.detach();
    assert_eq!(hp.ids(), ["d3"], "hotplugged devices outlive a guest run");
    let _ = std::fs::remove_file(spare);
}

#[test]
fn nic_requests_are_checked_before_anything_opens() {
    let spare = image("nic");
    let vm = TestVm::new();
    let hp = Hotplug::new(&config(&spare), Box::new(|_: &str| {}));
    hp.attach(&vm.ctx);
    let nic = |netdev: &str, mac| DeviceRequest::Nic { id: "n1".into(), netdev: netdev.into(), mac };
    assert_eq!(hp.add(nic("nope", None)), Err(HotplugError::NoNetdev("nope".into())));
    assert_eq!(hp.add_netdev("t0".into(), "x".into()), Err(HotplugError::DuplicateBackend("t0".into())));
    assert_eq!(hp.add_drive("img".into(), DiskConfig::raw("/x")), Err(HotplugError::DuplicateBackend("img".into())));
    vm.ctx.control.finish(GuestEnd::Timeout);
    hp.detach();
    let _ = std::fs::remove_file(spare);
}

#[test]
fn a_console_plugs_onto_a_spare_chardev() {
    let spare = image("con");
    let out = std::env::temp_dir().join(format!("xenkvm-hotplug-{}-con.out", std::process::id()));
    let mut cfg = config(&spare);
    cfg.chardevs = vec![crate::ChardevConfig { id: "hc".into(), backend: crate::ChardevBackend::File { path: out.clone() }, mux: false }];
    crate::chardev::open(&cfg).unwrap();
    let vm = TestVm::new();
    let hp = Hotplug::new(&cfg, Box::new(|_: &str| {}));
    hp.attach(&vm.ctx);
    let con = |chardev: &str| DeviceRequest::Console { id: "c1".into(), chardev: chardev.into() };
    assert_eq!(hp.add(con("nope")), Err(HotplugError::NoChardev("nope".into())));
    hp.add(con("hc")).unwrap();
    let back = "/local/domain/0/backend/console/1/1";
    eventually("the console's InitWait", || vm.read(&format!("{back}/state")).as_deref() == Some("2"));
    hp.remove("c1").unwrap();
    eventually("the console removed", || vm.read(&format!("{back}/state")).is_none());
    vm.ctx.control.finish(GuestEnd::Timeout);
    hp.detach();
    let _ = std::fs::remove_file(spare);
    let _ = std::fs::remove_file(out);
}
