//! The kernel-assisted Xen path (`KVM_CAP_XEN_HVM`): KVM installs the hypercall
//! page itself (with `vmcall`/`vmmcall` stubs for the host's vendor) when the guest
//! writes the hypercall MSR, and hands every hypercall it does not accelerate to
//! us as `KVM_EXIT_XEN`, already decoded by the guest's mode.
//!
//! kvm-ioctls has no Xen ioctls, so the few we need are declared here.

use std::os::fd::AsRawFd;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use kvm_bindings::{
    kvm_irq_routing_xen_evtchn, kvm_xen_hvm_attr, kvm_xen_hvm_config, kvm_xen_vcpu_attr, KVMIO,
    KVM_XEN_ATTR_TYPE_LONG_MODE, KVM_XEN_ATTR_TYPE_SHARED_INFO, KVM_XEN_ATTR_TYPE_UPCALL_VECTOR,
    KVM_XEN_HVM_CONFIG_EVTCHN_SEND, KVM_XEN_HVM_CONFIG_INTERCEPT_HCALL, KVM_XEN_VCPU_ATTR_TYPE_RUNSTATE_ADDR, KVM_XEN_VCPU_ATTR_TYPE_RUNSTATE_CURRENT, KVM_XEN_VCPU_ATTR_TYPE_TIMER,
    KVM_XEN_VCPU_ATTR_TYPE_UPCALL_VECTOR, KVM_XEN_VCPU_ATTR_TYPE_VCPU_ID, KVM_XEN_VCPU_ATTR_TYPE_VCPU_INFO, KVM_XEN_VCPU_ATTR_TYPE_VCPU_TIME_INFO,
};
use xenkvm_xen_core::ports::{KernelEvents, KernelTime};
use vmm_sys_util::ioctl::ioctl_with_ref;
use vmm_sys_util::ioctl_iow_nr;

use crate::kick::VcpuKicker;
use crate::{Error, KvmVm, Result};

ioctl_iow_nr!(KVM_XEN_HVM_CONFIG, KVMIO, 0x7a, kvm_xen_hvm_config);
ioctl_iow_nr!(KVM_XEN_VCPU_SET_ATTR, KVMIO, 0xcb, kvm_xen_vcpu_attr);
ioctl_iow_nr!(KVM_XEN_HVM_SET_ATTR, KVMIO, 0xc9, kvm_xen_hvm_attr);
ioctl_iow_nr!(KVM_XEN_HVM_EVTCHN_SEND, KVMIO, 0xd0, kvm_irq_routing_xen_evtchn);

/// "No address" for KVM's Xen guest-area attributes.
const INVALID_GPA: u64 = u64::MAX;
/// "No page" for the shared_info attribute.
const INVALID_GFN: u64 = u64::MAX;
/// The only event-channel priority KVM accepts (2-level delivery).
const PRIO_2LEVEL: u32 = u32::MAX;

/// The value of one queued vCPU attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AttrValue {
    Gpa(Option<u64>),
    Vector(u8),
    /// VIRQ_TIMER's port (0: the kernel stops running the timer).
    TimerPort(u32),
    /// The Xen vCPU id the kernel's timer hypercalls compare against.
    VcpuId(u32),
    /// A runstate (RUNSTATE_running .. RUNSTATE_offline).
    Runstate(u64),
}

impl AttrValue {
    fn to_attr(self, kind: u32) -> kvm_xen_vcpu_attr {
        let mut attr = kvm_xen_vcpu_attr { type_: kind as u16, ..Default::default() };
        match self {
            AttrValue::Gpa(gpa) => attr.u.gpa = gpa.unwrap_or(INVALID_GPA),
            AttrValue::Vector(v) => attr.u.vector = v,
            AttrValue::TimerPort(port) => {
                attr.u.timer.port = port;
                attr.u.timer.priority = PRIO_2LEVEL;
                attr.u.timer.expires_ns = 0;
            }
            AttrValue::VcpuId(id) => attr.u.vcpu_id = id,
            AttrValue::Runstate(state) => attr.u.runstate.state = state,
        }
        attr
    }
}

impl KvmVm {
    /// Sets a vCPU attribute. The vCPU must not be inside KVM_RUN (KVM would
    /// wait for it): call it from that vCPU's own thread (see [`XenTimeAttrs`]).
    fn set_vcpu_attr(&self, id: u32, kind: u32, value: AttrValue) -> Result<()> {
        let attr = value.to_attr(kind);
        let fds = self.vcpu_fds.lock().map_err(|_| Error::GuestMemory)?;
        let fd = fds.get(id as usize).ok_or(Error::XenAttr(kvm_ioctls::Error::new(libc::ENOENT)))?;
        // SAFETY: the ioctl reads one kvm_xen_vcpu_attr from a valid reference;
        // `fd` is a duplicate of the vCPU's fd, open while the VM lives.
        let ret = unsafe { ioctl_with_ref(fd, KVM_XEN_VCPU_SET_ATTR(), &attr) };
        if ret < 0 {
            return Err(Error::XenAttr(kvm_ioctls::Error::last()));
        }
        Ok(())
    }

    /// Tells KVM vCPU `id`'s Xen vCPU id (the MADT processor UID and CPUID
    /// leaf 4's EBX). Call before the vCPU first runs.
    pub fn set_xen_vcpu_id(&self, id: u32) -> Result<()> {
        self.set_vcpu_attr(id, KVM_XEN_VCPU_ATTR_TYPE_VCPU_ID, AttrValue::VcpuId(id))
    }

    /// Keeps a duplicate of vCPU `id`'s fd for Xen attribute ioctls.
    pub(crate) fn register_vcpu_fd(&self, id: u32, fd: &impl AsRawFd) -> Result<()> {
        // SAFETY: dup of an fd we own; the duplicate is owned by the File.
        let dup = unsafe { libc::dup(fd.as_raw_fd()) };
        if dup < 0 {
            return Err(Error::CreateVcpu(id, kvm_ioctls::Error::last()));
        }
        // SAFETY: `dup` is a fresh fd that nothing else owns.
        let file = unsafe { <std::fs::File as std::os::fd::FromRawFd>::from_raw_fd(dup) };
        let mut fds = self.vcpu_fds.lock().map_err(|_| Error::GuestMemory)?;
        if fds.len() == id as usize {
            fds.push(file);
        }
        Ok(())
    }

    /// Sets a VM-wide Xen attribute (any thread may).
    fn set_hvm_attr(&self, attr: &kvm_xen_hvm_attr) -> Result<()> {
        // SAFETY: the ioctl reads one kvm_xen_hvm_attr from a valid reference;
        // the VM fd is open for the VM's lifetime.
        let ret = unsafe { ioctl_with_ref(self.fd.as_ref(), KVM_XEN_HVM_SET_ATTR(), attr) };
        if ret < 0 {
            return Err(Error::XenAttr(kvm_ioctls::Error::last()));
        }
        Ok(())
    }

    /// Tells KVM where shared_info is and which layout it has (long mode first:
    /// KVM picks the layout of the wallclock it writes when shared_info is set).
    fn set_shared_info(&self, gfn: Option<u64>, long_mode: bool) -> Result<()> {
        let mut mode = kvm_xen_hvm_attr { type_: KVM_XEN_ATTR_TYPE_LONG_MODE as u16, ..Default::default() };
        mode.u.long_mode = u8::from(long_mode);
        self.set_hvm_attr(&mode)?;
        let mut page = kvm_xen_hvm_attr { type_: KVM_XEN_ATTR_TYPE_SHARED_INFO as u16, ..Default::default() };
        page.u.shared_info.gfn = gfn.unwrap_or(INVALID_GFN);
        self.set_hvm_attr(&page)
    }

    /// The global callback vector KVM injects while `evtchn_upcall_pending` is set.
    fn set_callback_vector(&self, vector: u8) -> Result<()> {
        let mut attr = kvm_xen_hvm_attr { type_: KVM_XEN_ATTR_TYPE_UPCALL_VECTOR as u16, ..Default::default() };
        attr.u.vector = vector;
        self.set_hvm_attr(&attr)
    }

    /// Xen's 2-level `evtchn_set_pending` in the kernel, waking pollers and
    /// injecting the upcall (`KVM_XEN_HVM_EVTCHN_SEND`).
    fn evtchn_send(&self, port: u32, vcpu: u32) -> Result<()> {
        let e = kvm_irq_routing_xen_evtchn { port, vcpu, priority: PRIO_2LEVEL };
        // SAFETY: the ioctl reads one kvm_irq_routing_xen_evtchn from a valid
        // reference; the VM fd is open for the VM's lifetime.
        let ret = unsafe { ioctl_with_ref(self.fd.as_ref(), KVM_XEN_HVM_EVTCHN_SEND(), &e) };
        if ret < 0 {
            return Err(Error::XenAttr(kvm_ioctls::Error::last()));
        }
        Ok(())
    }

    /// Asks KVM to intercept Xen hypercalls and to own hypercall-MSR `msr`;
    /// with `events`, KVM also delivers event channels (EVTCHN_SEND), runs
    /// the Xen timers and answers SCHEDOP_poll.
    pub fn enable_xen_hypercalls(&self, msr: u32, events: bool) -> Result<()> {
        let mut flags = KVM_XEN_HVM_CONFIG_INTERCEPT_HCALL;
        if events {
            flags |= KVM_XEN_HVM_CONFIG_EVTCHN_SEND;
        }
        let cfg = kvm_xen_hvm_config { flags, msr, ..Default::default() };
        // SAFETY: the ioctl reads a kvm_xen_hvm_config, which `cfg` is, from a
        // valid reference; the VM fd is open for the VM's lifetime.
        let ret = unsafe { ioctl_with_ref(self.fd.as_ref(), KVM_XEN_HVM_CONFIG(), &cfg) };
        if ret < 0 {
            return Err(Error::XenHvmConfig(kvm_ioctls::Error::last()));
        }
        Ok(())
    }
}

/// One vCPU attribute waiting for its vCPU's thread.
#[derive(Debug, Clone, Copy)]
struct PendingAttr {
    vcpu: u32,
    kind: u32,
    value: AttrValue,
}

/// KVM's Xen time keeping for the Xen core ([`KernelTime`]): the kernel keeps
/// the pvclock in vcpu_info and the time area, and Xen system time is the KVM
/// clock. Attribute changes are queued and applied by each vCPU's thread just
/// before it re-enters the guest, because a vCPU ioctl waits while that vCPU
/// sits in KVM_RUN (an AP waiting for its start-up IPI would never return).
pub struct XenTimeAttrs {
    vm: Arc<KvmVm>,
    pending: Mutex<Vec<PendingAttr>>,
    any: AtomicBool,
    kicker: Arc<VcpuKicker>,
}

impl XenTimeAttrs {
    pub fn new(vm: Arc<KvmVm>, kicker: Arc<VcpuKicker>) -> Self {
        Self { vm, pending: Mutex::new(Vec::new()), any: AtomicBool::new(false), kicker }
    }

    /// Queues an attribute and kicks its vCPU out of KVM_RUN to apply it, so it
    /// is in place before that vCPU's next instruction (an AP set up by the BSP
    /// must have its timer and vcpu_info in KVM before it starts).
    fn queue(&self, vcpu: u32, kind: u32, value: AttrValue) -> bool {
        if self.kicker.is_current(vcpu) {
            // The vCPU's own thread, between exits: apply in order, now.
            self.apply(vcpu);
            return self.vm.set_vcpu_attr(vcpu, kind, value).map_err(|e| tracing::warn!("KVM refused Xen vCPU attribute {kind} for vCPU {vcpu}: {e}")).is_ok();
        }
        match self.pending.lock() {
            Ok(mut p) => {
                p.push(PendingAttr { vcpu, kind, value });
                self.any.store(true, Ordering::Release);
            }
            Err(_) => return false,
        }
        self.kicker.kick(vcpu);
        true
    }

    /// Applies what is queued for vCPU `id` (called by that vCPU's thread).
    pub fn apply(&self, id: u32) {
        if !self.any.load(Ordering::Acquire) {
            return;
        }
        let mine: Vec<PendingAttr> = match self.pending.lock() {
            Ok(mut p) => {
                let (mine, rest): (Vec<_>, Vec<_>) = p.drain(..).partition(|a| a.vcpu == id);
                *p = rest;
                self.any.store(!p.is_empty(), Ordering::Release);
                mine
            }
            Err(_) => return,
        };
        for a in mine {
            if let Err(e) = self.vm.set_vcpu_attr(a.vcpu, a.kind, a.value) {
                tracing::warn!("KVM refused Xen vCPU attribute {} for vCPU {}: {e}", a.kind, a.vcpu);
            }
        }
    }
}

impl KernelTime for XenTimeAttrs {
    fn now_ns(&self) -> u64 {
        self.vm.fd.get_clock().map(|c| c.clock).unwrap_or(0)
    }

    fn vcpu_info_at(&self, vcpu: u32, gpa: u64) -> bool {
        self.queue(vcpu, KVM_XEN_VCPU_ATTR_TYPE_VCPU_INFO, AttrValue::Gpa(Some(gpa)))
    }

    fn time_area_at(&self, vcpu: u32, gpa: Option<u64>) -> bool {
        self.queue(vcpu, KVM_XEN_VCPU_ATTR_TYPE_VCPU_TIME_INFO, AttrValue::Gpa(gpa))
    }

    fn runstate_area_at(&self, vcpu: u32, gpa: Option<u64>) -> bool {
        // KVM < 6.2 always brackets updates with XEN_RUNSTATE_UPDATE, which
        // is what a guest that enabled the vm_assist expects anyway.
        if self.vm.caps.xen_hvm & kvm_bindings::KVM_XEN_HVM_CONFIG_RUNSTATE == 0 {
            return false;
        }
        self.queue(vcpu, KVM_XEN_VCPU_ATTR_TYPE_RUNSTATE_ADDR, AttrValue::Gpa(gpa))
    }

    fn forget_vcpu(&self, vcpu: u32) {
        self.queue(vcpu, KVM_XEN_VCPU_ATTR_TYPE_VCPU_INFO, AttrValue::Gpa(None));
        self.queue(vcpu, KVM_XEN_VCPU_ATTR_TYPE_VCPU_TIME_INFO, AttrValue::Gpa(None));
        if self.vm.caps.xen_hvm & kvm_bindings::KVM_XEN_HVM_CONFIG_RUNSTATE != 0 {
            self.queue(vcpu, KVM_XEN_VCPU_ATTR_TYPE_RUNSTATE_ADDR, AttrValue::Gpa(None));
        }
    }

    fn runstate_update_flag(&self, on: bool) {
        if self.vm.caps.xen_hvm & kvm_bindings::KVM_XEN_HVM_CONFIG_RUNSTATE_UPDATE_FLAG == 0 {
            return;
        }
        let mut attr = kvm_xen_hvm_attr { type_: kvm_bindings::KVM_XEN_ATTR_TYPE_RUNSTATE_UPDATE_FLAG as u16, ..Default::default() };
        attr.u.runstate_update_flag = u8::from(on);
        if let Err(e) = self.vm.set_hvm_attr(&attr) {
            tracing::warn!("KVM refused the runstate update flag: {e}");
        }
    }

    fn runstate_now(&self, vcpu: u32, state: i32) {
        if let Ok(state) = u64::try_from(state) {
            self.queue(vcpu, KVM_XEN_VCPU_ATTR_TYPE_RUNSTATE_CURRENT, AttrValue::Runstate(state));
        }
    }
}

impl KernelEvents for XenTimeAttrs {
    fn shared_info_at(&self, gfn: Option<u64>, long_mode: bool) -> bool {
        self.vm.set_shared_info(gfn, long_mode).map_err(|e| tracing::warn!("KVM refused the shared_info page: {e}")).is_ok()
    }

    fn upcall_vector(&self, vcpu: u32, vector: u8) -> bool {
        self.queue(vcpu, KVM_XEN_VCPU_ATTR_TYPE_UPCALL_VECTOR, AttrValue::Vector(vector))
    }

    fn callback_vector(&self, vector: Option<u8>) -> bool {
        self.vm.set_callback_vector(vector.unwrap_or(0)).map_err(|e| tracing::warn!("KVM refused the callback vector: {e}")).is_ok()
    }

    fn timer_port(&self, vcpu: u32, port: Option<u32>) -> bool {
        self.queue(vcpu, KVM_XEN_VCPU_ATTR_TYPE_TIMER, AttrValue::TimerPort(port.unwrap_or(0)))
    }

    fn send(&self, port: u32, vcpu: u32) -> bool {
        self.vm.evtchn_send(port, vcpu).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attribute_values_fill_their_union_member() {
        let t = AttrValue::TimerPort(7).to_attr(KVM_XEN_VCPU_ATTR_TYPE_TIMER);
        assert_eq!(t.type_ as u32, KVM_XEN_VCPU_ATTR_TYPE_TIMER);
        // SAFETY: TimerPort writes the `timer` member.
        let timer = unsafe { t.u.timer };
        assert_eq!((timer.port, timer.priority, timer.expires_ns), (7, PRIO_2LEVEL, 0));
        // SAFETY: Gpa writes the `gpa` member.
        assert_eq!(unsafe { AttrValue::Gpa(None).to_attr(0).u.gpa }, INVALID_GPA);
        // SAFETY: Vector writes the `vector` member.
        assert_eq!(unsafe { AttrValue::Vector(0xF3).to_attr(8).u.vector }, 0xF3);
    }
}
