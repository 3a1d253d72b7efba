//! Fuzz harness of the virtio-pci transport and the virtio-net worker,
//! shared by the libFuzzer target (`fuzz/`: `virtio_net`) and the
//! deterministic replay test (`tests/fuzz_replay.rs`).
//!
//! The input is a hostile driver, one step per opcode byte: status writes
//! and feature negotiation, common-config/notify/ISR/device-config/MSI-X
//! accesses of any width and offset (through the MMIO bus, configuration
//! mechanism #1 and the VIRTIO_PCI_CAP_PCI_CFG window), queue setup with
//! rings inside, across or outside a small two-region guest memory,
//! descriptors (chains, loops, indirect tables, bad indexes and lengths),
//! avail-ring entries, raw memory bytes, notifies, frames from the fake
//! tap, full bring-ups and worker passes. Oracles, after every pass: a pass
//! sends and reads at most a budget of frames and advances each used index
//! by at most the queue size; frames handed to the tap are an Ethernet
//! header to [`MAX_FRAME`] bytes; a device with DEVICE_NEEDS_RESET does no
//! work, a stopped queue sets it, and a live device's tap has the offloads
//! of the negotiated features. At the end of every input, a reset and a
//! clean setup must carry one frame each way.

use std::collections::VecDeque;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use virtio_queue::QueueT;
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};
use xenkvm_devices::acpi_pm::IrqLevel;
use xenkvm_devices::bus::{Bus, PioDevice};
use xenkvm_devices::ioapic::MsiSink;
use xenkvm_devices::pci::{BarWindow, PciRoot};

use crate::net::{features, NetBackend, NetDevice, NetWorker, RxOffloads, MAX_FRAME, VNET_HDR_LEN};
use crate::{status, Kick, Shared, VirtioPci, BAR_INDEX, BAR_SIZE, VIRTIO_F_VERSION_1};

type Mem = GuestMemoryMmap<()>;
type Snapshot = (u8, [(u16, u16); 2], bool, u64);

const SLOT: u8 = 3;
const BAR: u64 = 0xE100_0000;
/// Guest RAM: [0, LOW_END) and [HIGH, HIGH + HIGH_LEN), a hole between.
const LOW_END: u64 = 0x2_0000;
const HIGH: u64 = 0x3_0000;
const HIGH_LEN: u64 = 0x1_0000;
/// Ring slots are 0x2000 apart below 0x10000; buffers live above.
const BUFS: u64 = 0x1_0000;
const MAX_STEPS: usize = 400;
/// Chains per queue (and frames each way) a pass may handle: the worker's budget.
const PASS_LIMIT: u64 = 64;
const MAX_INBOUND: usize = 256;
const BASIC: u64 = VIRTIO_F_VERSION_1 | features::MAC | features::STATUS;

/// What a run did, for the replay test's coverage report.
#[derive(Debug, Default, Clone, Copy)]
pub struct Stats {
    pub steps: usize,
    pub passes: usize,
    pub tx_frames: u64,
    pub rx_frames: u64,
    pub used: u64,
    pub needs_reset: usize,
    pub recoveries: usize,
}

/// A frame waiting in the fake tap: length, first two header bytes, pattern.
#[derive(Clone, Copy)]
struct Pending(usize, [u8; 2], u8);

impl Pending {
    /// Writes the frame into `buf` (past 256 bytes, whatever `buf` held).
    fn fill(self, buf: &mut [u8]) -> usize {
        let n = self.0.min(buf.len());
        for (i, b) in buf.iter_mut().take(n.min(256)).enumerate() {
            *b = match i {
                0 | 1 => self.1.get(i).copied().unwrap_or(0),
                2..VNET_HDR_LEN => 0,
                _ => (i as u8) ^ self.2,
            };
        }
        n
    }
}

#[derive(Default)]
struct Tap {
    inbound: VecDeque<Pending>,
    reads: u64,
    writes: u64,
    last_sent: Vec<u8>,
    offloads: Option<RxOffloads>,
    violation: Option<String>,
}

#[derive(Clone, Default)]
struct Backend(Arc<Mutex<Tap>>);

impl NetBackend for Backend {
    fn write_frame(&mut self, bufs: &[&[u8]]) -> io::Result<()> {
        let mut t = self.0.lock().map_err(|_| io::Error::other("poisoned"))?;
        let len: usize = bufs.iter().map(|b| b.len()).sum();
        if !(VNET_HDR_LEN + 14..=MAX_FRAME).contains(&len) {
            t.violation = Some(format!("a {len}-byte frame reached the tap"));
        }
        t.writes += 1;
        t.last_sent = bufs.concat();
        Ok(())
    }
    fn read_frame(&mut self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        let mut t = self.0.lock().map_err(|_| io::Error::other("poisoned"))?;
        let Some(p) = t.inbound.pop_front() else { return Ok(None) };
        t.reads += 1;
        Ok(Some(p.fill(buf)))
    }
    fn wait_readable(&self, _kick: &Kick, _limit: Duration) -> bool {
        self.0.lock().is_ok_and(|t| !t.inbound.is_empty())
    }
    fn set_offloads(&mut self, rx: RxOffloads) -> io::Result<()> {
        if let Ok(mut t) = self.0.lock() {
            t.offloads = Some(rx);
        }
        Ok(())
    }
}

struct Quiet;
impl MsiSink for Quiet {
    fn send_msi(&self, _address: u64, _data: u32) {}
}
impl IrqLevel for Quiet {
    fn set_level(&self, _asserted: bool) {}
}

/// The fuzz bytes, read as little-endian values (zeros once exhausted).
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn bytes(&mut self, n: usize) -> &[u8] {
        let (head, rest) = self.0.split_at(n.min(self.0.len()));
        self.0 = rest;
        head
    }
    fn u(&mut self, n: usize) -> u64 {
        self.bytes(n).iter().rev().fold(0, |v, b| (v << 8) | u64::from(*b))
    }
    fn u8(&mut self) -> u8 {
        self.u(1) as u8
    }
    fn u16(&mut self) -> u16 {
        self.u(2) as u16
    }
    /// An address: ring slots, buffers, edges of RAM, the hole, anything.
    fn addr(&mut self) -> u64 {
        let k = self.u8();
        let slot = 0x2000 * u64::from((k >> 3) & 7);
        match k % 8 {
            0 => slot,
            1 => BUFS + u64::from(self.u16()),
            2 => LOW_END - u64::from(self.u8()),
            3 => LOW_END + u64::from(self.u16()),
            4 => HIGH + u64::from(self.u16()),
            5 => self.u(8),
            6 => u64::MAX - u64::from(self.u8()),
            _ => slot + 16 * u64::from(self.u8()),
        }
    }
    fn length(&mut self) -> u32 {
        match self.u8() % 4 {
            0 => u32::from(self.u8()),
            1 => u32::from(self.u16()),
            2 => self.u(4) as u32,
            _ => 12 + 64 * u32::from(self.u8() % 24),
        }
    }
    fn width(&mut self) -> usize {
        [1, 2, 4, 8, 3, 16].get(usize::from(self.u8() % 6)).copied().unwrap_or(4)
    }
}

struct Rig {
    root: PciRoot,
    mmio: Bus,
    mem: Mem,
    shared: Arc<Shared>,
    tap: Backend,
    worker: NetWorker<Backend>,
    pci_cfg: u16,
    msix: u16,
}

fn lock<T>(m: &Mutex<T>) -> Result<std::sync::MutexGuard<'_, T>, String> {
    m.lock().map_err(|_| "a lock was poisoned".to_string())
}

/// Runs the driver `data` describes; the first broken oracle is `Err`.
pub fn run(data: &[u8]) -> Result<Stats, String> {
    let mut r = Rig::new()?;
    let mut input = Input(data);
    let mut st = Stats::default();
    while !input.0.is_empty() && st.steps < MAX_STEPS {
        st.steps += 1;
        r.step(&mut input, &mut st)?;
    }
    let w = r.worker.stats();
    (st.tx_frames, st.rx_frames) = (w.tx_packets, w.rx_packets);
    r.recover()?;
    st.recoveries += 1;
    Ok(st)
}

impl Rig {
    fn new() -> Result<Self, String> {
        let ranges = [(GuestAddress(0), LOW_END as usize), (GuestAddress(HIGH), HIGH_LEN as usize)];
        let mem = Mem::from_ranges(&ranges).map_err(|e| e.to_string())?;
        let dev = VirtioPci::new(Box::new(NetDevice::new([0x52, 0x54, 0, 1, 2, 3])), BAR, Arc::new(Quiet), Box::new(Quiet))
            .map_err(|e| e.to_string())?;
        let shared = dev.shared();
        let dev = Arc::new(Mutex::new(dev));
        let mut root = PciRoot::new();
        root.attach(SLOT, dev.clone()).map_err(|_| "slot taken".to_string())?;
        let mut mmio = Bus::new_mmio();
        let window = BarWindow::new(dev, BAR_INDEX);
        mmio.insert(BAR, BAR_SIZE, Arc::new(Mutex::new(window))).map_err(|_| "MMIO range taken".to_string())?;
        let tap = Backend::default();
        let worker = NetWorker::new(shared.clone(), mem.clone(), tap.clone());
        let mut r = Self { root, mmio, mem, shared, tap, worker, pci_cfg: 0, msix: 0 };
        let mut at = r.cfg_read(0x34, 1) as u16;
        for _ in 0..16 {
            match r.cfg_read(at, 1) {
                0x11 => r.msix = at,
                0x09 if r.cfg_read(at + 3, 1) == 5 => r.pci_cfg = at,
                _ => {}
            }
            at = r.cfg_read(at + 1, 1) as u16;
        }
        if r.msix == 0 || r.pci_cfg == 0 {
            return Err("the MSI-X or PCI-config capability is missing".into());
        }
        Ok(r)
    }

    fn cfg_addr(&mut self, off: u16) {
        let a = 0x8000_0000u32 | (u32::from(SLOT) << 11) | u32::from(off & 0xFC);
        self.root.write(0, &a.to_le_bytes());
    }
    fn cfg_read(&mut self, off: u16, len: usize) -> u32 {
        self.cfg_addr(off);
        let mut b = [0u8; 4];
        self.root.read(4 + u64::from(off & 3), b.get_mut(..len).unwrap_or_default());
        u32::from_le_bytes(b)
    }
    fn cfg_write(&mut self, off: u16, len: usize, v: u32) {
        self.cfg_addr(off);
        self.root.write(4 + u64::from(off & 3), v.to_le_bytes().get(..len).unwrap_or_default());
    }
    fn bar_read(&self, off: u64, len: usize) -> u64 {
        let mut b = [0u8; 16];
        self.mmio.read(BAR.wrapping_add(off), b.get_mut(..len).unwrap_or_default());
        b.first_chunk::<8>().map_or(0, |w| u64::from_le_bytes(*w))
    }
    fn bar_write(&self, off: u64, len: usize, v: u64) {
        let mut b = [0u8; 16];
        if let Some(w) = b.first_chunk_mut::<8>() {
            *w = v.to_le_bytes();
        }
        self.mmio.write(BAR.wrapping_add(off), b.get(..len).unwrap_or_default());
    }
    fn status(&self) -> u8 {
        self.bar_read(0x14, 1) as u8
    }

    fn step(&mut self, i: &mut Input, st: &mut Stats) -> Result<(), String> {
        match i.u8() % 16 {
            0 => self.bar_write(0x14, 1, u64::from(i.u8())),
            1 => self.negotiate(i.u(8)),
            2 | 3 => {
                // Any width at any offset of a region: common, ISR, device, notify, MSI-X table, PBA, outside.
                let region = [0u64, 0x1000, 0x2000, 0x3000, 0x3800, 0x3C00, 0x4000, 0].get(usize::from(i.u8() % 8)).copied().unwrap_or(0);
                let (off, w, len, v) = (region + u64::from(i.u8() % 0x80), i.u8(), i.width(), i.u(8));
                match w & 1 {
                    0 => self.bar_write(off, len, v),
                    _ => _ = self.bar_read(off, len),
                }
            }
            4 => {
                let (off, len, v) = (u16::from(i.u8()), 1 << (i.u8() % 3), i.u(4) as u32);
                match v & 1 {
                    0 => self.cfg_write(off, len, v),
                    _ => _ = self.cfg_read(off, len),
                }
            }
            5 => {
                // The VIRTIO_PCI_CAP_PCI_CFG window: bar, offset, length, then the data.
                let (bar, off, len, w, v) = (i.u8() % 3, u32::from(i.u16()) % 0x4000, 1 + u32::from(i.u8() % 4), i.u8(), i.u(4) as u32);
                for (at, v) in [(4, u32::from(bar)), (8, off), (12, len)] {
                    self.cfg_write(self.pci_cfg + at, if at == 4 { 1 } else { 4 }, v);
                }
                match w & 1 {
                    0 => self.cfg_write(self.pci_cfg + 16, len.min(4) as usize, v),
                    _ => _ = self.cfg_read(self.pci_cfg + 16, 4),
                }
            }
            6 => {
                let (q, size) = (u64::from(i.u8() % 3), match i.u8() { s if s < 0x80 => 1 << (s % 10), s => u64::from(s) << 1 });
                let (rings, vector, how) = ([i.addr(), i.addr(), i.addr()], i.u16() % 4, i.u8());
                self.setup_queue(q, size, rings, u64::from(vector), how & 1 != 0, how & 2 != 0);
            }
            7 => {
                let (target, idx, addr, len, flags, next) = (i.u8(), i.u16() % 512, i.addr(), i.length(), u16::from(i.u8() & 7), u16::from(i.u8()));
                let table = match self.ring(usize::from(target % 2)) {
                    Some((desc, _, _, _)) if target & 2 == 0 => desc,
                    _ => i.addr(), // an indirect table, or anywhere
                };
                self.put_desc(table, idx, addr, len, flags, next);
            }
            8 => {
                let (q, head) = (usize::from(i.u8() % 2), i.u16());
                match self.ring(q) {
                    Some((_, avail, _, _)) if head & 0x8000 != 0 => drop(self.mem.write_obj(head & 0x7FFF, GuestAddress(avail.wrapping_add(2)))),
                    _ => self.publish(q, head % 300),
                }
            }
            9 => {
                let (addr, n) = (i.addr(), usize::from(i.u8() % 64));
                let _ = self.mem.write_slice(i.bytes(n), GuestAddress(addr));
            }
            10 => self.bar_write(0x3000 + u64::from(i.u8() % 8) * 4, 2, u64::from(i.u8())),
            11 => {
                let (burst, kind) = (i.u8(), i.u8());
                let len = match kind % 4 {
                    0 => usize::from(i.u8()),
                    1 => 26 + usize::from(i.u16() % 1600),
                    2 => VNET_HDR_LEN + usize::from(i.u16()),
                    _ => MAX_FRAME + usize::from(i.u8()),
                };
                let p = Pending(len, [i.u8(), i.u8()], kind);
                let mut t = lock(&self.tap.0)?;
                let n = if burst & 0x80 != 0 { 1 + usize::from(burst & 0x7F) } else { 1 };
                let room = MAX_INBOUND.saturating_sub(t.inbound.len());
                t.inbound.extend(std::iter::repeat_n(p, n.min(room)));
            }
            12 | 13 => {
                for _ in 0..=i.u8() % 3 {
                    self.pass(st)?;
                }
            }
            14 => {
                let (f, size, slots) = (i.u(8), 1u64 << (i.u8() % 9), i.u8());
                self.bring_up((f & self.device_features()) | VIRTIO_F_VERSION_1, size, slots, slots & 0x40 != 0);
            }
            _ => {
                // A well-formed chain: a tx frame or rx buffers, in 1 to 4 pieces.
                let (q, n, len, m) = (usize::from(i.u8() % 2), 1 + u64::from(i.u8() % 4), 26 + u64::from(i.u16() % 3000), i.u8());
                let (piece, base) = (len.div_ceil(n), BUFS + 0x1000 * u64::from(m % 16));
                let mut frame = vec![m; len as usize];
                frame.iter_mut().take(VNET_HDR_LEN).for_each(|b| *b = 0);
                let _ = self.mem.write_slice(&frame, GuestAddress(base));
                let bufs: Vec<_> = (0..n).map(|k| (base + k * piece, piece.min(len.saturating_sub(k * piece)) as u32)).collect();
                self.post(q, &bufs);
            }
        }
        Ok(())
    }

    fn device_features(&self) -> u64 {
        self.bar_write(0, 4, 0);
        let lo = self.bar_read(4, 4);
        self.bar_write(0, 4, 1);
        lo | (self.bar_read(4, 4) << 32)
    }

    fn negotiate(&self, features: u64) {
        self.bar_write(0x14, 1, 1);
        self.bar_write(0x14, 1, 3);
        for (sel, word) in [(0, features & 0xFFFF_FFFF), (1, features >> 32)] {
            self.bar_write(0x08, 4, sel);
            self.bar_write(0x0C, 4, word);
        }
        self.bar_write(0x14, 1, 0xB);
    }

    /// Select, size, vector, ring addresses (64-bit or two halves), enable.
    fn setup_queue(&self, q: u64, size: u64, rings: [u64; 3], vector: u64, halves: bool, enable: bool) {
        for (off, len, v) in [(0x16, 2, q), (0x18, 2, size), (0x1A, 2, vector)] {
            self.bar_write(off, len, v);
        }
        for (off, v) in [0x20, 0x28, 0x30].into_iter().zip(rings) {
            match halves {
                true => [(off, v & 0xFFFF_FFFF), (off + 4, v >> 32)].into_iter().for_each(|(o, h)| self.bar_write(o, 4, h)),
                false => self.bar_write(off, 8, v),
            }
        }
        if enable {
            self.bar_write(0x1C, 2, 1);
        }
    }

    /// Reset, features, both queues of `size` in ring slots (zeroed), DRIVER_OK.
    fn bring_up(&mut self, features: u64, size: u64, slots: u8, msix: bool) {
        self.bar_write(0x14, 1, 0);
        self.negotiate(features);
        if msix {
            self.cfg_write(self.msix + 2, 2, 0x8000);
        }
        for q in 0..2 {
            let base = 0x2000 * u64::from((slots >> (3 * q)) & 7);
            let _ = self.mem.write_slice(&[0u8; 0x2000], GuestAddress(base));
            let rings = [base, base + 16 * size, base + 0x1400];
            self.setup_queue(q, size, rings, q + 1, q == 0, true);
        }
        self.bar_write(0x14, 1, 0xF);
    }

    /// (desc, avail, used, size) of queue `q` as the driver set them.
    fn ring(&self, q: usize) -> Option<(u64, u64, u64, u16)> {
        let mut st = self.shared.state.lock().ok()?;
        let s = st.queue_mut(q)?;
        Some((s.queue.desc_table(), s.queue.avail_ring(), s.queue.used_ring(), s.queue.size()))
    }

    fn put_desc(&self, table: u64, idx: u16, addr: u64, len: u32, flags: u16, next: u16) {
        let raw = [&addr.to_le_bytes()[..], &len.to_le_bytes(), &flags.to_le_bytes(), &next.to_le_bytes()].concat();
        let _ = self.mem.write_slice(&raw, GuestAddress(table.wrapping_add(16 * u64::from(idx))));
    }

    fn publish(&self, q: usize, head: u16) {
        let Some((_, avail, _, size)) = self.ring(q) else { return };
        let idx: u16 = self.mem.read_obj(GuestAddress(avail.wrapping_add(2))).unwrap_or(0);
        let slot = avail.wrapping_add(4 + 2 * u64::from(idx % size.max(1)));
        let _ = self.mem.write_obj(head, GuestAddress(slot));
        let _ = self.mem.write_obj(idx.wrapping_add(1), GuestAddress(avail.wrapping_add(2)));
    }

    /// Posts a chain of (addr, len) at the next free descriptors (from the avail index).
    fn post(&self, q: usize, bufs: &[(u64, u32)]) -> u16 {
        let Some((desc, avail, _, size)) = self.ring(q) else { return 0 };
        let size = size.max(1);
        let idx: u16 = self.mem.read_obj(GuestAddress(avail.wrapping_add(2))).unwrap_or(0);
        let head = idx.wrapping_mul(4) % size;
        for (k, &(addr, len)) in bufs.iter().enumerate() {
            let at = (head + k as u16) % size;
            let flags = if k + 1 < bufs.len() { 1 } else { 0 } | if q == 0 { 2 } else { 0 };
            self.put_desc(desc, at, addr, len, flags, (at + 1) % size);
        }
        self.publish(q, head);
        head
    }

    /// (status, each queue's next_used and size, any queue stopped, driver features)
    fn snapshot(&self) -> Result<Snapshot, String> {
        let mut s = lock(&self.shared.state)?;
        let mut q = [(0u16, 0u16); 2];
        let mut broken = false;
        for (i, e) in q.iter_mut().enumerate() {
            if let Some(slot) = s.queue_mut(i) {
                *e = (slot.queue.next_used(), slot.queue.size());
                broken |= slot.broken;
            }
        }
        Ok((s.status(), q, broken, s.driver_features()))
    }

    fn pass(&mut self, st: &mut Stats) -> Result<(), String> {
        let (status0, used0, _, _) = self.snapshot()?;
        let (reads0, writes0) = lock(&self.tap.0).map(|t| (t.reads, t.writes))?;
        self.worker.pass();
        st.passes += 1;
        let (status1, used1, broken, features) = self.snapshot()?;
        let t = lock(&self.tap.0)?;
        if let Some(v) = &t.violation {
            return Err(v.clone());
        }
        let (reads, writes) = (t.reads - reads0, t.writes - writes0);
        if reads > PASS_LIMIT || writes > PASS_LIMIT {
            return Err(format!("one pass read {reads} and wrote {writes} frames"));
        }
        for ((n0, _), (n1, size)) in used0.into_iter().zip(used1) {
            let moved = n1.wrapping_sub(n0);
            st.used += u64::from(moved);
            if u64::from(moved) > u64::from(size).min(PASS_LIMIT) {
                return Err(format!("a used index moved by {moved} in one pass (queue size {size})"));
            }
            if status0 & status::DEVICE_NEEDS_RESET != 0 && (moved != 0 || reads + writes != 0) {
                return Err("a device that needs a reset went on working".into());
            }
        }
        let needs_reset = status1 & status::DEVICE_NEEDS_RESET != 0;
        st.needs_reset += usize::from(needs_reset && status0 & status::DEVICE_NEEDS_RESET == 0);
        if broken && !needs_reset {
            return Err("a queue stopped without DEVICE_NEEDS_RESET".into());
        }
        let want = RxOffloads::from_features(features);
        if status1 & status::DRIVER_OK != 0 && !needs_reset && t.offloads != Some(want) {
            return Err(format!("live with features {features:#x} but the tap has offloads {:?}, not {want:?}", t.offloads));
        }
        Ok(())
    }

    /// A reset and a clean setup: one frame must go each way.
    fn recover(&mut self) -> Result<(), String> {
        let st = &mut Stats::default();
        self.cfg_write(0x04, 2, 0x6);
        self.bar_write(0x14, 1, 0);
        if self.status() != 0 {
            return Err("status did not read 0 after a reset".into());
        }
        self.bring_up(BASIC, 16, 0o21, false);
        if self.status() != 0xF {
            return Err(format!("a clean bring-up left status {:#x}", self.status()));
        }
        lock(&self.tap.0)?.inbound.clear();
        let tx = BUFS + 0x8000;
        let tx_frame: Vec<u8> = (0..VNET_HDR_LEN + 60).map(|k| if k < VNET_HDR_LEN { 0 } else { k as u8 ^ 0x5A }).collect();
        self.mem.write_slice(&tx_frame, GuestAddress(tx)).map_err(|e| e.to_string())?;
        self.post(1, &[(tx, 20), (tx + 20, tx_frame.len() as u32 - 20)]);
        for k in 0..3 {
            self.post(0, &[(BUFS + 0x9000 + 0x800 * k, 0x800)]);
        }
        let marker = Pending(VNET_HDR_LEN + 100, [0, 0], 0xC3);
        let mut want = vec![0u8; marker.0];
        marker.fill(&mut want);
        if let Some(n) = want.get_mut(10) {
            *n = 1; // num_buffers
        }
        lock(&self.tap.0)?.inbound.push_back(marker);
        for _ in 0..3 {
            self.pass(st)?;
        }
        if lock(&self.tap.0)?.last_sent != tx_frame {
            return Err("after a reset and a clean setup, the tx frame did not reach the tap".into());
        }
        let Some((desc, _, used, _)) = self.ring(0) else { return Err("no rx queue".into()) };
        let n: u16 = self.mem.read_obj(GuestAddress(used + 2)).map_err(|e| e.to_string())?;
        let got = (0..n.min(16)).any(|k| {
            let read = |at: u64| self.mem.read_obj::<u32>(GuestAddress(at)).unwrap_or(99);
            let (id, len) = (read(used + 4 + 8 * u64::from(k)), read(used + 8 + 8 * u64::from(k)));
            let addr = self.mem.read_obj::<u64>(GuestAddress(desc + 16 * u64::from(id))).unwrap_or(0);
            let mut buf = vec![0u8; want.len()];
            len as usize == want.len() && self.mem.read_slice(&mut buf, GuestAddress(addr)).is_ok() && buf == want
        });
        if !got {
            return Err(format!("after a reset and a clean setup, the rx frame did not reach the guest ({n} used)"));
        }
        Ok(())
    }
}
