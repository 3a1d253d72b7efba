//! `xen/include/public/xen.h` and `arch-x86/xen.h`: `shared_info`, `vcpu_info`,
//! `vcpu_time_info` (pvclock) and `arch_shared_info`.
//!
//! The shared_info page is written by the hypervisor while vCPUs read it
//! concurrently, so xen-core never builds these structs in place: it uses the
//! offsets below with atomic or volatile accesses. The structs exist for the layout
//! tests and for whole-record copies (`vcpu_time_info`).

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// `struct vcpu_time_info`, the pvclock record (32 bytes in both ABIs).
#[doc(alias = "vcpu_time_info")]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct VcpuTimeInfo {
    /// Odd while an update is in progress.
    pub version: u32,
    pub pad0: u32,
    /// TSC at the moment `system_time` was sampled.
    pub tsc_timestamp: u64,
    /// Nanoseconds of Xen system time at `tsc_timestamp`.
    pub system_time: u64,
    pub tsc_to_system_mul: u32,
    pub tsc_shift: i8,
    pub flags: u8,
    pub pad1: [u8; 2],
}

/// `XEN_PVCLOCK_TSC_STABLE_BIT`: the TSC is stable and synchronised across vCPUs.
pub const XEN_PVCLOCK_TSC_STABLE_BIT: u8 = 1 << 0;
/// `XEN_PVCLOCK_GUEST_STOPPED`.
pub const XEN_PVCLOCK_GUEST_STOPPED: u8 = 1 << 1;

/// Size of one `vcpu_info` in both ABIs.
pub const VCPU_INFO_SIZE: u64 = 64;
/// Offsets within `vcpu_info`.
pub const VCPU_INFO_UPCALL_PENDING: u64 = 0;
pub const VCPU_INFO_UPCALL_MASK: u64 = 1;
/// `evtchn_pending_sel` (64-bit ABI: u64 at 8; compat: u32 at 4).
pub const VCPU_INFO_PENDING_SEL: u64 = 8;
pub const COMPAT_VCPU_INFO_PENDING_SEL: u64 = 4;
/// `vcpu_info.time` in both ABIs.
pub const VCPU_INFO_TIME: u64 = 32;

/// `struct vcpu_info` for 64-bit guests.
#[doc(alias = "vcpu_info")]
#[derive(Debug, Default, Clone, Copy, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct VcpuInfo {
    pub evtchn_upcall_pending: u8,
    pub evtchn_upcall_mask: u8,
    pub pad0: [u8; 6],
    pub evtchn_pending_sel: u64,
    /// `arch_vcpu_info { cr2; pad; }`
    pub arch_cr2: u64,
    pub arch_pad: u64,
    pub time: VcpuTimeInfo,
}

/// `struct vcpu_info` for 32-bit guests.
#[derive(Debug, Default, Clone, Copy, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct CompatVcpuInfo {
    pub evtchn_upcall_pending: u8,
    pub evtchn_upcall_mask: u8,
    pub pad0: [u8; 2],
    pub evtchn_pending_sel: u32,
    /// `arch_vcpu_info { cr2; pad[5]; }`
    pub arch_cr2: u32,
    pub arch_pad: [u32; 5],
    pub time: VcpuTimeInfo,
}

/// Byte offsets of the `shared_info` fields, which differ between the 64-bit and
/// the 32-bit (compat) layout of the page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SharedInfoLayout {
    pub evtchn_pending: u64,
    pub evtchn_mask: u64,
    pub wc_version: u64,
    pub wc_sec: u64,
    pub wc_nsec: u64,
    pub wc_sec_hi: u64,
    /// Bytes per `xen_ulong_t` (8 or 4), the unit of the pending and mask words.
    pub word_bytes: u64,
}

/// Layout for guests whose shared_info is latched in 64-bit mode.
pub const SHARED_INFO_64: SharedInfoLayout = SharedInfoLayout {
    evtchn_pending: 0x800,
    evtchn_mask: 0xA00,
    wc_version: 0xC00,
    wc_sec: 0xC04,
    wc_nsec: 0xC08,
    wc_sec_hi: 0xC0C,
    word_bytes: 8,
};

/// Layout for guests whose shared_info is latched in 32-bit mode (`wc_sec_hi`
/// lives at the end of `arch_shared_info` there).
pub const SHARED_INFO_COMPAT: SharedInfoLayout = SharedInfoLayout {
    evtchn_pending: 0x800,
    evtchn_mask: 0x880,
    wc_version: 0x900,
    wc_sec: 0x904,
    wc_nsec: 0x908,
    wc_sec_hi: 0x924,
    word_bytes: 4,
};

/// `struct shared_info` for 64-bit guests (3136 bytes).
#[doc(alias = "shared_info")]
#[derive(Clone, Copy, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct SharedInfo {
    pub vcpu_info: [VcpuInfo; 32],
    pub evtchn_pending: [u64; 64],
    pub evtchn_mask: [u64; 64],
    pub wc_version: u32,
    pub wc_sec: u32,
    pub wc_nsec: u32,
    pub wc_sec_hi: u32,
    pub arch: ArchSharedInfo,
}

/// `struct arch_shared_info` (x86_64).
#[derive(Debug, Default, Clone, Copy, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct ArchSharedInfo {
    pub max_pfn: u64,
    pub pfn_to_mfn_frame_list_list: u64,
    pub nmi_reason: u64,
    pub p2m_cr3: u64,
    pub p2m_vaddr: u64,
    pub p2m_generation: u64,
}

/// `struct shared_info` for 32-bit guests.
#[derive(Clone, Copy, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct CompatSharedInfo {
    pub vcpu_info: [CompatVcpuInfo; 32],
    pub evtchn_pending: [u32; 32],
    pub evtchn_mask: [u32; 32],
    pub wc_version: u32,
    pub wc_sec: u32,
    pub wc_nsec: u32,
    pub arch: CompatArchSharedInfo,
}

/// `struct arch_shared_info` (x86_32), which carries `wc_sec_hi`.
#[derive(Debug, Default, Clone, Copy, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct CompatArchSharedInfo {
    pub max_pfn: u32,
    pub pfn_to_mfn_frame_list_list: u32,
    pub nmi_reason: u32,
    pub p2m_cr3: u32,
    pub p2m_vaddr: u32,
    pub p2m_generation: u32,
    pub wc_sec_hi: u32,
}
