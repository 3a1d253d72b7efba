//! `public/physdev.h`: physical IRQs (PIRQs) of an HVM guest.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

pub const PHYSDEVOP_IRQ_STATUS_QUERY: u64 = 5;
pub const PHYSDEVOP_EOI: u64 = 12;
pub const PHYSDEVOP_MAP_PIRQ: u64 = 13;
pub const PHYSDEVOP_UNMAP_PIRQ: u64 = 14;
pub const PHYSDEVOP_PIRQ_EOI_GMFN_V1: u64 = 17;
pub const PHYSDEVOP_GET_FREE_PIRQ: u64 = 23;
pub const PHYSDEVOP_PIRQ_EOI_GMFN_V2: u64 = 28;

pub const MAP_PIRQ_TYPE_MSI: i32 = 0;
pub const MAP_PIRQ_TYPE_GSI: i32 = 1;
pub const MAP_PIRQ_TYPE_UNKNOWN: i32 = 2;
pub const MAP_PIRQ_TYPE_MSI_SEG: i32 = 3;
pub const MAP_PIRQ_TYPE_MULTI_MSI: i32 = 4;

/// `irq_status_query` flags.
pub const XENIRQSTAT_NEEDS_EOI: u32 = 1 << 0;
pub const XENIRQSTAT_SHARED: u32 = 1 << 1;

/// `struct physdev_map_pirq` (40 bytes).
#[doc(alias = "physdev_map_pirq")]
#[derive(Debug, Default, Clone, Copy, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct PhysdevMapPirq {
    pub domid: u16,
    pub _pad0: u16,
    pub type_: i32,
    /// The GSI (GSI type) or -1 (MSI).
    pub index: i32,
    /// IN: the PIRQ wanted (< 0: any). OUT: the PIRQ mapped.
    pub pirq: i32,
    pub bus: i32,
    pub devfn: i32,
    pub entry_nr: i32,
    pub _pad1: u32,
    pub table_base: u64,
}

/// `struct physdev_unmap_pirq` (8 bytes).
#[derive(Debug, Default, Clone, Copy, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct PhysdevUnmapPirq {
    pub domid: u16,
    pub _pad: u16,
    pub pirq: i32,
}

/// `struct physdev_eoi` (4 bytes).
#[derive(Debug, Default, Clone, Copy, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct PhysdevEoi {
    pub irq: u32,
}

/// `struct physdev_irq_status_query` (8 bytes).
#[derive(Debug, Default, Clone, Copy, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct PhysdevIrqStatusQuery {
    pub irq: u32,
    /// OUT.
    pub flags: u32,
}

/// `struct physdev_get_free_pirq` (8 bytes).
#[derive(Debug, Default, Clone, Copy, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct PhysdevGetFreePirq {
    pub type_: i32,
    /// OUT.
    pub pirq: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_match_the_c_layouts() {
        assert_eq!(std::mem::size_of::<PhysdevMapPirq>(), 40);
        assert_eq!(std::mem::offset_of!(PhysdevMapPirq, pirq), 12);
        assert_eq!(std::mem::offset_of!(PhysdevMapPirq, table_base), 32);
        assert_eq!(std::mem::size_of::<PhysdevUnmapPirq>(), 8);
        assert_eq!(std::mem::size_of::<PhysdevGetFreePirq>(), 8);
    }
}
