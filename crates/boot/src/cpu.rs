//! Initial vCPU state as plain data, plus the guest-memory structures it refers to
//! (boot GDT, identity page tables). The GDT is encoded from the very [`Segment`]
//! values handed to the hypervisor, so the hidden segment state and the descriptors
//! the guest may reload can never disagree.

use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend};

use crate::layout::{BOOT_GDT_ENTRIES, BOOT_GDT_START, PDPT_START, PD_COUNT, PD_START, PML4_START};
use crate::Error;

/// CR0 bits used at entry.
pub const CR0_PE: u64 = 1 << 0;
pub const CR0_MP: u64 = 1 << 1;
pub const CR0_ET: u64 = 1 << 4;
pub const CR0_NE: u64 = 1 << 5;
pub const CR0_WP: u64 = 1 << 16;
pub const CR0_AM: u64 = 1 << 18;
pub const CR0_PG: u64 = 1 << 31;
/// CR4.PAE, required for long mode.
pub const CR4_PAE: u64 = 1 << 5;
/// EFER.LME / EFER.LMA: long mode enabled / active.
pub const EFER_LME: u64 = 1 << 8;
pub const EFER_LMA: u64 = 1 << 10;
/// RFLAGS with only the always-one bit 1 set (interrupts off).
pub const RFLAGS_RESERVED_ONE: u64 = 1 << 1;

/// Boot code segment selector (GDT index 2), as both boot protocols specify.
pub const BOOT_CS_SELECTOR: u16 = 0x10;
/// Boot data segment selector (GDT index 3).
pub const BOOT_DS_SELECTOR: u16 = 0x18;
/// Segment type: execute/read code, accessed (VMX requires "accessed" on usable segments).
pub const SEG_TYPE_CODE_XR_ACCESSED: u8 = 0xB;
/// Segment type: read/write data, accessed.
pub const SEG_TYPE_DATA_RW_ACCESSED: u8 = 0x3;

/// Hidden state of a segment register, in the same terms as `kvm_segment`.
/// `limit` is in bytes (already scaled by `g`), as KVM expects it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Segment {
    pub base: u64,
    pub limit: u32,
    pub selector: u16,
    pub type_: u8,
    pub present: bool,
    pub dpl: u8,
    pub db: bool,
    pub s: bool,
    pub l: bool,
    pub g: bool,
}

impl Segment {
    /// Flat 4 GiB ring-0 code segment at [`BOOT_CS_SELECTOR`]; 32-bit or 64-bit.
    pub fn flat_code(long_mode: bool) -> Self {
        Segment {
            base: 0,
            limit: 0xFFFF_FFFF,
            selector: BOOT_CS_SELECTOR,
            type_: SEG_TYPE_CODE_XR_ACCESSED,
            present: true,
            dpl: 0,
            db: !long_mode,
            s: true,
            l: long_mode,
            g: true,
        }
    }

    /// Flat 4 GiB ring-0 data segment at [`BOOT_DS_SELECTOR`].
    pub fn flat_data() -> Self {
        Segment {
            type_: SEG_TYPE_DATA_RW_ACCESSED,
            selector: BOOT_DS_SELECTOR,
            db: true,
            l: false,
            ..Self::flat_code(false)
        }
    }

    /// The 8-byte GDT descriptor for this segment. Only the low 32 bits of `base`
    /// fit a code/data descriptor; with `g` the limit is stored in 4 KiB units.
    pub fn descriptor(&self) -> u64 {
        let limit = if self.g { self.limit >> 12 } else { self.limit };
        let limit = u64::from(limit & 0xF_FFFF);
        let base = self.base & 0xFFFF_FFFF;
        let flag = |b: bool, bit: u32| u64::from(b) << bit;
        (limit & 0xFFFF)
            | ((base & 0xFF_FFFF) << 16)
            | (u64::from(self.type_ & 0xF) << 40)
            | flag(self.s, 44)
            | (u64::from(self.dpl & 0x3) << 45)
            | flag(self.present, 47)
            | ((limit >> 16) << 48)
            | flag(self.l, 53)
            | flag(self.db, 54)
            | flag(self.g, 55)
            | ((base >> 24) << 56)
    }
}

/// Base and limit of a descriptor table register (GDTR/IDTR).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DescriptorTable {
    pub base: u64,
    pub limit: u16,
}

/// Register state the vCPU must start with; every general-purpose register not
/// listed here is zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct InitialCpuState {
    pub rip: u64,
    pub rsp: u64,
    pub rbx: u64,
    pub rsi: u64,
    pub rflags: u64,
    pub cr0: u64,
    pub cr3: u64,
    pub cr4: u64,
    pub efer: u64,
    pub cs: Segment,
    pub ds: Segment,
    pub es: Segment,
    pub fs: Segment,
    pub gs: Segment,
    pub ss: Segment,
    pub gdt: DescriptorTable,
    pub idt: DescriptorTable,
}

impl InitialCpuState {
    /// Flat segments (code per `long_mode`), GDTR at the boot GDT, IDTR empty.
    pub(crate) fn flat(long_mode: bool) -> Self {
        let data = Segment::flat_data();
        InitialCpuState {
            rflags: RFLAGS_RESERVED_ONE,
            cs: Segment::flat_code(long_mode),
            ds: data,
            es: data,
            fs: data,
            gs: data,
            ss: data,
            gdt: DescriptorTable {
                base: BOOT_GDT_START,
                limit: (8 * BOOT_GDT_ENTRIES - 1) as u16,
            },
            ..Default::default()
        }
    }

    /// GDT contents matching this state: null, null, CS, DS at their selectors.
    pub fn gdt_entries(&self) -> [u64; BOOT_GDT_ENTRIES] {
        [0, 0, self.cs.descriptor(), self.ds.descriptor()]
    }
}

/// Writes [`InitialCpuState::gdt_entries`] at [`BOOT_GDT_START`].
pub(crate) fn write_gdt<M: GuestMemoryBackend>(
    mem: &M,
    state: &InitialCpuState,
) -> Result<(), Error> {
    let bytes: Vec<u8> = state
        .gdt_entries()
        .iter()
        .flat_map(|d| d.to_le_bytes())
        .collect();
    write(mem, "boot GDT", BOOT_GDT_START, &bytes)
}

/// Page-table entry bits: present, writable, and (in a PD) 2 MiB page.
const PTE_PRESENT: u64 = 1 << 0;
const PTE_WRITABLE: u64 = 1 << 1;
const PTE_PAGE_SIZE: u64 = 1 << 7;

/// Identity-maps the first 4 GiB with 2 MiB pages at [`PML4_START`] (the value for
/// CR3). Linux's 64-bit entry only needs its own image, boot_params and cmdline
/// mapped; covering 4 GiB means any placement below the hole works.
pub(crate) fn write_identity_page_tables<M: GuestMemoryBackend>(mem: &M) -> Result<u64, Error> {
    let table =
        |f: &dyn Fn(u64) -> u64| -> Vec<u8> { (0..512).flat_map(|i| f(i).to_le_bytes()).collect() };
    let pml4 = table(&|i| {
        if i == 0 {
            PDPT_START | PTE_PRESENT | PTE_WRITABLE
        } else {
            0
        }
    });
    let pdpt = table(&|i| {
        if i < PD_COUNT {
            (PD_START + i * 0x1000) | PTE_PRESENT | PTE_WRITABLE
        } else {
            0
        }
    });
    write(mem, "PML4", PML4_START, &pml4)?;
    write(mem, "PDPT", PDPT_START, &pdpt)?;
    for gib in 0..PD_COUNT {
        let pd = table(&|i| ((gib << 30) | (i << 21)) | PTE_PRESENT | PTE_WRITABLE | PTE_PAGE_SIZE);
        write(mem, "page directory", PD_START + gib * 0x1000, &pd)?;
    }
    Ok(PML4_START)
}

/// Writes `bytes` at `addr`, naming `what` in the error.
pub(crate) fn write<M: GuestMemoryBackend>(
    mem: &M,
    what: &'static str,
    addr: u64,
    bytes: &[u8],
) -> Result<(), Error> {
    mem.write_slice(bytes, GuestAddress(addr))
        .map_err(|source| Error::WriteGuestMemory { what, addr, source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptors_match_the_well_known_flat_values() {
        assert_eq!(
            Segment::flat_code(false).descriptor(),
            0x00CF_9B00_0000_FFFF
        );
        assert_eq!(Segment::flat_code(true).descriptor(), 0x00AF_9B00_0000_FFFF);
        assert_eq!(Segment::flat_data().descriptor(), 0x00CF_9300_0000_FFFF);
    }

    #[test]
    fn byte_granular_limit_and_high_base_bits() {
        let seg = Segment {
            base: 0x1234_5678,
            limit: 0x6_7890,
            present: true,
            s: true,
            type_: 3,
            ..Default::default()
        };
        assert_eq!(seg.descriptor(), 0x1206_9334_5678_7890);
    }
}
