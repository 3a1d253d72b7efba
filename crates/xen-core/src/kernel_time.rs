//! Handing pvclock upkeep to the host kernel where it offers it (see
//! [`crate::ports::KernelTime`]). The core then writes no pvclock record of
//! its own into areas the kernel keeps, and reads time from the kernel's clock.

use std::sync::Arc;

use xenkvm_xen_abi::shared_info::VCPU_INFO_SIZE;
use xenkvm_xen_abi::xen::XEN_LEGACY_MAX_VCPUS;

use crate::domain::Domain;
use crate::HypercallRequest;

/// Size of the native `vcpu_runstate_info`.
const RUNSTATE_SIZE: u64 = 48;
use crate::ports::KernelTime;

impl Domain {
    /// Lets the kernel keep time from now on.
    pub fn set_kernel_time(&mut self, kt: Arc<dyn KernelTime>) {
        self.kernel_time = Some(kt);
    }

    /// Xen system time: the kernel's clock where it keeps time, else derived
    /// from the guest TSC.
    pub fn now_ns(&self) -> u64 {
        match &self.kernel_time {
            Some(kt) => kt.now_ns(),
            None => self.time.system_ns(self.ports.clock.guest_tsc()),
        }
    }

    /// After shared_info moved to `gfn`: vCPUs without their own vcpu_info read
    /// time from their legacy slot, which the kernel then keeps.
    pub(crate) fn kernel_time_slots(&mut self, gfn: u64) {
        let Some(kt) = self.kernel_time.clone() else { return };
        for vcpu in 0..self.cfg.vcpus.min(XEN_LEGACY_MAX_VCPUS) {
            let registered = self.vcpus.get(vcpu as usize).is_some_and(|v| v.vcpu_info.is_some());
            if !registered {
                let kept = kt.vcpu_info_at(vcpu, gfn * 4096 + u64::from(vcpu) * VCPU_INFO_SIZE);
                self.set_kernel_keeps_time(vcpu, kept);
            }
        }
    }

    /// After `vcpu` registered its vcpu_info at `gpa`.
    pub(crate) fn kernel_time_vcpu_info(&mut self, vcpu: u32, gpa: u64) {
        let Some(kt) = self.kernel_time.clone() else { return };
        let kept = kt.vcpu_info_at(vcpu, gpa);
        self.set_kernel_keeps_time(vcpu, kept);
    }

    fn set_kernel_keeps_time(&mut self, vcpu: u32, kept: bool) {
        if let Some(v) = self.vcpus.get_mut(vcpu as usize) {
            v.kernel_time = kept;
        }
    }

    /// After `vcpu`'s runstate area was (re)registered by `req`'s caller: hands
    /// it to the kernel if the kernel can keep it (a native-layout record in
    /// one page of a 64-bit guest), else takes it back. Returns whether the
    /// kernel keeps it now.
    pub(crate) fn kernel_runstate_area(&mut self, vcpu: u32, req: &HypercallRequest) -> bool {
        let Some(kt) = self.kernel_time.clone() else { return false };
        let Some(v) = self.vcpus.get(vcpu as usize) else { return false };
        let (area, was, state) = (v.runstate_area, v.kernel_runstate, v.runstate.state);
        let gpa = match area {
            Some((gva, false)) if !self.shared_info_compat => {
                req.paging.translate(&self.mem, gva, true).ok().filter(|g| g % 4096 <= 4096 - RUNSTATE_SIZE)
            }
            _ => None,
        };
        let kept = match gpa {
            Some(gpa) => kt.runstate_area_at(vcpu, Some(gpa)),
            None => {
                if was {
                    kt.runstate_area_at(vcpu, None);
                }
                false
            }
        };
        if kept {
            kt.runstate_now(vcpu, state);
        }
        if let Some(v) = self.vcpus.get_mut(vcpu as usize) {
            v.kernel_runstate = kept;
        }
        kept
    }

    /// Whether the kernel keeps `vcpu`'s pvclock records.
    pub(crate) fn kernel_keeps_time(&self, vcpu: u32) -> bool {
        self.vcpus.get(vcpu as usize).is_some_and(|v| v.kernel_time)
    }
}
