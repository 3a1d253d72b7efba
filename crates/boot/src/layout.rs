//! The x86 "pc" guest-physical layout: where RAM lives, where the loader puts its
//! boot data, and the E820 map the guest is told about.
//!
//! Everything the loader writes besides the kernel and initrd sits in conventional
//! memory (0x500..0x9_0000), which every x86 OS treats as usable-but-early RAM and
//! which no kernel is linked into, so it cannot collide with the image.

use vm_memory::GuestAddress;

/// Start of the 32-bit MMIO hole. RAM stops here so that 32-bit devices (IOAPIC,
/// LAPIC, future PCI BARs) have guest-physical space below 4 GiB.
pub const MMIO_HOLE_START: u64 = 0xC000_0000;
/// Where RAM resumes above the MMIO hole; guests with more than 3 GiB get the rest here.
pub const HIGH_RAM_START: u64 = 0x1_0000_0000;
/// IOAPIC MMIO base, inside the hole (fixed by the MP/ACPI conventions guests assume).
pub const IOAPIC_START: u64 = 0xFEC0_0000;
/// Local APIC MMIO base, inside the hole (architectural reset value of IA32_APIC_BASE).
pub const LAPIC_START: u64 = 0xFEE0_0000;

/// Extended BIOS Data Area: conventional memory ends here. From here to 1 MiB
/// (EBDA, VGA window, option/BIOS ROMs) is reported reserved, as on real machines.
pub const EBDA_START: u64 = 0x9_FC00;
/// First byte above the legacy region; kernels and initrds are placed at or above it.
pub const HIMEM_START: u64 = 0x10_0000;

/// GDT used at entry (null, null, code at 0x10, data at 0x18): 4 descriptors.
pub const BOOT_GDT_START: u64 = 0x500;
/// Number of descriptors in the boot GDT.
pub const BOOT_GDT_ENTRIES: usize = 4;
/// PVH `hvm_start_info`, passed in %ebx.
pub const PVH_START_INFO_START: u64 = 0x1000;
/// PVH module list (`hvm_modlist_entry[]`); only the initrd is ever passed.
pub const PVH_MODLIST_START: u64 = 0x1040;
/// Room reserved for module list entries (32 bytes each).
pub const PVH_MODLIST_MAX_ENTRIES: usize = 4;
/// PVH memory map (`hvm_memmap_table_entry[]`, 24 bytes each).
pub const PVH_MEMMAP_START: u64 = 0x1100;
/// Capacity of the PVH memory map table; same bound as the zero page's E820 table.
pub const PVH_MEMMAP_MAX_ENTRIES: usize = 128;
/// Lowest byte of the initial stack. No boot protocol needs one, but a valid %rsp
/// keeps an early fault from pushing onto address 0.
pub const BOOT_STACK_START: u64 = 0x8000;
/// Initial %rsp: 16-byte aligned, just below the zero page.
pub const BOOT_STACK_POINTER: u64 = 0x8FF0;
/// Linux `boot_params` ("zero page"), passed in %rsi for the 64-bit entry.
pub const ZERO_PAGE_START: u64 = 0x9000;
/// PML4 of the identity map used for the Linux 64-bit entry (%cr3).
pub const PML4_START: u64 = 0xA000;
/// The single PDPT the PML4 points to; its first 4 entries cover 0..4 GiB.
pub const PDPT_START: u64 = 0xB000;
/// Four page directories of 2 MiB pages, one per GiB of the first 4 GiB.
pub const PD_START: u64 = 0xC000;
/// Number of page directories at [`PD_START`].
pub const PD_COUNT: u64 = 4;
/// Kernel command line, NUL-terminated.
pub const CMDLINE_START: u64 = 0x2_0000;
/// Space for the command line including its NUL; longer command lines are refused.
pub const CMDLINE_MAX_SIZE: u64 = 0x1_0000;

const _: () =
    assert!(BOOT_STACK_POINTER > BOOT_STACK_START && BOOT_STACK_POINTER < ZERO_PAGE_START);
const _: () = assert!(BOOT_STACK_POINTER & 0xF == 0);

/// Every range the loader writes below 1 MiB, as (what, start, size); a unit test
/// checks they are disjoint and inside conventional memory.
pub const BOOT_DATA_RANGES: [(&str, u64, u64); 9] = [
    ("boot GDT", BOOT_GDT_START, 8 * BOOT_GDT_ENTRIES as u64),
    ("PVH start_info", PVH_START_INFO_START, 56),
    (
        "PVH modlist",
        PVH_MODLIST_START,
        32 * PVH_MODLIST_MAX_ENTRIES as u64,
    ),
    (
        "PVH memmap",
        PVH_MEMMAP_START,
        24 * PVH_MEMMAP_MAX_ENTRIES as u64,
    ),
    (
        "boot stack",
        BOOT_STACK_START,
        ZERO_PAGE_START - BOOT_STACK_START,
    ),
    ("zero page", ZERO_PAGE_START, 0x1000),
    ("PML4", PML4_START, 0x1000),
    ("PDPT", PDPT_START, 0x1000),
    ("page directories", PD_START, PD_COUNT * 0x1000),
];

/// Guest RAM regions for `memory_bytes` of RAM: low RAM up to the MMIO hole, the
/// remainder above 4 GiB. This is what the VMM should back with host memory.
pub fn ram_regions(memory_bytes: u64) -> Vec<(GuestAddress, u64)> {
    let low = memory_bytes.min(MMIO_HOLE_START);
    let high = memory_bytes - low;
    let mut regions = Vec::with_capacity(2);
    if low > 0 {
        regions.push((GuestAddress(0), low));
    }
    if high > 0 {
        regions.push((GuestAddress(HIGH_RAM_START), high));
    }
    regions
}

/// E820 range types; the numeric values are shared by the zero page and the PVH memmap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum E820Kind {
    Ram,
    Reserved,
    Acpi,
    Nvs,
}

impl E820Kind {
    /// The type code in `boot_e820_entry.type` / `hvm_memmap_table_entry.type`.
    pub fn code(self) -> u32 {
        match self {
            E820Kind::Ram => 1,
            E820Kind::Reserved => 2,
            E820Kind::Acpi => 3,
            E820Kind::Nvs => 4,
        }
    }
}

/// One range of the guest's physical memory map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct E820Entry {
    pub addr: u64,
    pub size: u64,
    pub kind: E820Kind,
}

impl E820Entry {
    /// Exclusive end address (saturating, so a bogus range cannot wrap).
    pub fn end(&self) -> u64 {
        self.addr.saturating_add(self.size)
    }
}

/// The memory map for `memory_bytes` of RAM laid out by [`ram_regions`], with the
/// `reserved` (addr, size) ranges carved out of whatever they overlap and reported
/// as reserved. The result is sorted, non-overlapping, and adjacent entries of the
/// same kind are merged.
pub fn e820_map(memory_bytes: u64, reserved: &[(u64, u64)]) -> Vec<E820Entry> {
    let low_end = memory_bytes.min(MMIO_HOLE_START);
    let ram = |addr, end: u64| E820Entry {
        addr,
        size: end - addr,
        kind: E820Kind::Ram,
    };
    let mut map = Vec::new();
    if low_end > 0 {
        map.push(ram(0, low_end.min(EBDA_START)));
    }
    map.push(E820Entry {
        addr: EBDA_START,
        size: HIMEM_START - EBDA_START,
        kind: E820Kind::Reserved,
    });
    if low_end > HIMEM_START {
        map.push(ram(HIMEM_START, low_end));
    }
    if memory_bytes > low_end {
        let high = memory_bytes - low_end;
        map.push(E820Entry {
            addr: HIGH_RAM_START,
            size: high,
            kind: E820Kind::Ram,
        });
    }
    for &(addr, size) in reserved.iter().filter(|&&(_, size)| size > 0) {
        let end = addr.saturating_add(size);
        map = carve(&map, addr, end);
        map.push(E820Entry {
            addr,
            size: end - addr,
            kind: E820Kind::Reserved,
        });
    }
    normalize(map)
}

/// Removes `[start, end)` from every entry, splitting entries that straddle it.
pub(crate) fn carve(map: &[E820Entry], start: u64, end: u64) -> Vec<E820Entry> {
    let mut out = Vec::with_capacity(map.len() + 1);
    for e in map {
        if e.end() <= start || e.addr >= end {
            out.push(*e);
            continue;
        }
        if e.addr < start {
            out.push(E820Entry {
                addr: e.addr,
                size: start - e.addr,
                kind: e.kind,
            });
        }
        if e.end() > end {
            out.push(E820Entry {
                addr: end,
                size: e.end() - end,
                kind: e.kind,
            });
        }
    }
    out
}

/// Sorts by address, drops empty entries and merges touching entries of one kind.
fn normalize(mut map: Vec<E820Entry>) -> Vec<E820Entry> {
    map.retain(|e| e.size > 0);
    map.sort_by_key(|e| e.addr);
    let mut out: Vec<E820Entry> = Vec::with_capacity(map.len());
    for e in map {
        match out.last_mut() {
            Some(last) if last.kind == e.kind && last.end() == e.addr => last.size += e.size,
            _ => out.push(e),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;
    const GIB: u64 = 1 << 30;

    fn e(addr: u64, end: u64, kind: E820Kind) -> E820Entry {
        E820Entry {
            addr,
            size: end - addr,
            kind,
        }
    }
    use E820Kind::{Ram, Reserved};

    #[test]
    fn boot_data_ranges_are_disjoint_and_in_conventional_memory() {
        let mut ranges = BOOT_DATA_RANGES.to_vec();
        ranges.push(("cmdline", CMDLINE_START, CMDLINE_MAX_SIZE));
        for (name, start, size) in &ranges {
            assert!(
                *start >= 0x500 && start + size <= 0x9_0000,
                "{name} outside 0x500..0x90000"
            );
            assert!(start + size <= EBDA_START, "{name} reaches the EBDA");
        }
        for (i, (a, a_start, a_size)) in ranges.iter().enumerate() {
            for (b, b_start, b_size) in ranges.iter().skip(i + 1) {
                let disjoint = a_start + a_size <= *b_start || b_start + b_size <= *a_start;
                assert!(disjoint, "{a} overlaps {b}");
            }
        }
    }

    #[test]
    fn ram_regions_split_at_the_hole() {
        assert_eq!(ram_regions(128 * MIB), vec![(GuestAddress(0), 128 * MIB)]);
        assert_eq!(ram_regions(3 * GIB), vec![(GuestAddress(0), 3 * GIB)]);
        assert_eq!(
            ram_regions(8 * GIB),
            vec![
                (GuestAddress(0), 3 * GIB),
                (GuestAddress(HIGH_RAM_START), 5 * GIB)
            ]
        );
        assert!(ram_regions(0).is_empty());
    }

    #[test]
    fn e820_128m() {
        assert_eq!(
            e820_map(128 * MIB, &[]),
            vec![
                e(0, EBDA_START, Ram),
                e(EBDA_START, MIB, Reserved),
                e(MIB, 128 * MIB, Ram)
            ]
        );
    }

    #[test]
    fn e820_3g_has_no_high_ram() {
        let map = e820_map(3 * GIB, &[]);
        assert_eq!(map.len(), 3);
        assert_eq!(map.last(), Some(&e(MIB, 3 * GIB, Ram)));
    }

    #[test]
    fn e820_4g_and_8g_put_the_rest_above_4g() {
        let map = e820_map(4 * GIB, &[]);
        assert_eq!(map.get(2), Some(&e(MIB, 3 * GIB, Ram)));
        assert_eq!(map.get(3), Some(&e(4 * GIB, 5 * GIB, Ram)));
        assert_eq!(map.len(), 4);
        let map = e820_map(8 * GIB, &[]);
        assert_eq!(map.get(3), Some(&e(4 * GIB, 9 * GIB, Ram)));
    }

    #[test]
    fn e820_carves_reserved_ranges() {
        let map = e820_map(
            8 * GIB,
            &[
                (0x200_0000, 0x1000),    // splits low RAM
                (0x9_0000, 0x7_1000),    // straddles RAM / EBDA / 1 MiB
                (0xFEFF_0000, 0x1_0000), // inside the hole
                (8 * GIB, 2 * GIB),      // cuts the end of high RAM off and beyond
                (0x300_0000, 0),         // empty: ignored
            ],
        );
        assert_eq!(
            map,
            vec![
                e(0, 0x9_0000, Ram),
                e(0x9_0000, 0x10_1000, Reserved),
                e(0x10_1000, 0x200_0000, Ram),
                e(0x200_0000, 0x200_1000, Reserved),
                e(0x200_1000, 3 * GIB, Ram),
                e(0xFEFF_0000, 0xFF00_0000, Reserved),
                e(4 * GIB, 8 * GIB, Ram),
                e(8 * GIB, 10 * GIB, Reserved),
            ]
        );
        for pair in map.windows(2) {
            assert!(pair[0].end() <= pair[1].addr);
        }
    }
}
