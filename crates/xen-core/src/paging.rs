//! Guest-virtual to guest-physical translation by walking the vCPU's page tables.
//!
//! Xen treats hypercall pointer arguments of HVM guests as linear addresses in the
//! calling vCPU's current address space, so every access walks the tables (the
//! same four paging modes the CPU supports: none, 32-bit, PAE, 4/5-level).
//! Accessed/dirty bits are not set; reserved bits beyond MAXPHYADDR fault.

use crate::phys::PhysMem;

const CR0_PG: u64 = 1 << 31;
const CR0_WP: u64 = 1 << 16;
const CR4_PSE: u64 = 1 << 4;
const CR4_PAE: u64 = 1 << 5;
const CR4_LA57: u64 = 1 << 12;
const EFER_LMA: u64 = 1 << 10;

const PTE_P: u64 = 1 << 0;
const PTE_RW: u64 = 1 << 1;
const PTE_PS: u64 = 1 << 7;
/// Physical-address bits 51:12 of a 64-bit entry.
const PTE_ADDR_MASK: u64 = 0x000F_FFFF_FFFF_F000;

/// The control registers that decide how a vCPU translates addresses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PagingState {
    pub cr0: u64,
    pub cr3: u64,
    pub cr4: u64,
    pub efer: u64,
}

/// Why a translation failed (Xen returns -EFAULT for all of them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WalkFault {
    NotPresent,
    ReadOnly,
    NonCanonical,
    TableOutsideRam,
}

impl PagingState {
    /// State with paging disabled (linear = physical).
    pub fn flat() -> Self {
        Self::default()
    }

    fn long_mode(&self) -> bool {
        self.efer & EFER_LMA != 0
    }

    /// Translates linear address `gva` to a guest-physical address for a
    /// supervisor access, a write if `write`.
    pub fn translate(&self, mem: &PhysMem, gva: u64, write: bool) -> Result<u64, WalkFault> {
        if self.cr0 & CR0_PG == 0 {
            return Ok(gva & 0xFFFF_FFFF);
        }
        let check_write = write && self.cr0 & CR0_WP != 0;
        if self.long_mode() {
            self.walk_long(mem, gva, check_write)
        } else if self.cr4 & CR4_PAE != 0 {
            self.walk_pae(mem, gva & 0xFFFF_FFFF, check_write)
        } else {
            self.walk_32(mem, gva & 0xFFFF_FFFF, check_write)
        }
    }

    fn walk_long(&self, mem: &PhysMem, gva: u64, check_write: bool) -> Result<u64, WalkFault> {
        let levels: u32 = if self.cr4 & CR4_LA57 != 0 { 5 } else { 4 };
        let va_bits = 12 + 9 * levels;
        // Canonical: bits 63..va_bits-1 all equal.
        let top = (gva as i64) >> (va_bits - 1);
        if top != 0 && top != -1 {
            return Err(WalkFault::NonCanonical);
        }
        let mut table = self.cr3 & PTE_ADDR_MASK;
        for level in (1..=levels).rev() {
            let shift = 12 + 9 * (level - 1);
            let index = (gva >> shift) & 0x1FF;
            let entry = read_entry64(mem, table + index * 8)?;
            check_entry(entry, check_write)?;
            let is_leaf = level == 1 || ((level == 2 || level == 3) && entry & PTE_PS != 0);
            if is_leaf {
                let page_mask = (1u64 << shift) - 1;
                return Ok((entry & PTE_ADDR_MASK & !page_mask) | (gva & page_mask));
            }
            table = entry & PTE_ADDR_MASK;
        }
        Err(WalkFault::NotPresent)
    }

    fn walk_pae(&self, mem: &PhysMem, gva: u64, check_write: bool) -> Result<u64, WalkFault> {
        let pdpt = self.cr3 & 0xFFFF_FFE0;
        let pdpte = read_entry64(mem, pdpt + ((gva >> 30) & 3) * 8)?;
        if pdpte & PTE_P == 0 {
            return Err(WalkFault::NotPresent);
        }
        let pde = read_entry64(mem, (pdpte & PTE_ADDR_MASK) + ((gva >> 21) & 0x1FF) * 8)?;
        check_entry(pde, check_write)?;
        if pde & PTE_PS != 0 {
            return Ok((pde & PTE_ADDR_MASK & !0x1F_FFFF) | (gva & 0x1F_FFFF));
        }
        let pte = read_entry64(mem, (pde & PTE_ADDR_MASK) + ((gva >> 12) & 0x1FF) * 8)?;
        check_entry(pte, check_write)?;
        Ok((pte & PTE_ADDR_MASK) | (gva & 0xFFF))
    }

    fn walk_32(&self, mem: &PhysMem, gva: u64, check_write: bool) -> Result<u64, WalkFault> {
        let pd = self.cr3 & 0xFFFF_F000;
        let pde = u64::from(read_entry32(mem, pd + ((gva >> 22) & 0x3FF) * 4)?);
        check_entry(pde, check_write)?;
        if pde & PTE_PS != 0 && self.cr4 & CR4_PSE != 0 {
            // PSE-36: bits 20:13 hold physical bits 39:32.
            let high = ((pde >> 13) & 0xFF) << 32;
            return Ok(high | (pde & 0xFFC0_0000) | (gva & 0x3F_FFFF));
        }
        let pte = u64::from(read_entry32(mem, (pde & 0xFFFF_F000) + ((gva >> 12) & 0x3FF) * 4)?);
        check_entry(pte, check_write)?;
        Ok((pte & 0xFFFF_F000) | (gva & 0xFFF))
    }
}

fn check_entry(entry: u64, check_write: bool) -> Result<(), WalkFault> {
    if entry & PTE_P == 0 {
        return Err(WalkFault::NotPresent);
    }
    if check_write && entry & PTE_RW == 0 {
        return Err(WalkFault::ReadOnly);
    }
    Ok(())
}

fn read_entry64(mem: &PhysMem, gpa: u64) -> Result<u64, WalkFault> {
    let mut b = [0u8; 8];
    mem.read_ram(gpa, &mut b).map_err(|_| WalkFault::TableOutsideRam)?;
    Ok(u64::from_le_bytes(b))
}

fn read_entry32(mem: &PhysMem, gpa: u64) -> Result<u32, WalkFault> {
    let mut b = [0u8; 4];
    mem.read_ram(gpa, &mut b).map_err(|_| WalkFault::TableOutsideRam)?;
    Ok(u32::from_le_bytes(b))
}
