//! PVH ELF loading, read back from plain guest memory.

mod common;

use std::io::Cursor;

use common::*;
use xenkvm_boot::layout::*;
use xenkvm_boot::{load, load_with_reserved, BootKind, E820Kind, Error};
use xenkvm_xen_abi::start_info::{
    HvmMemmapTableEntry, HvmModlistEntry, HvmStartInfo, XEN_HVM_START_MAGIC_VALUE,
};
use xenkvm_xen_abi::zerocopy::FromBytes;

const KERNEL_AT: u64 = 0x100_0000;
const ENTRY: u32 = 0x100_0040;

fn pvh_kernel() -> Vec<u8> {
    let text: Vec<u8> = (0..0x2000u32).map(|i| i as u8).collect();
    elf(
        2,
        0xffff_ffff_8100_0000,
        &[(KERNEL_AT, &text)],
        &[(b"GNU\0", 3, b"abcd"), pvh_note(&ENTRY.to_le_bytes())],
    )
}

fn start_info(mem: &vm_memory::GuestMemoryMmap<()>) -> HvmStartInfo {
    HvmStartInfo::read_from_bytes(&read_bytes(mem, PVH_START_INFO_START, 56)).unwrap()
}

#[test]
fn loads_pvh_elf_and_fills_start_info() {
    let mem = guest_memory(64 * MIB);
    let initrd: Vec<u8> = (0..0x3001u32).map(|i| (i % 251) as u8).collect();
    let setup = load(
        &mem,
        64 * MIB,
        &mut Cursor::new(pvh_kernel()),
        Some(&initrd),
        "console=hvc0",
    )
    .unwrap();

    assert_eq!(setup.kind, BootKind::Pvh);
    assert_eq!(read_bytes(&mem, KERNEL_AT, 4), [0, 1, 2, 3]);
    let cpu = setup.cpu;
    assert_eq!(
        (cpu.rip, cpu.rbx, cpu.rflags),
        (u64::from(ENTRY), PVH_START_INFO_START, 2)
    );
    assert_eq!((cpu.cr0, cpu.cr3, cpu.cr4, cpu.efer), (0x11, 0, 0, 0));
    assert_eq!(
        (cpu.cs.selector, cpu.cs.type_, cpu.cs.db, cpu.cs.l, cpu.cs.g),
        (0x10, 0xb, true, false, true)
    );
    for seg in [cpu.ds, cpu.es, cpu.fs, cpu.gs, cpu.ss] {
        assert_eq!(
            (seg.selector, seg.type_, seg.present, seg.s, seg.limit),
            (0x18, 0x3, true, true, 0xffff_ffff)
        );
    }
    assert_eq!((cpu.gdt.base, cpu.gdt.limit), (BOOT_GDT_START, 31));
    let gdt: Vec<u64> = (0..4)
        .map(|i| read_u64(&mem, BOOT_GDT_START + 8 * i))
        .collect();
    assert_eq!(gdt, [0, 0, 0x00CF_9B00_0000_FFFF, 0x00CF_9300_0000_FFFF]);

    let info = start_info(&mem);
    assert_eq!(
        (info.magic, info.version, info.flags),
        (XEN_HVM_START_MAGIC_VALUE, 1, 0)
    );
    assert_eq!(read_bytes(&mem, info.cmdline_paddr, 13), b"console=hvc0\0");

    assert_eq!(info.memmap_paddr, PVH_MEMMAP_START);
    assert_eq!(info.memmap_entries as usize, setup.e820.len());
    let raw = read_bytes(&mem, info.memmap_paddr, 24 * setup.e820.len());
    let memmap = <[HvmMemmapTableEntry]>::ref_from_bytes(&raw).unwrap();
    for (m, e) in memmap.iter().zip(&setup.e820) {
        assert_eq!((m.addr, m.size, m.type_), (e.addr, e.size, e.kind.code()));
    }
    assert_eq!(
        (memmap[2].addr, memmap[2].size, memmap[2].type_),
        (MIB, 63 * MIB, 1)
    );

    assert_eq!(info.nr_modules, 1);
    let module =
        HvmModlistEntry::read_from_bytes(&read_bytes(&mem, info.modlist_paddr, 32)).unwrap();
    assert_eq!(module.size, initrd.len() as u64);
    assert_eq!(
        module.paddr,
        (64 * MIB - initrd.len() as u64) & !0xfff,
        "top of RAM, page aligned"
    );
    assert_eq!(read_bytes(&mem, module.paddr, initrd.len()), initrd);
}

#[test]
fn no_initrd_means_no_modules() {
    let mem = guest_memory(64 * MIB);
    load(&mem, 64 * MIB, &mut Cursor::new(pvh_kernel()), None, "").unwrap();
    let info = start_info(&mem);
    assert_eq!((info.nr_modules, info.modlist_paddr), (0, 0));
    assert_eq!(read_bytes(&mem, info.cmdline_paddr, 1), [0]);
}

#[test]
fn elf_without_pvh_note_is_refused() {
    let mem = guest_memory(64 * MIB);
    let text = [0x90u8; 16];
    let other_note = elf(
        2,
        KERNEL_AT,
        &[(KERNEL_AT, &text)],
        &[(b"Xen\0", 17, b"\0\0\0\0")],
    );
    let no_note = elf(2, KERNEL_AT, &[(KERNEL_AT, &text)], &[]);
    for image in [other_note, no_note] {
        let err = load(&mem, 64 * MIB, &mut Cursor::new(image), None, "").unwrap_err();
        assert!(matches!(err, Error::NoPvhEntry), "{err}");
        assert!(err.to_string().contains("XEN_ELFNOTE_PHYS32_ENTRY"));
    }
}

#[test]
fn malformed_or_misplaced_elf_is_refused() {
    let mem = guest_memory(64 * MIB);
    let entry = ENTRY.to_le_bytes();
    let note = pvh_note(&entry);
    let cases = [
        (
            "ELF32",
            elf(1, KERNEL_AT, &[(KERNEL_AT, &[0; 16])], &[note]),
        ),
        ("no PT_LOAD", elf(2, KERNEL_AT, &[], &[note])),
        (
            "over boot data",
            elf(2, 0x8000, &[(0x8000, &[0; 16])], &[note]),
        ),
        (
            "past end of RAM",
            elf(2, KERNEL_AT, &[(63 * MIB, &[0; 2 << 20])], &[note]),
        ),
        ("truncated", b"\x7fELF\x02".to_vec()),
    ];
    for (what, image) in cases {
        let err = load(&mem, 64 * MIB, &mut Cursor::new(image), None, "").unwrap_err();
        let ok = match what {
            "over boot data" => matches!(
                err,
                Error::PlaceKernel {
                    start: 0x8000,
                    end: 0x8010
                }
            ),
            "past end of RAM" => matches!(err, Error::PlaceKernel { .. }),
            _ => matches!(err, Error::ParseElf(_)),
        };
        assert!(ok, "{what}: {err}");
    }
}

#[test]
fn unknown_format_is_refused() {
    let mem = guest_memory(16 * MIB);
    for image in [vec![], b"MZ".to_vec(), vec![0u8; 0x1000]] {
        let err = load(&mem, 16 * MIB, &mut Cursor::new(image), None, "").unwrap_err();
        assert!(matches!(err, Error::UnknownKernelFormat), "{err}");
    }
}

#[test]
fn cmdline_limit_is_64k_including_nul() {
    let mem = guest_memory(64 * MIB);
    let longest = "x".repeat(0xffff);
    load(
        &mem,
        64 * MIB,
        &mut Cursor::new(pvh_kernel()),
        None,
        &longest,
    )
    .unwrap();
    assert_eq!(read_bytes(&mem, CMDLINE_START + 0xfffe, 2), b"x\0");
    let err = load(
        &mem,
        64 * MIB,
        &mut Cursor::new(pvh_kernel()),
        None,
        &"x".repeat(0x10000),
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            Error::CmdlineTooLong {
                len: 0x10000,
                max: 0xffff
            }
        ),
        "{err}"
    );
    let err = load(&mem, 64 * MIB, &mut Cursor::new(pvh_kernel()), None, "a\0b").unwrap_err();
    assert!(matches!(err, Error::CmdlineContainsNul), "{err}");
}

#[test]
fn initrd_that_does_not_fit_above_the_kernel_is_refused() {
    let mem = guest_memory(32 * MIB);
    // Kernel ends at 16 MiB + 8 KiB: 16 MiB - 8 KiB remain above it.
    let fits = vec![0u8; (16 * MIB - 0x2000) as usize];
    let setup = load(
        &mem,
        32 * MIB,
        &mut Cursor::new(pvh_kernel()),
        Some(&fits),
        "",
    )
    .unwrap();
    assert_eq!(setup.kind, BootKind::Pvh);
    let module =
        HvmModlistEntry::read_from_bytes(&read_bytes(&mem, PVH_MODLIST_START, 32)).unwrap();
    assert_eq!(module.paddr, KERNEL_AT + 0x2000);

    let too_big = vec![0u8; (16 * MIB - 0x1000) as usize];
    let err = load(
        &mem,
        32 * MIB,
        &mut Cursor::new(pvh_kernel()),
        Some(&too_big),
        "",
    )
    .unwrap_err();
    assert!(matches!(err, Error::PlaceInitrd { .. }), "{err}");
}

#[test]
fn initrd_stays_below_the_hole_and_reserved_ranges() {
    let memory = 4 * GIB + 64 * MIB;
    let mem = guest_memory(memory);
    let initrd = vec![0xa5u8; 0x1800];
    let reserved = [(MMIO_HOLE_START - 0x1_0000, 0x1_0000)];
    let setup = load_with_reserved(
        &mem,
        memory,
        &mut Cursor::new(pvh_kernel()),
        Some(&initrd),
        "",
        &reserved,
    )
    .unwrap();
    let module =
        HvmModlistEntry::read_from_bytes(&read_bytes(&mem, PVH_MODLIST_START, 32)).unwrap();
    assert_eq!(module.paddr, MMIO_HOLE_START - 0x1_0000 - 0x2000);
    assert_eq!(read_bytes(&mem, module.paddr, initrd.len()), initrd);
    let reserved_entry = setup
        .e820
        .iter()
        .find(|e| e.addr == MMIO_HOLE_START - 0x1_0000)
        .unwrap();
    assert_eq!(
        (reserved_entry.size, reserved_entry.kind),
        (0x1_0000, E820Kind::Reserved)
    );
    assert_eq!(
        setup.e820.last().map(|e| (e.addr, e.size)),
        Some((HIGH_RAM_START, GIB + 64 * MIB))
    );
}

#[test]
fn too_many_memory_map_entries_are_refused() {
    let mem = guest_memory(64 * MIB);
    let reserved: Vec<(u64, u64)> = (0..130).map(|i| (2 * MIB + i * 0x2000, 0x1000)).collect();
    let err = load_with_reserved(
        &mem,
        64 * MIB,
        &mut Cursor::new(pvh_kernel()),
        None,
        "",
        &reserved,
    )
    .unwrap_err();
    assert!(
        matches!(err, Error::TooManyE820Entries { max: 128, .. }),
        "{err}"
    );
}
