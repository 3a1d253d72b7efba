//! `HYPERVISOR_hvm_op` (`public/hvm/hvm_op.h`, `hvm/params.h`).

use xenkvm_xen_abi::errno::XenErrno;
use xenkvm_xen_abi::hvm::*;
use xenkvm_xen_abi::xen::{DOMID_SELF, HYPERVISOR_HVM_OP};

use crate::domain::Domain;
use crate::guest::GuestView;
use crate::hypercall::HypercallRequest;

/// Parameters a guest may set on itself (Xen's `hvm_allow_set_param`).
fn guest_may_set(index: u32) -> bool {
    matches!(
        index,
        HVM_PARAM_CALLBACK_IRQ
            | HVM_PARAM_VM86_TSS
            | HVM_PARAM_VM86_TSS_SIZED
            | HVM_PARAM_ACPI_IOPORTS_LOCATION
            | HVM_PARAM_VM_GENERATION_ID_ADDR
            | HVM_PARAM_STORE_EVTCHN
            | HVM_PARAM_CONSOLE_EVTCHN
            | HVM_PARAM_X87_FIP_WIDTH
    )
}

/// Parameters a guest may read about itself (Xen's `hvm_allow_get_param`).
fn guest_may_get(index: u32) -> bool {
    guest_may_set(index) || matches!(index, HVM_PARAM_STORE_PFN | HVM_PARAM_CONSOLE_PFN | HVM_PARAM_ALTP2M)
}

impl Domain {
    pub(crate) fn hvm_op(&mut self, req: &HypercallRequest) -> Result<i64, XenErrno> {
        let (op, arg) = (req.arg(0), req.arg(1));
        match op {
            HVMOP_SET_PARAM | HVMOP_GET_PARAM => self.hvm_param(req, op == HVMOP_SET_PARAM, arg),
            HVMOP_SET_EVTCHN_UPCALL_VECTOR => {
                // Xen: -EFAULT, then vectors below 0x10 -EINVAL, then -ENOENT.
                let uv: XenHvmEvtchnUpcallVector = GuestView::new(&self.mem, req.paging).read_obj(arg)?;
                if uv.vector < 0x10 {
                    return Err(XenErrno::Einval);
                }
                if uv.vcpu >= self.cfg.vcpus {
                    return Err(XenErrno::Enoent);
                }
                self.set_upcall_vector(uv.vcpu, uv.vector);
                Ok(0)
            }
            HVMOP_GET_TIME => {
                let now = self.now_ns();
                GuestView::new(&self.mem, req.paging).write_obj(arg, &now)?;
                Ok(0)
            }
            // A shadow-paging hint; with hardware paging there is nothing to
            // drop. Linux probes it at boot and takes -ENOSYS as "not offered".
            HVMOP_PAGETABLE_DYING => Err(XenErrno::Enosys),
            _ => {
                self.report_unknown(HYPERVISOR_HVM_OP, op, "hvm_op sub-op");
                Err(XenErrno::Enosys)
            }
        }
    }

    /// Whether `domid` names this domain (an HVM guest may only name itself).
    pub(crate) fn check_domid(&self, domid: u16) -> Result<(), XenErrno> {
        if domid == DOMID_SELF || domid == self.cfg.domid {
            Ok(())
        } else {
            Err(XenErrno::Esrch)
        }
    }

    fn hvm_param(&mut self, req: &HypercallRequest, set: bool, arg: u64) -> Result<i64, XenErrno> {
        let view = GuestView::new(&self.mem, req.paging);
        let mut p: XenHvmParam = view.read_obj(arg)?;
        if p.index >= HVM_NR_PARAMS {
            return Err(XenErrno::Einval);
        }
        self.check_domid(p.domid)?;
        if set {
            if !guest_may_set(p.index) {
                return Err(XenErrno::Eperm);
            }
            if p.index == HVM_PARAM_CALLBACK_IRQ {
                // Xen samples the guest's mode here to fix the shared_info layout.
                self.latch_shared_info_layout(req.compat());
            }
            self.set_param_host(p.index, p.value);
            if p.index == HVM_PARAM_CALLBACK_IRQ {
                self.callback_via_changed();
            }
            return Ok(0);
        }
        if !guest_may_get(p.index) {
            return Err(XenErrno::Eperm);
        }
        p.value = self.param(p.index).unwrap_or(0);
        GuestView::new(&self.mem, req.paging).write_obj(arg, &p)?;
        Ok(0)
    }

    /// Fixes the shared_info layout to the caller's mode, rewriting the fields
    /// whose offsets differ.
    pub(crate) fn latch_shared_info_layout(&mut self, compat: bool) {
        if self.shared_info_compat != compat {
            self.shared_info_compat = compat;
            self.write_wallclock();
            self.kernel_shared_info();
        }
    }
}
