//! The balloon's memory ops: `XENMEM_decrease_reservation`,
//! `XENMEM_populate_physmap` / `increase_reservation`, and the reservation
//! queries.
//!
//! Only the domain's own RAM takes part: a frame the guest gives back is
//! recorded as released and its host memory freed through [`RamControl`];
//! populating it again only clears the record (anonymous memory comes back,
//! zeroed, when touched). Frames outside RAM, or under an overlay
//! (shared_info), cannot be released, and no frame beyond RAM can be
//! populated: the domain never grows past its boot size. Work per call is
//! bounded by [`MAX_EXTENTS_PER_CALL`]; like Xen, a call reports the number
//! of extents done, so a guest sees exactly where it stopped.

use xenkvm_xen_abi::errno::XenErrno;
use xenkvm_xen_abi::memory::*;
use xenkvm_xen_abi::xen::DOMID_SELF;

use crate::domain::Domain;
use crate::guest::GuestView;
use crate::hypercall::HypercallRequest;

/// Largest extent order a guest may use (Xen's domU `memop-max-order`).
pub const MAX_EXTENT_ORDER: u32 = 9;
/// Extents handled in one call; the rest of a longer list is left for the
/// guest to ask again (it gets the count done).
pub const MAX_EXTENTS_PER_CALL: u64 = 1 << 16;

/// A reservation request in either ABI.
struct Reservation {
    list: u64,
    nr: u64,
    order: u32,
    domid: u16,
    compat: bool,
}

/// Which reservation op runs.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Op {
    Decrease,
    Populate,
}

impl Domain {
    /// `XENMEM_decrease_reservation`, `XENMEM_increase_reservation` and
    /// `XENMEM_populate_physmap`.
    pub(crate) fn reservation_op(&mut self, req: &HypercallRequest, cmd: u64) -> Result<i64, XenErrno> {
        let start = req.arg(0) >> MEMOP_EXTENT_SHIFT;
        let r = self.read_reservation(req)?;
        self.check_reservation_domid(r.domid)?;
        if r.order > MAX_EXTENT_ORDER || start >= r.nr {
            // Xen's answer to a bad order or a finished list: the count so far.
            return Ok(start as i64);
        }
        let op = if cmd == XENMEM_DECREASE_RESERVATION { Op::Decrease } else { Op::Populate };
        let end = r.nr.min(start.saturating_add(MAX_EXTENTS_PER_CALL));
        let mut done = start;
        while done < end {
            let Ok(gfn) = self.extent_gfn(req, &r, done) else { break };
            let ok = match op {
                Op::Decrease => self.release_extent(gfn, r.order),
                Op::Populate => self.populate_extent(gfn, r.order),
            };
            if !ok {
                break;
            }
            done += 1;
        }
        Ok(done as i64)
    }

    fn read_reservation(&self, req: &HypercallRequest) -> Result<Reservation, XenErrno> {
        let view = GuestView::new(&self.mem, req.paging);
        if req.compat() {
            let c: CompatXenMemoryReservation = view.read_obj(req.arg(1))?;
            let r = Reservation { list: c.extent_start.into(), nr: c.nr_extents.into(), order: c.extent_order, domid: c.domid, compat: true };
            return Ok(r);
        }
        let n: XenMemoryReservation = view.read_obj(req.arg(1))?;
        Ok(Reservation { list: n.extent_start, nr: n.nr_extents, order: n.extent_order, domid: n.domid, compat: false })
    }

    /// An HVM guest may only change its own reservation.
    fn check_reservation_domid(&self, domid: u16) -> Result<(), XenErrno> {
        match domid {
            d if d == DOMID_SELF || d == self.cfg.domid => Ok(()),
            0 => Err(XenErrno::Eperm),
            _ => Err(XenErrno::Esrch),
        }
    }

    /// The `i`th frame number of the guest's list.
    fn extent_gfn(&self, req: &HypercallRequest, r: &Reservation, i: u64) -> Result<u64, XenErrno> {
        let view = GuestView::new(&self.mem, req.paging);
        let width = if r.compat { 4 } else { 8 };
        let at = i.checked_mul(width).and_then(|o| r.list.checked_add(o)).ok_or(XenErrno::Efault)?;
        if r.compat {
            view.read_obj::<u32>(at).map(u64::from)
        } else {
            view.read_obj::<u64>(at)
        }
    }

    /// The frames of one extent, if every one is this domain's RAM.
    fn ram_extent(&self, gfn: u64, order: u32) -> Option<std::ops::Range<u64>> {
        let count = 1u64 << order;
        let end = gfn.checked_add(count)?;
        if gfn & (count - 1) != 0 || end - 1 > self.cfg.max_gfn {
            return None;
        }
        let all_ram = (gfn..end).all(|f| self.mem.is_ram(f) || self.released.contains(&f));
        all_ram.then_some(gfn..end)
    }

    fn release_extent(&mut self, gfn: u64, order: u32) -> bool {
        let Some(frames) = self.ram_extent(gfn, order) else { return false };
        if let Some(rc) = &self.ram_control {
            if let Err(e) = rc.release(frames.start, frames.end - frames.start) {
                tracing::warn!("{e}");
                return false;
            }
        }
        self.released.extend(frames);
        true
    }

    fn populate_extent(&mut self, gfn: u64, order: u32) -> bool {
        let Some(frames) = self.ram_extent(gfn, order) else { return false };
        for f in frames {
            self.released.remove(&f);
        }
        true
    }

    /// `XENMEM_current_reservation` and `XENMEM_maximum_reservation`: pages.
    pub(crate) fn reservation_query(&self, req: &HypercallRequest, cmd: u64) -> Result<i64, XenErrno> {
        let domid: u16 = GuestView::new(&self.mem, req.paging).read_obj(req.arg(1))?;
        self.check_reservation_domid(domid)?;
        let pages = if cmd == XENMEM_CURRENT_RESERVATION { self.current_pages() } else { self.ram_pages() };
        i64::try_from(pages).map_err(|_| XenErrno::Einval)
    }

    /// Pages of RAM the domain was built with.
    pub fn ram_pages(&self) -> u64 {
        use vm_memory::GuestMemoryBackend;
        self.mem.ram().iter().map(|r| vm_memory::GuestMemoryRegion::len(r) >> 12).sum()
    }

    /// Pages of RAM the domain holds now (built with, minus ballooned out).
    pub fn current_pages(&self) -> u64 {
        self.ram_pages().saturating_sub(self.released.len() as u64)
    }

    /// Frames the guest gave back and has not populated again.
    pub fn released_pages(&self) -> u64 {
        self.released.len() as u64
    }

    /// `XENMEM_maximum_ram_page`: one past the highest RAM frame.
    pub(crate) fn maximum_ram_page(&self) -> i64 {
        use vm_memory::GuestMemoryBackend;
        self.mem.ram().iter().map(|r| vm_memory::GuestMemoryRegion::last_addr(r).0 >> 12).max().map_or(0, |last| last as i64 + 1)
    }
}
