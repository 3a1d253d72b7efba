//! The KVM ioctl request numbers this crate issues after the VM is built,
//! for the VMM's seccomp filters (`vmm/src/seccomp.rs`): a thread is allowed
//! exactly these requests on `ioctl`, not KVM as a whole.

use kvm_bindings::{
    kvm_clock_data, kvm_interrupt, kvm_irq_routing, kvm_msi, kvm_msrs, kvm_regs, kvm_sregs, kvm_userspace_memory_region,
    kvm_vcpu_events, KVMIO,
};
use vmm_sys_util::{ioctl_io_nr, ioctl_ior_nr, ioctl_iow_nr, ioctl_iowr_nr};

use crate::xen::{KVM_XEN_HVM_EVTCHN_SEND, KVM_XEN_HVM_SET_ATTR, KVM_XEN_VCPU_SET_ATTR};

ioctl_io_nr!(KVM_RUN, KVMIO, 0x80);
ioctl_ior_nr!(KVM_GET_REGS, KVMIO, 0x81, kvm_regs);
ioctl_iow_nr!(KVM_SET_REGS, KVMIO, 0x82, kvm_regs);
ioctl_ior_nr!(KVM_GET_SREGS, KVMIO, 0x83, kvm_sregs);
ioctl_iow_nr!(KVM_SET_SREGS, KVMIO, 0x84, kvm_sregs);
ioctl_iowr_nr!(KVM_GET_MSRS, KVMIO, 0x88, kvm_msrs);
ioctl_iow_nr!(KVM_SET_MSRS, KVMIO, 0x89, kvm_msrs);
// kvm-ioctls 0.25 has no wrapper for it (`KvmVcpu::inject_external`).
ioctl_iow_nr!(KVM_INTERRUPT, KVMIO, 0x86, kvm_interrupt);
ioctl_ior_nr!(KVM_GET_VCPU_EVENTS, KVMIO, 0x9f, kvm_vcpu_events);
ioctl_iow_nr!(KVM_SET_USER_MEMORY_REGION, KVMIO, 0x46, kvm_userspace_memory_region);
ioctl_ior_nr!(KVM_GET_CLOCK, KVMIO, 0x7c, kvm_clock_data);
ioctl_iow_nr!(KVM_SIGNAL_MSI, KVMIO, 0xa5, kvm_msi);
ioctl_iow_nr!(KVM_SET_GSI_ROUTING, KVMIO, 0x6a, kvm_irq_routing);

/// The `KVMIO` ioctl type, for filters that allow every KVM request.
pub const KVM_IOCTL_TYPE: u32 = KVMIO;

/// Requests any thread of a running VM may make on the VM or a vCPU fd:
/// interrupts (MSIs, Xen event channels, the I/O APIC's routes that the
/// guest reprograms from a vCPU), the Xen attributes (timers, shared_info,
/// runstate), grant and overlay mappings, and the clock.
pub fn runtime() -> Vec<u64> {
    [
        KVM_SIGNAL_MSI(),
        KVM_SET_GSI_ROUTING(),
        KVM_SET_USER_MEMORY_REGION(),
        KVM_GET_CLOCK(),
        KVM_XEN_HVM_SET_ATTR(),
        KVM_XEN_VCPU_SET_ATTR(),
        KVM_XEN_HVM_EVTCHN_SEND(),
    ]
    .to_vec()
}

/// Requests only a vCPU thread makes on its own fd: run, registers, MSRs,
/// and the boot vCPU's ExtINT injection (the userspace 8259).
pub fn vcpu() -> Vec<u64> {
    [
        KVM_RUN(),
        KVM_GET_REGS(),
        KVM_SET_REGS(),
        KVM_GET_SREGS(),
        KVM_SET_SREGS(),
        KVM_GET_MSRS(),
        KVM_SET_MSRS(),
        KVM_GET_VCPU_EVENTS(),
        KVM_INTERRUPT(),
    ]
    .to_vec()
}

#[cfg(test)]
mod tests {
    #[test]
    fn numbers_match_the_kernel_headers() {
        assert_eq!(super::KVM_RUN(), 0xae80);
        assert_eq!(super::KVM_SET_USER_MEMORY_REGION(), 0x4020_ae46);
        assert_eq!(super::KVM_SIGNAL_MSI(), 0x4020_aea5);
        assert_eq!(super::KVM_INTERRUPT(), 0x4004_ae86);
        assert_eq!(super::KVM_SET_GSI_ROUTING(), 0x4008_ae6a);
        assert_eq!(super::runtime().len() + super::vcpu().len(), 16);
    }
}
