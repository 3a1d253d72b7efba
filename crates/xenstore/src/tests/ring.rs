//! The ring transport with a guest simulated on a [`MemRing`].

use super::perms::with_guest;
use super::*;
use crate::ring::*;
use crate::wire::{Decoder, Header};

/// The guest side: writes requests into `req`, reads `rsp`.
fn guest_send(mem: &MemRing, bytes: &[u8]) {
    let cons = mem.load_u32(OFF_REQ_CONS);
    let mut prod = mem.load_u32(OFF_REQ_PROD);
    assert!(prod.wrapping_sub(cons) as usize + bytes.len() <= 1024, "request ring full");
    for b in bytes {
        mem.write(OFF_REQ + (prod % 1024) as usize, &[*b]);
        prod = prod.wrapping_add(1);
    }
    mem.store_u32(OFF_REQ_PROD, prod);
}

fn guest_recv(mem: &MemRing) -> Vec<u8> {
    let mut cons = mem.load_u32(OFF_RSP_CONS);
    let prod = mem.load_u32(OFF_RSP_PROD);
    let mut out = Vec::new();
    while cons != prod {
        let mut b = [0u8];
        mem.read(OFF_RSP + (cons % 1024) as usize, &mut b);
        out.push(b[0]);
        cons = cons.wrapping_add(1);
    }
    mem.store_u32(OFF_RSP_CONS, cons);
    out
}

fn decode(bytes: &[u8]) -> Vec<Message> {
    let mut d = Decoder::new();
    let mut out = Vec::new();
    d.feed_all(bytes, &mut out).unwrap();
    assert!(!d.is_partial());
    out
}

fn req(ty: MsgType, id: u32, strings: &[&str]) -> Vec<u8> {
    let parts: Vec<&[u8]> = strings.iter().map(|s| s.as_bytes()).collect();
    Message::with_strings(ty, id, 0, &parts).to_bytes()
}

fn setup() -> (Xenstore, ConnId, ConnId, MemRing, XenstoreRing) {
    let (xs, d0, g) = with_guest(1);
    let mem = MemRing::default();
    let ring = XenstoreRing::new(&xs, g, &mem);
    (xs, d0, g, mem, ring)
}

#[test]
fn request_and_reply_and_features() {
    let (mut xs, _d0, _g, mem, mut ring) = setup();
    assert_eq!(mem.load_u32(OFF_SERVER_FEATURES), 15);
    guest_send(&mem, &req(MsgType::Read, 5, &["name"]));
    let k = ring.kick(&mut xs, &mem);
    assert!(k.notify);
    assert_eq!((k.processed, k.error), (1, None));
    let replies = decode(&guest_recv(&mem));
    assert_eq!(replies, vec![Message::new(MsgType::Read, 5, 0, b"guest".to_vec())]);
    // Nothing to do: no notification.
    assert!(!ring.kick(&mut xs, &mem).notify);
}

#[test]
fn byte_by_byte_and_several_in_flight() {
    let (mut xs, _d0, _g, mem, mut ring) = setup();
    let stream: Vec<u8> = (0..5).flat_map(|i| req(MsgType::Read, i, &["domid"])).collect();
    for b in &stream[..stream.len() / 2] {
        guest_send(&mem, &[*b]);
        ring.kick(&mut xs, &mem);
    }
    guest_send(&mem, &stream[stream.len() / 2..]);
    let k = ring.kick(&mut xs, &mem);
    assert!(k.processed >= 2);
    let replies = decode(&guest_recv(&mem));
    assert_eq!(replies.iter().map(|m| m.req_id).collect::<Vec<_>>(), vec![0, 1, 2, 3, 4]);
    assert!(replies.iter().all(|m| m.payload == b"1"));
}

#[test]
fn replies_larger_than_the_ring_and_index_wraparound() {
    let (mut xs, d0, _g, mem, mut ring) = setup();
    for off in [OFF_REQ_CONS, OFF_REQ_PROD, OFF_RSP_CONS, OFF_RSP_PROD] {
        mem.store_u32(off, u32::MAX - 100);
    }
    let big = "v".repeat(3000);
    write(&mut xs, d0, 0, "/local/domain/1/data/big", &big).unwrap();
    guest_send(&mem, &req(MsgType::Read, 1, &["data/big"]));
    let mut got = Vec::new();
    for _ in 0..10 {
        ring.kick(&mut xs, &mem);
        got.extend(guest_recv(&mem));
    }
    let replies = decode(&got);
    assert_eq!(replies.len(), 1);
    assert_eq!(replies[0].payload, big.as_bytes());
    assert!(mem.load_u32(OFF_RSP_PROD) < 10_000, "indices wrapped");
}

#[test]
fn outstanding_quota_pauses_reading() {
    let (mut xs, d0, _g, mem, mut ring) = setup();
    write(&mut xs, d0, 0, "/local/domain/1/data/v", &"x".repeat(500)).unwrap();
    let one = req(MsgType::Read, 0, &["data/v"]);
    let n = 1000 / one.len();
    for i in 0..n {
        guest_send(&mem, &req(MsgType::Read, i as u32, &["data/v"]));
    }
    ring.kick(&mut xs, &mem);
    let consumed = mem.load_u32(OFF_REQ_CONS);
    assert!((consumed as usize) < n * one.len(), "reading stopped at the quota");
    let mut got = Vec::new();
    for _ in 0..200 {
        got.extend(guest_recv(&mem));
        ring.kick(&mut xs, &mem);
    }
    let replies = decode(&got);
    assert_eq!(replies.len(), n);
    assert!(replies.iter().enumerate().all(|(i, m)| m.req_id == i as u32 && m.payload.len() == 500));
}

#[test]
fn watch_events_from_other_connections() {
    let (mut xs, d0, g, mem, mut ring) = setup();
    guest_send(&mem, &req(MsgType::Watch, 1, &["control/shutdown", "tok"]));
    ring.kick(&mut xs, &mem);
    assert_eq!(decode(&guest_recv(&mem)).len(), 2);
    write(&mut xs, d0, 0, "/local/domain/1/control/shutdown", "poweroff").unwrap();
    assert!(xs.take_woken().contains(&g));
    assert!(ring.kick(&mut xs, &mem).notify);
    let ev = decode(&guest_recv(&mem));
    assert_eq!(events(&ev), vec![("control/shutdown".into(), "tok".into())]);
}

#[test]
fn impossible_request_index_stops_the_connection_until_reconnect() {
    let (mut xs, _d0, g, mem, mut ring) = setup();
    guest_send(&mem, &req(MsgType::Watch, 1, &["data", "t"]));
    ring.kick(&mut xs, &mem);
    guest_recv(&mem);
    mem.store_u32(OFF_REQ_PROD, mem.load_u32(OFF_REQ_CONS).wrapping_add(1025));
    let k = ring.kick(&mut xs, &mem);
    assert_eq!(k.error, Some(XENSTORE_ERROR_RINGIDX));
    assert_eq!(mem.load_u32(OFF_ERROR), XENSTORE_ERROR_RINGIDX);
    assert!(xs.connection(g).unwrap().watches().is_empty());
    // Stopped: further kicks do nothing.
    let k = ring.kick(&mut xs, &mem);
    assert_eq!((k.consumed, k.produced), (0, 0));
    // The guest asks to reconnect.
    mem.store_u32(OFF_CONNECTION, XENSTORE_RECONNECT);
    assert!(ring.kick(&mut xs, &mem).notify);
    assert_eq!(mem.load_u32(OFF_CONNECTION), XENSTORE_CONNECTED);
    assert_eq!(mem.load_u32(OFF_ERROR), XENSTORE_ERROR_NONE);
    assert_eq!(mem.load_u32(OFF_REQ_PROD), 0);
    guest_send(&mem, &req(MsgType::Read, 2, &["domid"]));
    ring.kick(&mut xs, &mem);
    assert_eq!(decode(&guest_recv(&mem))[0].payload, b"1");
}

#[test]
fn oversized_header_is_a_protocol_error() {
    let (mut xs, _d0, _g, mem, mut ring) = setup();
    guest_send(&mem, &Header { ty: 2, req_id: 1, tx_id: 0, len: 5000 }.to_bytes());
    assert_eq!(ring.kick(&mut xs, &mem).error, Some(XENSTORE_ERROR_PROTO));
    assert_eq!(mem.load_u32(OFF_ERROR), XENSTORE_ERROR_PROTO);
    assert_eq!(ring.error(), Some(XENSTORE_ERROR_PROTO));
}

#[test]
fn impossible_response_index() {
    let (mut xs, _d0, _g, mem, mut ring) = setup();
    mem.store_u32(OFF_RSP_CONS, 5000);
    guest_send(&mem, &req(MsgType::Read, 1, &["domid"]));
    assert_eq!(ring.kick(&mut xs, &mem).error, Some(XENSTORE_ERROR_RINGIDX));
}

#[test]
fn reconnect_drops_partial_packets_and_state() {
    let (mut xs, _d0, g, mem, mut ring) = setup();
    let m = req(MsgType::Watch, 1, &["data", "t"]);
    guest_send(&mem, &m);
    ring.kick(&mut xs, &mem);
    guest_recv(&mem);
    let half = req(MsgType::Read, 2, &["domid"]);
    guest_send(&mem, &half[..10]);
    ring.kick(&mut xs, &mem);
    mem.store_u32(OFF_CONNECTION, XENSTORE_RECONNECT);
    ring.kick(&mut xs, &mem);
    assert!(xs.connection(g).unwrap().watches().is_empty());
    guest_send(&mem, &req(MsgType::Read, 3, &["domid"]));
    ring.kick(&mut xs, &mem);
    let r = decode(&guest_recv(&mem));
    assert_eq!((r.len(), r[0].req_id), (1, 3));
}

#[test]
fn reintroduction_resets_the_ring_and_release_closes_it() {
    let (mut xs, d0, _g, mem, mut ring) = setup();
    guest_send(&mem, &req(MsgType::Read, 1, &["domid"])[..7]);
    ring.kick(&mut xs, &mem);
    mem.store_u32(OFF_CONNECTION, XENSTORE_RECONNECT);
    mem.store_u32(OFF_SERVER_FEATURES, 0);
    ok(&mut xs, d0, MsgType::Introduce, 0, &["1", "1", "3"]);
    ring.kick(&mut xs, &mem);
    assert_eq!(mem.load_u32(OFF_REQ_CONS), 0);
    assert_eq!(mem.load_u32(OFF_CONNECTION), XENSTORE_CONNECTED);
    ok(&mut xs, d0, MsgType::Release, 0, &["1"]);
    assert_eq!(ring.kick(&mut xs, &mem).error, Some(XENSTORE_ERROR_COMM));
}

#[test]
fn random_ring_garbage_never_panics() {
    let mut rng = super::fuzz::Rng::new(0x5eed);
    for round in 0..200 {
        let (mut xs, _d0, _g, mem, mut ring) = setup();
        for _ in 0..20 {
            match rng.below(4) {
                0 => {
                    let n = rng.below(64) as usize;
                    let bytes: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
                    mem.write(rng.below(4096) as usize, &bytes);
                }
                1 => mem.store_u32(
                    [OFF_REQ_PROD, OFF_REQ_CONS, OFF_RSP_PROD, OFF_RSP_CONS, OFF_CONNECTION][rng.below(5) as usize],
                    rng.next() as u32,
                ),
                2 => {
                    let cons = mem.load_u32(OFF_REQ_CONS);
                    mem.store_u32(OFF_REQ_PROD, cons.wrapping_add(rng.below(1100) as u32));
                }
                _ => {}
            }
            let k = ring.kick(&mut xs, &mem);
            assert!(k.consumed <= KICK_BUDGET + 4096, "round {round}");
            xs.check().unwrap();
        }
    }
}
