//! `xen/include/public/vcpu.h`: `HYPERVISOR_vcpu_op` and its argument records.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

pub const VCPUOP_INITIALISE: u64 = 0;
pub const VCPUOP_UP: u64 = 1;
pub const VCPUOP_DOWN: u64 = 2;
pub const VCPUOP_IS_UP: u64 = 3;
pub const VCPUOP_GET_RUNSTATE_INFO: u64 = 4;
pub const VCPUOP_REGISTER_RUNSTATE_MEMORY_AREA: u64 = 5;
pub const VCPUOP_SET_PERIODIC_TIMER: u64 = 6;
pub const VCPUOP_STOP_PERIODIC_TIMER: u64 = 7;
pub const VCPUOP_SET_SINGLESHOT_TIMER: u64 = 8;
pub const VCPUOP_STOP_SINGLESHOT_TIMER: u64 = 9;
pub const VCPUOP_REGISTER_VCPU_INFO: u64 = 10;
pub const VCPUOP_SEND_NMI: u64 = 11;
pub const VCPUOP_GET_PHYSID: u64 = 12;
pub const VCPUOP_REGISTER_VCPU_TIME_MEMORY_AREA: u64 = 13;

/// Runstates.
pub const RUNSTATE_RUNNING: i32 = 0;
pub const RUNSTATE_RUNNABLE: i32 = 1;
pub const RUNSTATE_BLOCKED: i32 = 2;
pub const RUNSTATE_OFFLINE: i32 = 3;
/// Set in `state_entry_time` while the record is being updated.
pub const XEN_RUNSTATE_UPDATE: u64 = 1 << 63;

/// `struct vcpu_runstate_info`, 64-bit ABI (48 bytes).
#[doc(alias = "vcpu_runstate_info")]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct VcpuRunstateInfo {
    pub state: i32,
    pub pad0: u32,
    pub state_entry_time: u64,
    pub time: [u64; 4],
}

/// `struct vcpu_runstate_info`, 32-bit ABI (44 bytes: 64-bit fields 4-aligned).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C, packed(4))]
pub struct CompatVcpuRunstateInfo {
    pub state: i32,
    pub state_entry_time: u64,
    pub time: [u64; 4],
}

/// `struct vcpu_register_vcpu_info` (16 bytes in both ABIs).
#[doc(alias = "vcpu_register_vcpu_info")]
#[derive(Debug, Default, Clone, Copy, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct VcpuRegisterVcpuInfo {
    /// Guest frame number of the page holding the new `vcpu_info`.
    pub mfn: u64,
    /// Byte offset of the `vcpu_info` in that page.
    pub offset: u32,
    pub rsvd: u32,
}

/// `struct vcpu_register_time_memory_area` and
/// `struct vcpu_register_runstate_memory_area`: one guest handle, 8 bytes in
/// both ABIs (a union with a `uint64_t`).
#[derive(Debug, Default, Clone, Copy, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct VcpuRegisterMemoryArea {
    pub addr: u64,
}

/// `struct vcpu_set_periodic_timer` (8 bytes in both ABIs).
#[doc(alias = "vcpu_set_periodic_timer")]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct VcpuSetPeriodicTimer {
    pub period_ns: u64,
}

/// `struct vcpu_set_singleshot_timer`, 64-bit ABI (16 bytes).
#[doc(alias = "vcpu_set_singleshot_timer")]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct VcpuSetSingleshotTimer {
    /// Absolute Xen system time, nanoseconds.
    pub timeout_abs_ns: u64,
    /// `VCPU_SSHOTTMR_*`.
    pub flags: u32,
    pub pad: u32,
}

/// `struct vcpu_set_singleshot_timer`, 32-bit ABI (12 bytes: no tail padding).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C, packed(4))]
pub struct CompatVcpuSetSingleshotTimer {
    pub timeout_abs_ns: u64,
    pub flags: u32,
}

/// `VCPU_SSHOTTMR_future`: ask for -ETIME if the timeout already passed (Xen
/// 4.18 and later ignore it).
pub const VCPU_SSHOTTMR_FUTURE: u32 = 1 << 0;
