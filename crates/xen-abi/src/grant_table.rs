//! `xen/include/public/grant_table.h`: `HYPERVISOR_grant_table_op`, grant entries
//! (version 1) and the argument records of each sub-op.
//!
//! Records whose layout is the same in both ABIs (`gnttab_query_size`,
//! `gnttab_map_grant_ref`, ...) have one type; `gnttab_setup_table`,
//! `gnttab_get_status_frames` and `gnttab_copy` hold a guest handle or a
//! `xen_pfn_t`, so they have a `Compat*` twin.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// `grant_table_op` commands (`unsigned int cmd`).
pub const GNTTABOP_MAP_GRANT_REF: u32 = 0;
pub const GNTTABOP_UNMAP_GRANT_REF: u32 = 1;
pub const GNTTABOP_SETUP_TABLE: u32 = 2;
pub const GNTTABOP_DUMP_TABLE: u32 = 3;
pub const GNTTABOP_TRANSFER: u32 = 4;
pub const GNTTABOP_COPY: u32 = 5;
pub const GNTTABOP_QUERY_SIZE: u32 = 6;
pub const GNTTABOP_UNMAP_AND_REPLACE: u32 = 7;
pub const GNTTABOP_SET_VERSION: u32 = 8;
pub const GNTTABOP_GET_STATUS_FRAMES: u32 = 9;
pub const GNTTABOP_GET_VERSION: u32 = 10;
pub const GNTTABOP_SWAP_GRANT_REF: u32 = 11;
pub const GNTTABOP_CACHE_FLUSH: u32 = 12;

/// The command occupies the low 12 bits; the rest is a continuation argument
/// (`common/grant_table.c`: `GNTTABOP_CONTINUATION_ARG_SHIFT`), accepted only
/// for `GNTTABOP_cache_flush`.
pub const GNTTABOP_CONTINUATION_ARG_SHIFT: u32 = 12;
pub const GNTTABOP_CMD_MASK: u32 = (1 << GNTTABOP_CONTINUATION_ARG_SHIFT) - 1;

/// Grant status codes (`int16_t status` of each op).
pub const GNTST_OKAY: i16 = 0;
pub const GNTST_GENERAL_ERROR: i16 = -1;
pub const GNTST_BAD_DOMAIN: i16 = -2;
pub const GNTST_BAD_GNTREF: i16 = -3;
pub const GNTST_BAD_HANDLE: i16 = -4;
pub const GNTST_BAD_VIRT_ADDR: i16 = -5;
pub const GNTST_BAD_DEV_ADDR: i16 = -6;
pub const GNTST_NO_DEVICE_SPACE: i16 = -7;
pub const GNTST_PERMISSION_DENIED: i16 = -8;
pub const GNTST_BAD_PAGE: i16 = -9;
pub const GNTST_BAD_COPY_ARG: i16 = -10;
pub const GNTST_ADDRESS_TOO_BIG: i16 = -11;
pub const GNTST_EAGAIN: i16 = -12;
pub const GNTST_NO_SPACE: i16 = -13;

/// Grant entry types and flags (`grant_entry_v1.flags`).
pub const GTF_INVALID: u16 = 0;
pub const GTF_PERMIT_ACCESS: u16 = 1;
pub const GTF_ACCEPT_TRANSFER: u16 = 2;
pub const GTF_TRANSITIVE: u16 = 3;
pub const GTF_TYPE_MASK: u16 = 3;
pub const GTF_READONLY: u16 = 1 << 2;
pub const GTF_READING: u16 = 1 << 3;
pub const GTF_WRITING: u16 = 1 << 4;
pub const GTF_PWT: u16 = 1 << 5;
pub const GTF_PCD: u16 = 1 << 6;
pub const GTF_PAT: u16 = 1 << 7;
pub const GTF_SUB_PAGE: u16 = 1 << 8;
pub const GTF_TRANSFER_COMMITTED: u16 = 1 << 2;
pub const GTF_TRANSFER_COMPLETED: u16 = 1 << 3;

/// Entries the toolstack may pre-populate; preserved across version changes.
pub const GNTTAB_NR_RESERVED_ENTRIES: u32 = 8;
/// Reserved reference granting the console ring to the console backend.
pub const GNTTAB_RESERVED_CONSOLE: u32 = 0;
/// Reserved reference granting the xenstore ring to xenstored.
pub const GNTTAB_RESERVED_XENSTORE: u32 = 1;

/// `gnttab_map_grant_ref.flags`.
pub const GNTMAP_DEVICE_MAP: u32 = 1 << 0;
pub const GNTMAP_HOST_MAP: u32 = 1 << 1;
pub const GNTMAP_READONLY: u32 = 1 << 2;
pub const GNTMAP_APPLICATION_MAP: u32 = 1 << 3;
pub const GNTMAP_CONTAINS_PTE: u32 = 1 << 4;

/// `gnttab_copy.flags`: which side names a grant reference (else a frame).
pub const GNTCOPY_SOURCE_GREF: u16 = 1 << 0;
pub const GNTCOPY_DEST_GREF: u16 = 1 << 1;

/// `public/memory.h`: `xen_add_to_physmap.idx` bit selecting a v2 status frame.
pub const XENMAPIDX_GRANT_TABLE_STATUS: u64 = 0x8000_0000;

/// `struct grant_entry_v1` (8 bytes, same in both ABIs). The first 32 bits
/// (`flags` and `domid`) are updated together with compare-and-exchange.
#[doc(alias = "grant_entry_v1")]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct GrantEntryV1 {
    pub flags: u16,
    /// The domain granted access.
    pub domid: u16,
    /// The guest frame that `domid` may access.
    pub frame: u32,
}

/// `struct gnttab_map_grant_ref` (32 bytes in both ABIs).
#[doc(alias = "gnttab_map_grant_ref")]
#[derive(Debug, Default, Clone, Copy, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct GnttabMapGrantRef {
    pub host_addr: u64,
    pub flags: u32,
    /// `ref` in the header.
    pub gref: u32,
    pub dom: u16,
    pub status: i16,
    pub handle: u32,
    pub dev_bus_addr: u64,
}

/// `struct gnttab_unmap_grant_ref` and `struct gnttab_unmap_and_replace`
/// (24 bytes in both ABIs; the second address is `dev_bus_addr` or `new_addr`).
#[doc(alias = "gnttab_unmap_grant_ref")]
#[doc(alias = "gnttab_unmap_and_replace")]
#[derive(Debug, Default, Clone, Copy, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct GnttabUnmapGrantRef {
    pub host_addr: u64,
    pub addr2: u64,
    pub handle: u32,
    pub status: i16,
    pub pad: u16,
}

/// `struct gnttab_setup_table`, 64-bit ABI (24 bytes): `frame_list` is a
/// handle to an array of `xen_ulong_t` (8 bytes each).
#[doc(alias = "gnttab_setup_table")]
#[derive(Debug, Default, Clone, Copy, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct GnttabSetupTable {
    pub dom: u16,
    pub pad0: u16,
    pub nr_frames: u32,
    pub status: i16,
    pub pad1: [u8; 6],
    pub frame_list: u64,
}

/// `struct gnttab_setup_table`, 32-bit ABI (16 bytes): `frame_list` is a
/// 32-bit handle to an array of `compat_pfn_t` (4 bytes each).
#[derive(Debug, Default, Clone, Copy, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct CompatGnttabSetupTable {
    pub dom: u16,
    pub pad0: u16,
    pub nr_frames: u32,
    pub status: i16,
    pub pad1: u16,
    pub frame_list: u32,
}

/// `struct gnttab_copy_ptr`, 64-bit ABI (16 bytes): `u` is the union of
/// `grant_ref_t ref` (low 32 bits) and `xen_pfn_t gmfn`.
#[doc(alias = "gnttab_copy_ptr")]
#[derive(Debug, Default, Clone, Copy, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct GnttabCopyPtr {
    pub u: u64,
    pub domid: u16,
    pub offset: u16,
    pub pad: u32,
}

/// `struct gnttab_copy`, 64-bit ABI (40 bytes).
#[doc(alias = "gnttab_copy")]
#[derive(Debug, Default, Clone, Copy, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct GnttabCopy {
    pub source: GnttabCopyPtr,
    pub dest: GnttabCopyPtr,
    pub len: u16,
    pub flags: u16,
    pub status: i16,
    pub pad: u16,
}

/// `struct gnttab_copy_ptr`, 32-bit ABI (8 bytes): `u` is `ref` or a 32-bit `gmfn`.
#[derive(Debug, Default, Clone, Copy, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct CompatGnttabCopyPtr {
    pub u: u32,
    pub domid: u16,
    pub offset: u16,
}

/// `struct gnttab_copy`, 32-bit ABI (24 bytes).
#[derive(Debug, Default, Clone, Copy, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct CompatGnttabCopy {
    pub source: CompatGnttabCopyPtr,
    pub dest: CompatGnttabCopyPtr,
    pub len: u16,
    pub flags: u16,
    pub status: i16,
    pub pad: u16,
}

impl From<CompatGnttabCopyPtr> for GnttabCopyPtr {
    fn from(c: CompatGnttabCopyPtr) -> Self {
        Self { u: c.u.into(), domid: c.domid, offset: c.offset, pad: 0 }
    }
}

impl From<CompatGnttabCopy> for GnttabCopy {
    fn from(c: CompatGnttabCopy) -> Self {
        Self { source: c.source.into(), dest: c.dest.into(), len: c.len, flags: c.flags, status: c.status, pad: 0 }
    }
}

/// `struct gnttab_query_size` (16 bytes in both ABIs).
#[doc(alias = "gnttab_query_size")]
#[derive(Debug, Default, Clone, Copy, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct GnttabQuerySize {
    pub dom: u16,
    pub pad0: u16,
    pub nr_frames: u32,
    pub max_nr_frames: u32,
    pub status: i16,
    pub pad1: u16,
}

/// `struct gnttab_set_version` (4 bytes in both ABIs).
#[doc(alias = "gnttab_set_version")]
#[derive(Debug, Default, Clone, Copy, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct GnttabSetVersion {
    pub version: u32,
}

/// `struct gnttab_get_version` (8 bytes in both ABIs).
#[doc(alias = "gnttab_get_version")]
#[derive(Debug, Default, Clone, Copy, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct GnttabGetVersion {
    pub dom: u16,
    pub pad: u16,
    pub version: u32,
}

/// `struct gnttab_get_status_frames`, 64-bit ABI (16 bytes).
#[doc(alias = "gnttab_get_status_frames")]
#[derive(Debug, Default, Clone, Copy, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct GnttabGetStatusFrames {
    pub nr_frames: u32,
    pub dom: u16,
    pub status: i16,
    pub frame_list: u64,
}

/// `struct gnttab_get_status_frames`, 32-bit ABI (12 bytes).
#[derive(Debug, Default, Clone, Copy, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct CompatGnttabGetStatusFrames {
    pub nr_frames: u32,
    pub dom: u16,
    pub status: i16,
    pub frame_list: u32,
}

/// `struct gnttab_swap_grant_ref` (12 bytes in both ABIs).
#[doc(alias = "gnttab_swap_grant_ref")]
#[derive(Debug, Default, Clone, Copy, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct GnttabSwapGrantRef {
    pub ref_a: u32,
    pub ref_b: u32,
    pub status: i16,
    pub pad: u16,
}
