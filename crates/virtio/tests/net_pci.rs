//! virtio-net-pci driven as Linux's virtio_pci_modern and virtio_net drive
//! it: identity and capabilities, feature negotiation, queues, MSI-X and
//! INTx, frames both ways, and hostile drivers.

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::*;
use xenkvm_virtio::net::features;
use xenkvm_virtio::{RxOffloads, VIRTIO_F_VERSION_1};

const BASIC: u64 = VIRTIO_F_VERSION_1 | features::MAC | features::STATUS;

#[test]
fn identity_capabilities_and_device_config() {
    let mut d = Driver::new();
    assert_eq!(d.cfg_read(0, 4), 0x1041_1AF4, "modern virtio-net");
    assert_eq!(d.cfg_read(0x08, 4) >> 8, 0x02_00_00, "Ethernet controller");
    assert_eq!(d.cfg_read(0x08, 1), 1, "revision 1: no legacy interface");
    assert_eq!(d.cfg_read(0x3D, 1), 1, "INTA#");
    assert_eq!(d.cfg_read(0x10, 4), 0xE100_0004, "64-bit memory BAR");
    assert_eq!(d.cfg_read(0x14, 4), 0);
    assert_eq!((d.r.common, d.r.isr, d.r.device, d.r.notify, d.r.multiplier), (0, 0x1000, 0x2000, 0x3000, 4));
    assert!(d.r.device_len >= 8 && d.r.msix != 0 && d.r.pci_cfg != 0);
    let mac: Vec<u8> = (0..6).map(|i| d.bar_read(d.r.device + i, 1) as u8).collect();
    assert_eq!(mac, MAC);
    assert_eq!(d.bar_read(d.r.device + 6, 2), 1, "link up");
    let f = d.device_features();
    for bit in [VIRTIO_F_VERSION_1, features::MAC, features::STATUS, features::CSUM, features::GUEST_TSO4] {
        assert_ne!(f & bit, 0, "{bit:#x}");
    }
    assert_eq!(d.common_read(0x12, 2), 2, "num_queues");
}

#[test]
fn features_need_version_1_and_a_subset_of_the_offer() {
    let d = Driver::new();
    assert!(!d.negotiate(features::MAC), "legacy-only driver refused");
    assert!(!d.negotiate(BASIC | (1 << 40)), "feature the device does not offer");
    assert!(d.negotiate(BASIC));
    // DRIVER_OK without FEATURES_OK is not taken either.
    d.set_status(0);
    d.set_status(1 | 2 | 4);
    assert_eq!(d.status() & 4, 0);
    // Features are frozen once accepted.
    assert!(d.negotiate(BASIC));
    d.common_write(0x08, 4, 0);
    d.common_write(0x0C, 4, 0);
    assert_eq!(d.common_read(0x0C, 4), BASIC & 0xFFFF_FFFF);
}

#[test]
fn frames_both_ways_with_msix() {
    let mut d = Driver::new();
    d.bring_up(BASIC, true);
    let mut w = d.worker();
    // Linux posts rx buffers and kicks.
    for i in 0..4u64 {
        d.post(0, &[(0x30_0000 + i * 0x1000, 2048, true)]);
    }
    d.notify(0);
    // Transmit: header and packet in two descriptors.
    let f = frame(60, 0x5A);
    d.write_mem(0x40_0000, &f[..12]);
    d.write_mem(0x40_1000, &f[12..]);
    let head = d.post(1, &[(0x40_0000, 12, false), (0x40_1000, 60, false)]);
    d.notify(1);
    assert!(d.shared.kick.take(), "notify wakes the worker, does no work itself");
    w.pass();
    assert_eq!(d.tap.0.lock().unwrap().sent, vec![f.clone()]);
    assert_eq!(d.used(1), vec![(u32::from(head), 0)]);
    assert_eq!(*d.msis.0.lock().unwrap(), vec![(0xFEE0_0000, 0x42)], "tx vector 2");
    // Receive.
    let inbound = frame(100, 0x33);
    d.tap.0.lock().unwrap().inbound.push_back(inbound.clone());
    w.pass();
    assert_eq!(d.used(0), vec![(0, 112)]);
    let got = d.read_mem(0x30_0000, 112);
    assert_eq!(&got[12..], &inbound[12..]);
    assert_eq!(&got[10..12], &[1, 0], "num_buffers");
    assert_eq!(d.msis.0.lock().unwrap().last(), Some(&(0xFEE0_0000, 0x41)), "rx vector 1");
    assert!(!d.line.high.load(Ordering::SeqCst), "no INTx with MSI-X");
    assert_eq!(d.bar_read(d.r.isr, 1), 0);
    let s = w.stats();
    assert_eq!((s.tx_packets, s.rx_packets, s.broken), (1, 1, 0));
}

#[test]
fn masked_vector_is_pending_until_unmasked() {
    let mut d = Driver::new();
    d.bring_up(BASIC, true);
    let mut w = d.worker();
    let table = u64::from(d.cfg_read(u16::from(d.r.msix) + 4, 4));
    let pba = u64::from(d.cfg_read(u16::from(d.r.msix) + 8, 4));
    d.bar_write(table + 16 * 2 + 12, 4, 1);
    d.write_mem(0x40_0000, &frame(60, 1));
    d.post(1, &[(0x40_0000, 72, false)]);
    w.pass();
    assert!(d.msis.0.lock().unwrap().is_empty());
    assert_eq!(d.bar_read(pba, 8), 0b100);
    d.bar_write(table + 16 * 2 + 12, 4, 0);
    assert_eq!(*d.msis.0.lock().unwrap(), vec![(0xFEE0_0000, 0x42)]);
    assert_eq!(d.bar_read(pba, 8), 0);
}

#[test]
fn intx_and_isr_without_msix() {
    let mut d = Driver::new();
    d.bring_up(BASIC, false);
    let mut w = d.worker();
    d.write_mem(0x40_0000, &frame(60, 2));
    d.post(1, &[(0x40_0000, 72, false)]);
    w.pass();
    assert!(d.line.high.load(Ordering::SeqCst));
    assert!(d.msis.0.lock().unwrap().is_empty());
    assert_eq!(d.bar_read(d.r.isr, 1), 1, "queue bit");
    assert!(!d.line.high.load(Ordering::SeqCst), "reading the ISR lowers the line");
    assert_eq!(d.bar_read(d.r.isr, 1), 0, "and clears it");
    // The PCI-config window reaches the ISR too.
    d.post(1, &[(0x40_0000, 72, false)]);
    w.pass();
    let cap = u16::from(d.r.pci_cfg);
    d.cfg_write(cap + 4, 1, 0);
    d.cfg_write(cap + 8, 4, 0x1000);
    d.cfg_write(cap + 12, 4, 1);
    assert_eq!(d.cfg_read(cap + 16, 1), 1);
    assert!(!d.line.high.load(Ordering::SeqCst));
}

#[test]
fn offloads_follow_negotiation_and_reset_stops_everything() {
    let mut d = Driver::new();
    let f = BASIC | features::GUEST_CSUM | features::GUEST_TSO4 | features::CSUM;
    d.bring_up(f, true);
    let mut w = d.worker();
    w.pass();
    let want = RxOffloads { csum: true, tso4: true, tso6: false, ecn: false };
    assert_eq!(d.tap.0.lock().unwrap().offloads, Some(want));
    // A reset clears the queues: nothing is served until the driver is back.
    d.set_status(0);
    assert_eq!(d.status(), 0);
    d.common_write(0x16, 2, 0);
    assert_eq!((d.common_read(0x1C, 2), d.common_read(0x18, 2), d.common_read(0x1A, 2)), (0, 256, 0xFFFF));
    d.tap.0.lock().unwrap().inbound.push_back(frame(60, 3));
    w.pass();
    assert_eq!(d.tap.0.lock().unwrap().inbound.len(), 1, "not read while reset");
    d.bring_up(BASIC, true);
    d.post(0, &[(0x30_0000, 2048, true)]);
    w.pass();
    assert_eq!(d.used(0), vec![(0, 72)]);
    assert_eq!(d.tap.0.lock().unwrap().offloads, Some(RxOffloads::default()), "renegotiated");
}

#[test]
fn rx_frame_waits_for_buffers_and_oversized_frames_are_dropped() {
    let mut d = Driver::new();
    d.bring_up(BASIC, true);
    let mut w = d.worker();
    d.tap.0.lock().unwrap().inbound.extend([frame(1500, 1), frame(60, 2)]);
    let pass = w.pass();
    assert!(!pass.rx_room, "a frame waits for the guest");
    d.tap.0.lock().unwrap().inbound.clear();
    d.post(0, &[(0x30_0000, 2048, true)]);
    assert!(w.pass().rx_room, "buffers and nothing to read: wait on the backend");
    assert_eq!(d.used(0).len(), 1, "the held frame went in");
    d.tap.0.lock().unwrap().inbound.extend([frame(1500, 1), frame(60, 2)]);
    // A buffer too small for the first frame: the frame is dropped, the buffer reused.
    let head = d.post(0, &[(0x30_0000, 200, true)]);
    w.pass();
    assert_eq!(d.used(0), vec![(u32::from(head), 72)]);
    assert_eq!(w.stats().rx_dropped, 1);
    // A chain of several writable descriptors takes a big frame.
    d.tap.0.lock().unwrap().inbound.push_back(frame(3000, 4));
    d.post(0, &[(0x30_0000, 12, true), (0x31_0000, 1000, true), (0x32_0000, 4000, true)]);
    w.pass();
    assert_eq!(d.used(0).len(), 1);
    assert_eq!(d.read_mem(0x31_0000, 1000), frame(3000, 4)[12..1012]);
}

#[test]
fn worker_thread_serves_notifications_and_stops() {
    let mut d = Driver::new();
    d.bring_up(BASIC, true);
    let stop = Arc::new(AtomicBool::new(false));
    let (w, s) = (d.worker(), stop.clone());
    let t = std::thread::spawn(move || w.run(move || s.load(Ordering::SeqCst)));
    d.write_mem(0x40_0000, &frame(60, 9));
    d.post(1, &[(0x40_0000, 72, false)]);
    d.notify(1);
    d.post(0, &[(0x30_0000, 2048, true)]);
    d.notify(0);
    d.tap.0.lock().unwrap().inbound.push_back(frame(80, 7));
    let end = Instant::now() + Duration::from_secs(5);
    while (d.tap.0.lock().unwrap().sent.is_empty() || d.msis.0.lock().unwrap().len() < 2) && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(2));
    }
    stop.store(true, Ordering::SeqCst);
    d.shared.kick.notify();
    let stats = t.join().unwrap();
    assert_eq!((stats.tx_packets, stats.rx_packets), (1, 1));
}
