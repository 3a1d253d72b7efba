//! The KVM adapter: the only crate that talks to `/dev/kvm`.
//!
//! It probes what the host kernel offers ([`caps`]), creates the VM and its
//! memory slots ([`vm`]), presents the Xen CPUID identity ([`cpuid`]), and runs
//! vCPUs ([`vcpu`]), decoding each exit into calls on an [`vcpu::ExitHandler`]
//! that the VMM implements. Hypercalls that reach us through the userspace
//! hypercall page arrive as port I/O and are decoded here, from the registers
//! `KVM_CAP_SYNC_REGS` hands back with every exit, into a
//! [`xenkvm_xen_core::HypercallRequest`].

pub mod caps;
pub mod clock;
pub mod cpuid;
pub mod ioctls;
pub mod kick;
pub mod vcpu;
pub mod vm;
pub mod xen;

pub use caps::HostCaps;
pub use vcpu::{ExitHandler, KvmVcpu, VcpuEvent};
pub use vm::KvmVm;

/// A failed KVM operation.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Cannot open /dev/kvm")]
    OpenKvm(#[source] kvm_ioctls::Error),
    #[error("KVM API version {0} is not supported (need 12)")]
    ApiVersion(i32),
    #[error("Host KVM lacks {0}, which xenkvm needs")]
    MissingCapability(&'static str),
    #[error("Cannot create the VM")]
    CreateVm(#[source] kvm_ioctls::Error),
    #[error("Cannot enable the split irqchip")]
    SplitIrqchip(#[source] kvm_ioctls::Error),
    #[error("Cannot set a Xen attribute in KVM")]
    XenAttr(#[source] kvm_ioctls::Error),
    #[error("Cannot enable the kernel's Xen hypercall interception")]
    XenHvmConfig(#[source] kvm_ioctls::Error),
    #[error("Cannot set up user-space MSR exits")]
    MsrFilter(#[source] kvm_ioctls::Error),
    #[error("Cannot set memory slot {slot} at {gpa:#x} ({size:#x} bytes)")]
    SetMemorySlot { slot: u32, gpa: u64, size: u64, #[source] source: kvm_ioctls::Error },
    #[error("Ran out of KVM memory slots")]
    NoFreeSlot,
    #[error("Cannot create vCPU {0}")]
    CreateVcpu(u32, #[source] kvm_ioctls::Error),
    #[error("Cannot read the supported CPUID")]
    GetCpuid(#[source] kvm_ioctls::Error),
    #[error("Cannot set CPUID on vCPU {0}")]
    SetCpuid(u32, #[source] kvm_ioctls::Error),
    #[error("Cannot set registers of vCPU {0}")]
    SetRegisters(u32, #[source] kvm_ioctls::Error),
    #[error("Cannot read the guest TSC")]
    ReadTsc(#[source] kvm_ioctls::Error),
    #[error("KVM_RUN failed on vCPU {0}")]
    Run(u32, #[source] kvm_ioctls::Error),
    #[error("Cannot inject an external interrupt on vCPU {0}")]
    Interrupt(u32, #[source] kvm_ioctls::Error),
    #[error("Cannot signal an MSI")]
    SignalMsi(#[source] kvm_ioctls::Error),
    #[error("Cannot set the I/O APIC's MSI routes (KVM_SET_GSI_ROUTING)")]
    SetGsiRouting(#[source] kvm_ioctls::Error),
    #[error("Guest memory has a region KVM cannot map")]
    GuestMemory,
}

pub type Result<T> = std::result::Result<T, Error>;
