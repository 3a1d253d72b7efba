//! Linux 64-bit boot of bzImages, read back from plain guest memory.

mod common;

use std::io::Cursor;

use common::*;
use linux_loader::loader::bootparam::boot_params;
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};
use xenkvm_boot::layout::*;
use xenkvm_boot::{load, load_with_reserved, BootKind, Error};

fn zero_page(mem: &GuestMemoryMmap<()>) -> boot_params {
    mem.read_obj(GuestAddress(ZERO_PAGE_START)).unwrap()
}

#[test]
fn loads_fake_bzimage_and_fills_zero_page() {
    let memory = 128 * MIB;
    let mem = guest_memory(memory);
    let bz = FakeBz::default();
    let initrd = vec![0x5au8; 0x4321];
    let setup = load(
        &mem,
        memory,
        &mut Cursor::new(bz.build()),
        Some(&initrd),
        "console=ttyS0",
    )
    .unwrap();

    assert_eq!(setup.kind, BootKind::Linux64);
    assert_eq!(
        read_bytes(&mem, bz.pref_address, bz.payload.len()),
        bz.payload
    );
    let cpu = setup.cpu;
    assert_eq!(
        (cpu.rip, cpu.rsi, cpu.rsp, cpu.rflags),
        (bz.pref_address + 0x200, ZERO_PAGE_START, 0x8ff0, 2)
    );
    assert_eq!(
        (cpu.cr0, cpu.cr3, cpu.cr4, cpu.efer),
        (0x8005_0033, PML4_START, 0x20, 0x500)
    );
    assert_eq!(
        (cpu.cs.selector, cpu.cs.type_, cpu.cs.l, cpu.cs.db, cpu.cs.g),
        (0x10, 0xb, true, false, true)
    );
    assert_eq!((cpu.ss.selector, cpu.ss.type_), (0x18, 0x3));
    let gdt: Vec<u64> = (0..4)
        .map(|i| read_u64(&mem, cpu.gdt.base + 8 * i))
        .collect();
    assert_eq!(gdt, [0, 0, 0x00AF_9B00_0000_FFFF, 0x00CF_9300_0000_FFFF]);

    let zp = zero_page(&mem);
    let hdr = zp.hdr;
    assert_eq!({ hdr.header }, 0x5372_6448);
    assert_eq!({ hdr.version }, 0x020f);
    assert_eq!({ hdr.type_of_loader }, 0xff);
    assert_eq!(
        { hdr.loadflags },
        0x81,
        "LOADED_HIGH kept, CAN_USE_HEAP added"
    );
    assert_eq!({ hdr.heap_end_ptr }, 0xfe00);
    assert_eq!({ hdr.vid_mode }, 0xffff);
    assert_eq!({ hdr.cmd_line_ptr } as u64, CMDLINE_START);
    assert_eq!({ zp.ext_cmd_line_ptr }, 0);
    assert_eq!(read_bytes(&mem, CMDLINE_START, 14), b"console=ttyS0\0");
    let ramdisk = u64::from(hdr.ramdisk_image);
    assert_eq!(ramdisk, (memory - initrd.len() as u64) & !0xfff);
    assert_eq!({ hdr.ramdisk_size } as usize, initrd.len());
    assert_eq!(({ zp.ext_ramdisk_image }, { zp.ext_ramdisk_size }), (0, 0));
    assert_eq!(read_bytes(&mem, ramdisk, initrd.len()), initrd);

    assert_eq!(usize::from(zp.e820_entries), setup.e820.len());
    for (raw, e) in zp.e820_table.iter().zip(&setup.e820) {
        assert_eq!(
            ({ raw.addr }, { raw.size }, { raw.r#type }),
            (e.addr, e.size, e.kind.code())
        );
    }
    // The same fields at their documented zero-page offsets, independently of the bindings.
    assert_eq!(read_bytes(&mem, ZERO_PAGE_START + 0x1e8, 1), [3]); // e820_entries
    assert_eq!(read_bytes(&mem, ZERO_PAGE_START + 0x210, 1), [0xff]); // type_of_loader
    assert_eq!(
        read_bytes(&mem, ZERO_PAGE_START + 0x228, 4),
        (CMDLINE_START as u32).to_le_bytes()
    );
    assert_eq!(
        read_bytes(&mem, ZERO_PAGE_START + 0x218, 4),
        (ramdisk as u32).to_le_bytes()
    );
    let third = ZERO_PAGE_START + 0x2d0 + 2 * 20; // e820_table[2]
    assert_eq!(read_u64(&mem, third), MIB);
    assert_eq!(read_u64(&mem, third + 8), memory - MIB);
}

/// Walks the guest's 4-level page tables.
fn translate(mem: &GuestMemoryMmap<()>, cr3: u64, va: u64) -> Option<u64> {
    let mut table = cr3;
    for (level, shift) in [(4, 39), (3, 30), (2, 21)] {
        let entry = read_u64(mem, table + 8 * ((va >> shift) & 0x1ff));
        if entry & 1 == 0 {
            return None;
        }
        if level == 2 {
            assert_ne!(entry & 0x80, 0, "expected a 2 MiB page");
            return Some((entry & 0x000f_ffff_ffe0_0000) | (va & 0x1f_ffff));
        }
        table = entry & 0x000f_ffff_ffff_f000;
    }
    None
}

#[test]
fn page_tables_identity_map_the_first_4g() {
    let mem = guest_memory(64 * MIB);
    let setup = load(
        &mem,
        64 * MIB,
        &mut Cursor::new(FakeBz::default().build()),
        None,
        "",
    )
    .unwrap();
    for va in [
        0,
        0x1234,
        0x100_0200,
        0xC000_0000,
        0xFEE0_0000,
        0xFFE0_0000,
        0xFFFF_FFFF,
    ] {
        assert_eq!(translate(&mem, setup.cpu.cr3, va), Some(va), "{va:#x}");
    }
    assert_eq!(translate(&mem, setup.cpu.cr3, 0x1_0000_0000), None);
}

#[test]
fn old_protocol_and_32_bit_only_kernels_are_refused() {
    let mem = guest_memory(64 * MIB);
    let old = FakeBz {
        version: 0x0205,
        ..Default::default()
    }
    .build();
    let err = load(&mem, 64 * MIB, &mut Cursor::new(old), None, "").unwrap_err();
    assert!(
        matches!(err, Error::BootProtocolTooOld { major: 2, minor: 5 }),
        "{err}"
    );
    assert!(err.to_string().contains("2.05"), "{err}");

    let no64 = FakeBz {
        xloadflags: 0,
        ..Default::default()
    }
    .build();
    let err = load(&mem, 64 * MIB, &mut Cursor::new(no64), None, "").unwrap_err();
    assert!(matches!(err, Error::NoKernel64Entry), "{err}");
    assert!(err.to_string().contains("kernel has no 64-bit entry"));

    let mut truncated = FakeBz::default().build();
    truncated.truncate(0xa00);
    let err = load(&mem, 64 * MIB, &mut Cursor::new(truncated), None, "").unwrap_err();
    assert!(matches!(err, Error::ReadKernel(_)), "{err}");
}

#[test]
fn kernel_must_fit_in_ram_at_its_preferred_address() {
    // init_size reaches past the end of RAM.
    let mem = guest_memory(18 * MIB);
    let err = load(
        &mem,
        18 * MIB,
        &mut Cursor::new(FakeBz::default().build()),
        None,
        "",
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            Error::PlaceKernel {
                start: 0x100_0000,
                end: 0x140_0000
            }
        ),
        "{err}"
    );
    let low = FakeBz {
        pref_address: 0x8000,
        ..Default::default()
    }
    .build();
    let err = load(&mem, 18 * MIB, &mut Cursor::new(low), None, "").unwrap_err();
    assert!(
        matches!(err, Error::KernelLoadAddress { addr: 0x8000 }),
        "{err}"
    );
}

#[test]
fn cmdline_is_limited_by_the_header() {
    let mem = guest_memory(64 * MIB);
    let image = FakeBz::default().build();
    load(
        &mem,
        64 * MIB,
        &mut Cursor::new(&image),
        None,
        &"y".repeat(0x7ff),
    )
    .unwrap();
    let err = load(
        &mem,
        64 * MIB,
        &mut Cursor::new(&image),
        None,
        &"y".repeat(0x800),
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            Error::CmdlineTooLong {
                len: 0x800,
                max: 0x7ff
            }
        ),
        "{err}"
    );
}

#[test]
fn initrd_respects_initrd_addr_max_and_overflow_is_refused() {
    let memory = GIB;
    let mem = guest_memory(memory);
    let image = FakeBz {
        initrd_addr_max: 0x37ff_ffff,
        ..Default::default()
    }
    .build();
    let initrd = vec![1u8; 0x2000];
    load(&mem, memory, &mut Cursor::new(&image), Some(&initrd), "").unwrap();
    assert_eq!({ zero_page(&mem).hdr.ramdisk_image }, 0x3800_0000 - 0x2000);

    // Kernel footprint is 16..20 MiB; 44 MiB remain above it in 64 MiB of RAM.
    let mem = guest_memory(64 * MIB);
    let image = FakeBz::default().build();
    let fits = vec![0u8; (44 * MIB) as usize];
    load(&mem, 64 * MIB, &mut Cursor::new(&image), Some(&fits), "").unwrap();
    assert_eq!({ zero_page(&mem).hdr.ramdisk_image }, 0x140_0000);
    let too_big = vec![0u8; (44 * MIB + 1) as usize];
    let err = load(&mem, 64 * MIB, &mut Cursor::new(&image), Some(&too_big), "").unwrap_err();
    assert!(matches!(err, Error::PlaceInitrd { .. }), "{err}");
}

#[test]
fn zero_page_e820_table_is_bounded() {
    let mem = guest_memory(64 * MIB);
    let reserved: Vec<(u64, u64)> = (0..130).map(|i| (0x20_0000 + i * 0x2000, 0x1000)).collect();
    let image = FakeBz::default().build();
    let err = load_with_reserved(&mem, 64 * MIB, &mut Cursor::new(image), None, "", &reserved)
        .unwrap_err();
    assert!(
        matches!(err, Error::TooManyE820Entries { max: 128, .. }),
        "{err}"
    );
}

const DEBIAN_KERNEL: &str = "/work/shared/nested/l2/vmlinuz";

#[test]
fn loads_the_debian_kernel_if_present() {
    let Ok(mut file) = std::fs::File::open(DEBIAN_KERNEL) else {
        println!("skipping: {DEBIAN_KERNEL} not found");
        return;
    };
    let memory = 256 * MIB;
    let mem = guest_memory(memory);
    let setup = load(
        &mem,
        memory,
        &mut file,
        Some(b"fake initrd"),
        "console=ttyS0 earlyprintk=serial",
    )
    .unwrap();
    let hdr = zero_page(&mem).hdr;
    let version = hdr.version;
    println!(
        "{DEBIAN_KERNEL}: boot protocol {}.{:02}",
        version >> 8,
        version & 0xff
    );
    assert!(version >= 0x0206);
    assert_eq!(setup.kind, BootKind::Linux64);
    let load_addr = u64::from(hdr.code32_start);
    assert_eq!(load_addr, { hdr.pref_address });
    assert_eq!(setup.cpu.rip, load_addr + 0x200);
    assert!(u64::from(hdr.ramdisk_image) >= load_addr + u64::from(hdr.init_size));
}
