//! The few Xen ABI constants and records the guest uses.
//!
//! Redeclared here because the guest cannot depend on `xenkvm-xen-abi` (a std
//! crate); names follow that crate (and so Xen's public headers) so that they
//! grep against both. Layouts are the 64-bit ABI.
#![allow(dead_code)]

// xen.h: hypercall numbers.
pub const HYPERVISOR_MEMORY_OP: u32 = 12;
pub const HYPERVISOR_XEN_VERSION: u32 = 17;
pub const HYPERVISOR_CONSOLE_IO: u32 = 18;
pub const HYPERVISOR_VM_ASSIST: u32 = 21;
pub const HYPERVISOR_VCPU_OP: u32 = 24;
pub const HYPERVISOR_SCHED_OP: u32 = 29;
pub const HYPERVISOR_HVM_OP: u32 = 34;

pub const DOMID_SELF: u16 = 0x7FF0;

pub const CONSOLEIO_WRITE: u64 = 0;
pub const CONSOLEIO_READ: u64 = 1;

pub const VMASST_CMD_ENABLE: u64 = 0;
pub const VMASST_TYPE_RUNSTATE_UPDATE_FLAG: u64 = 5;

pub const XEN_PAGE_SIZE: u64 = 4096;
pub const XEN_PAGE_SHIFT: u32 = 12;

// errno.h, as returned (negated) in rax.
pub const EPERM: i64 = 1;
pub const ENOENT: i64 = 2;
pub const ESRCH: i64 = 3;
pub const ENXIO: i64 = 6;
pub const EFAULT: i64 = 14;
pub const EINVAL: i64 = 22;
pub const ENOSYS: i64 = 38;

// arch-x86/cpuid.h.
pub const XEN_CPUID_SIGNATURE_EBX: u32 = 0x566e_6558; // "XenV"
pub const XEN_CPUID_SIGNATURE_ECX: u32 = 0x6558_4d4d; // "MMXe"
pub const XEN_CPUID_SIGNATURE_EDX: u32 = 0x4d4d_566e; // "nVMM"
pub const KVM_CPUID_SIGNATURE_EBX: u32 = 0x4b4d_564b; // "KVMK"
pub const KVM_CPUID_SIGNATURE_ECX: u32 = 0x564b_4d56; // "VMKV"
pub const KVM_CPUID_SIGNATURE_EDX: u32 = 0x0000_004d; // "M\0\0\0"

// version.h and features.h.
pub const XENVER_VERSION: u64 = 0;
pub const XENVER_EXTRAVERSION: u64 = 1;
pub const XENVER_COMPILE_INFO: u64 = 2;
pub const XENVER_CAPABILITIES: u64 = 3;
pub const XENVER_CHANGESET: u64 = 4;
pub const XENVER_PLATFORM_PARAMETERS: u64 = 5;
pub const XENVER_GET_FEATURES: u64 = 6;
pub const XENVER_PAGESIZE: u64 = 7;
pub const XENVER_GUEST_HANDLE: u64 = 8;
pub const XENVER_COMMANDLINE: u64 = 9;
pub const XENVER_BUILD_ID: u64 = 10;

pub const XEN_EXTRAVERSION_LEN: usize = 16;
pub const XEN_COMPILE_INFO_LEN: usize = 144;
pub const XEN_CAPABILITIES_INFO_LEN: usize = 1024;
pub const XEN_CHANGESET_INFO_LEN: usize = 64;
pub const XEN_DOMAIN_HANDLE_LEN: usize = 16;

pub const XENFEAT_AUTO_TRANSLATED_PHYSMAP: u32 = 2;
pub const XENFEAT_HVM_CALLBACK_VECTOR: u32 = 8;
pub const XENFEAT_HVM_SAFE_PVCLOCK: u32 = 9;
pub const XENFEAT_DOM0: u32 = 11;

/// `struct xen_feature_info`.
#[repr(C)]
#[derive(Default, Clone, Copy)]
pub struct XenFeatureInfo {
    pub submap_idx: u32,
    pub submap: u32,
}

// memory.h.
pub const XENMEM_ADD_TO_PHYSMAP: u64 = 7;
pub const XENMAPSPACE_SHARED_INFO: u32 = 0;

/// `struct xen_add_to_physmap`.
#[repr(C)]
#[derive(Default, Clone, Copy)]
pub struct XenAddToPhysmap {
    pub domid: u16,
    pub size: u16,
    pub space: u32,
    pub idx: u64,
    pub gpfn: u64,
}

// hvm/hvm_op.h and hvm/params.h.
pub const HVMOP_SET_PARAM: u64 = 0;
pub const HVMOP_GET_PARAM: u64 = 1;
pub const HVMOP_PAGETABLE_DYING: u64 = 9;
pub const HVM_PARAM_CALLBACK_IRQ: u32 = 0;
pub const HVM_PARAM_STORE_PFN: u32 = 1;
pub const HVM_PARAM_IDENT_PT: u32 = 12;
pub const HVM_NR_PARAMS: u32 = 39;

/// `struct xen_hvm_param`.
#[repr(C)]
#[derive(Default, Clone, Copy)]
pub struct XenHvmParam {
    pub domid: u16,
    pub pad: u16,
    pub index: u32,
    pub value: u64,
}

// vcpu.h.
pub const VCPUOP_REGISTER_RUNSTATE_MEMORY_AREA: u64 = 5;
pub const VCPUOP_REGISTER_VCPU_INFO: u64 = 10;
pub const VCPUOP_REGISTER_VCPU_TIME_MEMORY_AREA: u64 = 13;
pub const RUNSTATE_RUNNING: i32 = 0;
pub const RUNSTATE_BLOCKED: usize = 2;
pub const XEN_RUNSTATE_UPDATE: u64 = 1 << 63;

/// `struct vcpu_register_vcpu_info`.
#[repr(C)]
#[derive(Default, Clone, Copy)]
pub struct VcpuRegisterVcpuInfo {
    pub mfn: u64,
    pub offset: u32,
    pub rsvd: u32,
}

/// `struct vcpu_register_{time,runstate}_memory_area`: one guest virtual address.
#[repr(C)]
#[derive(Default, Clone, Copy)]
pub struct VcpuRegisterMemoryArea {
    pub addr: u64,
}

/// Size of `struct vcpu_runstate_info` (64-bit ABI).
pub const VCPU_RUNSTATE_INFO_SIZE: usize = 48;
/// Offsets in `struct vcpu_runstate_info`.
pub const RUNSTATE_STATE: usize = 0;
pub const RUNSTATE_ENTRY_TIME: usize = 8;
pub const RUNSTATE_TIME: usize = 16;

// sched.h.
pub const SCHEDOP_YIELD: u64 = 0;
pub const SCHEDOP_BLOCK: u64 = 1;
pub const SCHEDOP_SHUTDOWN: u64 = 2;
pub const SCHEDOP_POLL: u64 = 3;
pub const SHUTDOWN_POWEROFF: u32 = 0;
pub const SHUTDOWN_CRASH: u32 = 3;

/// `struct sched_shutdown`.
#[repr(C)]
#[derive(Default, Clone, Copy)]
pub struct SchedShutdown {
    pub reason: u32,
}

/// `struct sched_poll` (64-bit ABI).
#[repr(C)]
#[derive(Default, Clone, Copy)]
pub struct SchedPoll {
    pub ports: u64,
    pub nr_ports: u32,
    pub pad: u32,
    pub timeout: u64,
}

// xen.h: shared_info / vcpu_info layout (64-bit ABI).
/// Size of one `vcpu_info`.
pub const VCPU_INFO_SIZE: usize = 64;
/// `vcpu_info.evtchn_upcall_pending`.
pub const VCPU_INFO_UPCALL_PENDING: usize = 0;
/// `vcpu_info.evtchn_pending_sel` (64-bit ABI).
pub const VCPU_INFO_PENDING_SEL: usize = 8;
/// `vcpu_info.time` (a `vcpu_time_info`, 32 bytes).
pub const VCPU_INFO_TIME: usize = 32;
/// `shared_info.evtchn_pending[0]`.
pub const SHARED_INFO_EVTCHN_PENDING: usize = 0x800;
pub const SHARED_INFO_WC_VERSION: usize = 0xC00;
pub const SHARED_INFO_WC_SEC: usize = 0xC04;

/// `XEN_PVCLOCK_TSC_STABLE_BIT` in `vcpu_time_info.flags`.
pub const XEN_PVCLOCK_TSC_STABLE_BIT: u8 = 1 << 0;
