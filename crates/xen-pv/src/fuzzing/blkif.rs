//! `blkif_ring`: the block backend's ring processing against a hostile
//! frontend.
//!
//! The input picks the connection (ring of 1 to 16 pages, x86_64 or x86_32
//! layout, persistent grants, a read-only disk, a disk whose I/O and flushes
//! fail, its size), then a sequence of steps: structured requests (any op,
//! segment counts inside and outside the limits, grants that are valid,
//! read-only, ungranted, outside RAM or beyond the table, sectors near the
//! disk end or overflowing), raw entries, indirect segment pages, data page
//! bytes, hostile ring indices, a reconnect, and backend passes with a
//! budget.
//!
//! Oracles, after every pass:
//! * every consumed request got exactly one response (`req_cons ==
//!   rsp_prod_pvt`), published in `rsp_prod` (unless the guest scribbled it);
//! * a pass produces no more responses than the ring has slots nor than
//!   requests were produced;
//! * every response has a known status (`OKAY`, `ERROR`, `EOPNOTSUPP`), the
//!   request's id and op (the inner op of an indirect request), and
//!   `EOPNOTSUPP` answers an unknown op;
//! * an honest ring is never declared broken;
//! * persistent grants pinned are at most [`MAX_PERSISTENT_GRANTS`] (none
//!   unless negotiated), and grants in use at most the ring pages plus them;
//!   after a disconnect no grant is in use;
//! * every disk access is sector aligned and within the disk size.

use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Mutex};

use xenkvm_xenstore::{Quotas, Xenstore};

use super::{le_u64, pick, put, Guest, GuestRing, Input, DOMID, GRANT_ENTRIES, RING_GFN, RING_REF};
use crate::blkback::{BlockBackend, BlockDevice, DiskOptions, FrontendParams, MAX_PERSISTENT_GRANTS};
use crate::blkif::{
    decode_response, Abi, OP_DISCARD, OP_FLUSH_DISKCACHE, OP_INDIRECT, OP_READ, OP_WRITE, OP_WRITE_BARRIER, RSP_EOPNOTSUPP,
    RSP_ERROR, RSP_OKAY,
};
use crate::ring::ring_size;

/// Steps per input.
pub const MAX_STEPS: usize = 256;

/// What one run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    pub steps: usize,
    pub requests: usize,
    pub ok: usize,
    pub errors: usize,
    pub eopnotsupp: usize,
    pub broken: usize,
    pub persistent_max: usize,
    pub disk_reads: usize,
    pub disk_writes: usize,
}

#[derive(Default)]
struct DiskLog {
    violations: Vec<String>,
    reads: usize,
    writes: usize,
}

/// A disk of `size` bytes that keeps nothing and checks every access.
struct FakeDisk {
    size: u64,
    fail: bool,
    discard: bool,
    log: Arc<Mutex<DiskLog>>,
}

impl FakeDisk {
    fn access(&self, what: &str, offset: u64, len: u64) -> io::Result<()> {
        let mut log = self.log.lock().map_err(|_| io::Error::other("log"))?;
        if !offset.is_multiple_of(512) || !len.is_multiple_of(512) || offset.checked_add(len).is_none_or(|end| end > self.size) {
            log.violations.push(format!("{what} of {len} bytes at {offset} on a disk of {}", self.size));
        }
        if what == "read" {
            log.reads += 1;
        } else if what == "write" {
            log.writes += 1;
        }
        if self.fail && (offset / 512).is_multiple_of(3) {
            return Err(io::Error::other("injected I/O error"));
        }
        Ok(())
    }
}

impl BlockDevice for FakeDisk {
    fn size(&self) -> u64 {
        self.size
    }
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.access("read", offset, buf.len() as u64)?;
        buf.fill(0xa5);
        Ok(())
    }
    fn write_at(&mut self, offset: u64, buf: &[u8]) -> io::Result<()> {
        self.access("write", offset, buf.len() as u64)
    }
    fn flush(&mut self) -> io::Result<()> {
        if self.fail {
            return Err(io::Error::other("injected flush failure"));
        }
        Ok(())
    }
    fn discard(&mut self, offset: u64, len: u64) -> io::Result<()> {
        self.access("discard", offset, len)
    }
    fn can_discard(&self) -> bool {
        self.discard
    }
}

const DISK_SIZES: [u64; 6] = [1 << 20, 4096, 512, 1000, 0, 8 << 30];

/// Offsets of `id`, `sector`, the segments and the indirect grefs.
fn layout(abi: Abi) -> (usize, usize, usize, usize) {
    match abi {
        Abi::X86_64 => (8, 16, 24, 28),
        Abi::X86_32 => (4, 12, 20, 24),
    }
}

/// A grant reference: mostly data grants, sometimes anything (beyond the
/// table), and for a hostile guest sometimes a ring page.
fn gref(inp: &mut Input, hostile: bool) -> u32 {
    let sel = inp.byte();
    let g = match sel % 8 {
        0..=5 => 24 + u32::from(inp.u16()) % (GRANT_ENTRIES - 24),
        6 if hostile => RING_REF + u32::from(sel / 8 % 16),
        _ => inp.u32(),
    };
    if !hostile && (RING_REF..RING_REF + 16).contains(&g) {
        g + 16
    } else {
        g
    }
}

/// A segment descriptor (`gref`, `first_sect`, `last_sect`, padding).
fn segment(inp: &mut Input, hostile: bool) -> [u8; 8] {
    let g = gref(inp, hostile);
    let sel = inp.byte();
    let (first, last) = if sel % 8 == 7 {
        (inp.byte(), inp.byte())
    } else {
        let first = sel % 8;
        (first, first + inp.byte() % (8 - first))
    };
    let mut s = [0u8; 8];
    put(&mut s, 0, &g.to_le_bytes());
    put(&mut s, 4, &[first, last]);
    s
}

/// A structured request entry.
fn request(inp: &mut Input, abi: Abi, id: u64, sectors: u64, hostile: bool) -> Vec<u8> {
    let (id_at, sector_at, segs_at, indirect_at) = layout(abi);
    let mut e = vec![0u8; abi.entry_size()];
    let op = pick(
        &[OP_READ, OP_WRITE, OP_READ, OP_WRITE, OP_FLUSH_DISKCACHE, OP_WRITE_BARRIER, OP_DISCARD, OP_INDIRECT, OP_INDIRECT, 4, 0xff],
        inp.byte(),
    );
    put(&mut e, 0, &[op]);
    put(&mut e, id_at, &id.to_le_bytes());
    let sector = match inp.byte() % 4 {
        0 => u64::from(inp.byte()),
        1 => sectors.wrapping_sub(u64::from(inp.byte() % 16)),
        2 => inp.u64(),
        _ => 0,
    };
    put(&mut e, sector_at, &sector.to_le_bytes());
    match op {
        OP_INDIRECT => {
            let inner = pick(&[OP_READ, OP_WRITE, OP_WRITE, OP_FLUSH_DISKCACHE], inp.byte());
            let sel = inp.byte();
            let count: u16 = match sel % 4 {
                0..=2 => u16::from(sel / 4) + 1,
                _ => inp.u16(),
            };
            put(&mut e, 1, &[inner]);
            put(&mut e, 2, &count.to_le_bytes());
            for i in 0..usize::from(count).div_ceil(512).min(8) {
                put(&mut e, indirect_at + 4 * i, &gref(inp, hostile).to_le_bytes());
            }
        }
        OP_DISCARD => {
            let n = if inp.byte().is_multiple_of(4) { inp.u64() } else { u64::from(inp.byte()) };
            put(&mut e, 1, &[inp.byte() & 1]);
            put(&mut e, segs_at, &n.to_le_bytes());
        }
        _ => {
            let sel = inp.byte();
            let n = match sel % 16 {
                0 => 0,
                1 => sel,
                2..=5 => sel % 11 + 1,
                _ => sel % 3 + 1,
            };
            put(&mut e, 1, &[n]);
            for i in 0..usize::from(n).min(11) {
                put(&mut e, segs_at + 8 * i, &segment(inp, hostile));
            }
        }
    }
    e
}

/// The `(id, op)` a response to `entry` must carry, and whether it is an
/// indirect request (whose bad inner op is an error, not EOPNOTSUPP).
fn expected(abi: Abi, entry: &[u8]) -> (u64, u8, bool) {
    let (id_at, ..) = layout(abi);
    let op = entry.first().copied().unwrap_or(0);
    let indirect = op == OP_INDIRECT;
    let op = if indirect { entry.get(1).copied().unwrap_or(0) } else { op };
    (le_u64(entry, id_at), op, indirect)
}

struct Front {
    abi: Abi,
    ring: GuestRing,
    req_prod: u32,
    /// What each produced, unanswered request must be answered with.
    shadow: HashMap<u32, (u64, u8, bool)>,
    /// A hostile guest: raw entries and page bytes, ring pages granted as
    /// data buffers (disk reads land on responses and indices), impossible
    /// indices. Only the oracles that hold whatever the guest does apply.
    hostile: bool,
    persistent: bool,
    pages: u32,
}

/// Runs one fuzz input; `Err` names the first oracle violation.
pub fn run(data: &[u8]) -> Result<Stats, String> {
    let mut inp = Input::new(data);
    let mut st = Stats::default();
    let cfg = inp.byte();
    let order = u32::from(cfg % 5);
    let abi = if cfg & 0x08 != 0 { Abi::X86_32 } else { Abi::X86_64 };
    let persistent = cfg & 0x10 != 0;
    let readonly = cfg & 0x20 != 0;
    let fail = cfg & 0x40 != 0;
    let discard = cfg & 0x80 == 0;
    let sel = inp.byte();
    let size = pick(&DISK_SIZES, sel);
    let hostile = sel & 0x80 != 0;
    let sectors = size / 512;
    let g = Guest::new()?;
    let mut xs = Xenstore::new(Quotas::default());
    xs.create_domain(DOMID);
    let log = Arc::new(Mutex::new(DiskLog::default()));
    let disk = FakeDisk { size, fail, discard, log: log.clone() };
    let opts = DiskOptions {
        vdev: "xvda".into(),
        devid: 51712,
        params: "/fuzz/disk.img".into(),
        readonly,
        cdrom: false,
        persistent: true,
    };
    let mut backend = BlockBackend::create(&mut xs, DOMID, opts, Box::new(disk), crate::grants::DomainGrants::new(g.domain.clone()))
        .map_err(|e| format!("create: {e}"))?;
    let pages = 1u32 << order;
    let mut f = Front {
        abi,
        ring: GuestRing {
            gfns: (0..u64::from(pages)).map(|i| RING_GFN + 2 * i).collect(),
            entry_size: abi.entry_size(),
            size: ring_size(pages as usize, abi.entry_size()),
        },
        req_prod: 0,
        shadow: HashMap::new(),
        hostile,
        persistent,
        pages,
    };
    let start = if inp.byte() & 1 == 1 { inp.u32() } else { 0 };
    connect(&g, &mut backend, &mut f, start)?;
    let mut next_id = 0x1000u64;
    while !inp.done() && st.steps < MAX_STEPS {
        st.steps += 1;
        match inp.byte() % 12 {
            0..=4 => {
                next_id += 1;
                let e = request(&mut inp, abi, next_id, sectors, hostile);
                queue(&g, &mut backend, &mut f, &e, &log, &mut st)?;
            }
            5 if hostile => {
                let n = usize::from(inp.byte());
                let e = inp.bytes(n).to_vec();
                queue(&g, &mut backend, &mut f, &e, &log, &mut st)?;
            }
            6 => {
                // An indirect page (any data frame) full of segment descriptors.
                let gfn = super::DATA_GFN + u64::from(inp.byte()) % super::DATA_PAGES;
                let n = usize::from(inp.byte());
                let at = u64::from(inp.byte() % 8) * 512;
                let mut segs = Vec::with_capacity(n * 8);
                for _ in 0..n {
                    segs.extend(segment(&mut inp, hostile));
                }
                g.write((gfn << 12) + at, &segs);
            }
            7 if hostile => {
                let gfn = super::DATA_GFN + u64::from(inp.byte()) % super::DATA_PAGES;
                let at = u64::from(inp.u16() % 4096);
                let n = usize::from(inp.byte());
                let b = inp.bytes(n).to_vec();
                g.write((gfn << 12) + at, &b);
            }
            8 if hostile => {
                // Hostile indices (rarely: they stop the ring for good).
                let sel = inp.byte();
                let v = if sel & 0x80 != 0 { inp.u32() } else { f.req_prod.wrapping_add(u32::from(inp.byte())) };
                match sel % 4 {
                    0 | 1 => {
                        f.req_prod = v;
                        g.write_u32(f.ring.header(), v);
                    }
                    2 => g.write_u32(f.ring.header() + 8, v),
                    _ => g.write_u32(f.ring.header() + 4 + 8 * u64::from(sel / 4 % 2), v),
                }
            }
            9 => {
                backend.disconnect();
                check_released(&g, &log)?;
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
    check_released(&g, &log)?;
    Ok(st)
}

fn connect(g: &Guest, backend: &mut BlockBackend, f: &mut Front, start: u32) -> Result<(), String> {
    let header = f.ring.header();
    g.write_u32(header, start);
    g.write_u32(header + 8, start);
    g.write_u32(header + 12, start.wrapping_add(1));
    f.req_prod = start;
    f.shadow.clear();
    let port = g.unbound_port()?;
    let p = FrontendParams::single((0..f.pages).map(|i| RING_REF + i).collect(), port, f.abi, f.persistent);
    backend.connect(&p).map_err(|e| format!("connect: {e}"))
}

/// Produces one request as an honest frontend: only into a free slot (it
/// lets the backend run first when the ring is full).
fn queue(g: &Guest, backend: &mut BlockBackend, f: &mut Front, entry: &[u8], log: &Mutex<DiskLog>, st: &mut Stats) -> Result<(), String> {
    let (_, _, rsp) = backend.ring_indices().ok_or("not connected")?;
    if f.req_prod.wrapping_sub(rsp) >= f.ring.size {
        pass(g, backend, f, usize::MAX, log, st)?;
    }
    let (_, _, rsp) = backend.ring_indices().ok_or("not connected")?;
    if f.req_prod.wrapping_sub(rsp) >= f.ring.size {
        return Ok(());
    }
    let mut e = entry.to_vec();
    e.resize(f.ring.entry_size, 0);
    f.ring.write_entry(g, f.req_prod, &e);
    f.shadow.insert(f.req_prod, expected(f.abi, &e));
    f.req_prod = f.req_prod.wrapping_add(1);
    g.write_u32(f.ring.header(), f.req_prod);
    st.requests += 1;
    Ok(())
}

/// One backend pass and the oracles.
fn pass(g: &Guest, backend: &mut BlockBackend, f: &mut Front, budget: usize, log: &Mutex<DiskLog>, st: &mut Stats) -> Result<(), String> {
    let (size, _, before) = backend.ring_indices().ok_or("not connected")?;
    let produced = g.read_u32(f.ring.header()).wrapping_sub(before);
    backend.process(budget);
    let (_, cons, after) = backend.ring_indices().ok_or("not connected")?;
    if cons != after {
        return Err(format!("{} requests consumed, {} answered", cons.wrapping_sub(before), after.wrapping_sub(before)));
    }
    let new = after.wrapping_sub(before);
    if new > size || (new > produced && !f.hostile) {
        return Err(format!("{new} responses in one pass: ring of {size}, {produced} requests produced"));
    }
    if f.hostile {
        f.shadow.clear();
    } else if g.read_u32(f.ring.header() + 8) != after {
        return Err(format!("rsp_prod {} not published as {after}", g.read_u32(f.ring.header() + 8)));
    }
    for i in (0..new).filter(|_| !f.hostile) {
        let idx = before.wrapping_add(i);
        let (id, op, status) = decode_response(&f.ring.read_entry(g, idx, 16));
        match status {
            RSP_OKAY => st.ok += 1,
            RSP_ERROR => st.errors += 1,
            RSP_EOPNOTSUPP => st.eopnotsupp += 1,
            other => return Err(format!("response {idx}: status {other}")),
        }
        if let Some((want_id, want_op, indirect)) = f.shadow.remove(&idx) {
            if (id, op) != (want_id, want_op) {
                return Err(format!("response {idx}: ({id:#x}, {op}) to request ({want_id:#x}, {want_op})"));
            }
            let known = [OP_READ, OP_WRITE, OP_WRITE_BARRIER, OP_FLUSH_DISKCACHE, OP_DISCARD].contains(&op);
            if !known && !indirect && status != RSP_EOPNOTSUPP {
                return Err(format!("response {idx}: status {status} to unknown op {op}"));
            }
        }
    }
    if backend.ring_broken() {
        st.broken += 1;
        if !f.hostile {
            return Err("an honest ring was declared broken".into());
        }
    }
    let persistent = backend.persistent_grants();
    st.persistent_max = st.persistent_max.max(persistent);
    if persistent > MAX_PERSISTENT_GRANTS || (persistent > 0 && !f.persistent) {
        return Err(format!("{persistent} persistent grants (cap {MAX_PERSISTENT_GRANTS}, negotiated {})", f.persistent));
    }
    let in_use = g.grants_in_use()?;
    if in_use > f.pages as usize + persistent {
        return Err(format!("{in_use} grants in use: {} ring pages, {persistent} persistent", f.pages));
    }
    let log = log.lock().map_err(|_| "disk log".to_string())?;
    if let Some(v) = log.violations.first() {
        return Err(format!("disk access out of range: {v}"));
    }
    st.disk_reads = log.reads;
    st.disk_writes = log.writes;
    Ok(())
}

fn check_released(g: &Guest, log: &Mutex<DiskLog>) -> Result<(), String> {
    let in_use = g.grants_in_use()?;
    if in_use != 0 {
        return Err(format!("{in_use} grants still in use after disconnect"));
    }
    let log = log.lock().map_err(|_| "disk log".to_string())?;
    match log.violations.first() {
        Some(v) => Err(format!("disk access out of range: {v}")),
        None => Ok(()),
    }
}
