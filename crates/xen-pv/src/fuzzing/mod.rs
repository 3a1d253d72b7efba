//! Fuzz harnesses of the PV backends, shared by the libFuzzer targets
//! (`fuzz/`: `blkif_ring`, `netif_ring`, `console_ring`) and the
//! deterministic replay test (`tests/fuzz_replay.rs`).
//!
//! Each `run` turns arbitrary bytes into a hostile frontend: a small guest
//! (1 MiB of RAM, a real Xen core with a 4-frame grant table in which almost
//! every entry is granted to domain 0) whose ring pages, request entries,
//! indirect pages, data pages and ring indices come from the input. After
//! every backend pass the harness checks its oracles and returns the first
//! violation as `Err`. See each module for its oracles.

pub mod blkif;
pub mod console;
pub mod netif;

use std::sync::{Arc, Mutex};

use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};
use xenkvm_xen_abi::grant_table::{GNTTABOP_SETUP_TABLE, GTF_PERMIT_ACCESS, GTF_READONLY};
use xenkvm_xen_abi::xen::{DOMID_SELF, HYPERVISOR_GRANT_TABLE_OP};
use xenkvm_xen_core::domain::Ports;
use xenkvm_xen_core::hypercall::{CpuMode, HypercallRegs};
use xenkvm_xen_core::page::SharedPage;
use xenkvm_xen_core::ports::{BackendNotify, CallbackLine, Clock, ConsoleSink, Physmap, PhysmapError, Upcall, UpcallVia};
use xenkvm_xen_core::{Domain, DomainConfig, HypercallRequest, Outcome, PagingState};

/// The guest's domain id.
pub const DOMID: u32 = 1;
/// Guest RAM: 256 frames.
pub const RAM_SIZE: usize = 1 << 20;
/// Grant-table frames (2048 entries).
pub const GRANT_FRAMES: u32 = 4;
/// Entries of the grant table.
pub const GRANT_ENTRIES: u32 = GRANT_FRAMES * 512;
/// Ring pages: `RING_GFN + 2 * i` (not contiguous), granted as `RING_REF + i`.
pub const RING_GFN: u64 = 0x10;
pub const RING_REF: u32 = 8;
/// Data and indirect pages: every other grant names one of these frames.
pub const DATA_GFN: u64 = 0x40;
pub const DATA_PAGES: u64 = 0x50;
/// A frame outside RAM, for grants that name nothing.
const NO_RAM_GFN: u64 = 0x1_0000;

/// A cursor over the fuzz input; reads past the end give zeros.
pub(crate) struct Input<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Input<'a> {
    pub(crate) fn new(data: &'a [u8]) -> Self {
        Self { data, pos: 0 }
    }
    pub(crate) fn done(&self) -> bool {
        self.pos >= self.data.len()
    }
    pub(crate) fn byte(&mut self) -> u8 {
        let b = self.data.get(self.pos).copied().unwrap_or(0);
        self.pos += 1;
        b
    }
    pub(crate) fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.byte(), self.byte()])
    }
    pub(crate) fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.byte(), self.byte(), self.byte(), self.byte()])
    }
    pub(crate) fn u64(&mut self) -> u64 {
        u64::from(self.u32()) | (u64::from(self.u32()) << 32)
    }
    pub(crate) fn bytes(&mut self, n: usize) -> &'a [u8] {
        let start = self.pos.min(self.data.len());
        let end = self.pos.saturating_add(n).min(self.data.len());
        self.pos = self.pos.saturating_add(n);
        self.data.get(start..end).unwrap_or(&[])
    }
}

/// Element `i` (modulo the length) of a non-empty table.
pub(crate) fn pick<T: Copy + Default>(table: &[T], i: u8) -> T {
    table.get(usize::from(i) % table.len().max(1)).copied().unwrap_or_default()
}

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

/// The guest: its domain (grant table, event channels) and RAM.
pub(crate) struct Guest {
    pub domain: Arc<Mutex<Domain>>,
    pub ram: GuestMemoryMmap<()>,
}

impl Guest {
    /// A guest with a grant table of [`GRANT_FRAMES`] frames whose entries
    /// are granted to domain 0: `RING_REF..RING_REF + 16` name the ring
    /// frames (writable), the others a data frame, some read-only, some not
    /// granted, some naming a frame outside RAM.
    pub(crate) fn new() -> Result<Self, String> {
        let ram = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), RAM_SIZE)]).map_err(|e| format!("RAM: {e}"))?;
        let cfg = DomainConfig {
            xen_version: 0x40011,
            domid: DOMID as u16,
            vcpus: 1,
            max_gfn: 0xf_ffff,
            handle: [1; 16],
            gnttab_max_frames: GRANT_FRAMES,
        };
        let f = Arc::new(Fakes);
        let ports = Ports { clock: f.clone(), console: f.clone(), physmap: f.clone(), upcall: f.clone(), backends: f };
        let mut d = Domain::new(cfg, ram.clone(), ports).map_err(|e| format!("domain: {e}"))?;
        // Grow the table as a guest does, with GNTTABOP_setup_table.
        let at: u64 = 0x1000;
        // struct gnttab_setup_table: dom, pad, nr_frames, status, pad, frame_list.
        let mut t = [0u8; 24];
        put(&mut t, 0, &DOMID_SELF.to_le_bytes());
        put(&mut t, 4, &GRANT_FRAMES.to_le_bytes());
        put(&mut t, 16, &(at + 64).to_le_bytes());
        ram.write_slice(&t, GuestAddress(at)).map_err(|e| format!("setup_table: {e}"))?;
        let regs = HypercallRegs {
            rax: HYPERVISOR_GRANT_TABLE_OP,
            rdi: u64::from(GNTTABOP_SETUP_TABLE),
            rsi: at,
            rdx: 1,
            ..Default::default()
        };
        let req = HypercallRequest::from_regs(0, &regs, CpuMode::Long64, 0, PagingState::flat());
        if d.hypercall(&req) != Outcome::Return(0) || d.grant_table().nr_frames() != GRANT_FRAMES {
            return Err("setup_table failed".into());
        }
        for gref in 0..GRANT_ENTRIES {
            let (gfn, flags) = if (RING_REF..RING_REF + 16).contains(&gref) {
                (RING_GFN + 2 * u64::from(gref - RING_REF), GTF_PERMIT_ACCESS)
            } else if gref % 13 == 0 {
                continue;
            } else if gref % 29 == 0 {
                (NO_RAM_GFN, GTF_PERMIT_ACCESS)
            } else {
                let ro = if gref % 7 == 0 { GTF_READONLY } else { 0 };
                (DATA_GFN + u64::from(gref) % DATA_PAGES, GTF_PERMIT_ACCESS | ro)
            };
            let Some(frame) = d.grant_table().frame(gref / 512) else { return Err(format!("grant frame {}", gref / 512)) };
            // Entry: flags, domid 0, frame.
            let raw = u64::from(flags) | (gfn << 32);
            frame.write((gref % 512) as usize * 8, &raw.to_le_bytes());
        }
        Ok(Self { domain: Arc::new(Mutex::new(d)), ram })
    }

    /// Grant references some pin holds now.
    pub(crate) fn grants_in_use(&self) -> Result<usize, String> {
        let d = self.domain.lock().map_err(|_| "domain lock poisoned".to_string())?;
        Ok((0..GRANT_ENTRIES).filter(|&g| d.grant_table().in_use(g)).count())
    }

    /// A guest port for a backend to bind.
    pub(crate) fn unbound_port(&self) -> Result<u32, String> {
        let mut d = self.domain.lock().map_err(|_| "domain lock poisoned".to_string())?;
        d.alloc_unbound_for_backend().map_err(|e| format!("alloc_unbound: {e:?}"))
    }

    pub(crate) fn write(&self, gpa: u64, bytes: &[u8]) {
        let _ = self.ram.write_slice(bytes, GuestAddress(gpa));
    }

    pub(crate) fn read(&self, gpa: u64, len: usize) -> Vec<u8> {
        let mut v = vec![0u8; len];
        let _ = self.ram.read_slice(&mut v, GuestAddress(gpa));
        v
    }

    pub(crate) fn write_u32(&self, gpa: u64, v: u32) {
        self.write(gpa, &v.to_le_bytes());
    }

    pub(crate) fn read_u32(&self, gpa: u64) -> u32 {
        let b = self.read(gpa, 4);
        u32::from_le_bytes([b.first().copied().unwrap_or(0), b.get(1).copied().unwrap_or(0), b.get(2).copied().unwrap_or(0), b.get(3).copied().unwrap_or(0)])
    }
}

/// A guest's view of a shared ring over `gfns`: where entry `idx` lives.
pub(crate) struct GuestRing {
    pub gfns: Vec<u64>,
    pub entry_size: usize,
    pub size: u32,
}

impl GuestRing {
    /// The guest-physical addresses of the bytes of entry `idx` (an entry
    /// may straddle two frames).
    fn addr(&self, idx: u32, within: usize) -> u64 {
        let off = crate::ring::RING_HEADER + (idx % self.size.max(1)) as usize * self.entry_size + within;
        let gfn = self.gfns.get(off / 4096).copied().unwrap_or(NO_RAM_GFN);
        (gfn << 12) + (off % 4096) as u64
    }

    pub(crate) fn write_entry(&self, g: &Guest, idx: u32, bytes: &[u8]) {
        for (i, b) in bytes.iter().take(self.entry_size).enumerate() {
            g.write(self.addr(idx, i), &[*b]);
        }
    }

    pub(crate) fn read_entry(&self, g: &Guest, idx: u32, len: usize) -> Vec<u8> {
        (0..len.min(self.entry_size)).map(|i| g.read(self.addr(idx, i), 1).first().copied().unwrap_or(0)).collect()
    }

    pub(crate) fn header(&self) -> u64 {
        self.gfns.first().copied().unwrap_or(NO_RAM_GFN) << 12
    }
}

/// Little-endian field readers for entries the harness built.
pub(crate) fn le_u16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b.get(at).copied().unwrap_or(0), b.get(at + 1).copied().unwrap_or(0)])
}

pub(crate) fn le_u64(b: &[u8], at: usize) -> u64 {
    let mut x = [0u8; 8];
    for (i, v) in x.iter_mut().enumerate() {
        *v = b.get(at + i).copied().unwrap_or(0);
    }
    u64::from_le_bytes(x)
}

/// Writes `v` at `at` of `b` (if it fits).
pub(crate) fn put(b: &mut [u8], at: usize, v: &[u8]) {
    if let Some(dst) = b.get_mut(at..at + v.len()) {
        dst.copy_from_slice(v);
    }
}
