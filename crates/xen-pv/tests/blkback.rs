//! The block backend against a simulated frontend: handshake, data both
//! ways, flush ordering, hostile requests with their exact responses, and
//! teardown/reconnect.

mod frontend;

use std::sync::atomic::Ordering;

use frontend::{rig, MemDisk, INDIRECT_GFN};
use vm_memory::{Bytes, GuestAddress};
use xenkvm_xen_abi::grant_table::{GTF_READING, GTF_WRITING};
use xenkvm_xen_pv::blkif::*;
use xenkvm_xen_pv::xenbus::XenbusState;

const DISK: usize = 1 << 20; // 2048 sectors

#[test]
fn handshake_publishes_toolstack_layout_and_features() {
    let mut r = rig(MemDisk::new(DISK, true), false, true);
    assert_eq!(r.front, "/local/domain/1/device/vbd/51712");
    assert_eq!(r.back, "/local/domain/0/backend/vbd/1/51712");
    let (f, b) = (r.front.clone(), r.back.clone());
    let mut node = |p: String| r.read(&p).unwrap_or_else(|| panic!("missing {p}"));
    assert_eq!(node(format!("{f}/backend")), b);
    assert_eq!(node(format!("{f}/backend-id")), "0");
    assert_eq!(node(format!("{f}/virtual-device")), "51712");
    assert_eq!(node(format!("{f}/device-type")), "disk");
    assert_eq!(node(format!("{f}/state")), "1");
    assert_eq!(node(format!("{b}/frontend")), f);
    assert_eq!(node(format!("{b}/frontend-id")), "1");
    assert_eq!(node(format!("{b}/online")), "1");
    assert_eq!(node(format!("{b}/state")), "2");
    assert_eq!(node(format!("{b}/mode")), "w");
    assert_eq!(node(format!("{b}/sectors")), "2048");
    assert_eq!(node(format!("{b}/sector-size")), "512");
    assert_eq!(node(format!("{b}/info")), "0");
    assert_eq!(node(format!("{b}/feature-flush-cache")), "1");
    assert_eq!(node(format!("{b}/feature-discard")), "1");
    assert_eq!(node(format!("{b}/feature-persistent")), "1");
    assert_eq!(node(format!("{b}/feature-max-indirect-segments")), "256");
    assert_eq!(node(format!("{b}/max-ring-page-order")), "4");
    // The guest may write its own directory but not the backend's.
    assert!(r.guest_write("state", "1"));
    r.connect(0, Some("x86_64-abi"), false);
    assert_eq!(r.back_state(), XenbusState::Connected);
    // The ring page is pinned writable while connected.
    assert_eq!(r.grant_flags(10) & (GTF_READING | GTF_WRITING), GTF_READING | GTF_WRITING);
}

#[test]
fn readonly_disk_is_marked_and_refuses_writes() {
    let mut r = rig(MemDisk::new(DISK, true), true, false);
    let b = r.back.clone();
    assert_eq!(r.read(&format!("{b}/info")).as_deref(), Some("4"));
    assert_eq!(r.read(&format!("{b}/mode")).as_deref(), Some("r"));
    assert_eq!(r.read(&format!("{b}/feature-discard")), None);
    r.connect(0, None, false);
    let g = r.data_page(0, 0x5A, true);
    let w = r.queue(OP_WRITE, 0, &[(g, 0, 7)]);
    let d = r.queue(OP_DISCARD, 0, &[]);
    let f = r.queue(OP_FLUSH_DISKCACHE, 0, &[]);
    assert_eq!(r.run(), vec![(w, OP_WRITE, RSP_ERROR), (d, OP_DISCARD, RSP_ERROR), (f, OP_FLUSH_DISKCACHE, RSP_OKAY)]);
    assert_eq!(r.disk_bytes(0, 4096), vec![0; 4096]);
}

#[test]
fn write_then_read_back() {
    let mut r = rig(MemDisk::new(DISK, false), false, false);
    r.connect(0, None, false);
    // Two segments: a whole page of 0x11, then sectors 2..=3 of a page of 0x22.
    let g0 = r.data_page(0, 0x11, true);
    let g1 = r.data_page(1, 0x22, true);
    let w = r.queue(OP_WRITE, 100, &[(g0, 0, 7), (g1, 2, 3)]);
    assert_eq!(r.run(), vec![(w, OP_WRITE, RSP_OKAY)]);
    assert_eq!(r.disk_bytes(100 * 512, 4096), vec![0x11; 4096]);
    assert_eq!(r.disk_bytes(108 * 512, 1024), vec![0x22; 1024]);
    assert_eq!(r.disk_bytes(110 * 512, 512), vec![0; 512]);
    // Grants were released after the request.
    assert_eq!(r.grant_flags(g0) & (GTF_READING | GTF_WRITING), 0);
    // Read 10 sectors back into sectors 1..=7 of page 2 and 0..=2 of page 3.
    let g2 = r.data_page(2, 0xEE, false);
    let g3 = r.data_page(3, 0xEE, false);
    let rd = r.queue(OP_READ, 100, &[(g2, 1, 7), (g3, 0, 2)]);
    assert_eq!(r.run(), vec![(rd, OP_READ, RSP_OKAY)]);
    let p2 = r.page(2);
    assert_eq!(&p2[..512], &[0xEE; 512][..]);
    assert_eq!(&p2[512..], &[0x11; 3584][..]);
    let p3 = r.page(3);
    assert_eq!(&p3[..512], &[0x11; 512][..]);
    assert_eq!(&p3[512..1536], &[0x22; 1024][..]);
    assert_eq!(&p3[1536..], &[0xEE; 2560][..]);
    let s = r.backend.stats();
    assert_eq!((s.reads, s.writes, s.bytes_written, s.bytes_read), (1, 1, 5120, 5120));
}

#[test]
fn flush_is_answered_after_the_data_is_durable() {
    let mut r = rig(MemDisk::new(DISK, false), false, false);
    r.connect(0, None, false);
    let g = r.data_page(0, 0x77, true);
    let w = r.queue(OP_WRITE, 0, &[(g, 0, 7)]);
    let f = r.queue(OP_FLUSH_DISKCACHE, 0, &[]);
    // A FUA-style flush carrying data, and a barrier.
    let fw = r.queue(OP_FLUSH_DISKCACHE, 8, &[(g, 0, 0)]);
    let b = r.queue(OP_WRITE_BARRIER, 16, &[(g, 0, 7)]);
    let rsp = r.run();
    assert_eq!(
        rsp,
        vec![(w, OP_WRITE, RSP_OKAY), (f, OP_FLUSH_DISKCACHE, RSP_OKAY), (fw, OP_FLUSH_DISKCACHE, RSP_OKAY), (b, OP_WRITE_BARRIER, RSP_OKAY)]
    );
    assert_eq!(r.disk.flushes.load(Ordering::SeqCst), 3);
    assert_eq!(r.disk.unflushed.load(Ordering::SeqCst), 0, "data written by flush/barrier requests was flushed");
    assert_eq!(r.disk_bytes(8 * 512, 512), vec![0x77; 512]);
    // A failing flush is an error, and so is every later one.
    r.disk.fail_flush.store(true, Ordering::SeqCst);
    let f1 = r.queue(OP_FLUSH_DISKCACHE, 0, &[]);
    assert_eq!(r.run(), vec![(f1, OP_FLUSH_DISKCACHE, RSP_ERROR)]);
    r.disk.fail_flush.store(false, Ordering::SeqCst);
    let f2 = r.queue(OP_FLUSH_DISKCACHE, 0, &[]);
    assert_eq!(r.run(), vec![(f2, OP_FLUSH_DISKCACHE, RSP_ERROR)]);
}

#[test]
fn hostile_requests_get_exact_error_responses() {
    let mut r = rig(MemDisk::new(DISK, true), false, false);
    r.connect(0, None, false);
    let g = r.data_page(0, 0x33, false);
    let ro = r.data_page(1, 0x44, true);
    let mut expect = Vec::new();
    // No segments on a read; 12 segments; 255 segments.
    for (op, n) in [(OP_READ, 0u8), (OP_WRITE, 12), (OP_READ, 255)] {
        let (id, e) = r.entry(op, n, 0, &[(g, 0, 7); 11]);
        r.queue_raw(&e);
        expect.push((id, op, RSP_ERROR));
    }
    // Sectors leaving the page, or first after last.
    for (first, last) in [(0u8, 8u8), (5, 4), (8, 9)] {
        expect.push((r.queue(OP_WRITE, 0, &[(g, first, last)]), OP_WRITE, RSP_ERROR));
    }
    // Beyond the disk end; ending exactly at it is fine; u64 overflow.
    expect.push((r.queue(OP_READ, 2047, &[(g, 0, 1)]), OP_READ, RSP_ERROR));
    expect.push((r.queue(OP_READ, 2047, &[(g, 0, 0)]), OP_READ, RSP_OKAY));
    expect.push((r.queue(OP_WRITE, u64::MAX - 2, &[(g, 0, 7)]), OP_WRITE, RSP_ERROR));
    expect.push((r.queue(OP_DISCARD, u64::MAX, &[]), OP_DISCARD, RSP_ERROR));
    // Bogus grants: beyond the table, not granted, read-only grant for a read.
    expect.push((r.queue(OP_READ, 0, &[(g, 0, 7), (1_000_000, 0, 7)]), OP_READ, RSP_ERROR));
    expect.push((r.queue(OP_READ, 0, &[(77, 0, 7)]), OP_READ, RSP_ERROR));
    expect.push((r.queue(OP_READ, 0, &[(ro, 0, 7)]), OP_READ, RSP_ERROR));
    // Unknown operations and indirect with a bad inner op.
    expect.push((r.queue(4, 0, &[]), 4, RSP_EOPNOTSUPP));
    expect.push((r.queue(200, 0, &[]), 200, RSP_EOPNOTSUPP));
    let (id, mut e) = r.entry(OP_INDIRECT, 0, 0, &[]);
    e[1] = OP_DISCARD;
    e[2..4].copy_from_slice(&8u16.to_le_bytes());
    r.queue_raw(&e);
    expect.push((id, OP_DISCARD, RSP_ERROR));
    // Indirect with too many segments.
    let (id, mut e) = r.entry(OP_INDIRECT, OP_READ, 0, &[]);
    e[2..4].copy_from_slice(&257u16.to_le_bytes());
    r.queue_raw(&e);
    expect.push((id, OP_READ, RSP_ERROR));
    assert_eq!(r.run(), expect);
    // The failed requests left no pins and no writes behind.
    for gref in [g, ro] {
        assert_eq!(r.grant_flags(gref) & (GTF_READING | GTF_WRITING), 0);
    }
    assert_eq!(r.disk_bytes(0, 4096), vec![0; 4096]);
    assert_eq!(r.page(1), vec![0x44; 4096], "read-only page untouched");
    // The ring still works.
    let ok = r.queue(OP_WRITE, 0, &[(g, 0, 7)]);
    assert_eq!(r.run(), vec![(ok, OP_WRITE, RSP_OKAY)]);
}

#[test]
fn runaway_producer_stops_the_ring_until_the_frontend_reconnects() {
    let mut r = rig(MemDisk::new(DISK, false), false, false);
    r.connect(0, None, false);
    r.set_req_prod(33);
    assert!(r.run().is_empty());
    assert!(r.backend.ring_broken());
    assert_eq!(r.rsp_prod(), 0);
    // The frontend resets: Closing, Closed, Initialising, then connects again.
    r.set_front_state(XenbusState::Closing);
    assert!(r.xenbus());
    assert_eq!(r.back_state(), XenbusState::Closing);
    assert_eq!(r.backend.port(), None);
    assert_eq!(r.grant_flags(10) & GTF_READING, 0, "ring page unpinned");
    r.set_front_state(XenbusState::Closed);
    assert!(r.xenbus());
    assert_eq!(r.back_state(), XenbusState::Closed);
    r.set_front_state(XenbusState::Initialising);
    assert!(r.xenbus());
    assert_eq!(r.back_state(), XenbusState::InitWait);
    r.connect(1, None, false);
    let g = r.data_page(0, 1, true);
    let w = r.queue(OP_WRITE, 0, &[(g, 0, 7)]);
    assert_eq!(r.run(), vec![(w, OP_WRITE, RSP_OKAY)]);
}

#[test]
fn bad_frontend_parameters_fail_the_connection_cleanly() {
    let mut r = rig(MemDisk::new(DISK, false), false, false);
    let b = r.back.clone();
    assert!(r.guest_write("ring-ref", "99999999"));
    assert!(r.guest_write("event-channel", "5"));
    r.set_front_state(XenbusState::Initialised);
    r.xenbus();
    assert_eq!(r.back_state(), XenbusState::Closing);
    assert!(r.read(&format!("{b}/error")).unwrap().contains("ring pages"));
    // Too large a ring, then an unknown protocol.
    for (order, protocol, msg) in [("5", "x86_64-abi", "ring-page-order"), ("0", "arm-abi", "protocol")] {
        r.set_front_state(XenbusState::Closed);
        r.xenbus();
        r.set_front_state(XenbusState::Initialising);
        r.xenbus();
        assert_eq!(r.back_state(), XenbusState::InitWait);
        assert!(r.guest_write("ring-page-order", order));
        assert!(r.guest_write("protocol", protocol));
        r.set_front_state(XenbusState::Initialised);
        r.xenbus();
        assert_eq!(r.back_state(), XenbusState::Closing);
        assert!(r.read(&format!("{b}/error")).unwrap().contains(msg));
    }
}

#[test]
fn multi_page_ring_indirect_and_persistent_grants() {
    let mut r = rig(MemDisk::new(DISK, false), false, true);
    r.connect(2, None, true);
    assert_eq!(r.ring_size, 128);
    // 100 segments of one page each, described in one indirect page.
    let segs = 100u32;
    for i in 0..segs {
        r.data_page(i, i as u8, false);
    }
    let ind = 400;
    r.grant(ind, INDIRECT_GFN, true);
    let mut desc = Vec::new();
    for i in 0..segs {
        desc.extend_from_slice(&(100 + i).to_le_bytes());
        desc.extend_from_slice(&[0, 7, 0, 0]);
    }
    r.ram.write_slice(&desc, GuestAddress(INDIRECT_GFN << 12)).unwrap();
    // Enough requests to go around the 128-entry ring twice.
    let mut ids = Vec::new();
    for round in 0..300u64 {
        let (id, mut e) = r.entry(OP_INDIRECT, OP_WRITE, round % 2 * 800, &[]);
        e[2..4].copy_from_slice(&(segs as u16).to_le_bytes());
        e[28..32].copy_from_slice(&ind.to_le_bytes());
        r.queue_raw(&e);
        ids.push((id, OP_WRITE, RSP_OKAY));
        if r.req_prod.wrapping_sub(r.rsp_cons) == r.ring_size {
            let got = r.run();
            assert!(got.iter().all(|x| x.2 == RSP_OKAY), "{got:?}");
        }
    }
    r.run();
    for i in 0..segs as usize {
        assert_eq!(r.disk_bytes(i * 4096, 4096), vec![i as u8; 4096], "page {i}");
    }
    // The data grants stayed pinned, writable; the indirect page, granted
    // read-only, could not be kept and was pinned per request.
    assert_eq!(r.backend.persistent_grants(), 100);
    assert_eq!(r.grant_flags(ind) & GTF_READING, 0);
    assert_eq!(r.grant_flags(100) & (GTF_READING | GTF_WRITING), GTF_READING | GTF_WRITING);
    // Closing the device drops every pin.
    r.set_front_state(XenbusState::Closing);
    r.xenbus();
    assert_eq!(r.backend.persistent_grants(), 0);
    assert_eq!(r.grant_flags(100) & (GTF_READING | GTF_WRITING), 0);
    assert_eq!(r.grant_flags(ind) & GTF_READING, 0);
}

#[test]
fn discard_zeroes_the_range() {
    let mut r = rig(MemDisk::new(DISK, true), false, false);
    r.connect(0, None, false);
    r.disk.data.lock().unwrap().fill(0xFF);
    let mut e = r.entry(OP_DISCARD, 0, 8, &[]);
    e.1[24..32].copy_from_slice(&16u64.to_le_bytes());
    r.queue_raw(&e.1);
    assert_eq!(r.run(), vec![(e.0, OP_DISCARD, RSP_OKAY)]);
    assert_eq!(r.disk_bytes(4096, 8192), vec![0; 8192]);
    assert_eq!(r.disk_bytes(4096 - 512, 512), vec![0xFF; 512]);
    assert_eq!(r.disk_bytes(4096 + 8192, 512), vec![0xFF; 512]);
}

#[test]
fn x86_32_frontends_use_their_layout() {
    let mut r = rig(MemDisk::new(DISK, false), false, false);
    r.connect(0, Some("x86_32-abi"), false);
    let g = r.data_page(0, 0x99, true);
    let w = r.queue(OP_WRITE, 3, &[(g, 0, 0)]);
    let rsp = r.run();
    assert_eq!(rsp, vec![(w, OP_WRITE, RSP_OKAY)]);
    assert_eq!(r.disk_bytes(3 * 512, 512), vec![0x99; 512]);
}

#[test]
fn frontend_reset_while_connected_gets_a_fresh_connection() {
    let mut r = rig(MemDisk::new(DISK, false), false, false);
    r.connect(0, None, false);
    // A kexec'd guest comes back in Initialising without closing first.
    r.set_front_state(XenbusState::Initialising);
    assert!(r.xenbus());
    assert_eq!(r.back_state(), XenbusState::InitWait);
    assert_eq!(r.backend.port(), None);
    r.connect(0, None, false);
    // The frontend vanishing (device removed) closes the backend.
    let front = r.front.clone();
    let c = r.xs.connect_privileged();
    r.xs.handle(c, &xenkvm_xenstore::Message::with_strings(xenkvm_xenstore::MsgType::Rm, 0, 0, &[front.as_bytes()]));
    assert!(r.xenbus());
    assert_eq!(r.back_state(), XenbusState::Closed);
}

/// Linux's blkfront with several vCPUs: `multi-queue-num-queues` rings under
/// `queue-N/`, each with its own event channel; each ring is served alone.
#[test]
fn multi_queue_rings_are_served_each_with_its_channel() {
    let mut r = rig(MemDisk::new(1 << 20, false), false, false);
    assert!(!r.xenbus());
    assert_eq!(r.read(&format!("{}/multi-queue-max-queues", r.back)).as_deref(), Some("4"));
    let gfns = [frontend::RING_GFN, frontend::RING_GFN + 2];
    let mut ports = Vec::new();
    for (q, gfn) in gfns.iter().enumerate() {
        r.ram.write_slice(&[0u8; 4096], GuestAddress(gfn << 12)).unwrap();
        r.grant(10 + q as u32, *gfn, false);
        let port = r.domain.lock().unwrap().alloc_unbound_for_backend().unwrap();
        ports.push(port);
        assert!(r.guest_write(&format!("queue-{q}/ring-ref"), &(10 + q).to_string()));
        assert!(r.guest_write(&format!("queue-{q}/event-channel"), &port.to_string()));
    }
    assert!(r.guest_write("multi-queue-num-queues", "2"));
    r.set_front_state(XenbusState::Initialised);
    assert!(r.xenbus());
    assert_eq!(r.back_state(), XenbusState::Connected);
    assert_eq!(r.backend.ports().len(), 2);
    // A read on the second ring: only process_queue(1) answers it.
    r.ring_gfns = vec![gfns[1]];
    r.ring_size = xenkvm_xen_pv::ring::ring_size(1, r.abi.entry_size());
    let data = r.data_page(0, 0, false);
    let id = r.queue(OP_READ, 0, &[(data, 0, 7)]);
    assert_eq!(r.backend.process_queue(0, 16).handled, 0);
    let p = r.backend.process_queue(1, 16);
    assert_eq!(p.handled, 1);
    assert_eq!(r.rsp_prod(), 1);
    // The response sits on the second ring (run() reads the ring at ring_gfns).
    assert_eq!(r.run(), vec![(id, OP_READ, 0)]);
    assert_eq!(r.backend.process_queue(7, 16).handled, 0, "no such ring");
}

#[test]
fn too_many_queues_are_refused() {
    let mut r = rig(MemDisk::new(1 << 20, false), false, false);
    r.xenbus();
    assert!(r.guest_write("multi-queue-num-queues", "5"));
    assert!(r.guest_write("ring-ref", "10"));
    assert!(r.guest_write("event-channel", "1"));
    r.set_front_state(XenbusState::Initialised);
    r.xenbus();
    assert_eq!(r.back_state(), XenbusState::Closing);
    assert!(r.read(&format!("{}/error", r.back)).unwrap().contains("5 queues"));
}
