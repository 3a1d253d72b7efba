//! A simulated blkfront: fake guest RAM and a real Xen core (grant table,
//! event channels) with recording fakes for its ports, the real store, and a
//! frontend that grants pages, writes requests into the ring and reads the
//! responses, byte for byte as a guest driver would.

#![allow(dead_code)]

use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};
use xenkvm_xen_abi::grant_table::{GTF_PERMIT_ACCESS, GTF_READONLY};
use xenkvm_xen_core::domain::Ports;
use xenkvm_xen_core::page::SharedPage;
use xenkvm_xen_core::ports::{BackendNotify, CallbackLine, Clock, ConsoleSink, Physmap, PhysmapError, Upcall, UpcallVia};
use xenkvm_xen_core::{Domain, DomainConfig};
use xenkvm_xen_pv::blkback::{BlockBackend, BlockDevice, DiskOptions};
use xenkvm_xen_pv::blkif;
use xenkvm_xen_pv::grants::DomainGrants;
use xenkvm_xen_pv::xenbus::{parse_vdev, XenbusState};
use xenkvm_xenstore::{ConnId, Message, MsgType, Quotas, Xenstore};

pub const DOMID: u32 = 1;
pub const RAM: usize = 16 << 20;
/// Where the simulated frontend keeps its ring pages and data pages.
pub const RING_GFN: u64 = 0x100;
pub const DATA_GFN: u64 = 0x200;
pub const INDIRECT_GFN: u64 = 0x400;

struct Fakes;
impl Clock for Fakes {
    fn guest_tsc(&self) -> u64 {
        0
    }
    fn tsc_khz(&self) -> u32 {
        1_000_000
    }
    fn wall_clock_ns(&self) -> u64 {
        0
    }
}
impl ConsoleSink for Fakes {
    fn write(&self, _: &[u8]) {}
}
impl Physmap for Fakes {
    fn move_overlay(&self, _: Option<u64>, _: u64, _: &SharedPage) -> Result<(), PhysmapError> {
        Ok(())
    }
}
impl Upcall for Fakes {
    fn raise(&self, _: u32, _: UpcallVia) {}
    fn set_line(&self, _: CallbackLine, _: bool) {}
    fn kick(&self, _: u32) {}
    fn timer_changed(&self, _: u32, _: Option<u64>) {}
}
impl BackendNotify for Fakes {
    fn notify(&self, _: u32) {}
}

/// An in-memory disk that counts flushes and can be told to fail them.
#[derive(Clone, Default)]
pub struct MemDisk {
    pub data: Arc<Mutex<Vec<u8>>>,
    pub flushes: Arc<AtomicU64>,
    /// Bytes written since the last flush (what a crash would lose).
    pub unflushed: Arc<AtomicU64>,
    pub fail_flush: Arc<AtomicBool>,
    pub discard: bool,
}

impl MemDisk {
    pub fn new(bytes: usize, discard: bool) -> Self {
        Self { data: Arc::new(Mutex::new(vec![0; bytes])), discard, ..Default::default() }
    }
}

impl BlockDevice for MemDisk {
    fn size(&self) -> u64 {
        self.data.lock().unwrap().len() as u64
    }
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let d = self.data.lock().unwrap();
        buf.copy_from_slice(&d[offset as usize..offset as usize + buf.len()]);
        Ok(())
    }
    fn write_at(&mut self, offset: u64, buf: &[u8]) -> io::Result<()> {
        let mut d = self.data.lock().unwrap();
        d[offset as usize..offset as usize + buf.len()].copy_from_slice(buf);
        self.unflushed.fetch_add(buf.len() as u64, Ordering::SeqCst);
        Ok(())
    }
    fn flush(&mut self) -> io::Result<()> {
        if self.fail_flush.load(Ordering::SeqCst) {
            return Err(io::Error::other("injected flush failure"));
        }
        self.flushes.fetch_add(1, Ordering::SeqCst);
        self.unflushed.store(0, Ordering::SeqCst);
        Ok(())
    }
    fn discard(&mut self, offset: u64, len: u64) -> io::Result<()> {
        let mut d = self.data.lock().unwrap();
        d[offset as usize..(offset + len) as usize].fill(0);
        Ok(())
    }
    fn can_discard(&self) -> bool {
        self.discard
    }
}

/// The guest, its store and one block backend.
pub struct Rig {
    pub domain: Arc<Mutex<Domain>>,
    pub ram: GuestMemoryMmap<()>,
    pub xs: Xenstore,
    /// The guest's store connection.
    pub guest: ConnId,
    pub backend: BlockBackend,
    pub disk: MemDisk,
    pub front: String,
    pub back: String,
    /// Ring frames and size of the current connection.
    pub ring_gfns: Vec<u64>,
    pub ring_size: u32,
    pub abi: blkif::Abi,
    pub req_prod: u32,
    pub rsp_cons: u32,
    next_id: u64,
}

pub fn rig(disk: MemDisk, readonly: bool, persistent: bool) -> Rig {
    let ram = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), RAM)]).unwrap();
    let cfg = DomainConfig { xen_version: 0x40011, domid: DOMID as u16, vcpus: 1, max_gfn: 0xF_FFFF, handle: [1; 16], gnttab_max_frames: 4 };
    let f = Arc::new(Fakes);
    let ports = Ports { clock: f.clone(), console: f.clone(), physmap: f.clone(), upcall: f.clone(), backends: f };
    let domain = Arc::new(Mutex::new(Domain::new(cfg, ram.clone(), ports).unwrap()));
    let mut xs = Xenstore::new(Quotas::default());
    xs.create_domain(DOMID);
    let store_port = domain.lock().unwrap().alloc_unbound_for_backend().unwrap();
    let guest = xs.introduce_domain(DOMID, 0xFEFF8, store_port).unwrap();
    let opts = DiskOptions {
        vdev: "xvda".into(),
        devid: parse_vdev("xvda").unwrap(),
        params: "/tmp/disk.img".into(),
        readonly,
        cdrom: false,
        persistent,
    };
    let backend = BlockBackend::create(&mut xs, DOMID, opts, Box::new(disk.clone()), DomainGrants::new(domain.clone())).unwrap();
    let (front, back) = (backend.paths().frontend.clone(), backend.paths().backend.clone());
    Rig {
        domain,
        ram,
        xs,
        guest,
        backend,
        disk,
        front,
        back,
        ring_gfns: Vec::new(),
        ring_size: 0,
        abi: blkif::Abi::X86_64,
        req_prod: 0,
        rsp_cons: 0,
        next_id: 0x1000,
    }
}

impl Rig {
    /// Runs the backend's handshake step against the store.
    pub fn xenbus(&mut self) -> bool {
        let xs = &mut self.xs;
        self.backend.xenbus(|f| f(xs)).unwrap()
    }

    /// Reads a node as dom0.
    pub fn read(&mut self, path: &str) -> Option<String> {
        let c = self.xs.connect_privileged();
        let out = self.xs.handle(c, &Message::with_strings(MsgType::Read, 0, 0, &[path.as_bytes()]));
        self.xs.disconnect(c);
        let m = out.into_iter().next()?;
        (m.ty == MsgType::Read as u32).then(|| String::from_utf8(m.payload).unwrap())
    }

    /// Writes a frontend node as the guest; returns whether the store accepted it.
    pub fn guest_write(&mut self, name: &str, value: &str) -> bool {
        let mut p = format!("{}/{name}", self.front).into_bytes();
        p.push(0);
        p.extend_from_slice(value.as_bytes());
        let out = self.xs.handle(self.guest, &Message::new(MsgType::Write, 0, 0, p));
        out.iter().any(|m| m.ty == MsgType::Write as u32)
    }

    pub fn set_front_state(&mut self, s: XenbusState) {
        assert!(self.guest_write("state", &s.value()));
    }

    pub fn back_state(&mut self) -> XenbusState {
        let p = format!("{}/state", self.back);
        XenbusState::parse(&self.read(&p).unwrap_or_default())
    }

    /// Grants `gfn` to domain 0 as entry `gref`.
    pub fn grant(&self, gref: u32, gfn: u64, readonly: bool) {
        let d = self.domain.lock().unwrap();
        let frame = d.grant_table().frame(gref / 512).unwrap().clone();
        let flags = GTF_PERMIT_ACCESS | if readonly { GTF_READONLY } else { 0 };
        let raw = u64::from(flags) | (gfn << 32);
        frame.write((gref % 512) as usize * 8, &raw.to_le_bytes());
    }

    /// The flags of entry `gref` as the guest sees them (GTF_reading etc.).
    pub fn grant_flags(&self, gref: u32) -> u16 {
        self.domain.lock().unwrap().grant_entry(gref).unwrap().flags
    }

    /// Sets up a ring of 2^order pages and publishes it like blkfront.
    pub fn connect(&mut self, order: u32, protocol: Option<&str>, persistent: bool) {
        let pages = 1u32 << order;
        self.ring_gfns = (0..u64::from(pages)).map(|i| RING_GFN + 2 * i).collect();
        for (i, gfn) in self.ring_gfns.clone().into_iter().enumerate() {
            self.ram.write_slice(&[0u8; 4096], GuestAddress(gfn << 12)).unwrap();
            self.grant(10 + i as u32, gfn, false);
        }
        self.abi = blkif::Abi::from_protocol(protocol).unwrap();
        self.ring_size = xenkvm_xen_pv::ring::ring_size(pages as usize, self.abi.entry_size());
        self.req_prod = 0;
        self.rsp_cons = 0;
        // rsp_event = 1: notify at the first response.
        self.ram.write_obj(1u32, GuestAddress((self.ring_gfns[0] << 12) + 12)).unwrap();
        let port = self.domain.lock().unwrap().alloc_unbound_for_backend().unwrap();
        if order == 0 {
            assert!(self.guest_write("ring-ref", "10"));
        } else {
            assert!(self.guest_write("ring-page-order", &order.to_string()));
            for i in 0..pages {
                assert!(self.guest_write(&format!("ring-ref{i}"), &(10 + i).to_string()));
            }
        }
        assert!(self.guest_write("event-channel", &port.to_string()));
        if let Some(p) = protocol {
            assert!(self.guest_write("protocol", p));
        }
        assert!(self.guest_write("feature-persistent", if persistent { "1" } else { "0" }));
        self.set_front_state(XenbusState::Initialised);
        assert!(self.xenbus());
        assert_eq!(self.back_state(), XenbusState::Connected);
        assert!(self.backend.port().is_some());
    }

    fn ring_offset(&self, idx: u32, within: usize) -> GuestAddress {
        let off = 64 + (idx % self.ring_size) as usize * self.abi.entry_size() + within;
        GuestAddress((self.ring_gfns[off / 4096] << 12) + (off % 4096) as u64)
    }

    fn ring_write(&self, idx: u32, bytes: &[u8]) {
        for (i, b) in bytes.iter().enumerate() {
            self.ram.write_obj(*b, self.ring_offset(idx, i)).unwrap();
        }
    }

    fn ring_read(&self, idx: u32, len: usize) -> Vec<u8> {
        (0..len).map(|i| self.ram.read_obj::<u8>(self.ring_offset(idx, i)).unwrap()).collect()
    }

    pub fn set_req_prod(&mut self, v: u32) {
        self.req_prod = v;
        self.ram.write_obj(v, GuestAddress(self.ring_gfns[0] << 12)).unwrap();
    }

    pub fn rsp_prod(&self) -> u32 {
        self.ram.read_obj(GuestAddress((self.ring_gfns[0] << 12) + 8)).unwrap()
    }

    /// Queues a raw request entry (its id is whatever the bytes say).
    pub fn queue_raw(&mut self, entry: &[u8]) {
        self.ring_write(self.req_prod, entry);
        let p = self.req_prod.wrapping_add(1);
        self.set_req_prod(p);
    }

    /// Builds an x86_64 entry (or x86_32, per the connection).
    pub fn entry(&mut self, op: u8, nseg: u8, sector: u64, segs: &[(u32, u8, u8)]) -> (u64, Vec<u8>) {
        self.next_id += 1;
        let id = self.next_id;
        let (id_at, sector_at, segs_at) = match self.abi {
            blkif::Abi::X86_64 => (8, 16, 24),
            blkif::Abi::X86_32 => (4, 12, 20),
        };
        let mut e = vec![0u8; self.abi.entry_size()];
        e[0] = op;
        e[1] = nseg;
        e[id_at..id_at + 8].copy_from_slice(&id.to_le_bytes());
        e[sector_at..sector_at + 8].copy_from_slice(&sector.to_le_bytes());
        for (i, (g, f, l)) in segs.iter().enumerate() {
            let at = segs_at + 8 * i;
            e[at..at + 4].copy_from_slice(&g.to_le_bytes());
            e[at + 4] = *f;
            e[at + 5] = *l;
        }
        (id, e)
    }

    /// Queues a request and returns its id.
    pub fn queue(&mut self, op: u8, sector: u64, segs: &[(u32, u8, u8)]) -> u64 {
        let (id, e) = self.entry(op, segs.len() as u8, sector, segs);
        self.queue_raw(&e);
        id
    }

    /// Lets the backend run and collects every new response `(id, op, status)`.
    pub fn run(&mut self) -> Vec<(u64, u8, i16)> {
        self.backend.process(1024);
        let mut out = Vec::new();
        let prod = self.rsp_prod();
        while self.rsp_cons != prod {
            out.push(blkif::decode_response(&self.ring_read(self.rsp_cons, 16)));
            self.rsp_cons = self.rsp_cons.wrapping_add(1);
        }
        out
    }

    /// Fills data page `i` (granted as ref 100+i) with `byte`.
    pub fn data_page(&self, i: u32, byte: u8, readonly: bool) -> u32 {
        let gfn = DATA_GFN + u64::from(i);
        self.ram.write_slice(&[byte; 4096], GuestAddress(gfn << 12)).unwrap();
        self.grant(100 + i, gfn, readonly);
        100 + i
    }

    pub fn page(&self, i: u32) -> Vec<u8> {
        let mut b = vec![0u8; 4096];
        self.ram.read_slice(&mut b, GuestAddress((DATA_GFN + u64::from(i)) << 12)).unwrap();
        b
    }

    pub fn disk_bytes(&self, offset: usize, len: usize) -> Vec<u8> {
        self.disk.data.lock().unwrap()[offset..offset + len].to_vec()
    }
}
