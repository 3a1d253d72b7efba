//! Grant tables, version 1 (`public/grant_table.h`; semantics of Xen's
//! `common/grant_table.c`).
//!
//! The table is an array of 8-byte [`GrantEntryV1`] in host pages
//! ([`SharedPage`]) that the guest maps with
//! `XENMEM_add_to_physmap(XENMAPSPACE_grant_table)`. Frame 0 exists from domain
//! creation (Xen's `INITIAL_NR_GRANT_FRAMES`); further frames are allocated when
//! the table grows, up to `max_frames`, and stay allocated for the domain's life
//! because the accelerator maps their host addresses.
//!
//! The VMM's PV backends play domain 0 ([`BACKEND_DOMID`]): they read entries
//! granted to domain 0 and mark them in use with Xen's protocol, a
//! compare-and-exchange of the entry's first 32 bits (`flags` and `domid`)
//! setting `GTF_reading`/`GTF_writing`, retried a bounded number of times
//! because vCPUs change the entry concurrently. Pin counts live here, outside
//! guest memory, like Xen's active entries; the frame is snapshotted on the
//! first pin and re-checked when a read pin is upgraded to a write pin.
//!
//! The `grant_table_op` hypercall is in [`ops`].

mod ops;

pub use ops::MAX_BATCH;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU16, AtomicU32, Ordering};
use std::sync::Arc;

use vm_memory::{Bytes, VolatileMemory};
use xenkvm_xen_abi::errno::XenErrno;
use xenkvm_xen_abi::grant_table::*;

use crate::domain::Domain;
use crate::page::{AllocPageError, SharedPage, PAGE_SIZE};
use crate::phys::PhysMem;

/// The domain id the VMM's backends act as (QEMU's `DOMID_QEMU`).
pub const BACKEND_DOMID: u16 = 0;
/// Default for `max_frames` (Xen's `gnttab_max_frames`, QEMU's `xen-gnttab-max-frames`).
pub const DEFAULT_MAX_FRAMES: u32 = 64;
/// Version-1 entries per 4 KiB frame.
pub const ENTRIES_PER_FRAME: u32 = 512;
const ENTRY_SIZE: usize = 8;
/// Compare-and-exchange attempts on a guest-writable entry before giving up
/// (Xen: "retries++ == 4").
const CAS_ATTEMPTS: u32 = 5;

/// Why a grant cannot be used; [`GrantError::status`] is the `GNTST_*` code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum GrantError {
    #[error("grant reference beyond the table")]
    BadGntref,
    #[error("grant entry does not permit this access (type, grantee, read-only) or is unstable")]
    GeneralError,
    #[error("granted frame is not guest memory")]
    BadPage,
    #[error("access beyond the granted page")]
    BadCopyArg,
    #[error("grant is not in use with this access")]
    BadHandle,
    #[error("frame number does not fit a version-1 entry")]
    AddressTooBig,
}

impl GrantError {
    /// The `GNTST_*` status Xen reports for this error.
    pub fn status(self) -> i16 {
        match self {
            Self::BadGntref => GNTST_BAD_GNTREF,
            Self::GeneralError => GNTST_GENERAL_ERROR,
            Self::BadPage => GNTST_BAD_PAGE,
            Self::BadCopyArg => GNTST_BAD_COPY_ARG,
            Self::BadHandle => GNTST_BAD_HANDLE,
            Self::AddressTooBig => GNTST_ADDRESS_TOO_BIG,
        }
    }
}

/// The access a backend asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrantAccess {
    Read,
    Write,
}

impl GrantAccess {
    fn readonly(self) -> bool {
        self == Self::Read
    }
}

/// Pins on one entry (Xen's `active_grant_entry`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Active {
    /// The grantee that holds the pins.
    domid: u16,
    readers: u32,
    writers: u32,
    /// Frame snapshotted at the first pin.
    gfn: u64,
}

/// One domain's grant table.
#[derive(Debug)]
pub struct GrantTable {
    max_frames: u32,
    frames: Vec<Arc<SharedPage>>,
    /// Where each frame is mapped in the guest-physical space.
    gfns: Vec<Option<u64>>,
    active: BTreeMap<u32, Active>,
    /// Whether the unsupported self-mapping has been logged.
    warned_self_map: bool,
}

impl GrantTable {
    /// A table of one frame that may grow to `max_frames` (at least 1).
    pub fn new(max_frames: u32) -> Result<Self, AllocPageError> {
        let mut table = Self {
            max_frames: max_frames.max(1),
            frames: Vec::new(),
            gfns: Vec::new(),
            active: BTreeMap::new(),
            warned_self_map: false,
        };
        table.grow(1)?;
        Ok(table)
    }

    pub fn max_frames(&self) -> u32 {
        self.max_frames
    }

    /// Frames in the table now.
    pub fn nr_frames(&self) -> u32 {
        u32::try_from(self.frames.len()).unwrap_or(u32::MAX)
    }

    /// Valid grant references are below this.
    pub fn nr_entries(&self) -> u32 {
        self.nr_frames().saturating_mul(ENTRIES_PER_FRAME)
    }

    /// Grows the table to `n` frames (callers check `n <= max_frames`).
    fn grow(&mut self, n: u32) -> Result<(), AllocPageError> {
        while self.nr_frames() < n.min(self.max_frames) {
            self.frames.push(Arc::new(SharedPage::new()?));
            self.gfns.push(None);
        }
        Ok(())
    }

    /// Host page of frame `idx`.
    pub fn frame(&self, idx: u32) -> Option<&Arc<SharedPage>> {
        self.frames.get(idx as usize)
    }

    /// Guest frame where frame `idx` is mapped.
    pub fn frame_gfn(&self, idx: u32) -> Option<u64> {
        self.gfns.get(idx as usize).copied().flatten()
    }

    /// Forgets a mapping at `gfn` that something else has replaced.
    fn unhook_gfn(&mut self, gfn: u64) {
        for slot in self.gfns.iter_mut().filter(|g| **g == Some(gfn)) {
            *slot = None;
        }
    }

    /// The page and byte offset of entry `gref`.
    fn slot(&self, gref: u32) -> Option<(&SharedPage, usize)> {
        if gref >= self.nr_entries() {
            return None;
        }
        let page = self.frames.get((gref / ENTRIES_PER_FRAME) as usize)?;
        Some((page, (gref % ENTRIES_PER_FRAME) as usize * ENTRY_SIZE))
    }

    /// A snapshot of entry `gref` (one 64-bit load).
    pub fn entry(&self, gref: u32) -> Option<GrantEntryV1> {
        let (page, off) = self.slot(gref)?;
        let raw = page.load_u64(off);
        Some(GrantEntryV1 { flags: raw as u16, domid: (raw >> 16) as u16, frame: (raw >> 32) as u32 })
    }

    fn raw(&self, gref: u32) -> Option<u64> {
        self.slot(gref).map(|(page, off)| page.load_u64(off))
    }

    fn store_raw(&self, gref: u32, raw: u64) {
        if let Some((page, off)) = self.slot(gref) {
            let _ = page.volatile().store(raw, off, Ordering::Release);
        }
    }

    /// Runs `f` on the `flags`+`domid` word of entry `gref` (compare-and-exchange).
    fn with_header<R>(&self, gref: u32, f: impl FnOnce(&AtomicU32) -> R) -> Option<R> {
        let (page, off) = self.slot(gref)?;
        page.volatile().get_atomic_ref::<AtomicU32>(off).ok().map(f)
    }

    /// Runs `f` on the `flags` half-word of entry `gref` (Xen's `lock andw`).
    fn with_flags<R>(&self, gref: u32, f: impl FnOnce(&AtomicU16) -> R) -> Option<R> {
        let (page, off) = self.slot(gref)?;
        page.volatile().get_atomic_ref::<AtomicU16>(off).ok().map(f)
    }

    /// Whether anyone holds a pin on `gref`.
    pub fn in_use(&self, gref: u32) -> bool {
        self.active.contains_key(&gref)
    }

    /// Xen's `_set_status_v1`: validates the entry for `ldom` (unless already
    /// pinned) and sets `GTF_reading` (and `GTF_writing`) atomically.
    fn set_status(&self, gref: u32, ldom: u16, readonly: bool, map: bool, pinned: bool) -> Result<(), GrantError> {
        let mask = if map { GTF_TYPE_MASK | GTF_SUB_PAGE } else { GTF_TYPE_MASK };
        let attempt = |word: &AtomicU32| {
            let mut cur = word.load(Ordering::Acquire);
            for _ in 0..CAS_ATTEMPTS {
                let (flags, domid) = (cur as u16, (cur >> 16) as u16);
                if !pinned && (flags & mask != GTF_PERMIT_ACCESS || domid != ldom) {
                    return Err(GrantError::GeneralError);
                }
                let mut new = flags | GTF_READING;
                if !readonly {
                    if flags & GTF_READONLY != 0 {
                        return Err(GrantError::GeneralError);
                    }
                    new |= GTF_WRITING;
                }
                let new = (cur & 0xFFFF_0000) | u32::from(new);
                match word.compare_exchange(cur, new, Ordering::AcqRel, Ordering::Acquire) {
                    Ok(_) => return Ok(()),
                    Err(seen) => cur = seen,
                }
            }
            tracing::debug!("grant entry {gref:#x} is unstable");
            Err(GrantError::GeneralError)
        };
        self.with_header(gref, attempt).unwrap_or(Err(GrantError::BadGntref))
    }

    /// Xen's `reduce_status_for_pin`: clears the in-use flags no pin needs.
    fn reduce_status(&self, gref: u32, act: Option<&Active>) {
        let (readers, writers) = act.map_or((0, 0), |a| (a.readers, a.writers));
        let mut clear = 0;
        if writers == 0 {
            clear |= GTF_WRITING;
        }
        if readers == 0 && writers == 0 {
            clear |= GTF_READING;
        }
        if clear != 0 {
            self.with_flags(gref, |flags| flags.fetch_and(!clear, Ordering::AcqRel));
        }
    }

    /// Pins `gref` for grantee `ldom` (Xen's `acquire_grant_for_copy` for a
    /// version-1 entry; `map` also refuses `GTF_sub_page`). Returns the frame.
    fn acquire(&mut self, mem: &PhysMem, gref: u32, ldom: u16, readonly: bool, map: bool) -> Result<u64, GrantError> {
        if gref >= self.nr_entries() {
            return Err(GrantError::BadGntref);
        }
        let old = self.active.get(&gref).copied();
        if let Some(a) = old {
            let count = if readonly { a.readers } else { a.writers };
            if a.domid != ldom || count == u32::MAX {
                return Err(GrantError::GeneralError);
            }
        }
        let gfn = match old {
            Some(a) if readonly || a.writers > 0 => a.gfn,
            _ => {
                self.set_status(gref, ldom, readonly, map, old.is_some())?;
                let gfn = self.entry(gref).map_or(0, |e| u64::from(e.frame));
                let err = if !backed(mem, gfn) {
                    Some(GrantError::BadPage)
                } else if old.is_some_and(|a| a.gfn != gfn) {
                    Some(GrantError::GeneralError)
                } else {
                    None
                };
                if let Some(err) = err {
                    self.reduce_status(gref, old.as_ref());
                    return Err(err);
                }
                gfn
            }
        };
        let a = self.active.entry(gref).or_insert(Active { domid: ldom, readers: 0, writers: 0, gfn });
        if readonly {
            a.readers += 1;
        } else {
            a.writers += 1;
        }
        Ok(gfn)
    }

    /// Drops one pin taken by [`Self::acquire`] (Xen's `release_grant_for_copy`).
    fn release(&mut self, gref: u32, readonly: bool) -> Result<(), GrantError> {
        let a = self.active.get_mut(&gref).ok_or(GrantError::BadHandle)?;
        let count = if readonly { &mut a.readers } else { &mut a.writers };
        *count = count.checked_sub(1).ok_or(GrantError::BadHandle)?;
        let snapshot = *a;
        if snapshot.readers == 0 && snapshot.writers == 0 {
            self.active.remove(&gref);
        }
        self.reduce_status(gref, Some(&snapshot));
        Ok(())
    }
}

/// Whether guest frame `gfn` is RAM or an overlay page (Xen's `get_paged_frame`).
fn backed(mem: &PhysMem, gfn: u64) -> bool {
    let mut probe = [0u8; 1];
    gfn.checked_mul(PAGE_SIZE as u64).is_some_and(|gpa| mem.read_in_page(gpa, &mut probe).is_ok())
}

/// Checks that `len` bytes at `offset` stay in one page.
fn in_page(offset: usize, len: usize) -> Result<u64, GrantError> {
    match offset.checked_add(len) {
        Some(end) if end <= PAGE_SIZE => Ok(offset as u64),
        _ => Err(GrantError::BadCopyArg),
    }
}

/// The API of the VMM's PV backends, which act as domain 0.
impl Domain {
    /// The grant table (size, frames and where they are mapped).
    pub fn grant_table(&self) -> &GrantTable {
        &self.gnttab
    }

    /// A snapshot of entry `gref`, or `None` beyond the table.
    pub fn grant_entry(&self, gref: u32) -> Option<GrantEntryV1> {
        self.gnttab.entry(gref)
    }

    /// Whether entry `gref` grants `access` to the backends, without pinning it.
    /// Returns the granted guest frame.
    pub fn grant_check(&self, gref: u32, access: GrantAccess) -> Result<u64, GrantError> {
        let e = self.gnttab.entry(gref).ok_or(GrantError::BadGntref)?;
        if e.flags & (GTF_TYPE_MASK | GTF_SUB_PAGE) != GTF_PERMIT_ACCESS || e.domid != BACKEND_DOMID {
            return Err(GrantError::GeneralError);
        }
        if !access.readonly() && e.flags & GTF_READONLY != 0 {
            return Err(GrantError::GeneralError);
        }
        let gfn = u64::from(e.frame);
        backed(&self.mem, gfn).then_some(gfn).ok_or(GrantError::BadPage)
    }

    /// Marks `gref` in use by the backends (`GTF_reading`, plus `GTF_writing`
    /// for [`GrantAccess::Write`]) and returns the guest frame it names. The
    /// frame stays the same until every pin is dropped with [`Self::grant_unmap`].
    pub fn grant_map(&mut self, gref: u32, access: GrantAccess) -> Result<u64, GrantError> {
        self.gnttab.acquire(&self.mem, gref, BACKEND_DOMID, access.readonly(), true)
    }

    /// Drops one pin taken by [`Self::grant_map`] with the same access; clears
    /// the in-use flags when no pin needs them. `BadHandle` if there is none.
    pub fn grant_unmap(&mut self, gref: u32, access: GrantAccess) -> Result<(), GrantError> {
        self.gnttab.release(gref, access.readonly())
    }

    /// Copies `buf.len()` bytes at `offset` of the frame granted by `gref` into
    /// `buf` (a `GNTTABOP_copy` with the grant as source).
    pub fn grant_read(&mut self, gref: u32, offset: usize, buf: &mut [u8]) -> Result<(), GrantError> {
        let off = in_page(offset, buf.len())?;
        let gfn = self.gnttab.acquire(&self.mem, gref, BACKEND_DOMID, true, false)?;
        let res = self.mem.read_in_page(gfn * PAGE_SIZE as u64 + off, buf).map_err(|_| GrantError::BadPage);
        self.gnttab.release(gref, true)?;
        res
    }

    /// Copies `buf` to `offset` of the frame granted writable by `gref`.
    pub fn grant_write(&mut self, gref: u32, offset: usize, buf: &[u8]) -> Result<(), GrantError> {
        let off = in_page(offset, buf.len())?;
        let gfn = self.gnttab.acquire(&self.mem, gref, BACKEND_DOMID, false, false)?;
        let res = self.mem.write_in_page(gfn * PAGE_SIZE as u64 + off, buf).map_err(|_| GrantError::BadPage);
        self.gnttab.release(gref, false)?;
        res
    }

    /// Fills the reserved entries as the toolstack does before the guest boots
    /// (`xc_dom_gnttab_seed`): `GNTTAB_RESERVED_CONSOLE` and
    /// `GNTTAB_RESERVED_XENSTORE` grant the rings to the backends, writable. An
    /// absent page leaves its entry invalid.
    pub fn seed_reserved(&mut self, console_gfn: Option<u64>, store_gfn: Option<u64>) -> Result<(), GrantError> {
        for (gref, gfn) in [(GNTTAB_RESERVED_CONSOLE, console_gfn), (GNTTAB_RESERVED_XENSTORE, store_gfn)] {
            let raw = match gfn {
                None => 0,
                Some(gfn) => {
                    let frame = u32::try_from(gfn).map_err(|_| GrantError::AddressTooBig)?;
                    u64::from(frame) << 32 | u64::from(BACKEND_DOMID) << 16 | u64::from(GTF_PERMIT_ACCESS)
                }
            };
            self.gnttab.store_raw(gref, raw);
        }
        Ok(())
    }

    /// `XENMEM_add_to_physmap(XENMAPSPACE_grant_table, idx, gfn)`: grows the table
    /// to `idx + 1` frames if needed and shows frame `idx` at `gfn`, moving it if
    /// it was mapped elsewhere and unhooking any other special page at `gfn`
    /// (Xen's `xenmem_add_to_physmap_one`). Status frames (v2) do not exist.
    pub(crate) fn map_grant_frame(&mut self, idx: u64, gfn: u64) -> Result<i64, XenErrno> {
        let idx = u32::try_from(idx).ok().filter(|&i| i < self.gnttab.max_frames).ok_or(XenErrno::Einval)?;
        if gfn > self.cfg.max_gfn {
            return Err(XenErrno::Einval);
        }
        if let Err(e) = self.gnttab.grow(idx + 1) {
            tracing::warn!("{e}");
            return Err(XenErrno::Einval);
        }
        let page = self.gnttab.frame(idx).cloned().ok_or(XenErrno::Einval)?;
        let old = self.gnttab.frame_gfn(idx);
        if old == Some(gfn) {
            return Ok(0);
        }
        self.move_overlay_page(old, gfn, page)?;
        if let Some(slot) = self.gnttab.gfns.get_mut(idx as usize) {
            *slot = Some(gfn);
        }
        Ok(0)
    }

    /// Forgets whichever special page (shared_info, a grant frame) was mapped at
    /// `gfn`, because another overlay now takes its place.
    pub(crate) fn unhook_special_page(&mut self, gfn: u64) {
        if self.shared_info_gfn == Some(gfn) {
            self.shared_info_gfn = None;
        }
        self.gnttab.unhook_gfn(gfn);
    }
}
