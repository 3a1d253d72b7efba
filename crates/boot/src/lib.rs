//! Guest memory layout, E820 map and kernel loaders for xenkvm.
//!
//! [`load`] writes a kernel (PVH ELF or Linux bzImage), its command line, an optional
//! initrd and the boot-protocol structures into guest memory, and returns the
//! initial vCPU state as plain data ([`InitialCpuState`]); turning that into KVM
//! registers is the KVM adapter's job, so nothing here needs `/dev/kvm`.
//!
//! Kernel images are untrusted input: every field read from one is checked and
//! failures are reported as [`Error`], never as panics.
#![forbid(unsafe_code)]
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

pub mod acpi;
pub mod bzimage;
pub mod cpu;
pub mod layout;
pub mod mptable;
pub mod pvh;

use std::io::{Read, Seek, SeekFrom};

use vm_memory::{GuestMemoryBackend, ReadVolatile};

pub use cpu::{DescriptorTable, InitialCpuState, Segment};
pub use layout::{e820_map, ram_regions, E820Entry, E820Kind};

/// Everything that can go wrong while loading a guest kernel.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("unknown kernel format: neither ELF (\\x7fELF) nor bzImage (HdrS at 0x202)")]
    UnknownKernelFormat,
    #[error("failed to read the kernel image: {0}")]
    ReadKernel(#[source] std::io::Error),
    #[error("failed to parse the ELF kernel: {0}")]
    ParseElf(&'static str),
    #[error("failed to load the ELF kernel")]
    LoadElf(#[source] linux_loader::loader::Error),
    #[error("ELF kernel has no PVH entry point (it lacks the XEN_ELFNOTE_PHYS32_ENTRY note)")]
    NoPvhEntry,
    #[error("failed to load the bzImage kernel")]
    LoadBzImage(#[source] linux_loader::loader::Error),
    #[error("bzImage boot protocol {major}.{minor:02} is too old (need 2.06 or later)")]
    BootProtocolTooOld { major: u8, minor: u8 },
    #[error("kernel has no 64-bit entry (XLF_KERNEL_64 not set in xloadflags)")]
    NoKernel64Entry,
    #[error("bzImage is not relocatable and its load address {addr:#x} is below 1 MiB")]
    KernelLoadAddress { addr: u64 },
    #[error(
        "kernel occupies {start:#x}..{end:#x}, which is not inside one guest RAM range above 1 MiB"
    )]
    PlaceKernel { start: u64, end: u64 },
    #[error("command line is {len} bytes; at most {max} fit")]
    CmdlineTooLong { len: usize, max: u64 },
    #[error("command line contains a NUL byte")]
    CmdlineContainsNul,
    #[error("initrd of {size:#x} bytes does not fit in low RAM between {floor:#x} and {limit:#x}")]
    PlaceInitrd { size: u64, floor: u64, limit: u64 },
    #[error("memory map has {count} entries; at most {max} fit")]
    TooManyE820Entries { count: usize, max: usize },
    #[error("ACPI tables take {size:#x} bytes; at most {max:#x} fit")]
    AcpiTooLarge { size: u64, max: u64 },
    #[error("failed to write the {what} at {addr:#x} to guest memory")]
    WriteGuestMemory {
        what: &'static str,
        addr: u64,
        #[source]
        source: vm_memory::GuestMemoryError,
    },
}

/// Which boot protocol the kernel is entered with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BootKind {
    /// Xen PVH: 32-bit protected mode, paging off, %ebx = `hvm_start_info`.
    Pvh,
    /// Linux x86-64 boot protocol: long mode, %rsi = `boot_params`.
    Linux64,
}

/// The result of [`load`]: how to start the boot vCPU and what the guest was told
/// about memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootSetup {
    pub cpu: InitialCpuState,
    pub kind: BootKind,
    pub e820: Vec<E820Entry>,
}

/// [`load_with_reserved`] without extra reserved ranges.
pub fn load<M, K>(
    mem: &M,
    memory_bytes: u64,
    kernel: &mut K,
    initrd: Option<&[u8]>,
    cmdline: &str,
) -> Result<BootSetup, Error>
where
    M: GuestMemoryBackend,
    K: Read + ReadVolatile + Seek,
{
    load_with_reserved(mem, memory_bytes, kernel, initrd, cmdline, &[])
}

/// Loads `kernel` (detected by magic: ELF → PVH, bzImage → Linux 64-bit) into `mem`,
/// which must back [`ram_regions`]`(memory_bytes)`. `kernel` is any seekable reader:
/// a `std::fs::File`, or `std::io::Cursor::new(bytes)` for an embedded image.
/// `reserved` (addr, size) ranges are reported to the guest as reserved and avoided
/// when placing the kernel and initrd.
pub fn load_with_reserved<M, K>(
    mem: &M,
    memory_bytes: u64,
    kernel: &mut K,
    initrd: Option<&[u8]>,
    cmdline: &str,
    reserved: &[(u64, u64)],
) -> Result<BootSetup, Error>
where
    M: GuestMemoryBackend,
    K: Read + ReadVolatile + Seek,
{
    let e820 = e820_map(memory_bytes, reserved);
    let boot = Boot {
        mem,
        e820: &e820,
        initrd,
        cmdline,
    };
    let (cpu, kind) = match detect(kernel)? {
        BootKind::Pvh => (pvh::load(&boot, kernel)?, BootKind::Pvh),
        BootKind::Linux64 => (bzimage::load(&boot, kernel)?, BootKind::Linux64),
    };
    Ok(BootSetup { cpu, kind, e820 })
}

/// Inputs shared by both loaders.
pub(crate) struct Boot<'a, M> {
    pub mem: &'a M,
    pub e820: &'a [E820Entry],
    pub initrd: Option<&'a [u8]>,
    pub cmdline: &'a str,
}

/// Reads the first `len` bytes of `image` (fewer if it is shorter).
pub(crate) fn read_prefix<K: Read + Seek>(image: &mut K, len: u64) -> Result<Vec<u8>, Error> {
    image.seek(SeekFrom::Start(0)).map_err(Error::ReadKernel)?;
    let mut buf = Vec::new();
    image
        .take(len)
        .read_to_end(&mut buf)
        .map_err(Error::ReadKernel)?;
    Ok(buf)
}

/// Picks the boot protocol from the image's magic numbers.
fn detect<K: Read + Seek>(image: &mut K) -> Result<BootKind, Error> {
    let prefix = read_prefix(image, 0x206)?;
    if prefix.get(..4) == Some(b"\x7fELF") {
        Ok(BootKind::Pvh)
    } else if prefix.get(0x202..0x206) == Some(b"HdrS") {
        Ok(BootKind::Linux64)
    } else {
        Err(Error::UnknownKernelFormat)
    }
}

/// Checks that the kernel's footprint `[start, end)` is above 1 MiB (clear of the
/// boot data) and inside a single RAM range of the memory map.
pub(crate) fn check_kernel_placement(
    e820: &[E820Entry],
    start: u64,
    end: u64,
) -> Result<(), Error> {
    let inside = |e: &&E820Entry| e.kind == E820Kind::Ram && e.addr <= start && end <= e.end();
    if start >= layout::HIMEM_START && start < end && e820.iter().any(|e| inside(&e)) {
        Ok(())
    } else {
        Err(Error::PlaceKernel { start, end })
    }
}

/// Writes the NUL-terminated command line at [`layout::CMDLINE_START`]; `max_len`
/// is the longest accepted string (without the NUL).
pub(crate) fn write_cmdline<M: GuestMemoryBackend>(
    mem: &M,
    cmdline: &str,
    max_len: u64,
) -> Result<u64, Error> {
    if cmdline.as_bytes().contains(&0) {
        return Err(Error::CmdlineContainsNul);
    }
    let max_len = max_len.min(layout::CMDLINE_MAX_SIZE - 1);
    if cmdline.len() as u64 > max_len {
        return Err(Error::CmdlineTooLong {
            len: cmdline.len(),
            max: max_len,
        });
    }
    let mut bytes = Vec::with_capacity(cmdline.len() + 1);
    bytes.extend_from_slice(cmdline.as_bytes());
    bytes.push(0);
    cpu::write(mem, "command line", layout::CMDLINE_START, &bytes)?;
    Ok(layout::CMDLINE_START)
}

const PAGE_SIZE: u64 = 0x1000;

/// Copies the initrd to the highest page-aligned RAM address at or above `floor`
/// whose last byte is below `limit` (exclusive) and the MMIO hole, and returns its
/// address. Bootloaders put it high so that it stays clear of the kernel's
/// decompression area and early allocations.
pub(crate) fn place_initrd<M: GuestMemoryBackend>(
    mem: &M,
    e820: &[E820Entry],
    initrd: &[u8],
    floor: u64,
    limit: u64,
) -> Result<u64, Error> {
    let size = initrd.len() as u64;
    let limit = limit.min(layout::MMIO_HOLE_START);
    let fits = |e: &E820Entry| -> Option<u64> {
        let top = e.end().min(limit);
        let start = top.checked_sub(size)? & !(PAGE_SIZE - 1);
        (start >= e.addr.max(floor)).then_some(start)
    };
    let addr = e820
        .iter()
        .rev()
        .filter(|e| e.kind == E820Kind::Ram)
        .find_map(fits)
        .ok_or(Error::PlaceInitrd { size, floor, limit })?;
    cpu::write(mem, "initrd", addr, initrd)?;
    Ok(addr)
}
