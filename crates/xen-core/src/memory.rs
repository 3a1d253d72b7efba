//! `HYPERVISOR_memory_op` (`public/memory.h`).

use std::sync::Arc;

use xenkvm_xen_abi::errno::XenErrno;
use xenkvm_xen_abi::memory::*;
use xenkvm_xen_abi::xen::HYPERVISOR_MEMORY_OP;

use crate::domain::Domain;
use crate::page::SharedPage;
use crate::guest::GuestView;
use crate::hypercall::HypercallRequest;

pub mod reservation;

impl Domain {
    pub(crate) fn memory_op(&mut self, req: &HypercallRequest) -> Result<i64, XenErrno> {
        let cmd = req.arg(0) & MEMOP_CMD_MASK;
        match cmd {
            XENMEM_ADD_TO_PHYSMAP => {
                let view = GuestView::new(&self.mem, req.paging);
                let xatp = if req.compat() {
                    let c: CompatXenAddToPhysmap = view.read_obj(req.arg(1))?;
                    XenAddToPhysmap { domid: c.domid, size: c.size, space: c.space, idx: c.idx.into(), gpfn: c.gpfn.into() }
                } else {
                    view.read_obj::<XenAddToPhysmap>(req.arg(1))?
                };
                self.add_to_physmap(&xatp)
            }
            XENMEM_DECREASE_RESERVATION | XENMEM_INCREASE_RESERVATION | XENMEM_POPULATE_PHYSMAP => self.reservation_op(req, cmd),
            XENMEM_CURRENT_RESERVATION | XENMEM_MAXIMUM_RESERVATION => self.reservation_query(req, cmd),
            XENMEM_MAXIMUM_RAM_PAGE => Ok(self.maximum_ram_page()),
            _ => {
                self.report_unknown(HYPERVISOR_MEMORY_OP, cmd, "memory_op sub-op");
                Err(XenErrno::Enosys)
            }
        }
    }

    fn add_to_physmap(&mut self, xatp: &XenAddToPhysmap) -> Result<i64, XenErrno> {
        self.check_domid(xatp.domid)?;
        match xatp.space {
            XENMAPSPACE_SHARED_INFO => {
                if xatp.idx != 0 || xatp.gpfn > self.cfg.max_gfn {
                    return Err(XenErrno::Einval);
                }
                self.map_shared_info(xatp.gpfn)
            }
            XENMAPSPACE_GRANT_TABLE => self.map_grant_frame(xatp.idx, xatp.gpfn),
            XENMAPSPACE_GMFN | XENMAPSPACE_GMFN_RANGE => {
                self.report_unknown(HYPERVISOR_MEMORY_OP, u64::from(xatp.space) << 8 | XENMEM_ADD_TO_PHYSMAP, "add_to_physmap space");
                Err(XenErrno::Enosys)
            }
            _ => Err(XenErrno::Einval),
        }
    }

    /// Places shared_info at `gfn`: an overlay over RAM or over nothing at all.
    fn map_shared_info(&mut self, gfn: u64) -> Result<i64, XenErrno> {
        let old = self.shared_info_gfn;
        if old == Some(gfn) {
            return Ok(0);
        }
        self.move_overlay_page(old, gfn, self.shared_info.clone())?;
        self.shared_info_gfn = Some(gfn);
        self.kernel_time_slots(gfn);
        self.kernel_shared_info();
        Ok(0)
    }

    /// Shows `page` at `gfn` instead of at `old`: the accelerator's map, then
    /// the core's view; whatever was overlaid at `gfn` is unhooked first.
    pub(crate) fn move_overlay_page(&mut self, old: Option<u64>, gfn: u64, page: Arc<SharedPage>) -> Result<(), XenErrno> {
        self.ports.physmap.move_overlay(old, gfn, &page).map_err(|e| {
            tracing::warn!("{e}");
            XenErrno::Einval
        })?;
        if let Some(old) = old {
            self.mem.remove_overlay(old);
        }
        self.unhook_special_page(gfn);
        self.mem.set_overlay(gfn, page);
        Ok(())
    }

    /// Where shared_info is mapped, if the guest mapped it.
    pub fn shared_info_gfn(&self) -> Option<u64> {
        self.shared_info_gfn
    }
}
