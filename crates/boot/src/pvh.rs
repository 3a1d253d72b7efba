//! Xen PVH boot of an ELF kernel: the ELF is loaded at its physical addresses, the
//! entry point comes from the `XEN_ELFNOTE_PHYS32_ENTRY` note, and the kernel gets
//! an `hvm_start_info` (command line, memory map, initrd as module 0) in %ebx.

use std::io::{Read, Seek, SeekFrom};

use linux_loader::loader::{Elf, KernelLoader, PvhBootCapability};
use vm_memory::{Address, GuestMemoryBackend, ReadVolatile};
use xenkvm_xen_abi::start_info::{
    HvmMemmapTableEntry, HvmModlistEntry, HvmStartInfo, XEN_HVM_START_MAGIC_VALUE,
};
use zerocopy::IntoBytes;

use crate::cpu::{self, InitialCpuState, CR0_ET, CR0_PE};
use crate::layout::{
    BOOT_STACK_POINTER, CMDLINE_MAX_SIZE, MMIO_HOLE_START, PVH_MEMMAP_MAX_ENTRIES,
    PVH_MEMMAP_START, PVH_MODLIST_START, PVH_START_INFO_START,
};
use crate::{Boot, Error};

/// `hvm_start_info.version` written: 1 adds the memory map fields.
const START_INFO_VERSION: u32 = 1;

const ELF_HEADER_SIZE: usize = 64;
const ELF_PHDR_SIZE: usize = 56;
const ELFCLASS64: u8 = 2;
const PT_LOAD: u32 = 1;

/// Loads a PVH ELF kernel and writes its boot data; returns the entry vCPU state.
pub(crate) fn load<M, K>(boot: &Boot<'_, M>, kernel: &mut K) -> Result<InitialCpuState, Error>
where
    M: GuestMemoryBackend,
    K: Read + ReadVolatile + Seek,
{
    let (start, end) = elf_footprint(kernel)?;
    crate::check_kernel_placement(boot.e820, start, end)?;

    let loaded = Elf::load(boot.mem, None, kernel, None).map_err(Error::LoadElf)?;
    let entry = match loaded.pvh_boot_cap {
        PvhBootCapability::PvhEntryPresent(addr) => addr.raw_value(),
        _ => return Err(Error::NoPvhEntry),
    };

    let cmdline_paddr = crate::write_cmdline(boot.mem, boot.cmdline, CMDLINE_MAX_SIZE)?;
    let memmap = write_memmap(boot)?;
    let mut info = HvmStartInfo {
        magic: XEN_HVM_START_MAGIC_VALUE,
        version: START_INFO_VERSION,
        cmdline_paddr,
        memmap_paddr: PVH_MEMMAP_START,
        memmap_entries: memmap,
        ..Default::default()
    };
    if let Some(initrd) = boot.initrd {
        let floor = end.max(loaded.kernel_end);
        let paddr = crate::place_initrd(boot.mem, boot.e820, initrd, floor, MMIO_HOLE_START)?;
        let module = HvmModlistEntry {
            paddr,
            size: initrd.len() as u64,
            ..Default::default()
        };
        cpu::write(
            boot.mem,
            "PVH module list",
            PVH_MODLIST_START,
            module.as_bytes(),
        )?;
        info.nr_modules = 1;
        info.modlist_paddr = PVH_MODLIST_START;
    }
    cpu::write(
        boot.mem,
        "PVH start_info",
        PVH_START_INFO_START,
        info.as_bytes(),
    )?;

    let mut state = InitialCpuState::flat(false);
    state.rip = entry;
    state.rbx = PVH_START_INFO_START;
    state.rsp = BOOT_STACK_POINTER;
    state.cr0 = CR0_PE | CR0_ET;
    cpu::write_gdt(boot.mem, &state)?;
    Ok(state)
}

/// Writes the memory map table and returns its entry count.
fn write_memmap<M: GuestMemoryBackend>(boot: &Boot<'_, M>) -> Result<u32, Error> {
    let count = boot.e820.len();
    if count > PVH_MEMMAP_MAX_ENTRIES {
        return Err(Error::TooManyE820Entries {
            count,
            max: PVH_MEMMAP_MAX_ENTRIES,
        });
    }
    let table: Vec<HvmMemmapTableEntry> = boot
        .e820
        .iter()
        .map(|e| HvmMemmapTableEntry {
            addr: e.addr,
            size: e.size,
            type_: e.kind.code(),
            reserved: 0,
        })
        .collect();
    cpu::write(
        boot.mem,
        "PVH memory map",
        PVH_MEMMAP_START,
        table.as_bytes(),
    )?;
    Ok(count as u32)
}

/// Guest-physical range `[lowest p_paddr, highest p_paddr + p_memsz)` covered by the
/// PT_LOAD segments, checked before anything is written so that a kernel linked
/// over the boot data or outside RAM is refused instead of silently corrupted.
fn elf_footprint<K: Read + Seek>(kernel: &mut K) -> Result<(u64, u64), Error> {
    let header = crate::read_prefix(kernel, ELF_HEADER_SIZE as u64)?;
    if header.len() < ELF_HEADER_SIZE {
        return Err(Error::ParseElf("truncated ELF header"));
    }
    if header.get(4) != Some(&ELFCLASS64) {
        return Err(Error::ParseElf("not an ELF64 image"));
    }
    let phoff = le_u64(&header, 0x20).ok_or(Error::ParseElf("truncated ELF header"))?;
    let phentsize = le_u16(&header, 0x36).ok_or(Error::ParseElf("truncated ELF header"))?;
    let phnum = le_u16(&header, 0x38).ok_or(Error::ParseElf("truncated ELF header"))?;
    if usize::from(phentsize) != ELF_PHDR_SIZE {
        return Err(Error::ParseElf("unexpected program header size"));
    }
    let mut phdrs = vec![0u8; usize::from(phnum) * ELF_PHDR_SIZE];
    kernel
        .seek(SeekFrom::Start(phoff))
        .map_err(Error::ReadKernel)?;
    kernel.read_exact(&mut phdrs).map_err(Error::ReadKernel)?;

    let mut range: Option<(u64, u64)> = None;
    for ph in phdrs.chunks_exact(ELF_PHDR_SIZE) {
        let field = |off| le_u64(ph, off).ok_or(Error::ParseElf("truncated program header"));
        let (paddr, filesz, memsz) = (field(0x18)?, field(0x20)?, field(0x28)?);
        if le_u32(ph, 0) != Some(PT_LOAD) || filesz.max(memsz) == 0 {
            continue;
        }
        let end = paddr
            .checked_add(filesz.max(memsz))
            .ok_or(Error::ParseElf("segment wraps the address space"))?;
        range = Some(range.map_or((paddr, end), |(lo, hi)| (lo.min(paddr), hi.max(end))));
    }
    range.ok_or(Error::ParseElf("no PT_LOAD segment"))
}

fn le_bytes<const N: usize>(bytes: &[u8], off: usize) -> Option<[u8; N]> {
    bytes.get(off..off.checked_add(N)?)?.try_into().ok()
}
fn le_u16(bytes: &[u8], off: usize) -> Option<u16> {
    le_bytes(bytes, off).map(u16::from_le_bytes)
}
fn le_u32(bytes: &[u8], off: usize) -> Option<u32> {
    le_bytes(bytes, off).map(u32::from_le_bytes)
}
fn le_u64(bytes: &[u8], off: usize) -> Option<u64> {
    le_bytes(bytes, off).map(u64::from_le_bytes)
}
