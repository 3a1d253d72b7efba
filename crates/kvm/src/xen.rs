//! The kernel-assisted Xen path (`KVM_CAP_XEN_HVM`): KVM installs the hypercall
//! page itself (with `vmcall`/`vmmcall` stubs for the host's vendor) when the guest
//! writes the hypercall MSR, and hands every hypercall it does not accelerate to
//! us as `KVM_EXIT_XEN`, already decoded by the guest's mode.
//!
//! kvm-ioctls has no Xen ioctls, so the few we need are declared here.

use kvm_bindings::{kvm_xen_hvm_config, KVMIO, KVM_XEN_HVM_CONFIG_INTERCEPT_HCALL};
use vmm_sys_util::ioctl::ioctl_with_ref;
use vmm_sys_util::ioctl_iow_nr;

use crate::{Error, KvmVm, Result};

ioctl_iow_nr!(KVM_XEN_HVM_CONFIG, KVMIO, 0x7a, kvm_xen_hvm_config);

impl KvmVm {
    /// Asks KVM to intercept Xen hypercalls and to own hypercall-MSR `msr`.
    pub fn enable_xen_hypercalls(&self, msr: u32) -> Result<()> {
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
