//! A simulated Linux virtio-pci driver: it finds the regions through the
//! capability list (through mechanism #1 and the MMIO bus, as a guest does),
//! negotiates features, sets up split virtqueues in guest memory and posts
//! buffers; with a fake tap, MSI sink and INTx line.

#![allow(dead_code)]

use std::collections::VecDeque;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};
use xenkvm_devices::acpi_pm::IrqLevel;
use xenkvm_devices::bus::{Bus, BusDevice};
use xenkvm_devices::ioapic::MsiSink;
use xenkvm_devices::pci::{BarWindow, PciRoot};
use xenkvm_virtio::{Kick, NetBackend, NetDevice, NetWorker, RxOffloads, Shared, VirtioPci};

pub const SLOT: u8 = 3;
pub const BAR: u64 = 0xE100_0000;
pub const MAC: [u8; 6] = [0x52, 0x54, 0, 0x12, 0x34, 0x56];
pub const QSIZE: u16 = 16;
pub const MEM_SIZE: usize = 8 << 20;

#[derive(Default)]
pub struct FakeTap {
    pub sent: Vec<Vec<u8>>,
    pub inbound: VecDeque<Vec<u8>>,
    pub offloads: Option<RxOffloads>,
}

#[derive(Clone, Default)]
pub struct Backend(pub Arc<Mutex<FakeTap>>);

impl NetBackend for Backend {
    fn write_frame(&mut self, bufs: &[&[u8]]) -> io::Result<()> {
        self.0.lock().unwrap().sent.push(bufs.concat());
        Ok(())
    }
    fn read_frame(&mut self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        let Some(f) = self.0.lock().unwrap().inbound.pop_front() else { return Ok(None) };
        buf[..f.len()].copy_from_slice(&f);
        Ok(Some(f.len()))
    }
    fn wait_readable(&self, kick: &Kick, limit: Duration) -> bool {
        if !self.0.lock().unwrap().inbound.is_empty() {
            return true;
        }
        kick.wait(limit.min(Duration::from_millis(5)));
        !self.0.lock().unwrap().inbound.is_empty()
    }
    fn set_offloads(&mut self, rx: RxOffloads) -> io::Result<()> {
        self.0.lock().unwrap().offloads = Some(rx);
        Ok(())
    }
}

#[derive(Default)]
pub struct Msis(pub Mutex<Vec<(u64, u32)>>);
impl MsiSink for Msis {
    fn send_msi(&self, address: u64, data: u32) {
        self.0.lock().unwrap().push((address, data));
    }
}

#[derive(Default)]
pub struct Line {
    pub high: AtomicBool,
    pub raised: AtomicUsize,
}
pub struct LineRef(pub Arc<Line>);
impl IrqLevel for LineRef {
    fn set_level(&self, asserted: bool) {
        if asserted {
            self.0.raised.fetch_add(1, Ordering::SeqCst);
        }
        self.0.high.store(asserted, Ordering::SeqCst);
    }
}

/// Where the driver found things.
#[derive(Default, Debug)]
pub struct Regions {
    pub common: u64,
    pub notify: u64,
    pub multiplier: u32,
    pub isr: u64,
    pub device: u64,
    pub device_len: u32,
    pub pci_cfg: u8,
    pub msix: u8,
}

/// Guest-memory layout of one split queue.
#[derive(Clone, Copy, Debug)]
pub struct Ring {
    pub desc: u64,
    pub avail: u64,
    pub used: u64,
    pub size: u16,
    pub next_desc: u16,
    pub avail_idx: u16,
    pub used_seen: u16,
}

pub struct Driver {
    pub root: PciRoot,
    pub mmio: Bus,
    pub mem: GuestMemoryMmap<()>,
    pub shared: Arc<Shared>,
    pub msis: Arc<Msis>,
    pub line: Arc<Line>,
    pub tap: Backend,
    pub r: Regions,
    pub rings: Vec<Ring>,
}

impl Driver {
    pub fn new() -> Self {
        let mem = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), MEM_SIZE)]).unwrap();
        let msis = Arc::new(Msis::default());
        let line = Arc::new(Line::default());
        let dev = VirtioPci::new(Box::new(NetDevice::new(MAC)), BAR, msis.clone(), Box::new(LineRef(line.clone()))).unwrap();
        let shared = dev.shared();
        let dev = Arc::new(Mutex::new(dev));
        let mut root = PciRoot::new();
        root.attach(SLOT, dev.clone()).unwrap();
        let mut mmio = Bus::new_mmio();
        let window = BarWindow::new(dev, xenkvm_virtio::BAR_INDEX);
        let (base, len) = window.range().unwrap();
        assert_eq!((base, len), (BAR, xenkvm_virtio::BAR_SIZE));
        mmio.insert(base, len, Arc::new(Mutex::new(window))).unwrap();
        let mut d = Self { root, mmio, mem, shared, msis, line, tap: Backend::default(), r: Regions::default(), rings: Vec::new() };
        d.find_caps();
        d
    }

    pub fn worker(&self) -> NetWorker<Backend> {
        NetWorker::new(self.shared.clone(), self.mem.clone(), self.tap.clone())
    }

    // Configuration space through 0xCF8/0xCFC.
    pub fn cfg_read(&mut self, off: u16, len: usize) -> u32 {
        let a = 0x8000_0000u32 | (u32::from(SLOT) << 11) | u32::from(off & 0xFC);
        self.root.write(0, &a.to_le_bytes());
        let mut b = [0u8; 4];
        self.root.read(4 + u64::from(off & 3), &mut b[..len]);
        u32::from_le_bytes(b)
    }
    pub fn cfg_write(&mut self, off: u16, len: usize, v: u32) {
        let a = 0x8000_0000u32 | (u32::from(SLOT) << 11) | u32::from(off & 0xFC);
        self.root.write(0, &a.to_le_bytes());
        self.root.write(4 + u64::from(off & 3), &v.to_le_bytes()[..len]);
    }

    // The BAR through the MMIO bus.
    pub fn bar_read(&self, off: u64, len: usize) -> u64 {
        let mut b = [0u8; 8];
        self.mmio.read(BAR + off, &mut b[..len]);
        u64::from_le_bytes(b)
    }
    pub fn bar_write(&self, off: u64, len: usize, v: u64) {
        assert!(self.mmio.write(BAR + off, &v.to_le_bytes()[..len]));
    }

    fn find_caps(&mut self) {
        assert_ne!(self.cfg_read(0x06, 2) & 0x10, 0, "capability list");
        let mut at = self.cfg_read(0x34, 1) as u16;
        while at != 0 {
            let id = self.cfg_read(at, 1);
            if id == 0x11 {
                self.r.msix = at as u8;
            } else if id == 0x09 {
                let cfg_type = self.cfg_read(at + 3, 1);
                let bar = self.cfg_read(at + 4, 1);
                let offset = u64::from(self.cfg_read(at + 8, 4));
                let length = self.cfg_read(at + 12, 4);
                if cfg_type != 5 {
                    assert_eq!(bar, 0);
                }
                match cfg_type {
                    1 => {
                        assert!(length >= 0x38);
                        self.r.common = offset;
                    }
                    2 => {
                        self.r.notify = offset;
                        self.r.multiplier = self.cfg_read(at + 16, 4);
                    }
                    3 => self.r.isr = offset,
                    4 => {
                        self.r.device = offset;
                        self.r.device_len = length;
                    }
                    5 => self.r.pci_cfg = at as u8,
                    _ => panic!("unknown cfg_type {cfg_type}"),
                }
            }
            at = self.cfg_read(at + 1, 1) as u16;
        }
    }

    pub fn common_read(&self, off: u64, len: usize) -> u64 {
        self.bar_read(self.r.common + off, len)
    }
    pub fn common_write(&self, off: u64, len: usize, v: u64) {
        self.bar_write(self.r.common + off, len, v);
    }
    pub fn status(&self) -> u8 {
        self.common_read(0x14, 1) as u8
    }
    pub fn set_status(&self, s: u8) {
        self.common_write(0x14, 1, u64::from(s));
    }

    pub fn device_features(&self) -> u64 {
        self.common_write(0, 4, 0);
        let lo = self.common_read(4, 4);
        self.common_write(0, 4, 1);
        lo | (self.common_read(4, 4) << 32)
    }

    /// Reset, ACKNOWLEDGE, DRIVER, features, FEATURES_OK: whether the device kept it.
    pub fn negotiate(&self, features: u64) -> bool {
        self.set_status(0);
        assert_eq!(self.status(), 0);
        self.set_status(1);
        self.set_status(1 | 2);
        for (sel, word) in [(0, features & 0xFFFF_FFFF), (1, features >> 32)] {
            self.common_write(0x08, 4, sel);
            self.common_write(0x0C, 4, word);
        }
        self.set_status(1 | 2 | 8);
        self.status() & 8 != 0
    }

    /// Sets up queue `q` of QSIZE entries at `base` with MSI-X `vector`.
    pub fn setup_queue(&mut self, q: u16, base: u64, vector: u16) {
        self.common_write(0x16, 2, u64::from(q));
        assert_eq!(self.common_read(0x18, 2), 256, "max size");
        self.common_write(0x18, 2, u64::from(QSIZE));
        self.common_write(0x1A, 2, u64::from(vector));
        let ring = Ring {
            desc: base,
            avail: base + 16 * u64::from(QSIZE),
            used: base + 0x1000,
            size: QSIZE,
            next_desc: 0,
            avail_idx: 0,
            used_seen: 0,
        };
        // Linux writes each 64-bit address as two 32-bit halves.
        for (off, v) in [(0x20, ring.desc), (0x28, ring.avail), (0x30, ring.used)] {
            self.common_write(off, 4, v & 0xFFFF_FFFF);
            self.common_write(off + 4, 4, v >> 32);
        }
        assert_eq!(self.common_read(0x20, 8), ring.desc);
        self.common_write(0x1C, 2, 1);
        while self.rings.len() <= usize::from(q) {
            self.rings.push(ring);
        }
        self.rings[usize::from(q)] = ring;
    }

    /// Enables MSI-X and programs vector `v` with data `0x40 + v`.
    pub fn enable_msix(&mut self, vectors: u16) {
        let ctl = self.r.msix as u16 + 2;
        let v = self.cfg_read(ctl, 2);
        assert_eq!(v & 0x7FF, u32::from(vectors) - 1);
        self.cfg_write(ctl, 2, 0x8000);
        let table = u64::from(self.cfg_read(self.r.msix as u16 + 4, 4));
        assert_eq!(table & 7, 0, "BIR 0");
        for v in 0..u64::from(vectors) {
            let e = table + 16 * v;
            self.bar_write(e, 4, 0xFEE0_0000);
            self.bar_write(e + 4, 4, 0);
            self.bar_write(e + 8, 4, 0x40 + v);
            self.bar_write(e + 12, 4, 0);
        }
    }

    /// Posts a chain of (address, length, device-writable) buffers on queue `q`.
    pub fn post(&mut self, q: usize, bufs: &[(u64, u32, bool)]) -> u16 {
        let r = self.rings[q];
        let head = r.next_desc % r.size;
        let mut idx = head;
        for (i, &(addr, len, write)) in bufs.iter().enumerate() {
            let last = i + 1 == bufs.len();
            let next = (idx + 1) % r.size;
            let flags: u16 = if last { 0 } else { 1 } | if write { 2 } else { 0 };
            self.put_desc(q, idx, addr, len, flags, if last { 0 } else { next });
            idx = next;
        }
        self.rings[q].next_desc = idx;
        self.publish(q, head);
        head
    }

    pub fn put_desc(&self, q: usize, idx: u16, addr: u64, len: u32, flags: u16, next: u16) {
        let d = self.rings[q].desc + 16 * u64::from(idx);
        self.mem.write_obj(addr, GuestAddress(d)).unwrap();
        self.mem.write_obj(len, GuestAddress(d + 8)).unwrap();
        self.mem.write_obj(flags, GuestAddress(d + 12)).unwrap();
        self.mem.write_obj(next, GuestAddress(d + 14)).unwrap();
    }

    /// Puts `head` in the avail ring and bumps its index.
    pub fn publish(&mut self, q: usize, head: u16) {
        let r = self.rings[q];
        let slot = r.avail + 4 + 2 * u64::from(r.avail_idx % r.size);
        self.mem.write_obj(head, GuestAddress(slot)).unwrap();
        let idx = r.avail_idx.wrapping_add(1);
        self.mem.write_obj(idx, GuestAddress(r.avail + 2)).unwrap();
        self.rings[q].avail_idx = idx;
    }

    pub fn notify(&self, q: u16) {
        self.bar_write(self.r.notify + u64::from(q) * u64::from(self.r.multiplier), 2, u64::from(q));
    }

    /// New used entries of queue `q`: (id, len).
    pub fn used(&mut self, q: usize) -> Vec<(u32, u32)> {
        let r = self.rings[q];
        let idx: u16 = self.mem.read_obj(GuestAddress(r.used + 2)).unwrap();
        let mut out = Vec::new();
        let mut seen = r.used_seen;
        while seen != idx {
            let e = r.used + 4 + 8 * u64::from(seen % r.size);
            out.push((self.mem.read_obj(GuestAddress(e)).unwrap(), self.mem.read_obj(GuestAddress(e + 4)).unwrap()));
            seen = seen.wrapping_add(1);
        }
        self.rings[q].used_seen = seen;
        out
    }

    pub fn read_mem(&self, addr: u64, len: usize) -> Vec<u8> {
        let mut b = vec![0u8; len];
        self.mem.read_slice(&mut b, GuestAddress(addr)).unwrap();
        b
    }

    pub fn write_mem(&self, addr: u64, b: &[u8]) {
        self.mem.write_slice(b, GuestAddress(addr)).unwrap();
    }

    /// The full Linux bring-up: features, MSI-X (optional), both queues, DRIVER_OK.
    pub fn bring_up(&mut self, features: u64, msix: bool) {
        assert!(self.negotiate(features));
        if msix {
            self.enable_msix(3);
            self.common_write(0x10, 2, 0);
            assert_eq!(self.common_read(0x10, 2), 0);
        }
        let (rxv, txv) = if msix { (1, 2) } else { (0xFFFF, 0xFFFF) };
        self.setup_queue(0, 0x10_0000, rxv);
        self.setup_queue(1, 0x20_0000, txv);
        self.set_status(1 | 2 | 8 | 4);
        assert_eq!(self.status(), 0xF);
    }
}

/// A minimal Ethernet frame of `len` bytes (after the 12-byte header) with a marker.
pub fn frame(len: usize, marker: u8) -> Vec<u8> {
    let mut f = vec![0u8; 12];
    f.extend((0..len).map(|i| (i as u8) ^ marker));
    f
}
