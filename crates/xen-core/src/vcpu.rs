//! `HYPERVISOR_vcpu_op` (`public/vcpu.h`): per-vCPU areas the guest registers,
//! and runstate accounting.

use xenkvm_xen_abi::errno::XenErrno;
use xenkvm_xen_abi::shared_info::{VCPU_INFO_PENDING_SEL, COMPAT_VCPU_INFO_PENDING_SEL, VCPU_INFO_SIZE, VCPU_INFO_TIME};
use xenkvm_xen_abi::vcpu::*;
use xenkvm_xen_abi::xen::{HYPERVISOR_VCPU_OP, XEN_LEGACY_MAX_VCPUS};

use crate::domain::Domain;
use crate::guest::GuestView;
use crate::hypercall::HypercallRequest;
use crate::paging::PagingState;
use crate::shared_info::write_pvclock;

/// Time spent in each runstate, as Xen accounts it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Runstate {
    pub state: i32,
    /// System time of the last state change.
    pub entry_ns: u64,
    /// Accumulated ns per state, up to `entry_ns`.
    pub time: [u64; 4],
}

impl Runstate {
    /// Moves to `state` at system time `now`, charging the elapsed time to the old state.
    pub fn change(&mut self, state: i32, now: u64) {
        if let Some(t) = self.time.get_mut(self.state as usize) {
            *t = t.saturating_add(now.saturating_sub(self.entry_ns));
        }
        self.state = state;
        self.entry_ns = now;
    }
}

/// Per-vCPU Xen state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VcpuState {
    /// Registered `vcpu_info` location: guest frame and offset.
    pub vcpu_info: Option<(u64, u32)>,
    /// Guest-virtual address of an extra pvclock record.
    pub time_area: Option<u64>,
    /// Guest-virtual address of the runstate record, and whether it uses the compat layout.
    pub runstate_area: Option<(u64, bool)>,
    pub runstate: Runstate,
    /// The host kernel keeps this vCPU's pvclock records (vcpu_info, time area).
    pub kernel_time: bool,
    /// The host kernel keeps this vCPU's runstate record.
    pub kernel_runstate: bool,
}

impl Domain {
    pub(crate) fn vcpu_op(&mut self, req: &HypercallRequest) -> Result<i64, XenErrno> {
        let (cmd, target, arg) = (req.arg(0), req.arg(1), req.arg(2));
        let vcpu = u32::try_from(target).ok().filter(|v| *v < self.cfg.vcpus).ok_or(XenErrno::Enoent)?;
        match cmd {
            VCPUOP_REGISTER_VCPU_INFO => self.register_vcpu_info(req, vcpu, arg),
            VCPUOP_REGISTER_VCPU_TIME_MEMORY_AREA => {
                let area: VcpuRegisterMemoryArea = GuestView::new(&self.mem, req.paging).read_obj(arg)?;
                self.vcpu_mut(vcpu)?.time_area = (area.addr != 0).then_some(area.addr);
                if vcpu == req.vcpu {
                    self.write_time_area(vcpu, req.paging);
                }
                Ok(0)
            }
            VCPUOP_REGISTER_RUNSTATE_MEMORY_AREA => {
                let area: VcpuRegisterMemoryArea = GuestView::new(&self.mem, req.paging).read_obj(arg)?;
                self.vcpu_mut(vcpu)?.runstate_area = (area.addr != 0).then_some((area.addr, req.compat()));
                let kernel = self.kernel_runstate_area(vcpu, req);
                if vcpu == req.vcpu && !kernel {
                    self.write_runstate(vcpu, req.paging);
                }
                Ok(0)
            }
            VCPUOP_GET_RUNSTATE_INFO => {
                let view = GuestView::new(&self.mem, req.paging);
                let rs = self.vcpus.get(vcpu as usize).map(|v| v.runstate).unwrap_or_default();
                if req.compat() {
                    view.write_obj(arg, &compat_record(&rs, false))?;
                } else {
                    view.write_obj(arg, &native_record(&rs, false))?;
                }
                Ok(0)
            }
            VCPUOP_SET_PERIODIC_TIMER | VCPUOP_STOP_PERIODIC_TIMER | VCPUOP_SET_SINGLESHOT_TIMER | VCPUOP_STOP_SINGLESHOT_TIMER => {
                self.vcpu_timer_op(req, cmd, vcpu, arg)
            }
            _ => {
                self.report_unknown(HYPERVISOR_VCPU_OP, cmd, "vcpu_op sub-op");
                Err(XenErrno::Enosys)
            }
        }
    }

    pub(crate) fn vcpu_mut(&mut self, vcpu: u32) -> Result<&mut crate::vcpu::VcpuState, XenErrno> {
        self.vcpus.get_mut(vcpu as usize).ok_or(XenErrno::Enoent)
    }

    /// VCPUOP_register_vcpu_info, with Xen 4.17's checks in Xen's order.
    fn register_vcpu_info(&mut self, req: &HypercallRequest, vcpu: u32, arg: u64) -> Result<i64, XenErrno> {
        let info: VcpuRegisterVcpuInfo = GuestView::new(&self.mem, req.paging).read_obj(arg)?;
        let align = if self.shared_info_compat { 4 } else { 8 };
        if u64::from(info.offset) > 4096 - VCPU_INFO_SIZE || !info.offset.is_multiple_of(align) {
            return Err(XenErrno::Enxio);
        }
        if self.vcpus.get(vcpu as usize).and_then(|v| v.vcpu_info).is_some() {
            return Err(XenErrno::Einval);
        }
        if !self.mem.is_ram(info.mfn) {
            return Err(XenErrno::Einval);
        }
        let base = info.mfn * 4096 + u64::from(info.offset);
        // Carry over what the legacy slot held, then mark everything pending so
        // no event is lost in the move (the guest copes with a spurious upcall):
        // all selector bits, and the upcall through the normal route.
        let mut content = [0u8; VCPU_INFO_SIZE as usize];
        if vcpu < XEN_LEGACY_MAX_VCPUS {
            self.shared_info.read((u64::from(vcpu) * VCPU_INFO_SIZE) as usize, &mut content);
        }
        let (sel_off, sel_len) = if self.shared_info_compat {
            (COMPAT_VCPU_INFO_PENDING_SEL as usize, 4)
        } else {
            (VCPU_INFO_PENDING_SEL as usize, 8)
        };
        if let Some(sel) = content.get_mut(sel_off..sel_off + sel_len) {
            sel.fill(0xFF);
        }
        self.mem.write_in_page(base, &content).map_err(|_| XenErrno::Einval)?;
        self.vcpu_mut(vcpu)?.vcpu_info = Some((info.mfn, info.offset));
        self.kernel_time_vcpu_info(vcpu, base);
        self.mark_events_pending(vcpu);
        self.write_vcpu_info_pvclock(vcpu);
        Ok(0)
    }

    /// Writes a fresh pvclock into the vCPU's registered vcpu_info and its legacy slot.
    pub(crate) fn write_vcpu_info_pvclock(&self, vcpu: u32) {
        if self.kernel_keeps_time(vcpu) {
            return;
        }
        self.write_slot_pvclock(vcpu);
        let Some((gfn, offset)) = self.vcpus.get(vcpu as usize).and_then(|v| v.vcpu_info) else { return };
        let base = gfn * 4096 + u64::from(offset) + VCPU_INFO_TIME;
        let rec = self.time.pvclock();
        let mut old = [0u8; 4];
        let _ = self.mem.read_in_page(base, &mut old);
        write_pvclock(rec, |o, b| self.mem.write_in_page(base + o as u64, b).is_ok(), u32::from_le_bytes(old));
    }

    /// Writes the pvclock into the registered time area (a guest-virtual address).
    fn write_time_area(&self, vcpu: u32, paging: PagingState) {
        let Some(gva) = self.vcpus.get(vcpu as usize).and_then(|v| v.time_area) else { return };
        if self.kernel_time.is_some() {
            // Hand the area to the kernel if it lies in one page.
            let gpa = paging.translate(&self.mem, gva, true).ok().filter(|g| g % 4096 <= 4096 - 32);
            if let Some(gpa) = gpa {
                if self.kernel_time.clone().is_some_and(|kt| kt.time_area_at(vcpu, Some(gpa))) {
                    return;
                }
            }
        }
        let view = GuestView::new(&self.mem, paging);
        let rec = self.time.pvclock();
        let mut old = [0u8; 4];
        let _ = view.read_bytes(gva, &mut old);
        // A bad address is the guest's problem: Xen ignores failed updates too.
        write_pvclock(rec, |o, b| view.write_bytes(gva + o as u64, b).is_ok(), u32::from_le_bytes(old));
    }

    /// Changes `vcpu`'s runstate now and publishes it (on the vCPU's own thread,
    /// with its current page tables).
    pub(crate) fn set_runstate(&mut self, vcpu: u32, state: i32, paging: PagingState) {
        let now = self.now_ns();
        let Some(v) = self.vcpus.get_mut(vcpu as usize) else { return };
        v.runstate.change(state, now);
        if v.kernel_runstate {
            if let Some(kt) = &self.kernel_time {
                kt.runstate_now(vcpu, state);
            }
            return;
        }
        self.write_runstate(vcpu, paging);
    }

    /// Copies the runstate record to the guest's registered area, bracketing the
    /// update with XEN_RUNSTATE_UPDATE when the guest enabled that assist.
    fn write_runstate(&self, vcpu: u32, paging: PagingState) {
        let Some(v) = self.vcpus.get(vcpu as usize) else { return };
        let Some((gva, compat)) = v.runstate_area else { return };
        let view = GuestView::new(&self.mem, paging);
        let flag = self.runstate_update_flag();
        let entry_off = if compat { 4 } else { 8 };
        if flag {
            let _ = view.write_bytes(gva + entry_off, &(v.runstate.entry_ns | XEN_RUNSTATE_UPDATE).to_le_bytes());
            std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
        }
        let _ = if compat {
            view.write_obj(gva, &compat_record(&v.runstate, flag))
        } else {
            view.write_obj(gva, &native_record(&v.runstate, flag))
        };
        if flag {
            std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
            let _ = view.write_bytes(gva + entry_off, &v.runstate.entry_ns.to_le_bytes());
        }
    }

    /// The runstate of `vcpu` (for tests and the VMM's status).
    pub fn runstate(&self, vcpu: u32) -> Option<Runstate> {
        self.vcpus.get(vcpu as usize).map(|v| v.runstate)
    }

    /// Marks `vcpu` as running from now (when the VMM starts it).
    pub fn vcpu_started(&mut self, vcpu: u32) {
        let now = self.now_ns();
        if let Some(v) = self.vcpus.get_mut(vcpu as usize) {
            v.runstate.change(RUNSTATE_RUNNING, now);
        }
    }

    /// Whether `vcpu` has an event upcall pending in its vcpu_info.
    pub fn upcall_pending(&self, vcpu: u32) -> bool {
        let Some(v) = self.vcpus.get(vcpu as usize) else { return false };
        match v.vcpu_info {
            Some((gfn, offset)) => {
                let mut b = [0u8; 1];
                self.mem.read_in_page(gfn * 4096 + u64::from(offset), &mut b).is_ok() && b != [0]
            }
            None if vcpu < XEN_LEGACY_MAX_VCPUS => {
                self.shared_info.load_u8((u64::from(vcpu) * VCPU_INFO_SIZE) as usize) != 0
            }
            None => false,
        }
    }
}

fn native_record(rs: &Runstate, updating: bool) -> VcpuRunstateInfo {
    let flag = if updating { XEN_RUNSTATE_UPDATE } else { 0 };
    VcpuRunstateInfo { state: rs.state, pad0: 0, state_entry_time: rs.entry_ns | flag, time: rs.time }
}

fn compat_record(rs: &Runstate, updating: bool) -> CompatVcpuRunstateInfo {
    let flag = if updating { XEN_RUNSTATE_UPDATE } else { 0 };
    CompatVcpuRunstateInfo { state: rs.state, state_entry_time: rs.entry_ns | flag, time: rs.time }
}
