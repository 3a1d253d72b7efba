//! Linux x86-64 boot protocol for bzImage kernels: the protected-mode part is loaded
//! at the kernel's preferred address, `boot_params` (the "zero page") carries the
//! setup header, command line, initrd and E820 map, and the vCPU enters the 64-bit
//! entry (load address + 0x200) in long mode on identity-mapped page tables.

use std::io::{Read, Seek};

use linux_loader::loader::bootparam::{
    boot_e820_entry, boot_params, setup_header, CAN_USE_HEAP, E820_MAX_ENTRIES_ZEROPAGE,
    XLF_KERNEL_64,
};
use linux_loader::loader::{BzImage, KernelLoader};
use vm_memory::{Address, ByteValued, Bytes, GuestAddress, GuestMemoryBackend, ReadVolatile};

use crate::cpu::{
    self, InitialCpuState, CR0_AM, CR0_ET, CR0_MP, CR0_NE, CR0_PE, CR0_PG, CR0_WP, CR4_PAE,
    EFER_LMA, EFER_LME,
};
use crate::layout::{BOOT_STACK_POINTER, HIMEM_START, ZERO_PAGE_START};
use crate::{Boot, Error};

/// Offset of the setup header in the image and in `boot_params`.
pub const SETUP_HEADER_OFFSET: u64 = 0x1F1;
/// The 64-bit entry point's offset from the protected-mode load address.
pub const ENTRY_64_OFFSET: u64 = 0x200;
/// Oldest boot protocol accepted (2.06 added `cmdline_size`). The 64-bit entry is
/// only announced by `XLF_KERNEL_64` (2.12+), which is checked separately.
pub const MIN_BOOT_PROTOCOL: u16 = 0x0206;
/// Protocol 2.10 added `pref_address` and `init_size`.
const PROTOCOL_PREF_ADDRESS: u16 = 0x020A;
/// `type_of_loader` for a boot loader without an assigned ID.
const LOADER_TYPE_UNDEFINED: u8 = 0xFF;
/// `heap_end_ptr`: end of a full 64 KiB real-mode segment, minus the 0x200 the
/// protocol subtracts. Only the 16-bit setup code would use the heap.
const HEAP_END_PTR: u16 = 0xFE00;
/// `vid_mode` "normal": do not ask the setup code to change video modes.
const VID_MODE_NORMAL: u16 = 0xFFFF;

/// Loads a bzImage and writes the zero page, command line, initrd and page tables;
/// returns the 64-bit entry vCPU state.
pub(crate) fn load<M, K>(boot: &Boot<'_, M>, kernel: &mut K) -> Result<InitialCpuState, Error>
where
    M: GuestMemoryBackend,
    K: Read + ReadVolatile + Seek,
{
    let header = read_setup_header(kernel)?;
    check_setup_header(&header)?;
    let (version, pref_address, init_size) =
        (header.version, header.pref_address, header.init_size);
    // A relocatable kernel may run anywhere but decompresses to at least its
    // preferred address anyway; a non-relocatable one must be there. Protocols
    // before 2.10 have no pref_address and load at 1 MiB.
    let load_addr = if version >= PROTOCOL_PREF_ADDRESS {
        pref_address
    } else {
        HIMEM_START
    };
    if load_addr < HIMEM_START {
        return Err(Error::KernelLoadAddress { addr: load_addr });
    }
    // How much memory the kernel needs from its load address before it has set
    // up its own memory map: the file for old protocols, init_size for new ones.
    let file_len = kernel_payload_len(kernel, header.setup_sects)?;
    let footprint = if version >= PROTOCOL_PREF_ADDRESS {
        file_len.max(u64::from(init_size))
    } else {
        file_len
    };
    let footprint_end = load_addr.checked_add(footprint).ok_or(Error::PlaceKernel {
        start: load_addr,
        end: u64::MAX,
    })?;
    crate::check_kernel_placement(boot.e820, load_addr, footprint_end)?;

    let loaded = BzImage::load(boot.mem, Some(GuestAddress(load_addr)), kernel, None)
        .map_err(Error::LoadBzImage)?;
    let mut hdr = loaded.setup_header.unwrap_or(header);

    let cmdline_max = u64::from(hdr.cmdline_size);
    let cmdline_ptr = crate::write_cmdline(boot.mem, boot.cmdline, cmdline_max)?;
    hdr.type_of_loader = LOADER_TYPE_UNDEFINED;
    hdr.loadflags |= CAN_USE_HEAP;
    hdr.heap_end_ptr = HEAP_END_PTR;
    hdr.vid_mode = VID_MODE_NORMAL;
    hdr.cmd_line_ptr = cmdline_ptr as u32;
    let mut params = boot_params {
        ext_cmd_line_ptr: (cmdline_ptr >> 32) as u32,
        ..Default::default()
    };

    if let Some(initrd) = boot.initrd {
        // initrd_addr_max is the highest address the initrd's last byte may occupy.
        let limit = u64::from(hdr.initrd_addr_max).saturating_add(1);
        let floor = footprint_end.max(loaded.kernel_end);
        let addr = crate::place_initrd(boot.mem, boot.e820, initrd, floor, limit)?;
        let size = initrd.len() as u64;
        hdr.ramdisk_image = addr as u32;
        hdr.ramdisk_size = size as u32;
        params.ext_ramdisk_image = (addr >> 32) as u32;
        params.ext_ramdisk_size = (size >> 32) as u32;
    }

    let count = boot.e820.len();
    if count > E820_MAX_ENTRIES_ZEROPAGE {
        return Err(Error::TooManyE820Entries {
            count,
            max: E820_MAX_ENTRIES_ZEROPAGE,
        });
    }
    for (slot, e) in params.e820_table.iter_mut().zip(boot.e820) {
        *slot = boot_e820_entry {
            addr: e.addr,
            size: e.size,
            r#type: e.kind.code(),
        };
    }
    params.e820_entries = count as u8;
    params.hdr = hdr;
    boot.mem
        .write_obj(params, GuestAddress(ZERO_PAGE_START))
        .map_err(|source| Error::WriteGuestMemory {
            what: "zero page",
            addr: ZERO_PAGE_START,
            source,
        })?;

    let mut state = InitialCpuState::flat(true);
    state.rip = loaded.kernel_load.raw_value() + ENTRY_64_OFFSET;
    state.rsi = ZERO_PAGE_START;
    state.rsp = BOOT_STACK_POINTER;
    state.cr0 = CR0_PE | CR0_MP | CR0_ET | CR0_NE | CR0_WP | CR0_AM | CR0_PG;
    state.cr3 = cpu::write_identity_page_tables(boot.mem)?;
    state.cr4 = CR4_PAE;
    state.efer = EFER_LME | EFER_LMA;
    cpu::write_gdt(boot.mem, &state)?;
    Ok(state)
}

/// Reads the setup header at 0x1F1; its "HdrS" magic was already seen by detection.
fn read_setup_header<K: Read + Seek>(kernel: &mut K) -> Result<setup_header, Error> {
    let size = std::mem::size_of::<setup_header>();
    let prefix = crate::read_prefix(kernel, SETUP_HEADER_OFFSET + size as u64)?;
    prefix
        .get(SETUP_HEADER_OFFSET as usize..)
        .and_then(setup_header::from_slice)
        .copied()
        .ok_or(Error::ReadKernel(std::io::ErrorKind::UnexpectedEof.into()))
}

/// The protocol checks of the 64-bit boot path (linux-loader rejects zImages itself).
fn check_setup_header(hdr: &setup_header) -> Result<(), Error> {
    let version = hdr.version;
    if version < MIN_BOOT_PROTOCOL {
        let [minor, major] = version.to_le_bytes();
        return Err(Error::BootProtocolTooOld { major, minor });
    }
    if hdr.xloadflags & XLF_KERNEL_64 == 0 {
        return Err(Error::NoKernel64Entry);
    }
    Ok(())
}

/// Size of the protected-mode kernel: the file minus the boot sector and setup.
fn kernel_payload_len<K: Seek>(kernel: &mut K, setup_sects: u8) -> Result<u64, Error> {
    let setup_sects = if setup_sects == 0 {
        4
    } else {
        u64::from(setup_sects)
    };
    let len = kernel
        .seek(std::io::SeekFrom::End(0))
        .map_err(Error::ReadKernel)?;
    len.checked_sub((setup_sects + 1) * 512)
        .filter(|&n| n > 0)
        .ok_or(Error::ReadKernel(std::io::ErrorKind::UnexpectedEof.into()))
}
