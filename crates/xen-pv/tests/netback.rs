//! The network backend against a simulated netfront: the vif layout and
//! handshake, multi-slot frames out to a fake tap with their offloads,
//! frames in (split over rx slots, with GSO), hostile requests with their
//! exact responses, fatal errors and reconnection.

mod netfront;

use netfront::{pattern, rig, tcp_frame, Slot, FakeTap, DATA_REF, MAC, NETFRONT};
use xenkvm_xen_abi::grant_table::{GTF_READING, GTF_WRITING};
use xenkvm_xen_pv::netback::{complete, l4_checksum_ok, Delivery, Gso, GsoKind, Offload, PartialCsum, RxCaps};
use xenkvm_xen_pv::netif::*;
use xenkvm_xen_pv::xenbus::XenbusState;
use vm_memory::{Bytes, GuestAddress};

const OK: i16 = RSP_OKAY;
const ERR: i16 = RSP_ERROR;
const NULL: i16 = RSP_NULL;

fn features_without(drop: &str) -> Vec<(&'static str, &'static str)> {
    NETFRONT.iter().copied().filter(|(k, _)| *k != drop).collect()
}

#[test]
fn handshake_publishes_the_vif_layout_and_features() {
    let mut r = rig();
    assert_eq!(r.front, "/local/domain/1/device/vif/0");
    assert_eq!(r.back, "/local/domain/0/backend/vif/1/0");
    let (f, b) = (r.front.clone(), r.back.clone());
    let mut node = |p: String| r.read(&p).unwrap_or_else(|| panic!("missing {p}"));
    assert_eq!(node(format!("{f}/backend")), b);
    assert_eq!(node(format!("{f}/backend-id")), "0");
    assert_eq!(node(format!("{f}/handle")), "0");
    assert_eq!(node(format!("{f}/mac")), "52:54:00:12:34:56");
    assert_eq!(node(format!("{f}/state")), "1");
    assert_eq!(node(format!("{b}/frontend")), f);
    assert_eq!(node(format!("{b}/frontend-id")), "1");
    assert_eq!(node(format!("{b}/handle")), "0");
    assert_eq!(node(format!("{b}/mac")), "52:54:00:12:34:56");
    assert_eq!(node(format!("{b}/online")), "1");
    assert_eq!(node(format!("{b}/state")), "2");
    for feature in ["feature-rx-copy", "feature-sg", "feature-gso-tcpv4", "feature-gso-tcpv6", "feature-ipv6-csum-offload"] {
        assert_eq!(node(format!("{b}/{feature}")), "1", "{feature}");
    }
    assert_eq!(node(format!("{b}/feature-rx-flip")), "0");
    r.connect(NETFRONT);
    // Both ring pages pinned writable while connected; the tap told what the guest takes.
    for gref in [10, 11] {
        assert_eq!(r.grant_flags(gref) & (GTF_READING | GTF_WRITING), GTF_READING | GTF_WRITING);
    }
    let all = RxCaps { sg: true, csum_v4: true, csum_v6: true, gso_v4: true, gso_v6: true };
    assert_eq!(*r.tap.offloads.lock().unwrap(), Some(all));
    assert_eq!(r.backend.caps(), Some(all));
    // A frontend without checksum offload gets no GSO either.
    r.reset();
    let mut plain = vec![("request-rx-copy", "1"), ("feature-rx-notify", "1"), ("feature-no-csum-offload", "1"), ("feature-gso-tcpv4", "1")];
    for k in ["feature-sg", "feature-gso-tcpv6", "feature-ipv6-csum-offload"] {
        r.guest_rm(k);
    }
    plain.push(("feature-sg", "0"));
    r.connect(&plain);
    assert_eq!(r.backend.caps(), Some(RxCaps::default()));
}

#[test]
fn multi_slot_frames_reach_the_tap() {
    let mut r = rig();
    r.connect(NETFRONT);
    // One slot, then 5000 bytes over three slots at odd offsets.
    let small = pattern(60, 1);
    let ids1 = r.tx_frame(&small, &[(100, 60)], 0, &[], 0);
    let big = pattern(5000, 2);
    let ids2 = r.tx_frame(&big, &[(96, 2000), (0, 2500), (3000, 500)], 0, &[], 1);
    let rsp = r.tx_run();
    let expect: Vec<(u16, i16)> = ids1.iter().chain(&ids2).map(|&id| (id, OK)).collect();
    assert_eq!(rsp, expect);
    let sent = r.tap.take();
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[0], (small, Offload::default()));
    assert_eq!(sent[1].0, big);
    // No pins left behind.
    for page in 0..4 {
        assert_eq!(r.grant_flags(DATA_REF + page) & GTF_READING, 0);
    }
    let s = r.backend.stats();
    assert_eq!((s.tx_packets, s.tx_bytes, s.tx_errors), (2, 5060, 0));
}

#[test]
fn checksum_offload_and_gso_go_to_the_tap_as_vnet_metadata() {
    let mut r = rig();
    r.connect(NETFRONT);
    // csum_blank: the field holds garbage; the tap gets a partial checksum.
    let mut f = tcp_frame(false, &pattern(1000, 3));
    f[50..52].copy_from_slice(&[0xDE, 0xAD]);
    let ids = r.tx_frame(&f, &[(0, 1054)], NETTXF_CSUM_BLANK | NETTXF_DATA_VALIDATED, &[], 0);
    assert_eq!(r.tx_run(), vec![(ids[0], OK)]);
    let (mut got, off) = r.tap.take().remove(0);
    assert_eq!(off.csum, Some(PartialCsum { start: 34, offset: 16 }));
    assert!(off.data_valid && off.gso.is_none());
    assert!(complete(&mut got, off.csum.unwrap()));
    assert!(l4_checksum_ok(&got));
    assert_eq!(got[..50], f[..50]);
    assert_eq!(got[52..], f[52..]);
    // A 20,000-byte IPv6 TSO frame over five slots, with a GSO extra.
    let f6 = tcp_frame(true, &pattern(20_000 - 74, 4));
    let chunks = [(0, 4096), (0, 4096), (0, 4096), (0, 4096), (0, 3616)];
    let gso = ExtraInfo::gso(1440, GSO_TYPE_TCPV6, false);
    let ids = r.tx_frame(&f6, &chunks, NETTXF_CSUM_BLANK, &[gso], 0);
    let rsp = r.tx_run();
    let mut expect = vec![(ids[0], OK), (0, NULL)];
    expect.extend(ids[1..].iter().map(|&id| (id, OK)));
    assert_eq!(rsp, expect);
    let (mut got, off) = r.tap.take().remove(0);
    assert_eq!(off.gso, Some(Gso { kind: GsoKind::Tcpv6, size: 1440, hdr_len: 74 }));
    assert_eq!(off.csum, Some(PartialCsum { start: 54, offset: 16 }));
    assert!(complete(&mut got, off.csum.unwrap()));
    assert!(l4_checksum_ok(&got));
    // Plain frames keep their checksum untouched and carry no metadata.
    let mut done = tcp_frame(false, b"ready");
    let (_, pc) = xenkvm_xen_pv::netback::setup_partial(&mut done).unwrap();
    complete(&mut done, pc);
    r.tx_frame(&done, &[(10, done.len() as u16)], 0, &[], 0);
    r.tx_run();
    assert_eq!(r.tap.take(), vec![(done, Offload::default())]);
}

#[test]
fn frames_larger_than_a_page_are_split_over_rx_slots() {
    let mut r = rig();
    r.connect(NETFRONT);
    r.post_rx(8);
    let f = pattern(9000, 5);
    assert_eq!(r.backend.receive(&f, &Offload::default()), Delivery::Delivered);
    assert_eq!(r.backend.finish_rx(), 1, "rsp_event asked for an event");
    let rsp = r.rx_responses();
    let heads: Vec<(u16, u16, u16, i16)> = rsp.iter().map(|(x, _)| (x.id, x.offset, x.flags, x.status)).collect();
    assert_eq!(heads, vec![(0, 0, NETRXF_MORE_DATA, 4096), (1, 0, NETRXF_MORE_DATA, 4096), (2, 0, 0, 808)]);
    let joined: Vec<u8> = rsp.iter().flat_map(|(_, d)| d.clone()).collect();
    assert_eq!(joined, f);
    // A TSO frame from the tap: partial checksum, GSO descriptor after the first slot.
    let mut t = tcp_frame(false, &pattern(6000, 6));
    let (_, pc) = xenkvm_xen_pv::netback::setup_partial(&mut t).unwrap();
    let off = Offload { csum: Some(pc), data_valid: false, gso: Some(Gso { kind: GsoKind::Tcpv4, size: 1448, hdr_len: 54 }) };
    assert_eq!(r.backend.receive(&t, &off), Delivery::Delivered);
    r.backend.finish_rx();
    let rsp = r.rx_responses();
    assert_eq!(rsp.len(), 3);
    let (first, _) = rsp[0];
    assert_eq!(first.flags, NETRXF_CSUM_BLANK | NETRXF_DATA_VALIDATED | NETRXF_MORE_DATA | NETRXF_EXTRA_INFO);
    assert_eq!(first.status, 4096);
    let mut raw = [0u8; 8];
    raw[..2].copy_from_slice(&rsp[1].0.id.to_le_bytes());
    raw[2..4].copy_from_slice(&rsp[1].0.offset.to_le_bytes());
    raw[4..6].copy_from_slice(&rsp[1].0.flags.to_le_bytes());
    raw[6..8].copy_from_slice(&rsp[1].0.status.to_le_bytes());
    let extra = ExtraInfo::parse(&raw);
    assert_eq!((extra.ty, extra.gso_size(), extra.gso_type(), extra.more()), (EXTRA_TYPE_GSO, 1448, GSO_TYPE_TCPV4, false));
    assert_eq!((rsp[2].0.flags, rsp[2].0.status), (0, (t.len() - 4096) as i16));
    let joined: Vec<u8> = [&rsp[0].1[..], &rsp[2].1[..]].concat();
    assert_eq!(joined, t, "checksum field left partial for the frontend");
    let s = r.backend.stats();
    assert_eq!((s.rx_packets, s.rx_bytes), (2, 9000 + t.len() as u64));
}

#[test]
fn partial_checksums_are_completed_for_a_frontend_without_offload() {
    let mut r = rig();
    let mut no_csum = features_without("feature-ipv6-csum-offload");
    no_csum.push(("feature-no-csum-offload", "1"));
    r.connect(&no_csum);
    r.post_rx(4);
    for v6 in [false, true] {
        let mut t = tcp_frame(v6, &pattern(333, 7));
        let (_, pc) = xenkvm_xen_pv::netback::setup_partial(&mut t).unwrap();
        assert_eq!(r.backend.receive(&t, &Offload { csum: Some(pc), ..Offload::default() }), Delivery::Delivered);
        r.backend.finish_rx();
        let (rsp, data) = r.rx_responses().remove(0);
        assert_eq!(rsp.flags, NETRXF_DATA_VALIDATED);
        assert!(l4_checksum_ok(&data), "v6 {v6}");
    }
    // GSO is not negotiated: such a frame is dropped, not mangled.
    let t = tcp_frame(false, &pattern(3000, 8));
    let off = Offload { csum: Some(PartialCsum { start: 34, offset: 16 }), data_valid: false, gso: Some(Gso { kind: GsoKind::Tcpv4, size: 1448, hdr_len: 54 }) };
    assert!(matches!(r.backend.receive(&t, &off), Delivery::Dropped(_)));
    // IPv4 partial with IPv6-only offload: an IPv4 frame to a frontend that takes v4 partial stays partial.
    r.reset();
    r.guest_rm("feature-no-csum-offload");
    r.connect(NETFRONT);
    r.post_rx(1);
    let mut t = tcp_frame(false, b"abc");
    let (_, pc) = xenkvm_xen_pv::netback::setup_partial(&mut t).unwrap();
    r.backend.receive(&t, &Offload { csum: Some(pc), ..Offload::default() });
    r.backend.finish_rx();
    assert_eq!(r.rx_responses()[0].0.flags, NETRXF_CSUM_BLANK | NETRXF_DATA_VALIDATED);
}

#[test]
fn rx_waits_for_buffers_and_asks_to_be_told() {
    let mut r = rig();
    let f = pattern(100, 9);
    assert!(matches!(r.backend.receive(&f, &Offload::default()), Delivery::Dropped(_)), "not connected");
    r.connect(NETFRONT);
    assert_eq!(r.backend.receive(&f, &Offload::default()), Delivery::NoRoom);
    assert_eq!(r.rx_req_event(), 1, "req_event armed one past the producer");
    r.post_rx(1);
    let big = pattern(5000, 10);
    assert_eq!(r.backend.receive(&big, &Offload::default()), Delivery::NoRoom, "two slots needed, one posted");
    assert_eq!(r.rx_req_event(), 2);
    assert_eq!(r.backend.receive(&f, &Offload::default()), Delivery::Delivered);
    r.backend.finish_rx();
    assert_eq!(r.rx_responses()[0].1, f);
    // Without feature-sg a frame over a page cannot be delivered at all.
    r.reset();
    r.guest_rm("feature-sg");
    r.connect(&features_without("feature-sg"));
    r.post_rx(4);
    assert!(matches!(r.backend.receive(&big, &Offload::default()), Delivery::Dropped(_)));
    assert_eq!(r.backend.receive(&f, &Offload::default()), Delivery::Delivered);
}

#[test]
fn a_bad_rx_grant_fails_its_slot_only() {
    let mut r = rig();
    r.connect(NETFRONT);
    r.post_rx(2);
    // The frontend revokes the second buffer's grant.
    r.grant(netfront::RXBUF_REF + 1, 0, false);
    {
        let d = r.domain.lock().unwrap();
        let frame = d.grant_table().frame(0).unwrap().clone();
        frame.write(((netfront::RXBUF_REF + 1) % 512) as usize * 8, &0u64.to_le_bytes());
    }
    let f = pattern(5000, 11);
    assert_eq!(r.backend.receive(&f, &Offload::default()), Delivery::Delivered);
    r.backend.finish_rx();
    let rsp = r.rx_responses();
    assert_eq!((rsp[0].0.status, rsp[1].0.status), (4096, ERR));
    assert_eq!(r.backend.stats().rx_errors, 1);
}

#[test]
fn hostile_tx_requests_get_exact_responses() {
    let mut r = rig();
    r.connect(NETFRONT);
    let mut expect = Vec::new();
    // Shorter than an Ethernet header.
    let ids = r.tx_frame(&pattern(13, 0), &[(0, 13)], 0, &[], 0);
    expect.push((ids[0], ERR));
    // A later slot larger than the whole packet: every slot gets the error.
    let g = r.data(1, 0, &pattern(4096, 1));
    let (a, b) = (r.id(), r.id());
    r.tx_slots(&[
        Slot { gref: g, offset: 0, flags: NETTXF_MORE_DATA, id: a, size: 100 },
        Slot { gref: g, offset: 0, flags: 0, id: b, size: 200 },
    ]);
    expect.extend([(a, ERR), (b, ERR)]);
    // 20 slots (19 after the first): dropped, all answered.
    let mut slots = Vec::new();
    for i in 0..20u16 {
        let id = r.id();
        let flags = if i < 19 { NETTXF_MORE_DATA } else { 0 };
        slots.push(Slot { gref: g, offset: 0, flags, id, size: if i == 0 { 20 * 64 } else { 64 } });
        expect.push((id, ERR));
    }
    r.tx_slots(&slots);
    // 19 slots are still fine.
    let f19 = pattern(19 * 64, 2);
    let chunks = [(0u16, 64u16); 19];
    for (id, _) in r.tx_frame(&f19, &chunks, 0, &[], 2).into_iter().zip(0..) {
        expect.push((id, OK));
    }
    // Bogus grants: beyond the table, never granted, then a good packet.
    for gref in [1_000_000, 77] {
        let id = r.id();
        r.tx_slots(&[Slot { gref, offset: 0, flags: 0, id, size: 60 }]);
        expect.push((id, ERR));
    }
    // Checksum offload on a frame that is not TCP/UDP: answered OKAY, not sent.
    let ids = r.tx_frame(&pattern(64, 3), &[(0, 64)], NETTXF_CSUM_BLANK, &[], 0);
    expect.push((ids[0], OK));
    let good = pattern(64, 4);
    let ids = r.tx_frame(&good, &[(0, 64)], 0, &[], 0);
    expect.push((ids[0], OK));
    assert_eq!(r.tx_run(), expect);
    let sent = r.tap.take();
    assert_eq!(sent.len(), 2, "the 19-slot packet and the good one");
    assert_eq!(sent[0].0, f19);
    assert_eq!(sent[1].0, good);
    let s = r.backend.stats();
    assert_eq!((s.tx_errors, s.tx_dropped, s.fatal), (5, 1, 0));
    // A failing tap loses the packet but the guest still gets OKAY.
    r.tap.fail.store(true, std::sync::atomic::Ordering::SeqCst);
    let ids = r.tx_frame(&good, &[(0, 64)], 0, &[], 0);
    assert_eq!(r.tx_run(), vec![(ids[0], OK)]);
    assert!(!r.backend.disabled());
}

/// Each fatal error: no response, the interface disabled (tx and rx), and a
/// reconnection brings it back.
#[test]
fn fatal_errors_disable_the_interface_until_the_frontend_reconnects() {
    type Attack = fn(&mut netfront::Rig);
    let attacks: Vec<(&str, Attack)> = vec![
        ("first slot crosses its page", |r| {
            let g = r.data(0, 0, &[0; 64]);
            r.tx_slots(&[Slot { gref: g, offset: 4000, flags: 0, id: 1, size: 200 }]);
        }),
        ("later slot crosses its page", |r| {
            let g = r.data(0, 0, &[0; 64]);
            r.tx_slots(&[
                Slot { gref: g, offset: 0, flags: NETTXF_MORE_DATA, id: 1, size: 300 },
                Slot { gref: g, offset: 4095, flags: 0, id: 2, size: 2 },
            ]);
        }),
        ("missing extra info", |r| {
            let g = r.data(0, 0, &[0; 64]);
            r.tx_slots(&[Slot { gref: g, offset: 0, flags: NETTXF_EXTRA_INFO, id: 1, size: 64 }]);
        }),
        ("unknown extra type", |r| {
            let g = r.data(0, 0, &[0; 64]);
            let mut x = [0u8; 12];
            x[0] = 9;
            r.tx_raw(&[TxRequest { gref: g, offset: 0, flags: NETTXF_EXTRA_INFO, id: 1, size: 64 }.encode(), x], true);
        }),
        ("zero GSO size", |r| {
            let f = tcp_frame(false, &[1; 100]);
            r.tx_frame(&f, &[(0, f.len() as u16)], NETTXF_CSUM_BLANK, &[ExtraInfo::gso(0, GSO_TYPE_TCPV4, false)], 0);
        }),
        ("bad GSO type", |r| {
            let f = tcp_frame(false, &[1; 100]);
            r.tx_frame(&f, &[(0, f.len() as u16)], NETTXF_CSUM_BLANK, &[ExtraInfo::gso(1448, 7, false)], 0);
        }),
        ("more data past the producer", |r| {
            let g = r.data(0, 0, &[0; 64]);
            r.tx_slots(&[Slot { gref: g, offset: 0, flags: NETTXF_MORE_DATA, id: 1, size: 64 }]);
        }),
        ("22 slots", |r| {
            let g = r.data(0, 0, &[0; 64]);
            let slots: Vec<Slot> =
                (0..22).map(|i| Slot { gref: g, offset: 0, flags: if i < 21 { NETTXF_MORE_DATA } else { 0 }, id: i, size: 64 }).collect();
            r.tx_slots(&slots);
        }),
        ("runaway producer", |r| r.set_tx_prod(257)),
    ];
    for (name, attack) in attacks {
        let mut r = rig();
        r.connect(NETFRONT);
        r.post_rx(4);
        attack(&mut r);
        assert_eq!(r.tx_run(), vec![], "{name}");
        assert!(r.backend.disabled(), "{name}");
        assert_eq!(r.backend.stats().fatal, 1, "{name}");
        assert!(r.tap.take().is_empty(), "{name}");
        assert!(matches!(r.backend.receive(&pattern(60, 0), &Offload::default()), Delivery::Dropped(_)), "{name}");
        // Further requests are ignored too.
        let ids = r.tx_frame(&pattern(60, 1), &[(0, 60)], 0, &[], 1);
        assert_eq!(r.tx_run(), vec![], "{name}");
        assert!(!ids.is_empty());
        r.reset();
        r.connect(NETFRONT);
        assert!(!r.backend.disabled());
        let f = pattern(60, 2);
        let ids = r.tx_frame(&f, &[(0, 60)], 0, &[], 1);
        assert_eq!(r.tx_run(), vec![(ids[0], OK)], "{name}");
        assert_eq!(r.tap.take()[0].0, f);
    }
}

#[test]
fn bad_frontend_parameters_fail_the_connection_cleanly() {
    let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
        (features_without("request-rx-copy"), "rx-flip"),
        (features_without("feature-rx-notify"), "feature-rx-notify"),
        ([NETFRONT, &[("multi-queue-num-queues", "9")]].concat(), "queues"),
        ([NETFRONT, &[("multi-queue-num-queues", "2")]].concat(), "queue-0"),
    ];
    for (features, msg) in cases {
        let mut r = rig();
        r.publish(&features);
        assert_eq!(r.back_state(), XenbusState::Closing, "{msg}");
        let b = r.back.clone();
        let err = r.read(&format!("{b}/error")).unwrap();
        assert!(err.contains(msg), "{err}");
        assert_eq!(r.backend.port(), None);
        assert_eq!(r.grant_flags(10) & GTF_READING, 0, "ring unpinned");
    }
    // A ring reference that is not granted.
    let mut r = rig();
    assert!(r.guest_write("tx-ring-ref", "1999"));
    assert!(r.guest_write("rx-ring-ref", "11"));
    r.grant(11, netfront::RX_GFN, false);
    assert!(r.guest_write("event-channel", "3"));
    for (k, v) in NETFRONT {
        r.guest_write(k, v);
    }
    r.set_front_state(XenbusState::Connected);
    r.xenbus();
    assert_eq!(r.back_state(), XenbusState::Closing);
    assert_eq!(r.grant_flags(11) & GTF_READING, 0, "all or nothing");
    let _ = (MAC, FakeTap::default());
}

#[test]
fn frontend_reset_while_connected_gets_a_fresh_connection() {
    let mut r = rig();
    r.connect(NETFRONT);
    r.set_front_state(XenbusState::Initialising);
    assert!(r.xenbus());
    assert_eq!(r.back_state(), XenbusState::InitWait);
    assert_eq!(r.backend.port(), None);
    assert_eq!(r.grant_flags(10) & GTF_READING, 0);
    r.connect(NETFRONT);
    let f = pattern(70, 3);
    let ids = r.tx_frame(&f, &[(0, 70)], 0, &[], 0);
    assert_eq!(r.tx_run(), vec![(ids[0], OK)]);
}

/// Second queue's ring pages and grant refs (queue 0 has the rig's).
const Q1_TX_GFN: u64 = 0x110;
const Q1_RX_GFN: u64 = 0x112;

/// Publishes two queues the way netfront does (`queue-N/` nodes).
fn publish_two_queues(r: &mut netfront::Rig) -> (u32, u32) {
    for gfn in [netfront::TX_GFN, netfront::RX_GFN, Q1_TX_GFN, Q1_RX_GFN] {
        r.ram.write_slice(&[0u8; 4096], GuestAddress(gfn << 12)).unwrap();
    }
    for (gref, gfn) in [(10, netfront::TX_GFN), (11, netfront::RX_GFN), (12, Q1_TX_GFN), (13, Q1_RX_GFN)] {
        r.grant(gref, gfn, false);
    }
    // rsp_event = 1 on queue 1's tx ring: notify at the first response.
    r.ram.write_obj(1u32, GuestAddress((Q1_TX_GFN << 12) + 12)).unwrap();
    let ports = {
        let mut d = r.domain.lock().unwrap();
        (d.alloc_unbound_for_backend().unwrap(), d.alloc_unbound_for_backend().unwrap())
    };
    assert!(r.guest_write("multi-queue-num-queues", "2"));
    for (q, tx, rx, port) in [(0, 10, 11, ports.0), (1, 12, 13, ports.1)] {
        assert!(r.guest_write(&format!("queue-{q}/tx-ring-ref"), &tx.to_string()));
        assert!(r.guest_write(&format!("queue-{q}/rx-ring-ref"), &rx.to_string()));
        assert!(r.guest_write(&format!("queue-{q}/event-channel"), &port.to_string()));
    }
    for (k, v) in NETFRONT {
        assert!(r.guest_write(k, v));
    }
    r.set_front_state(XenbusState::Connected);
    r.xenbus();
    ports
}

#[test]
fn two_queues_connect_and_each_tx_ring_is_served() {
    let mut r = rig();
    let b = r.back.clone();
    assert_eq!(r.read(&format!("{b}/multi-queue-max-queues")).as_deref(), Some("4"));
    publish_two_queues(&mut r);
    assert_eq!(r.back_state(), XenbusState::Connected);
    assert_eq!(r.backend.ports().len(), 2);
    // A frame on queue 1's tx ring reaches the device, its response goes
    // back on queue 1, and queue 1's channel is the one to fire.
    let f = pattern(90, 7);
    let gref = r.data(0, 0, &f);
    let req = TxRequest { gref, offset: 0, flags: 0, id: 5, size: 90 }.encode();
    r.ram.write_slice(&req, GuestAddress((Q1_TX_GFN << 12) + 64)).unwrap();
    r.ram.write_obj(1u32, GuestAddress(Q1_TX_GFN << 12)).unwrap();
    let progress = r.backend.process_tx(64);
    assert_eq!(progress.handled, 1);
    assert_eq!(progress.notify_queues, 0b10);
    assert_eq!(r.tap.take()[0].0, f);
    let rsp_prod: u32 = r.ram.read_obj(GuestAddress((Q1_TX_GFN << 12) + 8)).unwrap();
    assert_eq!(rsp_prod, 1);
    let mut rsp = [0u8; 4];
    r.ram.read_slice(&mut rsp, GuestAddress((Q1_TX_GFN << 12) + 64)).unwrap();
    assert_eq!(decode_tx_response(&rsp), (5, OK));
    // Closing unbinds both channels and unpins all four ring pages.
    r.reset();
    assert!(r.backend.ports().is_empty());
    for gref in 10..14 {
        assert_eq!(r.grant_flags(gref) & GTF_READING, 0, "ring {gref} unpinned");
    }
}

#[test]
fn too_many_queues_or_a_missing_queue_node_fail_cleanly() {
    let mut r = rig();
    assert!(r.guest_write("multi-queue-num-queues", "5"));
    for (k, v) in NETFRONT {
        r.guest_write(k, v);
    }
    r.set_front_state(XenbusState::Connected);
    r.xenbus();
    assert_eq!(r.back_state(), XenbusState::Closing);
    let b = r.back.clone();
    assert!(r.read(&format!("{b}/error")).unwrap().contains("queues"));
    // Two queues announced, queue 1's event channel missing: nothing stays pinned.
    let mut r2 = rig();
    assert!(r2.guest_write("multi-queue-num-queues", "2"));
    for q in 0..2 {
        r2.guest_write(&format!("queue-{q}/tx-ring-ref"), "10");
        r2.guest_write(&format!("queue-{q}/rx-ring-ref"), "11");
    }
    r2.guest_write("queue-0/event-channel", "3");
    for (k, v) in NETFRONT {
        r2.guest_write(k, v);
    }
    r2.set_front_state(XenbusState::Connected);
    r2.xenbus();
    assert_eq!(r2.back_state(), XenbusState::Closing);
    assert!(r2.backend.ports().is_empty());
}
