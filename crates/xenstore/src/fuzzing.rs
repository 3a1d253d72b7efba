//! The fuzz harness shared by the libFuzzer target (`fuzz/`, `xenstore_wire`)
//! and the deterministic replay test (`tests/fuzz_replay.rs`).
//!
//! [`run`] turns arbitrary bytes into a session of three clients: a dom0
//! socket client (bytes through a [`Decoder`] into the engine, as
//! [`crate::server`] does) and two guests, domains 1 and 2, each speaking
//! through its real ring transport ([`XenstoreRing`] on a [`MemRing`]). The
//! input is a sequence of steps; the first byte of a step picks the client and
//! the action: a structured request (type, transaction, strings from a
//! dictionary or raw bytes, odd chunking), raw bytes (garbage or oversized
//! headers), reading the replies, a reconnect, or a hostile ring index.
//!
//! After every step [`run`] checks the oracles and returns the first
//! violation as `Err`:
//! * [`Xenstore::check`]: the tree's structure, per-domain node counts equal
//!   to a recount of the tree, outbox counters in step;
//! * every message a client receives has a valid header: `len` equal to the
//!   payload length and at most [`XENSTORE_PAYLOAD_MAX`], a reply type equal
//!   to the request's (or `ERROR` naming a known errno, or `WATCH_EVENT` with
//!   two strings); the socket client gets exactly one reply per request, with
//!   its `req_id`; a guest's reply stream always decodes;
//! * queued watch events stay within the `watch-events` quota (the largest
//!   value the domain has had) and the privileged cap;
//! * a guest request that grew its domain's node count leaves it within the
//!   `nodes` quota;
//! * at the end, a snapshot round-trips byte for byte.

use crate::conn::{ConnId, PRIV_EVENT_QUEUE_MAX};
use crate::default_tree::{create_domain_tree, DomainTree};
use crate::engine::Xenstore;
use crate::quota::Quotas;
use crate::ring::{MemRing, RingMemory, XenstoreRing, OFF_CONNECTION, OFF_REQ, OFF_REQ_CONS, OFF_REQ_PROD};
use crate::ring::{OFF_RSP, OFF_RSP_CONS, OFF_RSP_PROD, RING_SIZE, XENSTORE_RECONNECT};
use crate::wire::{payload, Decoder, Message, MsgType, HEADER_LEN, XENSTORE_PAYLOAD_MAX};

/// Steps per input, so that one execution stays short.
pub const MAX_STEPS: usize = 512;

/// What one run did (for statistics in the replay test).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    pub steps: usize,
    pub requests: usize,
    pub ok_replies: usize,
    pub errors: usize,
    pub events: usize,
    pub protocol_errors: usize,
}

const PATHS: &[&[u8]] = &[
    b"/",
    b"/a",
    b"/a/b",
    b"/a/b/c",
    b"/local",
    b"/local/domain",
    b"/local/domain/1",
    b"/local/domain/1/data/x",
    b"/local/domain/2/data",
    b"/local/domain/2/data/y",
    b"data",
    b"data/a",
    b"data/a/b",
    b"control/shutdown",
    b"@releaseDomain",
    b"@introduceDomain",
    b"@releaseDomain/1",
    b"/tool/xenstored",
    b"bad//path",
    b"/trailing/",
    b"",
    b"/a b",
    b"/\xff\xfe",
    b"x/y/z",
    b"/vm",
];
const WORDS: &[&[u8]] = &[
    b"", b"T", b"F", b"0", b"1", b"2", b"3", b"-1", b"n0", b"r1", b"b2", b"w1", b"n1", b"n2", b"r0", b"b0",
    b"r32757", b"x1", b"4096", b"99999", b"65535", b"print", b"check", b"quota", b"help", b"nodes", b"watches",
    b"outstanding", b"transactions", b"watch-events", b"node-size", b"node-permissions", b"path-max",
    b"transaction-nodes", b"tok", b"\xc3\x28",
];

/// A cursor over the fuzz input; reads past the end give zeros.
struct Input<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Input<'_> {
    fn done(&self) -> bool {
        self.pos >= self.data.len()
    }
    fn byte(&mut self) -> u8 {
        let b = self.data.get(self.pos).copied().unwrap_or(0);
        self.pos += 1;
        b
    }
    fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.byte(), self.byte(), self.byte(), self.byte()])
    }
    fn bytes(&mut self, n: usize) -> &[u8] {
        let start = self.pos.min(self.data.len());
        let end = self.pos.saturating_add(n).min(self.data.len());
        self.pos = self.pos.saturating_add(n);
        self.data.get(start..end).unwrap_or(&[])
    }
    fn pick(&mut self, v: &[&'static [u8]]) -> &'static [u8] {
        v.get(usize::from(self.byte()) % v.len().max(1)).copied().unwrap_or(b"")
    }
}

/// One guest: its ring page, the store side of the ring and the guest's own
/// decoder of the reply stream.
struct Guest {
    domid: u32,
    conn: ConnId,
    mem: MemRing,
    ring: XenstoreRing,
    rx: Decoder,
    /// Largest `watch-events` quota seen (`None`: unlimited at some point).
    events_cap: Option<u32>,
    /// The guest scribbled on the ring indices: its reply stream is garbage
    /// until it reconnects.
    hostile: bool,
}

impl Guest {
    fn attach(xs: &mut Xenstore, domid: u32) -> Result<Guest, String> {
        let conn = xs.introduce_domain(domid, 1, domid).map_err(|e| format!("introduce {domid}: {e:?}"))?;
        let mem = MemRing::default();
        let ring = XenstoreRing::new(xs, conn, &mem);
        Ok(Guest { domid, conn, mem, ring, rx: Decoder::new(), events_cap: Some(0), hostile: false })
    }

    /// Writes `bytes` into the request ring as a guest would, kicking the
    /// store whenever the ring is full; gives up when no progress is made.
    fn send(&mut self, xs: &mut Xenstore, bytes: &[u8], chunk: usize, st: &mut Stats) -> Result<(), String> {
        let mut rest = bytes;
        let mut stalls = 0;
        while !rest.is_empty() && stalls < 4 {
            let cons = self.mem.load_u32(OFF_REQ_CONS);
            let prod = self.mem.load_u32(OFF_REQ_PROD);
            let room = RING_SIZE.saturating_sub(prod.wrapping_sub(cons)) as usize;
            let start = (prod % RING_SIZE) as usize;
            let n = room.min(RING_SIZE as usize - start).min(rest.len()).min(chunk.max(1));
            if n > 0 {
                self.mem.write(OFF_REQ + start, rest.get(..n).unwrap_or(&[]));
                self.mem.store_u32(OFF_REQ_PROD, prod.wrapping_add(n as u32));
                rest = rest.get(n..).unwrap_or(&[]);
            }
            let out = self.ring.kick(xs, &self.mem);
            st.requests += out.processed;
            if out.error.is_some() {
                // The store stopped the ring; the guest asks for a reconnect.
                st.protocol_errors += 1;
                self.reconnect(xs);
                return Ok(());
            }
            if n == 0 && out.consumed == 0 {
                // The store waits for the guest to read its replies.
                self.receive(xs, st)?;
                stalls += 1;
            }
        }
        Ok(())
    }

    /// Reads the reply ring as the guest would and checks every message.
    fn receive(&mut self, xs: &mut Xenstore, st: &mut Stats) -> Result<(), String> {
        for _ in 0..64 {
            let cons = self.mem.load_u32(OFF_RSP_CONS);
            let prod = self.mem.load_u32(OFF_RSP_PROD);
            let avail = prod.wrapping_sub(cons);
            if avail > RING_SIZE {
                if self.hostile {
                    return Ok(());
                }
                return Err(format!("dom{}: reply ring index out of range ({cons}, {prod})", self.domid));
            }
            let start = (cons % RING_SIZE) as usize;
            let n = (avail as usize).min(RING_SIZE as usize - start);
            if n > 0 {
                let mut buf = vec![0u8; n];
                self.mem.read(OFF_RSP + start, &mut buf);
                self.mem.store_u32(OFF_RSP_CONS, cons.wrapping_add(n as u32));
                let mut msgs = Vec::new();
                match self.rx.feed_all(&buf, &mut msgs) {
                    Ok(()) if !self.hostile => {
                        for m in &msgs {
                            check_message(m, None, st)?;
                        }
                    }
                    Ok(()) => {}
                    Err(_) if self.hostile => self.rx.reset(),
                    Err(e) => return Err(format!("dom{}: reply stream: {e}", self.domid)),
                }
            }
            let out = self.ring.kick(xs, &self.mem);
            st.requests += out.processed;
            if n == 0 && out.produced == 0 {
                break;
            }
        }
        Ok(())
    }

    /// The guest asks for a reconnect (`connection = 1`).
    fn reconnect(&mut self, xs: &mut Xenstore) {
        self.mem.store_u32(OFF_CONNECTION, XENSTORE_RECONNECT);
        self.ring.kick(xs, &self.mem);
        self.rx.reset();
        self.hostile = false;
    }
}

/// Checks one message a client received; `req` is the request for a reply.
fn check_message(m: &Message, req: Option<&Message>, st: &mut Stats) -> Result<(), String> {
    let h = m.header();
    if h.len as usize != m.payload.len() || m.payload.len() > XENSTORE_PAYLOAD_MAX {
        return Err(format!("bad header {h:?} for a payload of {}", m.payload.len()));
    }
    let bytes = m.to_bytes();
    if bytes.len() != HEADER_LEN + m.payload.len() {
        return Err("encoded length".into());
    }
    match m.kind() {
        Some(MsgType::WatchEvent) => {
            st.events += 1;
            if payload::count_nuls(&m.payload) < 2 || m.payload.last() != Some(&0) || m.req_id != 0 {
                return Err(format!("malformed watch event {m:?}"));
            }
        }
        Some(MsgType::Error) => {
            st.errors += 1;
            if m.as_error().is_none() {
                return Err(format!("error reply without a known errno: {m:?}"));
            }
        }
        _ => {
            st.ok_replies += 1;
            if let Some(r) = req {
                if m.ty != r.ty {
                    return Err(format!("reply type {} to a request of type {}", m.ty, r.ty));
                }
            } else if m.kind().is_none() {
                return Err(format!("reply of undefined type {}", m.ty));
            }
        }
    }
    if let Some(r) = req {
        if m.req_id != r.req_id || m.tx_id != r.tx_id {
            return Err(format!("reply ids ({}, {}) to request ({}, {})", m.req_id, m.tx_id, r.req_id, r.tx_id));
        }
    }
    Ok(())
}

/// Builds a request from the input: type, transaction, strings.
fn build_message(inp: &mut Input, txs: &[u32]) -> Message {
    const COMMON: [u32; 24] = [2, 11, 12, 13, 1, 22, 3, 14, 4, 5, 6, 7, 21, 10, 17, 8, 9, 18, 19, 0, 23, 24, 25, 26];
    let sel = inp.byte();
    let ty = match sel % 16 {
        0 => u32::from(inp.byte()),
        1 => inp.u32(),
        _ => COMMON.get(usize::from(sel) % COMMON.len()).copied().unwrap_or(11),
    };
    let tsel = inp.byte();
    let tx_id = match tsel % 4 {
        0 => txs.get(usize::from(tsel / 4) % txs.len().max(1)).copied().unwrap_or(0),
        1 => u32::from(tsel / 4),
        _ => 0,
    };
    let mut p = Vec::new();
    let n = inp.byte() % 5;
    for i in 0..n {
        let k = inp.byte();
        match k % 8 {
            0 => p.extend_from_slice(inp.bytes(usize::from(k / 8))),
            1 => {
                // A long path, for path-max and node-size quotas.
                p.extend_from_slice(b"/local/domain/1/");
                let rep = usize::from(inp.byte()) * 16;
                p.extend(std::iter::repeat_n(b'x', rep));
            }
            2..=4 if i == 0 => p.extend_from_slice(inp.pick(PATHS)),
            2 | 3 => p.extend_from_slice(inp.pick(PATHS)),
            _ => p.extend_from_slice(inp.pick(WORDS)),
        }
        if k % 16 != 15 {
            p.push(0);
        }
    }
    Message { ty, req_id: inp.u32(), tx_id, payload: p }
}

/// Runs one fuzz input; `Err` names the first oracle violation.
pub fn run(data: &[u8]) -> Result<Stats, String> {
    let mut inp = Input { data, pos: 0 };
    let mut st = Stats::default();
    let mut xs = Xenstore::default();
    if inp.byte() & 1 == 1 {
        // Tight quotas, so that short inputs reach them.
        let q = Quotas {
            nodes: 24,
            watches: 3,
            outstanding: 3,
            transactions: 2,
            transaction_nodes: 8,
            node_permissions: 2,
            path_max: 64,
            node_size: 96,
            watch_events: 4,
        };
        xs = Xenstore::new(q);
    }
    let mut d0 = xs.connect_privileged();
    let mut d0_rx = Decoder::new();
    let mut guests = Vec::new();
    for domid in [1u32, 2] {
        create_domain_tree(&mut xs, &DomainTree::new(domid, "guest", 1024)).map_err(|e| format!("tree: {e:?}"))?;
        guests.push(Guest::attach(&mut xs, domid)?);
    }
    while !inp.done() && st.steps < MAX_STEPS {
        st.steps += 1;
        let op = inp.byte();
        let who = usize::from(op % 3);
        let action = op / 3 % 8;
        if who == 0 {
            match action {
                0..=3 => {
                    let txs = xs.connection(d0).map(|c| c.transaction_ids()).unwrap_or_default();
                    let m = build_message(&mut inp, &txs);
                    let chunk = usize::from(inp.byte()) + 1;
                    d0 = socket_send(&mut xs, d0, &mut d0_rx, &m.to_bytes(), chunk, Some(&m), &mut st)?;
                }
                4 => {
                    let n = usize::from(inp.byte());
                    let raw = inp.bytes(n).to_vec();
                    d0 = socket_send(&mut xs, d0, &mut d0_rx, &raw, n.max(1), None, &mut st)?;
                }
                5 => {
                    // A header with an arbitrary length.
                    let mut raw = (MsgType::Write as u32).to_le_bytes().to_vec();
                    raw.extend_from_slice(&inp.u32().to_le_bytes());
                    raw.extend_from_slice(&0u32.to_le_bytes());
                    raw.extend_from_slice(&(inp.u32() % 8192).to_le_bytes());
                    d0 = socket_send(&mut xs, d0, &mut d0_rx, &raw, 16, None, &mut st)?;
                }
                _ => {
                    for m in xs.drain(d0) {
                        check_message(&m, None, &mut st)?;
                    }
                }
            }
        } else if let Some(g) = guests.get_mut(who - 1) {
            if xs.domain_conn(g.domid) != Some(g.conn) || xs.connection(g.conn).is_none() {
                // Released: the guest comes back on a fresh ring.
                *g = Guest::attach(&mut xs, g.domid)?;
            }
            match action {
                0..=3 => {
                    let txs = xs.connection(g.conn).map(|c| c.transaction_ids()).unwrap_or_default();
                    let m = build_message(&mut inp, &txs);
                    let chunk = usize::from(inp.byte()) + 1;
                    let before = xs.store().owned_by(g.domid);
                    g.send(&mut xs, &m.to_bytes(), chunk, &mut st)?;
                    let after = xs.store().owned_by(g.domid);
                    let limit = xs.domain(g.domid).map_or(0, |d| d.quotas.nodes);
                    if after > before && limit != 0 && after > limit {
                        return Err(format!("dom{}: owns {after} nodes, quota {limit}", g.domid));
                    }
                }
                4 => {
                    let n = usize::from(inp.byte());
                    let raw = inp.bytes(n).to_vec();
                    g.send(&mut xs, &raw, n.max(1), &mut st)?;
                }
                5 => g.reconnect(&mut xs),
                6 => {
                    // A hostile producer index.
                    let off = if inp.byte() & 1 == 0 { OFF_REQ_PROD } else { OFF_RSP_CONS };
                    g.mem.store_u32(off, inp.u32());
                    g.hostile = true;
                    let out = g.ring.kick(&mut xs, &g.mem);
                    st.requests += out.processed;
                }
                _ => g.receive(&mut xs, &mut st)?,
            }
        }
        check_step(&xs, &mut guests)?;
    }
    for g in &mut guests {
        g.receive(&mut xs, &mut st)?;
    }
    check_step(&xs, &mut guests)?;
    let snap = xs.to_bytes();
    let back = Xenstore::from_bytes(&snap).map_err(|e| format!("snapshot does not load: {e:?}"))?;
    back.check()?;
    if back.to_bytes() != snap {
        return Err("snapshot does not round-trip".into());
    }
    Ok(st)
}

/// Feeds bytes from the socket client in chunks, as the server's read loop
/// does; an oversized header ends the connection and the client reconnects.
fn socket_send(
    xs: &mut Xenstore,
    conn: ConnId,
    rx: &mut Decoder,
    bytes: &[u8],
    chunk: usize,
    req: Option<&Message>,
    st: &mut Stats,
) -> Result<ConnId, String> {
    // Leftovers of earlier raw bytes shift the frame: only an aligned request
    // must decode to itself.
    let req = req.filter(|_| !rx.is_partial());
    for piece in bytes.chunks(chunk.max(1)) {
        let mut msgs = Vec::new();
        if rx.feed_all(piece, &mut msgs).is_err() {
            st.protocol_errors += 1;
            xs.disconnect(conn);
            rx.reset();
            return Ok(xs.connect_privileged());
        }
        for m in &msgs {
            st.requests += 1;
            let out = xs.handle(conn, m);
            let replies: Vec<&Message> = out.iter().filter(|o| o.kind() != Some(MsgType::WatchEvent)).collect();
            if replies.len() != 1 || replies.first().is_none_or(|r| r.req_id != m.req_id) {
                return Err(format!("{} replies to {m:?}", replies.len()));
            }
            for o in &out {
                let is_reply = o.kind() != Some(MsgType::WatchEvent);
                check_message(o, if is_reply { Some(m) } else { None }, st)?;
            }
            if let (Some(r), true) = (req, msgs.len() == 1) {
                if r != m {
                    return Err(format!("decoded {m:?}, sent {r:?}"));
                }
            }
        }
    }
    Ok(conn)
}

/// The per-step oracles on the engine.
fn check_step(xs: &Xenstore, guests: &mut [Guest]) -> Result<(), String> {
    xs.check()?;
    for c in xs.connections() {
        let events = c.queued_events();
        if c.outbox_len() != c.outstanding() as usize + events as usize {
            return Err(format!("{:?}: outbox {} != replies + events", c.id(), c.outbox_len()));
        }
        if events > PRIV_EVENT_QUEUE_MAX {
            return Err(format!("{:?}: {events} queued events", c.id()));
        }
    }
    for g in guests {
        let quota = xs.domain(g.domid).map_or(0, |d| d.quotas.watch_events);
        g.events_cap = match (g.events_cap, quota) {
            (_, 0) | (None, _) => None,
            (Some(cap), q) => Some(cap.max(q)),
        };
        let queued = xs.connection(g.conn).map_or(0, |c| c.queued_events());
        if let Some(cap) = g.events_cap {
            if queued > cap {
                return Err(format!("dom{}: {queued} queued events, quota {cap}", g.domid));
            }
        }
    }
    Ok(())
}
