//! Page-table walks in every paging mode, and pointer arguments through them.

use super::*;
use crate::guest::GuestView;
use crate::paging::WalkFault;
use xenkvm_xen_abi::version::XENVER_EXTRAVERSION;
use xenkvm_xen_abi::xen::HYPERVISOR_XEN_VERSION;

const P: u64 = 1;
const RW: u64 = 2;
const PS: u64 = 0x80;

/// 4-level tables at 0x1000..: VA 0x4000_0000_0000 + n*4K → 0x20_0000 + n*4K
/// (4K pages, the second one read-only), VA 0 → 2 MiB identity page.
fn long_mode(t: &mut TestDomain) {
    let (pml4, pdpt, pd, pt) = (0x1000u64, 0x2000u64, 0x3000u64, 0x4000u64);
    let va = 0x4000_0000_0000u64;
    t.put(pml4 + ((va >> 39) & 0x1FF) * 8, &(pdpt | P | RW));
    t.put(pml4, &(0x8000u64 | P | RW));
    t.put(0x8000, &(0x9000u64 | P | RW));
    t.put(0x9000, &(PS | P | RW)); // 2 MiB page at 0
    t.put(pdpt, &(pd | P | RW));
    t.put(pd, &(pt | P | RW));
    t.put(pt, &(0x20_0000u64 | P | RW));
    t.put(pt + 8, &(0x20_1000u64 | P)); // read-only
    t.paging = PagingState { cr0: 0x8001_0001, cr3: pml4, cr4: 0x20, efer: 0x500 };
}

#[test]
fn long_mode_walk() {
    let mut t = TestDomain::new();
    long_mode(&mut t);
    let mem = t.d.phys();
    let p = t.paging;
    assert_eq!(p.translate(mem, 0x4000_0000_0123, false), Ok(0x20_0123));
    assert_eq!(p.translate(mem, 0x4000_0000_1123, false), Ok(0x20_1123));
    assert_eq!(p.translate(mem, 0x4000_0000_1123, true), Err(WalkFault::ReadOnly));
    assert_eq!(p.translate(mem, 0x1F_FFFF, true), Ok(0x1F_FFFF));
    assert_eq!(p.translate(mem, 0x4000_0000_2000, false), Err(WalkFault::NotPresent));
    assert_eq!(p.translate(mem, 0x8000_0000_0000, false), Err(WalkFault::NonCanonical));
    assert_eq!(p.translate(mem, 0xFFFF_8000_0000_0000, false), Err(WalkFault::NotPresent));
    // Without CR0.WP supervisor writes ignore R/W.
    let no_wp = PagingState { cr0: 0x8000_0001, ..p };
    assert_eq!(no_wp.translate(mem, 0x4000_0000_1123, true), Ok(0x20_1123));
}

#[test]
fn pointer_arguments_are_virtual_and_cross_pages() {
    let mut t = TestDomain::new();
    long_mode(&mut t);
    // 16 bytes straddling two virtual pages that map to two physical pages.
    let va = 0x4000_0000_0FF8;
    let rc = t.call(HYPERVISOR_XEN_VERSION, &[XENVER_EXTRAVERSION, va]);
    assert_eq!(rc, EFAULT, "second page is read-only: the write must fail");
    let mut ro = TestDomain::new();
    long_mode(&mut ro);
    ro.put(0x4008, &(0x20_1000u64 | P | RW));
    assert_eq!(ro.call(HYPERVISOR_XEN_VERSION, &[XENVER_EXTRAVERSION, va]), 0);
    assert_eq!(ro.bytes(0x20_0FF8, 8), b".0-xenkv");
    assert_eq!(ro.bytes(0x20_1000, 2), b"m\0");
    let view = GuestView::new(ro.d.phys(), ro.paging);
    let mut buf = [0u8; 4];
    assert_eq!(view.read_bytes(0x4000_0000_3000, &mut buf), Err(xenkvm_xen_abi::errno::XenErrno::Efault));
}

#[test]
fn page_tables_outside_ram_fault() {
    let mut t = TestDomain::new();
    t.paging = PagingState { cr0: 0x8000_0001, cr3: RAM_SIZE + 0x1000, cr4: 0x20, efer: 0x500 };
    assert_eq!(t.paging.translate(t.d.phys(), 0x1000, false), Err(WalkFault::TableOutsideRam));
}

#[test]
fn pae_walk() {
    let mut t = TestDomain::new();
    // PDPT at 0x1000 (32-byte aligned), PD at 0x2000, PT at 0x3000.
    t.put(0x1000 + 8, &(0x2000u64 | P)); // 1 GiB..2 GiB
    t.put(0x2000, &(0x3000u64 | P | RW));
    t.put(0x2000 + 8, &(0x60_0000u64 | P | RW | PS));
    t.put(0x3000 + 8 * 2, &(0x7000u64 | P | RW));
    t.paging = PagingState { cr0: 0x8000_0001, cr3: 0x1000, cr4: 0x20, efer: 0 };
    let mem = t.d.phys();
    assert_eq!(t.paging.translate(mem, 0x4000_2010, false), Ok(0x7010));
    assert_eq!(t.paging.translate(mem, 0x4020_0010, false), Ok(0x60_0010));
    assert_eq!(t.paging.translate(mem, 0x10, false), Err(WalkFault::NotPresent));
}

#[test]
fn legacy_32_bit_walk() {
    let mut t = TestDomain::new();
    t.put(0x1000 + 4, &(0x2000u32 | 3)); // PDE 1: 4 MiB..8 MiB via PT
    t.put(0x2000 + 4 * 3, &(0x9000u32 | 3));
    t.put(0x1000 + 4 * 2, &(0x80_0000u32 | 3 | 0x80)); // PDE 2: 4 MiB page
    t.paging = PagingState { cr0: 0x8000_0001, cr3: 0x1000, cr4: 0x10, efer: 0 };
    let mem = t.d.phys();
    assert_eq!(t.paging.translate(mem, 0x40_3004, false), Ok(0x9004));
    assert_eq!(t.paging.translate(mem, 0x80_1234, false), Ok(0x80_1234));
    assert_eq!(t.paging.translate(mem, 0xC0_0000, false), Err(WalkFault::NotPresent));
}

#[test]
fn paging_off_is_identity_truncated_to_32_bits() {
    let t = TestDomain::new();
    assert_eq!(PagingState::flat().translate(t.d.phys(), 0x1_0000_1234, false), Ok(0x1234));
}
