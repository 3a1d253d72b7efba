//! `xen/include/public/xen.h`: hypercall numbers, domain ids, `vm_assist` types.

pub const HYPERVISOR_SET_TRAP_TABLE: u64 = 0;
pub const HYPERVISOR_MMU_UPDATE: u64 = 1;
pub const HYPERVISOR_SET_GDT: u64 = 2;
pub const HYPERVISOR_STACK_SWITCH: u64 = 3;
pub const HYPERVISOR_SET_CALLBACKS: u64 = 4;
pub const HYPERVISOR_FPU_TASKSWITCH: u64 = 5;
pub const HYPERVISOR_SCHED_OP_COMPAT: u64 = 6;
pub const HYPERVISOR_PLATFORM_OP: u64 = 7;
pub const HYPERVISOR_MEMORY_OP: u64 = 12;
pub const HYPERVISOR_MULTICALL: u64 = 13;
pub const HYPERVISOR_SET_TIMER_OP: u64 = 15;
pub const HYPERVISOR_EVENT_CHANNEL_OP_COMPAT: u64 = 16;
pub const HYPERVISOR_XEN_VERSION: u64 = 17;
pub const HYPERVISOR_CONSOLE_IO: u64 = 18;
pub const HYPERVISOR_PHYSDEV_OP_COMPAT: u64 = 19;
pub const HYPERVISOR_GRANT_TABLE_OP: u64 = 20;
pub const HYPERVISOR_VM_ASSIST: u64 = 21;
pub const HYPERVISOR_IRET: u64 = 23;
pub const HYPERVISOR_VCPU_OP: u64 = 24;
pub const HYPERVISOR_MMUEXT_OP: u64 = 26;
pub const HYPERVISOR_XSM_OP: u64 = 27;
pub const HYPERVISOR_NMI_OP: u64 = 28;
pub const HYPERVISOR_SCHED_OP: u64 = 29;
pub const HYPERVISOR_CALLBACK_OP: u64 = 30;
pub const HYPERVISOR_XENOPROF_OP: u64 = 31;
pub const HYPERVISOR_EVENT_CHANNEL_OP: u64 = 32;
pub const HYPERVISOR_PHYSDEV_OP: u64 = 33;
pub const HYPERVISOR_HVM_OP: u64 = 34;
pub const HYPERVISOR_SYSCTL: u64 = 35;
pub const HYPERVISOR_DOMCTL: u64 = 36;
pub const HYPERVISOR_KEXEC_OP: u64 = 37;
pub const HYPERVISOR_ARGO_OP: u64 = 39;
pub const HYPERVISOR_XENPMU_OP: u64 = 40;
pub const HYPERVISOR_DM_OP: u64 = 41;
pub const HYPERVISOR_HYPFS_OP: u64 = 42;

/// Number of 32-byte entries in a hypercall page (one 4 KiB page).
pub const HYPERCALL_PAGE_ENTRIES: u64 = 128;
/// Size of one hypercall-page entry.
pub const HYPERCALL_ENTRY_SIZE: usize = 32;

/// A guest's name for itself.
pub const DOMID_SELF: u16 = 0x7FF0;
pub const DOMID_IO: u16 = 0x7FF1;
pub const DOMID_XEN: u16 = 0x7FF2;
pub const DOMID_COW: u16 = 0x7FF3;
pub const DOMID_INVALID: u16 = 0x7FF4;
pub const DOMID_IDLE: u16 = 0x7FFF;
/// Domain ids at or above this value are special, never a real domain.
pub const DOMID_FIRST_RESERVED: u16 = 0x7FF0;

/// `HYPERVISOR_console_io` commands.
pub const CONSOLEIO_WRITE: u64 = 0;
pub const CONSOLEIO_READ: u64 = 1;

/// `HYPERVISOR_vm_assist` commands and types.
pub const VMASST_CMD_ENABLE: u64 = 0;
pub const VMASST_CMD_DISABLE: u64 = 1;
pub const VMASST_TYPE_4GB_SEGMENTS: u64 = 0;
pub const VMASST_TYPE_4GB_SEGMENTS_NOTIFY: u64 = 1;
pub const VMASST_TYPE_WRITABLE_PAGETABLES: u64 = 2;
pub const VMASST_TYPE_PAE_EXTENDED_CR3: u64 = 3;
pub const VMASST_TYPE_ARCHITECTURAL_IOPL: u64 = 4;
pub const VMASST_TYPE_RUNSTATE_UPDATE_FLAG: u64 = 5;
pub const VMASST_TYPE_M2P_STRICT: u64 = 32;

/// Xen's page size.
pub const XEN_PAGE_SIZE: u64 = 4096;
pub const XEN_PAGE_SHIFT: u32 = 12;

/// Number of `vcpu_info` slots in `shared_info`.
pub const XEN_LEGACY_MAX_VCPUS: u32 = 32;
