//! `netif_ring`: the net backend's transmit ring against a hostile frontend.
//!
//! The input picks the frontend's receive features, then a sequence of
//! steps: structured packets (a first slot with any flags and size, extra
//! info slots of every type with GSO fields, further data slots that split
//! the packet or not, slots crossing their page, too many slots), raw
//! entries, frame bytes in the data pages (raw or an Ethernet/IPv4/IPv6
//! header template with fuzzed fields, for the offload paths), hostile ring
//! indices, a reconnect, and backend passes with a budget.
//!
//! Oracles, after every pass:
//! * while the interface is enabled, every consumed slot got exactly one
//!   response (`req_cons == rsp_prod_pvt`); once disabled (a fatal protocol
//!   error), never more responses than slots consumed;
//! * a pass produces no more responses than the ring has slots;
//! * every response has a known status; a slot the harness wrote as extra
//!   info is answered `NETIF_RSP_NULL`, a data slot with its own id and
//!   `OKAY`/`ERROR`/`DROPPED`;
//! * only the two ring pages stay pinned; none after a disconnect;
//! * every frame handed to the tap is at most 64 KiB (a `u16` total) and at
//!   least an Ethernet header, with a partial checksum and GSO header length
//!   inside the frame.

use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Mutex};

use xenkvm_xenstore::{Quotas, Xenstore};

use super::{le_u16, pick, put, Guest, GuestRing, Input, DATA_GFN, DATA_PAGES, DOMID, GRANT_ENTRIES, RING_GFN, RING_REF};
use crate::netback::{FrontendParams, NetBackend, NetDevice, Offload, QueueRefs, RxCaps, VifOptions};
use crate::netif::*;
use crate::ring::ring_size;

/// Steps per input.
pub const MAX_STEPS: usize = 256;
/// Largest frame a packet can describe (the first slot's `u16` size).
pub const MAX_FRAME: usize = 0xffff;

/// What one run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    pub steps: usize,
    pub slots: usize,
    pub ok: usize,
    pub errors: usize,
    pub nulls: usize,
    pub frames: usize,
    pub gso_frames: usize,
    pub fatal: usize,
}

#[derive(Default)]
struct TapLog {
    violations: Vec<String>,
    frames: usize,
    gso: usize,
}

struct FakeTap {
    log: Arc<Mutex<TapLog>>,
    fail: bool,
}

impl NetDevice for FakeTap {
    fn send(&mut self, frame: &[u8], off: &Offload) -> io::Result<()> {
        let mut log = self.log.lock().map_err(|_| io::Error::other("log"))?;
        let len = frame.len();
        if !(14..=MAX_FRAME).contains(&len) {
            log.violations.push(format!("frame of {len} bytes"));
        }
        if let Some(c) = off.csum {
            if usize::from(c.start) + usize::from(c.offset) + 2 > len {
                log.violations.push(format!("partial checksum {c:?} outside a frame of {len} bytes"));
            }
        }
        if let Some(g) = off.gso {
            log.gso += 1;
            if g.size == 0 || usize::from(g.hdr_len) > len {
                log.violations.push(format!("GSO {g:?} on a frame of {len} bytes"));
            }
        }
        log.frames += 1;
        if self.fail && len.is_multiple_of(5) {
            return Err(io::Error::other("injected send failure"));
        }
        Ok(())
    }
    fn set_offloads(&mut self, _: &RxCaps) -> io::Result<()> {
        Ok(())
    }
}

/// What the harness wrote in a slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    Data(u16),
    Extra,
}

struct Front {
    ring: GuestRing,
    req_prod: u32,
    shadow: HashMap<u32, Slot>,
    hostile: bool,
    scribbled: bool,
    /// Every slot produced since the connection frames as the harness
    /// meant it (the per-slot oracles apply).
    framed: bool,
    caps: RxCaps,
}

fn gref(inp: &mut Input) -> u32 {
    let sel = inp.byte();
    match sel % 8 {
        0..=5 => 24 + u32::from(inp.u16()) % (GRANT_ENTRIES - 24),
        6 => RING_REF + u32::from(sel / 8 % 4),
        _ => inp.u32(),
    }
}

/// A packet's slots: a first request, extra info, further data slots; and
/// whether the backend must see them as exactly this packet (false when
/// the last slot or extra says more follows, or a multicast request is
/// followed by data slots, which then frame as packets of their own).
fn packet(inp: &mut Input, next_id: &mut u16) -> (Vec<([u8; TX_ENTRY_SIZE], Slot)>, bool) {
    let mut out = Vec::new();
    let mut framed = true;
    let fsel = inp.byte();
    let mut flags = u16::from(fsel & 0x0f);
    let nextra = if flags & NETTXF_EXTRA_INFO != 0 { usize::from(fsel >> 4 & 1) + 1 } else { 0 };
    let nmore = if flags & NETTXF_MORE_DATA != 0 {
        let m = inp.byte();
        if m % 8 == 7 {
            usize::from(m / 8)
        } else {
            usize::from(m % 4) + 1
        }
    } else {
        0
    };
    // A first slot saying more data follows, with none following, takes the
    // next packet's slots as its own.
    framed &= flags & NETTXF_MORE_DATA == 0 || nmore > 0;
    let ssel = inp.byte();
    let per_slot: u16 = match ssel % 8 {
        0..=2 => u16::from(inp.byte()) + 1,
        3 | 4 => 1514,
        5 | 6 => 4096,
        _ => inp.u16(),
    };
    let total = if ssel & 0x80 != 0 { inp.u16() } else { per_slot.saturating_mul(nmore as u16 + 1) };
    let offset = match inp.byte() % 8 {
        0 => inp.u16() % 4096,
        1 => (4096 - per_slot.min(4096)) / 2,
        _ => 0,
    };
    *next_id = next_id.wrapping_add(1);
    if ssel & 0x40 != 0 {
        flags |= u16::from(inp.byte() & 0xf0) << 8;
    }
    let first = TxRequest { gref: gref(inp), offset, flags, id: *next_id, size: total };
    out.push((first.encode(), Slot::Data(first.id)));
    for i in 0..nextra {
        let sel = inp.byte();
        // Mostly valid types; now and then a fatal one.
        let ty = if sel % 32 == 31 {
            pick(&[EXTRA_TYPE_NONE, EXTRA_TYPE_MAX, 0xff], sel / 32)
        } else {
            pick(&[EXTRA_TYPE_GSO, EXTRA_TYPE_GSO, EXTRA_TYPE_GSO, EXTRA_TYPE_MCAST_ADD, EXTRA_TYPE_MCAST_DEL, EXTRA_TYPE_HASH], sel)
        };
        let more = i + 1 < nextra || sel % 64 == 63;
        framed &= i + 1 < nextra || !more;
        framed &= nmore == 0 || (ty != EXTRA_TYPE_MCAST_ADD && ty != EXTRA_TYPE_MCAST_DEL);
        let gso_size = if sel % 64 == 62 { 0 } else { u16::from(inp.byte()) * 8 + 536 };
        let gso_type = pick(&[GSO_TYPE_TCPV4, GSO_TYPE_TCPV6, GSO_TYPE_TCPV4, GSO_TYPE_TCPV6, GSO_TYPE_TCPV4, GSO_TYPE_TCPV6, GSO_TYPE_TCPV4, 9], inp.byte());
        let mut e = ExtraInfo::gso(gso_size, gso_type, more);
        e.ty = ty;
        let mut b = [0u8; TX_ENTRY_SIZE];
        put(&mut b, 0, &e.encode());
        out.push((b, Slot::Extra));
    }
    for i in 0..nmore {
        *next_id = next_id.wrapping_add(1);
        let last = i + 1 == nmore;
        let sel = inp.byte();
        let mut flags = if last && sel % 16 != 15 { 0 } else { NETTXF_MORE_DATA };
        framed &= !last || flags == 0;
        if sel & 0x40 != 0 {
            flags |= NETTXF_EXTRA_INFO;
        }
        let size = if sel % 16 == 14 { inp.u16() } else { per_slot.min(4096) };
        let offset = if sel % 16 == 13 { inp.u16() % 4096 } else { 0 };
        let s = TxRequest { gref: gref(inp), offset, flags, id: *next_id, size };
        out.push((s.encode(), Slot::Data(s.id)));
    }
    (out, framed)
}

/// Frame headers in a data page: Ethernet (maybe VLAN), IPv4 or IPv6, TCP
/// or UDP, with fuzzed lengths and fields.
fn headers(inp: &mut Input) -> Vec<u8> {
    let sel = inp.byte();
    let mut f = vec![0xff; 12];
    if sel & 1 != 0 {
        f.extend([0x81, 0x00, 0, 1]);
    }
    let proto = pick(&[6u8, 17, 6, 1, 0], inp.byte());
    if sel & 2 == 0 {
        f.extend([0x08, 0x00]);
        let ihl = if sel & 4 != 0 { inp.byte() & 0x0f } else { 5 };
        f.extend([0x40 | ihl, 0]);
        f.extend(inp.u16().to_be_bytes()); // total length
        f.extend([0, 0, 0x40, 0, 64, proto, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2]);
    } else {
        f.extend([0x86, 0xdd, 0x60, 0, 0, 0]);
        f.extend(inp.u16().to_be_bytes()); // payload length
        let next = if sel & 4 != 0 { 0 } else { proto }; // hop-by-hop first
        f.extend([next, 64]);
        f.extend([0u8; 32]);
        if next == 0 {
            f.extend([proto, inp.byte() % 4, 0, 0, 0, 0, 0, 0]);
        }
    }
    // Transport header: ports, sequence, data offset (TCP) or length (UDP).
    f.extend([0x30, 0x39, 0, 80, 0, 0, 0, 1, 0, 0, 0, 0]);
    f.extend([inp.byte(), 0x18, 0xff, 0xff, 0, 0, 0, 0]);
    f
}

/// Runs one fuzz input; `Err` names the first oracle violation.
pub fn run(data: &[u8]) -> Result<Stats, String> {
    let mut inp = Input::new(data);
    let mut st = Stats::default();
    let cfg = inp.byte();
    let caps = RxCaps { sg: cfg & 1 != 0, csum_v4: cfg & 2 != 0, csum_v6: cfg & 4 != 0, gso_v4: cfg & 8 != 0, gso_v6: cfg & 16 != 0 };
    let g = Guest::new()?;
    let mut xs = Xenstore::new(Quotas::default());
    xs.create_domain(DOMID);
    let log = Arc::new(Mutex::new(TapLog::default()));
    let tap = FakeTap { log: log.clone(), fail: cfg & 0x80 != 0 };
    let opts = VifOptions { devid: 0, mac: [0x52, 0x54, 0, 0x12, 0x34, 0x56], ifname: "fuzz0".into() };
    let mut backend = NetBackend::create(&mut xs, DOMID, opts, Box::new(tap), crate::grants::DomainGrants::new(g.domain.clone()))
        .map_err(|e| format!("create: {e}"))?;
    let mut f = Front {
        ring: GuestRing { gfns: vec![RING_GFN], entry_size: TX_ENTRY_SIZE, size: ring_size(1, TX_ENTRY_SIZE) },
        req_prod: 0,
        shadow: HashMap::new(),
        hostile: false,
        scribbled: false,
        framed: true,
        caps,
    };
    let start = if cfg & 0x40 != 0 { inp.u32() } else { 0 };
    connect(&g, &mut backend, &mut f, start)?;
    let mut next_id = 0u16;
    while !inp.done() && st.steps < MAX_STEPS {
        st.steps += 1;
        match inp.byte() % 12 {
            0..=4 => {
                let (slots, framed) = packet(&mut inp, &mut next_id);
                f.framed &= framed;
                queue(&g, &mut backend, &mut f, &slots, &log, &mut st)?;
            }
            5 => {
                let n = usize::from(inp.byte() % 8) + 1;
                let raw: Vec<([u8; TX_ENTRY_SIZE], Slot)> = (0..n)
                    .map(|_| {
                        let mut b = [0u8; TX_ENTRY_SIZE];
                        put(&mut b, 0, inp.bytes(TX_ENTRY_SIZE));
                        (b, Slot::Data(le_u16(&b, 8)))
                    })
                    .collect();
                // Raw slots: only statuses are checked from now on.
                f.framed = false;
                queue(&g, &mut backend, &mut f, &raw, &log, &mut st)?;
            }
            6 => {
                let gfn = DATA_GFN + u64::from(inp.byte()) % DATA_PAGES;
                let at = u64::from(inp.u16() % 4096);
                let h = headers(&mut inp);
                g.write((gfn << 12) + at, &h);
            }
            7 => {
                let gfn = DATA_GFN + u64::from(inp.byte()) % DATA_PAGES;
                let at = u64::from(inp.u16() % 4096);
                let n = usize::from(inp.byte());
                let b = inp.bytes(n).to_vec();
                g.write((gfn << 12) + at, &b);
            }
            8 if inp.byte().is_multiple_of(4) => {
                // Hostile indices (rarely: they stop the ring for good).
                let sel = inp.byte();
                let v = if sel & 0x80 != 0 { inp.u32() } else { f.req_prod.wrapping_add(u32::from(inp.byte())) };
                match sel % 4 {
                    0 | 1 => {
                        f.req_prod = v;
                        f.hostile = true;
                        f.framed = false;
                        g.write_u32(f.ring.header(), v);
                    }
                    2 => {
                        f.scribbled = true;
                        g.write_u32(f.ring.header() + 8, v);
                    }
                    _ => g.write_u32(f.ring.header() + 4 + 8 * u64::from(sel / 4 % 2), v),
                }
            }
            9 => {
                backend.disconnect();
                let in_use = g.grants_in_use()?;
                if in_use != 0 {
                    return Err(format!("{in_use} grants in use after disconnect"));
                }
                let start = g.read_u32(f.ring.header() + 8);
                connect(&g, &mut backend, &mut f, start)?;
            }
            _ => {
                let budget = usize::from(inp.byte() % 64) + 1;
                pass(&g, &mut backend, &mut f, budget, &log, &mut st)?;
            }
        }
    }
    pass(&g, &mut backend, &mut f, usize::MAX, &log, &mut st)?;
    backend.disconnect();
    let in_use = g.grants_in_use()?;
    if in_use != 0 {
        return Err(format!("{in_use} grants in use after disconnect"));
    }
    Ok(st)
}

fn connect(g: &Guest, backend: &mut NetBackend, f: &mut Front, start: u32) -> Result<(), String> {
    let header = f.ring.header();
    g.write_u32(header, start);
    g.write_u32(header + 8, start);
    g.write_u32(header + 12, start.wrapping_add(1));
    f.req_prod = start;
    f.shadow.clear();
    f.hostile = false;
    f.scribbled = false;
    f.framed = true;
    let port = g.unbound_port()?;
    let queue = QueueRefs { tx_ring_ref: RING_REF, rx_ring_ref: RING_REF + 1, event_channel: port };
    let p = FrontendParams { queues: vec![queue], caps: f.caps };
    backend.connect(&p).map_err(|e| format!("connect: {e}"))
}

/// Produces a packet's slots at once, as an honest frontend: only when they
/// all fit (it lets the backend run first when they do not).
fn queue(
    g: &Guest,
    backend: &mut NetBackend,
    f: &mut Front,
    slots: &[([u8; TX_ENTRY_SIZE], Slot)],
    log: &Mutex<TapLog>,
    st: &mut Stats,
) -> Result<(), String> {
    let room = |backend: &NetBackend, f: &Front| {
        backend.tx_ring_indices().map_or(0, |(_, _, rsp)| f.ring.size.saturating_sub(f.req_prod.wrapping_sub(rsp)))
    };
    if (room(backend, f) as usize) < slots.len() {
        pass(g, backend, f, usize::MAX, log, st)?;
    }
    if (room(backend, f) as usize) < slots.len() {
        return Ok(());
    }
    for (b, kind) in slots {
        f.ring.write_entry(g, f.req_prod, b);
        f.shadow.insert(f.req_prod, *kind);
        f.req_prod = f.req_prod.wrapping_add(1);
    }
    g.write_u32(f.ring.header(), f.req_prod);
    st.slots += slots.len();
    Ok(())
}

fn pass(g: &Guest, backend: &mut NetBackend, f: &mut Front, budget: usize, log: &Mutex<TapLog>, st: &mut Stats) -> Result<(), String> {
    let (size, cons_before, before) = backend.tx_ring_indices().ok_or("not connected")?;
    let was_disabled = backend.disabled();
    backend.process_tx(budget);
    let (_, cons, after) = backend.tx_ring_indices().ok_or("not connected")?;
    if backend.disabled() {
        if !was_disabled {
            st.fatal += 1;
        }
        if cons.wrapping_sub(after) > size {
            return Err(format!("disabled with {} responses for {} slots consumed", after.wrapping_sub(before), cons.wrapping_sub(cons_before)));
        }
    } else if cons != after {
        return Err(format!("{} slots consumed, {} answered", cons.wrapping_sub(before), after.wrapping_sub(before)));
    }
    let new = after.wrapping_sub(before);
    if new > size {
        return Err(format!("{new} responses in one pass, ring of {size}"));
    }
    if !f.scribbled && g.read_u32(f.ring.header() + 8) != after {
        return Err(format!("rsp_prod {} not published as {after}", g.read_u32(f.ring.header() + 8)));
    }
    for i in 0..new {
        let idx = before.wrapping_add(i);
        let (id, status) = decode_tx_response(&f.ring.read_entry(g, idx, 4));
        match status {
            RSP_OKAY => st.ok += 1,
            RSP_ERROR | RSP_DROPPED => st.errors += 1,
            RSP_NULL => st.nulls += 1,
            other => return Err(format!("response {idx}: status {other}")),
        }
        let slot = f.shadow.remove(&idx).filter(|_| f.framed);
        match slot {
            Some(Slot::Extra) if status != RSP_NULL => return Err(format!("extra slot {idx} answered {status} (id {id})")),
            Some(Slot::Data(want)) if status == RSP_NULL || id != want => {
                return Err(format!("data slot {idx} (id {want}) answered ({id}, {status})"));
            }
            _ => {}
        }
    }
    let in_use = g.grants_in_use()?;
    if in_use > 2 {
        return Err(format!("{in_use} grants in use, 2 ring pages"));
    }
    let log = log.lock().map_err(|_| "tap log".to_string())?;
    if let Some(v) = log.violations.first() {
        return Err(format!("tap: {v}"));
    }
    st.frames = log.frames;
    st.gso_frames = log.gso;
    Ok(())
}
