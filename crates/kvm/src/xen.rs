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
    kvm_xen_hvm_config, kvm_xen_vcpu_attr, KVMIO, KVM_XEN_HVM_CONFIG_INTERCEPT_HCALL,
    KVM_XEN_VCPU_ATTR_TYPE_VCPU_INFO, KVM_XEN_VCPU_ATTR_TYPE_VCPU_TIME_INFO,
};
use xenkvm_xen_core::ports::KernelTime;
use vmm_sys_util::ioctl::ioctl_with_ref;
use vmm_sys_util::ioctl_iow_nr;

use crate::{Error, KvmVm, Result};

ioctl_iow_nr!(KVM_XEN_HVM_CONFIG, KVMIO, 0x7a, kvm_xen_hvm_config);
ioctl_iow_nr!(KVM_XEN_VCPU_SET_ATTR, KVMIO, 0xcb, kvm_xen_vcpu_attr);

/// "No address" for KVM's Xen guest-area attributes.
const INVALID_GPA: u64 = u64::MAX;

impl KvmVm {
    /// Sets a vCPU attribute that takes one guest-physical address. The vCPU
    /// must not be inside KVM_RUN (KVM would wait for it): call it from that
    /// vCPU's own thread (see [`XenTimeAttrs`]).
    pub(crate) fn set_vcpu_gpa_attr(&self, id: u32, kind: u32, gpa: Option<u64>) -> Result<()> {
        let mut attr = kvm_xen_vcpu_attr { type_: kind as u16, ..Default::default() };
        attr.u.gpa = gpa.unwrap_or(INVALID_GPA);
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

    /// Asks KVM to intercept Xen hypercalls and to own hypercall-MSR `msr`.
    pub fn enable_xen_hypercalls(&self, msr: u32) -> Result<()> {
        // Event channels stay in userspace for now: with EVTCHN_SEND the kernel
        // would also need the shared_info location and every delivery; without
        // it, KVM 6.1 answers SCHEDOP_poll as a yield.
        let cfg = kvm_xen_hvm_config { flags: KVM_XEN_HVM_CONFIG_INTERCEPT_HCALL, msr, ..Default::default() };
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
    gpa: Option<u64>,
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
}

impl XenTimeAttrs {
    pub fn new(vm: Arc<KvmVm>) -> Self {
        Self { vm, pending: Mutex::new(Vec::new()), any: AtomicBool::new(false) }
    }

    fn queue(&self, vcpu: u32, kind: u32, gpa: Option<u64>) -> bool {
        match self.pending.lock() {
            Ok(mut p) => {
                p.push(PendingAttr { vcpu, kind, gpa });
                self.any.store(true, Ordering::Release);
                true
            }
            Err(_) => false,
        }
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
            if let Err(e) = self.vm.set_vcpu_gpa_attr(a.vcpu, a.kind, a.gpa) {
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
        self.queue(vcpu, KVM_XEN_VCPU_ATTR_TYPE_VCPU_INFO, Some(gpa))
    }

    fn time_area_at(&self, vcpu: u32, gpa: Option<u64>) -> bool {
        self.queue(vcpu, KVM_XEN_VCPU_ATTR_TYPE_VCPU_TIME_INFO, gpa)
    }
}
