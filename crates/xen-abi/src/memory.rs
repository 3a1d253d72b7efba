//! `xen/include/public/memory.h`: `HYPERVISOR_memory_op`.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

pub const XENMEM_INCREASE_RESERVATION: u64 = 0;
pub const XENMEM_DECREASE_RESERVATION: u64 = 1;
pub const XENMEM_MAXIMUM_RAM_PAGE: u64 = 2;
pub const XENMEM_CURRENT_RESERVATION: u64 = 3;
pub const XENMEM_MAXIMUM_RESERVATION: u64 = 4;
pub const XENMEM_MACHPHYS_MFN_LIST: u64 = 5;
pub const XENMEM_POPULATE_PHYSMAP: u64 = 6;
pub const XENMEM_ADD_TO_PHYSMAP: u64 = 7;
pub const XENMEM_MEMORY_MAP: u64 = 9;
pub const XENMEM_MACHINE_MEMORY_MAP: u64 = 10;
pub const XENMEM_REMOVE_FROM_PHYSMAP: u64 = 15;
pub const XENMEM_ADD_TO_PHYSMAP_BATCH: u64 = 23;

/// The low bits of a `memory_op` command; the rest is a continuation start extent.
pub const MEMOP_CMD_MASK: u64 = (1 << 6) - 1;

pub const XENMAPSPACE_SHARED_INFO: u32 = 0;
pub const XENMAPSPACE_GRANT_TABLE: u32 = 1;
pub const XENMAPSPACE_GMFN: u32 = 2;
pub const XENMAPSPACE_GMFN_RANGE: u32 = 3;
pub const XENMAPSPACE_GMFN_FOREIGN: u32 = 4;
pub const XENMAPSPACE_DEV_MMIO: u32 = 5;

/// `struct xen_add_to_physmap`, 64-bit ABI (24 bytes).
#[doc(alias = "xen_add_to_physmap")]
#[derive(Debug, Default, Clone, Copy, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct XenAddToPhysmap {
    pub domid: u16,
    /// Number of pages, for `XENMAPSPACE_gmfn_range` only.
    pub size: u16,
    pub space: u32,
    pub idx: u64,
    pub gpfn: u64,
}

/// `struct xen_add_to_physmap`, 32-bit ABI (16 bytes).
#[derive(Debug, Default, Clone, Copy, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct CompatXenAddToPhysmap {
    pub domid: u16,
    pub size: u16,
    pub space: u32,
    pub idx: u32,
    pub gpfn: u32,
}

/// Where `XENMEM_{increase,decrease}_reservation` and `populate_physmap`
/// resume: the extent index is kept in the command's upper bits.
pub const MEMOP_EXTENT_SHIFT: u32 = 6;

/// `struct xen_memory_reservation`, 64-bit ABI (32 bytes).
#[doc(alias = "xen_memory_reservation")]
#[derive(Debug, Default, Clone, Copy, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct XenMemoryReservation {
    /// Guest handle (virtual address) of an array of `xen_pfn_t` (u64).
    pub extent_start: u64,
    pub nr_extents: u64,
    pub extent_order: u32,
    pub mem_flags: u32,
    pub domid: u16,
    pub _pad: [u8; 6],
}

/// `struct xen_memory_reservation`, 32-bit ABI (20 bytes; `xen_pfn_t` is u32).
#[derive(Debug, Default, Clone, Copy, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct CompatXenMemoryReservation {
    pub extent_start: u32,
    pub nr_extents: u32,
    pub extent_order: u32,
    pub mem_flags: u32,
    pub domid: u16,
    pub _pad: [u8; 2],
}

#[cfg(test)]
mod reservation_layout {
    use super::*;

    #[test]
    fn sizes_match_the_c_layouts() {
        assert_eq!(std::mem::size_of::<XenMemoryReservation>(), 32);
        assert_eq!(std::mem::size_of::<CompatXenMemoryReservation>(), 20);
        assert_eq!(std::mem::offset_of!(XenMemoryReservation, domid), 24);
        assert_eq!(std::mem::offset_of!(CompatXenMemoryReservation, domid), 16);
    }
}
