//! A hostile driver: bad queue sizes, vectors and offsets, descriptors
//! outside memory, loops, bad heads and indexes. Nothing panics or hangs;
//! a broken ring stops the device until a reset (DEVICE_NEEDS_RESET).

mod support;

use support::*;
use xenkvm_virtio::net::features;
use xenkvm_virtio::{RxOffloads, VIRTIO_F_VERSION_1};

const BASIC: u64 = VIRTIO_F_VERSION_1 | features::MAC | features::STATUS;

#[test]
fn bad_sizes_vectors_and_selects_are_refused() {
    let d = Driver::new();
    assert!(d.negotiate(BASIC));
    d.common_write(0x16, 2, 0);
    for bad in [0u64, 3, 100, 512, 0xFFFF] {
        d.common_write(0x18, 2, bad);
        assert_eq!(d.common_read(0x18, 2), 256, "size {bad} ignored");
    }
    d.common_write(0x18, 2, 64);
    assert_eq!(d.common_read(0x18, 2), 64);
    for bad in [3u64, 0x7FF, 0xFFFE] {
        d.common_write(0x1A, 2, bad);
        assert_eq!(d.common_read(0x1A, 2), 0xFFFF, "vector {bad} refused");
        d.common_write(0x10, 2, bad);
        assert_eq!(d.common_read(0x10, 2), 0xFFFF);
    }
    // Misaligned ring addresses are not taken.
    d.common_write(0x20, 4, 0x1001);
    assert_eq!(d.common_read(0x20, 8), 0);
    // A queue that does not exist reads size 0 and takes nothing.
    d.common_write(0x16, 2, 7);
    assert_eq!(d.common_read(0x18, 2), 0);
    d.common_write(0x1C, 2, 1);
    assert_eq!(d.common_read(0x1C, 2), 0);
    // Odd widths and offsets anywhere in the BAR.
    for off in (0..xenkvm_virtio::BAR_SIZE).step_by(61) {
        for len in [1, 2, 3, 4, 8] {
            d.bar_write(off, len, u64::MAX);
            let _ = d.bar_read(off, len);
        }
    }
    let mut buf = [0u8; 16];
    d.mmio.read(BAR + 0x10, &mut buf);
}

fn broken(d: &Driver) -> bool {
    d.status() & 0x40 != 0
}

#[test]
fn rings_outside_memory_need_a_reset() {
    let mut d = Driver::new();
    assert!(d.negotiate(BASIC));
    d.enable_msix(3);
    d.common_write(0x10, 2, 0);
    d.setup_queue(0, (MEM_SIZE - 0x100) as u64, 1);
    d.setup_queue(1, 0x20_0000, 2);
    d.set_status(0xF);
    let mut w = d.worker();
    w.pass();
    assert!(broken(&d));
    assert_eq!(*d.msis.0.lock().unwrap(), vec![(0xFEE0_0000, 0x40)], "config vector");
    assert!(d.common_read(0x15, 1) > 0, "config generation moved");
    d.tap.0.lock().unwrap().inbound.push_back(frame(60, 0));
    w.pass();
    assert_eq!(d.tap.0.lock().unwrap().inbound.len(), 1, "stopped");
    d.bring_up(BASIC, true);
    assert!(!broken(&d), "a reset brings it back");
}

#[test]
fn tx_descriptors_outside_memory_loops_and_giants_are_dropped() {
    let mut d = Driver::new();
    d.bring_up(BASIC, true);
    let mut w = d.worker();
    // Outside guest memory, and wrapping around the address space.
    d.post(1, &[(MEM_SIZE as u64 - 8, 100, false)]);
    d.post(1, &[(u64::MAX - 4, 100, false)]);
    // Larger than any frame.
    d.post(1, &[(0, 1 << 20, false)]);
    // Too short to be a frame.
    d.post(1, &[(0x40_0000, 4, false)]);
    // A loop: 8 -> 9 -> 8 ..., bounded by the queue size.
    d.put_desc(1, 8, 0x40_0000, 100, 1, 9);
    d.put_desc(1, 9, 0x40_0000, 100, 1, 8);
    d.publish(1, 8);
    w.pass();
    assert_eq!(d.used(1).len(), 5, "every chain returned");
    assert!(!broken(&d));
    let s = w.stats();
    assert_eq!(s.tx_errors, 4);
    assert_eq!(s.tx_packets, 1, "the loop was cut at 16 descriptors and sent as garbage");
    assert_eq!(d.tap.0.lock().unwrap().sent[0].len(), 1600);
}

#[test]
fn indirect_tables_are_bounded() {
    let mut d = Driver::new();
    d.bring_up(BASIC, true);
    let mut w = d.worker();
    // An indirect table of 4096 entries each pointing at itself.
    let table = 0x50_0000u64;
    for i in 0..4096u64 {
        let e = table + 16 * i;
        d.write_mem(e, &0x40_0000u64.to_le_bytes());
        d.write_mem(e + 8, &16u32.to_le_bytes());
        d.write_mem(e + 12, &1u16.to_le_bytes());
        d.write_mem(e + 14, &((i as u16 + 1) % 4096).to_le_bytes());
    }
    d.put_desc(1, 0, table, 4096 * 16, 4, 0);
    d.publish(1, 0);
    w.pass();
    assert_eq!(d.used(1).len(), 1);
    assert!(!broken(&d));
}

#[test]
fn bad_heads_and_indexes_stop_the_queue() {
    let mut d = Driver::new();
    d.bring_up(BASIC, true);
    let mut w = d.worker();
    // A head beyond the queue size.
    d.publish(1, 200);
    w.pass();
    assert!(broken(&d));
    // An avail index far ahead of what was consumed: nothing is taken.
    d.bring_up(BASIC, true);
    let r = d.rings[1];
    d.write_mem(r.avail + 2, &100u16.to_le_bytes());
    w.pass();
    assert!(d.tap.0.lock().unwrap().sent.is_empty());
    // An rx buffer outside memory.
    d.bring_up(BASIC, true);
    d.post(0, &[(MEM_SIZE as u64, 2048, true)]);
    d.tap.0.lock().unwrap().inbound.push_back(frame(60, 0));
    w.pass();
    assert!(broken(&d));
}

#[test]
fn config_space_fuzz_does_not_panic() {
    let mut d = Driver::new();
    let mut x = 0x1234_5678u32;
    for _ in 0..20_000 {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        let off = (x & 0xFF) as u16;
        let len = [1, 2, 4][(x >> 8) as usize % 3];
        if x & 0x1_0000 != 0 {
            d.cfg_write(off, len, x);
        } else {
            d.cfg_read(off, len);
        }
        let bar_off = u64::from(x >> 18) % xenkvm_virtio::BAR_SIZE;
        if x & 0x2_0000 != 0 {
            d.bar_write(bar_off, len, u64::from(x));
        }
    }
}

/// Found by the `virtio_net` fuzz target: frames the guest cannot take
/// (runts, segmentation it did not negotiate) did not count against the
/// pass's budget, so a stream of them held the device lock for one pass.
#[test]
fn bad_frames_from_the_tap_count_against_the_budget() {
    let mut d = Driver::new();
    d.bring_up(BASIC, true);
    let mut w = d.worker();
    d.post(0, &[(0x30_0000, 2048, true)]);
    {
        let mut tap = d.tap.0.lock().unwrap();
        for i in 0..200 {
            let mut f = frame(if i % 2 == 0 { 4 } else { 60 }, 0);
            f[1] = 1; // TCPv4 segmentation, not negotiated
            tap.inbound.push_back(f);
        }
        tap.inbound.push_back(frame(60, 7));
    }
    let pass = w.pass();
    assert!(pass.more, "budget ran out: another pass at once");
    assert!(d.tap.0.lock().unwrap().inbound.len() >= 201 - 64, "at most a budget of frames read in one pass");
    for _ in 0..4 {
        w.pass();
    }
    assert_eq!(d.used(0), vec![(0, 72)], "the good frame behind them arrives");
    assert_eq!(w.stats().rx_dropped + w.stats().rx_errors, 200);
}

/// Found by the `virtio_net` fuzz target: a reset and a new bring-up
/// between two worker passes kept the old features' offloads (and skipped
/// the ring check), so the guest got checksum flags it had not negotiated;
/// a frame held for the old driver is dropped too.
#[test]
fn a_reset_and_bring_up_between_passes_starts_again() {
    let mut d = Driver::new();
    d.bring_up(BASIC | features::GUEST_CSUM | features::GUEST_TSO4, true);
    let mut w = d.worker();
    w.pass();
    assert!(d.tap.0.lock().unwrap().offloads.unwrap().csum);
    // A segmented frame fitted for this driver waits for a buffer...
    let mut gso = frame(60, 2);
    gso[0] = 1;
    gso[1] = 1;
    d.tap.0.lock().unwrap().inbound.push_back(gso);
    w.pass();
    // ...and is not handed to the next driver, which did not negotiate TSO.
    d.bring_up(BASIC, true);
    d.post(0, &[(0x30_0000, 2048, true)]);
    let mut f = frame(60, 1);
    f[0] = 1; // NEEDS_CSUM
    d.tap.0.lock().unwrap().inbound.push_back(f);
    w.pass();
    assert_eq!(d.tap.0.lock().unwrap().offloads, Some(RxOffloads::default()));
    assert_eq!(d.used(0), vec![(0, 72)]);
    assert_eq!(d.read_mem(0x30_0000, 1), [0], "no checksum flags without GUEST_CSUM");
    assert_eq!(d.read_mem(0x30_000C, 60), frame(60, 1)[12..], "the new frame, not the held one");
    // Rings outside memory after a quick reset are caught too.
    assert!(d.negotiate(BASIC));
    d.setup_queue(0, (MEM_SIZE - 0x100) as u64, 0xFFFF);
    d.setup_queue(1, 0x20_0000, 0xFFFF);
    d.set_status(0xF);
    w.pass();
    assert!(broken(&d));
}
