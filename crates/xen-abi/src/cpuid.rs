//! `xen/include/public/arch-x86/cpuid.h`: the Xen hypervisor CPUID leaves.

/// Default base of the Xen leaves.
pub const XEN_CPUID_BASE: u32 = 0x4000_0000;
/// Base used when Hyper-V enlightenments occupy 0x40000000.
pub const XEN_CPUID_BASE_WITH_HYPERV: u32 = 0x4000_0100;

/// "XenVMMXenVMM" as ebx, ecx, edx.
pub const XEN_CPUID_SIGNATURE_EBX: u32 = 0x566e_6558;
pub const XEN_CPUID_SIGNATURE_ECX: u32 = 0x6558_4d4d;
pub const XEN_CPUID_SIGNATURE_EDX: u32 = 0x4d4d_566e;

/// MSR that the guest writes to install the hypercall page (base+2 ebx).
pub const XEN_HYPERCALL_MSR: u32 = 0x4000_0000;
/// The same MSR when Hyper-V owns 0x40000000.
pub const XEN_HYPERCALL_MSR_WITH_HYPERV: u32 = 0x4000_0200;

/// Leaf base+3 (time), sub-leaf 0, eax flags.
pub const XEN_CPUID_TSC_EMULATED: u32 = 1 << 0;
pub const XEN_CPUID_HOST_TSC_RELIABLE: u32 = 1 << 1;
pub const XEN_CPUID_RDTSCP_INSTR_AVAIL: u32 = 1 << 2;

/// Leaf base+4 (HVM), eax flags.
pub const XEN_HVM_CPUID_APIC_ACCESS_VIRT: u32 = 1 << 0;
pub const XEN_HVM_CPUID_X2APIC_VIRT: u32 = 1 << 1;
pub const XEN_HVM_CPUID_IOMMU_MAPPINGS: u32 = 1 << 2;
pub const XEN_HVM_CPUID_VCPU_ID_PRESENT: u32 = 1 << 3;
pub const XEN_HVM_CPUID_DOMID_PRESENT: u32 = 1 << 4;
pub const XEN_HVM_CPUID_EXT_DEST_ID: u32 = 1 << 5;
pub const XEN_HVM_CPUID_UPCALL_VECTOR: u32 = 1 << 6;
