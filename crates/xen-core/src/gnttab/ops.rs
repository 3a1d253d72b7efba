//! `HYPERVISOR_grant_table_op(cmd, uop, count)` for an unprivileged HVM guest,
//! following `do_grant_table_op` and `compat_grant_table_op` in Xen's
//! `common/grant_table.c` and `common/compat/grant_table.c`.
//!
//! Domains a guest can name: itself (`DOMID_SELF` or its id) and domain 0, the
//! VMM's backends, which exist but share no grant entries with the guest (their
//! table is empty) and refuse the guest the `XSM_TARGET` checks.
//!
//! Xen preempts long batches and continues them transparently; our transports
//! cannot re-enter a hypercall, so a batch of more than [`MAX_BATCH`] operations
//! is refused whole with -EINVAL (real guests batch at most a few hundred).

use xenkvm_xen_abi::errno::XenErrno;
use xenkvm_xen_abi::grant_table::*;
use xenkvm_xen_abi::xen::{DOMID_SELF, HYPERVISOR_GRANT_TABLE_OP};
use zerocopy::{FromBytes, Immutable, IntoBytes};

use super::{GrantTable, BACKEND_DOMID};
use crate::domain::Domain;
use crate::guest::GuestView;
use crate::hypercall::HypercallRequest;
use crate::page::PAGE_SIZE;

/// Most operations one batched sub-op processes.
pub const MAX_BATCH: u32 = 4096;
/// `setup_table` frames a compat guest can ask for: what fits the translation
/// area after the native record, `(COMPAT_ARG_XLAT_SIZE - 24) / 8`.
const COMPAT_SETUP_LIMIT: u32 = (2 * 4096 - 24) / 8;
/// `INVALID_GFN`: what `setup_table` reports for a frame not in the physmap.
const INVALID_GFN: u64 = u64::MAX;

/// A domain the guest named.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Dom {
    This,
    Backend,
}

impl Domain {
    pub(crate) fn grant_table_op(&mut self, req: &HypercallRequest) -> Result<i64, XenErrno> {
        // `unsigned int cmd, ..., unsigned int count`.
        let (cmd, uop, count) = (req.arg(0) as u32, req.arg(1), req.arg(2) as u32);
        if count > i32::MAX as u32 {
            return Err(XenErrno::Einval);
        }
        let op = cmd & GNTTABOP_CMD_MASK;
        if op != GNTTABOP_CACHE_FLUSH && cmd != op {
            return Err(XenErrno::Einval);
        }
        let batched = matches!(
            op,
            GNTTABOP_MAP_GRANT_REF | GNTTABOP_UNMAP_GRANT_REF | GNTTABOP_UNMAP_AND_REPLACE | GNTTABOP_COPY | GNTTABOP_SWAP_GRANT_REF
        );
        if batched && count > MAX_BATCH {
            return Err(XenErrno::Einval);
        }
        match op {
            GNTTABOP_MAP_GRANT_REF => self.each::<GnttabMapGrantRef>(req, uop, count, 18, |d, m| d.map_one(m)),
            // No mapping is ever created, so no handle is valid.
            GNTTABOP_UNMAP_GRANT_REF | GNTTABOP_UNMAP_AND_REPLACE => {
                self.each::<GnttabUnmapGrantRef>(req, uop, count, 20, |_, _| GNTST_BAD_HANDLE)
            }
            GNTTABOP_SETUP_TABLE => self.setup_table(req, uop, count),
            // Page ownership transfer is not supported: answer as Xen booted
            // with `gnttab=no-transfer` does.
            GNTTABOP_TRANSFER => Err(XenErrno::Eopnotsupp),
            GNTTABOP_COPY if req.compat() => self.each::<CompatGnttabCopy>(req, uop, count, 20, |d, c| d.copy_one(&(*c).into())),
            GNTTABOP_COPY => self.each::<GnttabCopy>(req, uop, count, 36, |d, c| d.copy_one(c)),
            GNTTABOP_QUERY_SIZE => self.query_size(req, uop, count),
            GNTTABOP_SET_VERSION => self.set_version(req, uop),
            GNTTABOP_GET_STATUS_FRAMES => self.get_status_frames(req, uop, count),
            GNTTABOP_GET_VERSION => self.get_version(req, uop),
            GNTTABOP_SWAP_GRANT_REF => self.each::<GnttabSwapGrantRef>(req, uop, count, 8, |d, s| d.swap_one(s.ref_a, s.ref_b)),
            _ => {
                // dump_table and cache_flush (Arm only) have no case in Xen either.
                self.report_unknown(HYPERVISOR_GRANT_TABLE_OP, op.into(), "grant_table_op sub-op");
                Err(XenErrno::Enosys)
            }
        }
    }

    /// Xen's `rcu_lock_domain_by_any_id`.
    fn lookup_any(&self, dom: u16) -> Option<Dom> {
        if dom == DOMID_SELF { Some(Dom::This) } else { self.lookup_id(dom) }
    }

    /// Xen's `rcu_lock_domain_by_id` (no `DOMID_SELF`).
    fn lookup_id(&self, dom: u16) -> Option<Dom> {
        match dom {
            d if d == self.cfg.domid => Some(Dom::This),
            BACKEND_DOMID => Some(Dom::Backend),
            _ => None,
        }
    }

    /// Runs `f` on each of `count` records at `uop`, writing its status at
    /// `status_at` in the record; stops with -EFAULT at the first record that
    /// cannot be read or updated (earlier ones stay done).
    fn each<T: FromBytes + IntoBytes>(
        &mut self,
        req: &HypercallRequest,
        uop: u64,
        count: u32,
        status_at: u64,
        mut f: impl FnMut(&mut Self, &T) -> i16,
    ) -> Result<i64, XenErrno> {
        let size = std::mem::size_of::<T>() as u64;
        for i in 0..u64::from(count) {
            let at = i.checked_mul(size).and_then(|o| uop.checked_add(o)).ok_or(XenErrno::Efault)?;
            let rec: T = GuestView::new(&self.mem, req.paging).read_obj(at)?;
            let status = f(self, &rec);
            GuestView::new(&self.mem, req.paging).write_obj(field(at, status_at)?, &status)?;
        }
        Ok(0)
    }

    /// `GNTTABOP_map_grant_ref`, one record. Foreign mappings into an HVM guest's
    /// physmap are not supported, so a valid self-mapping fails as a failed
    /// host mapping does in Xen.
    fn map_one(&mut self, op: &GnttabMapGrantRef) -> i16 {
        if op.flags & (GNTMAP_DEVICE_MAP | GNTMAP_HOST_MAP) == 0 {
            return GNTST_BAD_GNTREF;
        }
        if op.flags & (GNTMAP_DEVICE_MAP | GNTMAP_APPLICATION_MAP | GNTMAP_CONTAINS_PTE) != 0 {
            return GNTST_GENERAL_ERROR; // "No device mapping in HVM domain"
        }
        match self.lookup_id(op.dom) {
            None => GNTST_BAD_DOMAIN,
            Some(Dom::Backend) => GNTST_BAD_GNTREF,
            Some(Dom::This) if op.gref >= self.gnttab.nr_entries() => GNTST_BAD_GNTREF,
            Some(Dom::This) => {
                if !std::mem::replace(&mut self.gnttab.warned_self_map, true) {
                    tracing::warn!("guest mapped its own grant {:#x}: not supported", op.gref);
                }
                GNTST_GENERAL_ERROR
            }
        }
    }

    /// `GNTTABOP_copy`, one record (Xen's `gnttab_copy_one`).
    fn copy_one(&mut self, op: &GnttabCopy) -> i16 {
        if op.len == 0 {
            return GNTST_OKAY;
        }
        let src_gref = op.flags & GNTCOPY_SOURCE_GREF != 0;
        let dst_gref = op.flags & GNTCOPY_DEST_GREF != 0;
        let (src_dom, dst_dom) = match (self.copy_domain(&op.source, src_gref), self.copy_domain(&op.dest, dst_gref)) {
            (Err(s), _) | (_, Err(s)) => return s,
            (Ok(s), Ok(d)) => (s, d),
        };
        let src = match self.claim(&op.source, src_gref, src_dom, true) {
            Ok(gfn) => gfn,
            Err(s) => return s,
        };
        let status = match self.claim(&op.dest, dst_gref, dst_dom, false) {
            Err(s) => s,
            Ok(dst) => {
                let status = self.copy_bytes(op, src, dst);
                self.unclaim(&op.dest, dst_gref, false);
                status
            }
        };
        self.unclaim(&op.source, src_gref, true);
        status
    }

    /// Xen's `gnttab_copy_lock_domain`: only `DOMID_SELF` may name a frame.
    fn copy_domain(&self, ptr: &GnttabCopyPtr, is_gref: bool) -> Result<Dom, i16> {
        if ptr.domid != DOMID_SELF && !is_gref {
            return Err(GNTST_PERMISSION_DENIED);
        }
        self.lookup_any(ptr.domid).ok_or(GNTST_BAD_DOMAIN)
    }

    /// Xen's `gnttab_copy_claim_buf`: the frame one side of a copy names.
    fn claim(&mut self, ptr: &GnttabCopyPtr, is_gref: bool, dom: Dom, readonly: bool) -> Result<u64, i16> {
        match (is_gref, dom) {
            (true, Dom::Backend) => Err(GNTST_BAD_GNTREF),
            (true, Dom::This) => {
                let ldom = self.cfg.domid;
                self.gnttab.acquire(&self.mem, ptr.u as u32, ldom, readonly, false).map_err(|e| e.status())
            }
            (false, _) => super::backed(&self.mem, ptr.u).then_some(ptr.u).ok_or(GNTST_BAD_PAGE),
        }
    }

    fn unclaim(&mut self, ptr: &GnttabCopyPtr, is_gref: bool, readonly: bool) {
        if is_gref {
            let _ = self.gnttab.release(ptr.u as u32, readonly);
        }
    }

    /// Xen's `gnttab_copy_buf`: both ranges must stay in their page.
    fn copy_bytes(&self, op: &GnttabCopy, src: u64, dst: u64) -> i16 {
        let len = usize::from(op.len);
        if usize::from(op.source.offset) + len > PAGE_SIZE || usize::from(op.dest.offset) + len > PAGE_SIZE {
            return GNTST_BAD_COPY_ARG;
        }
        let mut buf = [0u8; PAGE_SIZE];
        let Some(buf) = buf.get_mut(..len) else { return GNTST_BAD_COPY_ARG };
        let page = PAGE_SIZE as u64;
        let ok = self.mem.read_in_page(src * page + u64::from(op.source.offset), buf).is_ok()
            && self.mem.write_in_page(dst * page + u64::from(op.dest.offset), buf).is_ok();
        if ok { GNTST_OKAY } else { GNTST_BAD_PAGE }
    }

    /// `GNTTABOP_swap_grant_ref`, one record, on the caller's own table.
    fn swap_one(&mut self, a: u32, b: u32) -> i16 {
        let t = &self.gnttab;
        if a >= t.nr_entries() || b >= t.nr_entries() {
            return GNTST_BAD_GNTREF;
        }
        if a == b {
            return GNTST_OKAY;
        }
        if t.in_use(a) || t.in_use(b) {
            return GNTST_EAGAIN;
        }
        if let (Some(ea), Some(eb)) = (t.raw(a), t.raw(b)) {
            t.store_raw(a, eb);
            t.store_raw(b, ea);
        }
        GNTST_OKAY
    }

    /// `GNTTABOP_setup_table`: grows the table and lists where its frames are
    /// mapped (`INVALID_GFN` for frames not in the physmap). Compat guests get
    /// 32-bit frame numbers, and `GNTST_address_too_big` for any that does not fit.
    fn setup_table(&mut self, req: &HypercallRequest, uop: u64, count: u32) -> Result<i64, XenErrno> {
        let compat = req.compat();
        match count {
            0 if compat => return Ok(0),
            1 => {}
            _ => return Err(XenErrno::Einval),
        }
        let view = GuestView::new(&self.mem, req.paging);
        let (dom, nr_frames, list) = if compat {
            let c: CompatGnttabSetupTable = view.read_obj(uop)?;
            (c.dom, c.nr_frames, u64::from(c.frame_list))
        } else {
            let n: GnttabSetupTable = view.read_obj(uop)?;
            (n.dom, n.nr_frames, n.frame_list)
        };
        let status = match self.lookup_any(dom) {
            None => GNTST_BAD_DOMAIN,
            Some(Dom::Backend) => GNTST_PERMISSION_DENIED,
            Some(Dom::This) => {
                let limit = if compat { COMPAT_SETUP_LIMIT } else { u32::MAX };
                self.gnttab.setup(&view, nr_frames, limit, list, compat)
            }
        };
        view.write_obj(field(uop, 8)?, &status)?;
        Ok(0)
    }

    /// `GNTTABOP_query_size`.
    fn query_size(&mut self, req: &HypercallRequest, uop: u64, count: u32) -> Result<i64, XenErrno> {
        if count != 1 {
            return Err(XenErrno::Einval);
        }
        let view = GuestView::new(&self.mem, req.paging);
        let mut q: GnttabQuerySize = view.read_obj(uop)?;
        q.status = match self.lookup_any(q.dom) {
            None => GNTST_BAD_DOMAIN,
            Some(Dom::Backend) => GNTST_PERMISSION_DENIED,
            Some(Dom::This) => {
                q.nr_frames = self.gnttab.nr_frames();
                q.max_nr_frames = self.gnttab.max_frames();
                GNTST_OKAY
            }
        };
        view.write_obj(uop, &q)?;
        Ok(0)
    }

    /// `GNTTABOP_set_version`: only version 1 exists; the record always comes
    /// back holding the version in effect.
    fn set_version(&mut self, req: &HypercallRequest, uop: u64) -> Result<i64, XenErrno> {
        let view = GuestView::new(&self.mem, req.paging);
        let v: GnttabSetVersion = view.read_obj(uop)?;
        let res = match v.version {
            1 => Ok(0),
            2 => Err(XenErrno::Enosys), // max_version 1: "behave as before set_version was introduced"
            _ => Err(XenErrno::Einval),
        };
        view.write_obj(uop, &GnttabSetVersion { version: 1 })?;
        res
    }

    /// `GNTTABOP_get_version`.
    fn get_version(&mut self, req: &HypercallRequest, uop: u64) -> Result<i64, XenErrno> {
        let view = GuestView::new(&self.mem, req.paging);
        let g: GnttabGetVersion = view.read_obj(uop)?;
        match self.lookup_any(g.dom) {
            None => Err(XenErrno::Esrch),
            Some(Dom::Backend) => Err(XenErrno::Eperm),
            Some(Dom::This) => {
                view.write_obj(field(uop, 4)?, &1u32)?;
                Ok(0)
            }
        }
    }

    /// `GNTTABOP_get_status_frames`: a version-1 table has no status frames.
    fn get_status_frames(&mut self, req: &HypercallRequest, uop: u64, count: u32) -> Result<i64, XenErrno> {
        match count {
            0 if req.compat() => return Ok(0),
            1 => {}
            _ => return Err(XenErrno::Einval),
        }
        let view = GuestView::new(&self.mem, req.paging);
        let (nr_frames, dom) = if req.compat() {
            let c: CompatGnttabGetStatusFrames = view.read_obj(uop)?;
            (c.nr_frames, c.dom)
        } else {
            let n: GnttabGetStatusFrames = view.read_obj(uop)?;
            (n.nr_frames, n.dom)
        };
        let status = match self.lookup_any(dom) {
            None => GNTST_BAD_DOMAIN,
            Some(Dom::Backend) => GNTST_PERMISSION_DENIED,
            Some(Dom::This) if nr_frames > 0 => GNTST_GENERAL_ERROR,
            Some(Dom::This) => GNTST_OKAY,
        };
        view.write_obj(field(uop, 6)?, &status)?;
        Ok(0)
    }
}

impl GrantTable {
    /// The body of `setup_table` for the caller's own table.
    fn setup(&mut self, view: &GuestView<'_>, nr_frames: u32, limit: u32, list: u64, compat: bool) -> i16 {
        if nr_frames > self.max_frames || nr_frames > limit {
            return GNTST_GENERAL_ERROR;
        }
        if let Err(e) = self.grow(nr_frames) {
            tracing::warn!("{e}");
            return GNTST_GENERAL_ERROR;
        }
        for i in 0..nr_frames {
            let gfn = self.frame_gfn(i).unwrap_or(INVALID_GFN);
            let written = if compat {
                let Ok(gfn) = u32::try_from(gfn) else { return GNTST_ADDRESS_TOO_BIG };
                write_at(view, list, i, &gfn)
            } else {
                write_at(view, list, i, &gfn)
            };
            if !written {
                return GNTST_BAD_VIRT_ADDR;
            }
        }
        GNTST_OKAY
    }
}

/// The guest address of the field at `offset` in the record at `base`.
fn field(base: u64, offset: u64) -> Result<u64, XenErrno> {
    base.checked_add(offset).ok_or(XenErrno::Efault)
}

/// Writes element `i` of a guest array at `base`.
fn write_at<T: IntoBytes + Immutable>(view: &GuestView<'_>, base: u64, i: u32, val: &T) -> bool {
    let at = u64::from(i).checked_mul(std::mem::size_of::<T>() as u64).and_then(|o| base.checked_add(o));
    at.is_some_and(|at| view.write_obj(at, val).is_ok())
}
