//! `pvtest=blk`: a hostile PV block frontend, by polling (no interrupts).
//!
//! It connects to the VMM's block backend as blkfront does (grant table frame
//! mapped with XENMEM_add_to_physmap, an unbound event channel to dom0, the
//! ring and channel written to the store over the xenstore ring), then sends
//! requests a well-behaved frontend never would: a grant that does not
//! exist, sectors past the end, too many segments, segments whose sectors are
//! reversed or leave the page, an unknown operation. Each must come back with
//! an error status while a good read in the same batch still succeeds. Then
//! an event storm (many sends on the channel) and a ring producer that jumps
//! far ahead: the backend must stay bounded and the VMM keep answering.
//!
//! The VMM must give the guest an `if=xen` disk (xvda, vbd 51712) whose first
//! bytes are [`DISK_MAGIC`].

use crate::abi::*;
use crate::checks::{note, spin, Report};
use crate::hypercall::{hvm_op, hypercall5, memory_op, va, xen_version};
use crate::print::print;
use crate::shared::{read32, read64, read8, write64, write8, Page};

/// What the test disk starts with.
pub const DISK_MAGIC: &[u8] = b"XENKVM-PVTEST";

const HYPERVISOR_EVENT_CHANNEL_OP: u32 = 32;
const EVTCHNOP_SEND: u64 = 4;
const EVTCHNOP_ALLOC_UNBOUND: u64 = 6;
const XENMEM_ADD_TO_PHYSMAP: u64 = 7;
const XENMAPSPACE_GRANT_TABLE: u32 = 1;
const HVM_PARAM_STORE_EVTCHN: u32 = 2;
/// Where grant frame 0 goes: outside RAM, in the platform device's BAR.
const GNTTAB_GFN: u64 = 0xE_0000;
const GTF_PERMIT_ACCESS: u8 = 1;
/// Refs 0-7 are the toolstack's; ours follow.
const RING_GREF: u32 = 8;
const DATA_GREF: u32 = 9;
const BOGUS_GREF: u32 = 9999;
const VBD: &str = "device/vbd/51712";

const XS_READ: u32 = 2;
const XS_WRITE: u32 = 11;
const XS_RING: u64 = 1024;

const BLKIF_RING_SIZE: u32 = 32;
const BLKIF_ENTRY: u64 = 112;
const OP_READ: u8 = 0;
const RSP_OKAY: i16 = 0;
const RSP_ERROR: i16 = -1;
const RSP_EOPNOTSUPP: i16 = -2;

static RING: Page = Page::new();
static DATA: Page = Page::new();

#[repr(C)]
struct AddToPhysmap {
    domid: u16,
    size: u16,
    space: u32,
    idx: u64,
    gpfn: u64,
}

#[repr(C)]
struct AllocUnbound {
    dom: u16,
    remote_dom: u16,
    port: u32,
}

fn evtchn_op(cmd: u64, arg: u64) -> i64 {
    hypercall5(HYPERVISOR_EVENT_CHANNEL_OP, cmd, arg, 0, 0, 0)
}

fn send(port: u32) -> i64 {
    let mut p = port;
    evtchn_op(EVTCHNOP_SEND, va(&mut p))
}

fn get_param(index: u32) -> Option<u64> {
    let mut p = XenHvmParam { domid: DOMID_SELF, pad: 0, index, value: 0 };
    (hvm_op(HVMOP_GET_PARAM, va(&mut p)) == 0).then_some(p.value)
}

/// Volatile 16/32-bit stores through byte writes (the guest's helpers have
/// no narrower aligned stores).
///
/// # Safety
/// As for [`write8`], for all the bytes.
unsafe fn write_bytes(addr: u64, bytes: &[u8]) {
    for (i, b) in bytes.iter().enumerate() {
        // SAFETY: forwarded to the caller.
        unsafe { write8(addr + i as u64, *b) };
    }
}

/// Grants `gfn` to dom0 through grant ref `gref`, read-write.
fn grant(gref: u32, gfn: u64) {
    let entry = (GNTTAB_GFN << 12) + u64::from(gref) * 8;
    // SAFETY: the grant frame is mapped at GNTTAB_GFN; flags go last.
    unsafe {
        write_bytes(entry + 2, &0u16.to_le_bytes());
        write_bytes(entry + 4, &(gfn as u32).to_le_bytes());
        core::sync::atomic::fence(core::sync::atomic::Ordering::SeqCst);
        write_bytes(entry, &u16::from(GTF_PERMIT_ACCESS).to_le_bytes());
    }
}

/// The store connection: its page and channel.
struct Store {
    page: u64,
    port: u32,
    next_id: u32,
}

/// A store reply: its type and up to 128 payload bytes.
struct Reply {
    kind: u32,
    len: usize,
    data: [u8; 128],
}

impl Reply {
    fn text(&self) -> &[u8] {
        let end = self.data[..self.len.min(128)].iter().position(|&b| b == 0).unwrap_or(self.len.min(128));
        &self.data[..end]
    }
}

impl Store {
    fn put(&self, prod: &mut u32, bytes: &[u8]) {
        for b in bytes {
            // SAFETY: the store page is mapped; the request ring is its first KiB.
            unsafe { write8(self.page + u64::from(*prod) % XS_RING, *b) };
            *prod = prod.wrapping_add(1);
        }
    }

    /// One request; `None` if no answer came.
    fn request(&mut self, kind: u32, parts: &[&[u8]]) -> Option<Reply> {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        self.next_id += 1;
        // SAFETY: the indices live in the store page (offsets 2048..2064).
        let mut prod = unsafe { read32(self.page + 2052) };
        let header = [kind, self.next_id, 0, len as u32];
        for h in header {
            self.put(&mut prod, &h.to_le_bytes());
        }
        for p in parts {
            self.put(&mut prod, p);
        }
        core::sync::atomic::fence(core::sync::atomic::Ordering::SeqCst);
        // SAFETY: as above.
        unsafe { write_bytes(self.page + 2052, &prod.to_le_bytes()) };
        send(self.port);
        self.reply()
    }

    fn reply(&mut self) -> Option<Reply> {
        let rsp = self.page + XS_RING;
        // SAFETY: the store page is mapped.
        let cons = unsafe { read32(self.page + 2056) };
        for _ in 0..200_000 {
            // SAFETY: as above.
            let prod = unsafe { read32(self.page + 2060) };
            if prod.wrapping_sub(cons) < 16 {
                spin(200);
                continue;
            }
            let byte = |i: u32| {
                // SAFETY: the response ring is the store page's second KiB.
                unsafe { read8(rsp + u64::from(cons.wrapping_add(i)) % XS_RING) }
            };
            let word = |i: u32| u32::from_le_bytes([byte(i), byte(i + 1), byte(i + 2), byte(i + 3)]);
            let len = word(12);
            if prod.wrapping_sub(cons) < 16 + len {
                spin(200);
                continue;
            }
            let mut reply = Reply { kind: word(0), len: len as usize, data: [0; 128] };
            for (i, d) in reply.data.iter_mut().enumerate().take(len as usize) {
                *d = byte(16 + i as u32);
            }
            // SAFETY: as above.
            unsafe { write_bytes(self.page + 2056, &cons.wrapping_add(16 + len).to_le_bytes()) };
            return Some(reply);
        }
        None
    }

    fn write(&mut self, path: &[u8], value: &[u8]) -> bool {
        self.request(XS_WRITE, &[path, b"\0", value]).is_some_and(|r| r.kind == XS_WRITE)
    }

    fn read(&mut self, path: &[u8]) -> Option<Reply> {
        self.request(XS_READ, &[path, b"\0"]).filter(|r| r.kind == XS_READ)
    }
}

/// Formats `v` in decimal into `buf`; the digits.
fn decimal(v: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut n = v;
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buf[i..];
        }
    }
}

/// `VBD/<name>` as bytes in `buf`.
fn vbd_node<'a>(name: &[u8], buf: &'a mut [u8; 64]) -> &'a [u8] {
    let full = [VBD.as_bytes(), b"/", name];
    let mut n = 0;
    for part in full {
        for b in part {
            if n < buf.len() {
                buf[n] = *b;
                n += 1;
            }
        }
    }
    &buf[..n]
}

/// One blkif request: `(id, operation, nr_segments, sector, segments)`.
struct Req<'a> {
    id: u64,
    op: u8,
    nr_segments: u8,
    sector: u64,
    segs: &'a [(u32, u8, u8)],
}

fn put_request(index: u32, r: &Req) {
    let e = RING.addr() + 64 + u64::from(index % BLKIF_RING_SIZE) * BLKIF_ENTRY;
    // SAFETY: our ring page.
    unsafe {
        write_bytes(e, &[r.op, r.nr_segments, 0, 0, 0, 0, 0, 0]);
        write64(e + 8, r.id);
        write64(e + 16, r.sector);
        for (i, (gref, first, last)) in r.segs.iter().enumerate() {
            let s = e + 24 + 8 * i as u64;
            write_bytes(s, &gref.to_le_bytes());
            write_bytes(s + 4, &[*first, *last, 0, 0]);
        }
    }
}

/// The status of the response with `id` among responses `from..to`.
fn status_of(id: u64, from: u32, to: u32) -> Option<i16> {
    (from..to).find_map(|i| {
        let e = RING.addr() + 64 + u64::from(i % BLKIF_RING_SIZE) * BLKIF_ENTRY;
        // SAFETY: our ring page.
        let (rid, lo, hi) = unsafe { (read64(e), read8(e + 10), read8(e + 11)) };
        (rid == id).then(|| i16::from_le_bytes([lo, hi]))
    })
}

/// Publishes requests up to `prod`, notifies, and waits until the backend
/// answered `want` of them; the response producer then.
fn submit(prod: u32, port: u32, want: u32) -> u32 {
    core::sync::atomic::fence(core::sync::atomic::Ordering::SeqCst);
    // SAFETY: our ring page; req_prod is its first word.
    unsafe { write_bytes(RING.addr(), &prod.to_le_bytes()) };
    send(port);
    for _ in 0..500_000 {
        // SAFETY: rsp_prod is the third word.
        let rsp = unsafe { read32(RING.addr() + 8) };
        if rsp >= want {
            return rsp;
        }
        spin(200);
    }
    // SAFETY: as above.
    unsafe { read32(RING.addr() + 8) }
}

/// Connects; the event channel's port, or `None` after recording why not.
fn connect(r: &mut Report) -> Option<u32> {
    let (Some(store_pfn), Some(store_port)) = (get_param(HVM_PARAM_STORE_PFN), get_param(HVM_PARAM_STORE_EVTCHN)) else {
        r.fail("pv blk: store parameters", || print!("HVMOP_get_param failed"));
        return None;
    };
    let mut map = AddToPhysmap { domid: DOMID_SELF, size: 0, space: XENMAPSPACE_GRANT_TABLE, idx: 0, gpfn: GNTTAB_GFN };
    if !r.rc("pv blk: grant frame 0 mapped", memory_op(XENMEM_ADD_TO_PHYSMAP, va(&mut map)), 0) {
        return None;
    }
    let mut alloc = AllocUnbound { dom: DOMID_SELF, remote_dom: 0, port: 0 };
    if !r.rc("pv blk: unbound channel to dom0", evtchn_op(EVTCHNOP_ALLOC_UNBOUND, va(&mut alloc)), 0) {
        return None;
    }
    // SAFETY: our pages; an empty shared ring asks for an event per response.
    unsafe {
        crate::shared::fill(RING.addr(), 4096, 0);
        write_bytes(RING.addr() + 4, &1u32.to_le_bytes());
        write_bytes(RING.addr() + 12, &1u32.to_le_bytes());
        crate::shared::fill(DATA.addr(), 4096, 0);
    }
    grant(RING_GREF, RING.gfn());
    grant(DATA_GREF, DATA.gfn());
    let mut xs = Store { page: store_pfn << 12, port: store_port as u32, next_id: 0 };
    let (mut a, mut b, mut num) = ([0u8; 64], [0u8; 64], [0u8; 20]);
    let mut ok = xs.write(vbd_node(b"ring-ref", &mut a), decimal(u64::from(RING_GREF), &mut num));
    ok &= xs.write(vbd_node(b"event-channel", &mut a), decimal(u64::from(alloc.port), &mut num));
    ok &= xs.write(vbd_node(b"protocol", &mut a), b"x86_64-abi");
    ok &= xs.write(vbd_node(b"state", &mut a), b"3");
    if !r.check("pv blk: frontend nodes written over the xenstore ring", ok, || print!("a write failed")) {
        return None;
    }
    let Some(backend) = xs.read(vbd_node(b"backend", &mut a)) else {
        r.fail("pv blk: backend path", || print!("no answer"));
        return None;
    };
    let path = backend.text();
    let n = path.len().min(50);
    b[..n].copy_from_slice(&path[..n]);
    b[n..n + 6].copy_from_slice(b"/state");
    let state_path = &b[..n + 6];
    let connected = (0..2000).any(|_| {
        let s = xs.read(state_path);
        let up = s.as_ref().is_some_and(|s| s.text() == b"4");
        if !up {
            spin(100_000);
        }
        up
    });
    let ok = r.check("pv blk: backend Connected", connected, || print!("backend state never reached 4"));
    ok.then(|| {
        xs.write(vbd_node(b"state", &mut a), b"4");
        alloc.port
    })
}

/// Runs the hostile frontend (the hypercall page is installed).
pub fn run(r: &mut Report) {
    r.section("pv block: hostile frontend");
    let Some(port) = connect(r) else { return };
    let page = (DATA_GREF, 0, 7);
    let batch: [(Req, i16, &str); 7] = [
        (Req { id: 1, op: OP_READ, nr_segments: 1, sector: 0, segs: &[(BOGUS_GREF, 0, 7)] }, RSP_ERROR, "pv blk: a bad grant ref gets an error"),
        (Req { id: 2, op: OP_READ, nr_segments: 1, sector: 1 << 40, segs: &[page] }, RSP_ERROR, "pv blk: sectors past the end get an error"),
        (Req { id: 3, op: OP_READ, nr_segments: 12, sector: 0, segs: &[page] }, RSP_ERROR, "pv blk: 12 segments get an error"),
        (Req { id: 4, op: OP_READ, nr_segments: 1, sector: 0, segs: &[(DATA_GREF, 5, 2)] }, RSP_ERROR, "pv blk: reversed sectors get an error"),
        (Req { id: 5, op: OP_READ, nr_segments: 1, sector: 0, segs: &[(DATA_GREF, 0, 8)] }, RSP_ERROR, "pv blk: a segment leaving its page gets an error"),
        (Req { id: 6, op: 0x42, nr_segments: 0, sector: 0, segs: &[] }, RSP_EOPNOTSUPP, "pv blk: an unknown operation is not supported"),
        (Req { id: 7, op: OP_READ, nr_segments: 1, sector: 0, segs: &[page] }, RSP_OKAY, "pv blk: a good read in the same batch succeeds"),
    ];
    for (i, (req, _, _)) in batch.iter().enumerate() {
        put_request(i as u32, req);
    }
    let rsp = submit(batch.len() as u32, port, batch.len() as u32);
    for (req, want, name) in &batch {
        let got = status_of(req.id, 0, rsp);
        r.check(name, got == Some(*want), || print!("status ", got.map_or(99, i64::from), ", expected ", i64::from(*want)));
    }
    // SAFETY: our data page, read by the backend's successful request.
    let magic = (0..DISK_MAGIC.len()).all(|i| unsafe { read8(DATA.addr() + i as u64) } == DISK_MAGIC[i]);
    r.check("pv blk: the good read brought the disk's first bytes", magic, || print!("data page differs"));

    // An event storm, then the backend must still serve a request.
    let storm = (0..100_000).filter(|_| send(port) == 0).count();
    r.check("pv blk: 100000 sends on the channel all succeed", storm == 100_000, || print!(storm as u64, " succeeded"));
    put_request(7, &Req { id: 8, op: OP_READ, nr_segments: 1, sector: 0, segs: &[page] });
    let rsp = submit(8, port, 8);
    let got = status_of(8, 7, rsp);
    r.check("pv blk: the backend still answers after the storm", got == Some(RSP_OKAY), || {
        print!("status ", got.map_or(99, i64::from))
    });

    // A producer far ahead of the ring: no response may appear for it, and
    // the VMM must keep answering hypercalls.
    let before = submit(8 + 1000, port, 0);
    spin(2_000_000);
    // SAFETY: rsp_prod of our ring.
    let after = unsafe { read32(RING.addr() + 8) };
    r.check("pv blk: a runaway producer gets no responses", after == before, || {
        print!("rsp_prod moved from ", u64::from(before), " to ", u64::from(after))
    });
    let version = xen_version(XENVER_VERSION, 0);
    r.check("pv blk: the VMM still answers hypercalls", version > 0, || print!("xen_version returned ", version));
    note!("pv blk: done");
}
