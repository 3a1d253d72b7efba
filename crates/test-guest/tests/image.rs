//! The embedded guest image is a PVH-bootable ELF64 x86-64 executable: parsed by
//! hand here (no ELF crate) to check what a PVH loader relies on.

use xenkvm_test_guest::IMAGE;

const PT_LOAD: u32 = 1;
const PT_NOTE: u32 = 4;
const EM_X86_64: u16 = 62;
const ET_EXEC: u16 = 2;
const XEN_ELFNOTE_PHYS32_ENTRY: u32 = 18;
const LOAD_ADDR: u64 = 0x10_0000;

fn u16_at(b: &[u8], off: usize) -> u16 {
    u16::from_le_bytes(b[off..off + 2].try_into().unwrap())
}

fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes(b[off..off + 4].try_into().unwrap())
}

fn u64_at(b: &[u8], off: usize) -> u64 {
    u64::from_le_bytes(b[off..off + 8].try_into().unwrap())
}

#[derive(Debug, Clone, Copy)]
struct Phdr {
    p_type: u32,
    offset: u64,
    vaddr: u64,
    paddr: u64,
    filesz: u64,
    memsz: u64,
}

struct Elf {
    entry: u64,
    machine: u16,
    e_type: u16,
    phdrs: Vec<Phdr>,
}

fn parse(b: &[u8]) -> Elf {
    assert!(b.len() >= 64, "image too short for an ELF header: {} bytes", b.len());
    assert_eq!(&b[0..4], b"\x7fELF", "ELF magic");
    assert_eq!(b[4], 2, "EI_CLASS must be ELFCLASS64");
    assert_eq!(b[5], 1, "EI_DATA must be little-endian");
    let phoff = u64_at(b, 32) as usize;
    let phentsize = u16_at(b, 54) as usize;
    let phnum = u16_at(b, 56) as usize;
    assert_eq!(phentsize, 56, "e_phentsize of ELF64");
    assert!(phoff >= 64, "program headers overlap the ELF header");
    let phdrs = (0..phnum)
        .map(|i| {
            let p = phoff + i * phentsize;
            assert!(p + phentsize <= b.len(), "program header {i} out of the file");
            Phdr {
                p_type: u32_at(b, p),
                offset: u64_at(b, p + 8),
                vaddr: u64_at(b, p + 16),
                paddr: u64_at(b, p + 24),
                filesz: u64_at(b, p + 32),
                memsz: u64_at(b, p + 40),
            }
        })
        .collect();
    Elf { entry: u64_at(b, 24), machine: u16_at(b, 18), e_type: u16_at(b, 16), phdrs }
}

/// The (type, name, desc) notes of a PT_NOTE segment.
fn notes(b: &[u8], ph: &Phdr) -> Vec<(u32, Vec<u8>, Vec<u8>)> {
    let align4 = |n: usize| (n + 3) & !3;
    let seg = &b[ph.offset as usize..(ph.offset + ph.filesz) as usize];
    let mut out = Vec::new();
    let mut off = 0;
    while off + 12 <= seg.len() {
        let namesz = u32_at(seg, off) as usize;
        let descsz = u32_at(seg, off + 4) as usize;
        let n_type = u32_at(seg, off + 8);
        let name_off = off + 12;
        let desc_off = name_off + align4(namesz);
        assert!(desc_off + descsz <= seg.len(), "note overruns its segment");
        out.push((n_type, seg[name_off..name_off + namesz].to_vec(), seg[desc_off..desc_off + descsz].to_vec()));
        off = desc_off + align4(descsz);
    }
    out
}

#[test]
fn image_is_an_elf64_x86_64_executable() {
    let elf = parse(IMAGE);
    assert_eq!(elf.machine, EM_X86_64);
    assert_eq!(elf.e_type, ET_EXEC);
}

#[test]
fn image_loads_at_one_mib() {
    let elf = parse(IMAGE);
    let loads: Vec<_> = elf.phdrs.iter().filter(|p| p.p_type == PT_LOAD).collect();
    assert!(loads.iter().any(|p| p.paddr == LOAD_ADDR), "no PT_LOAD at paddr {LOAD_ADDR:#x}: {loads:?}");
    for p in &loads {
        assert!(p.paddr >= LOAD_ADDR, "PT_LOAD below 1 MiB: {p:?}");
        assert_eq!(p.paddr, p.vaddr, "identity-linked: {p:?}");
        assert!(p.memsz >= p.filesz, "{p:?}");
        assert!(p.offset + p.filesz <= IMAGE.len() as u64, "PT_LOAD beyond the file: {p:?}");
        assert!(p.paddr + p.memsz < 1 << 30, "image must stay below 1 GiB (alias window): {p:?}");
    }
    // linux-loader only loads segments with p_filesz != 0 and computes the
    // kernel's end from those, so the segment holding .bss must have file data.
    assert!(loads.iter().all(|p| p.filesz > 0), "a PT_LOAD has no file data: {loads:?}");
}

#[test]
fn image_has_the_pvh_entry_note() {
    let elf = parse(IMAGE);
    let note_segs: Vec<_> = elf.phdrs.iter().filter(|p| p.p_type == PT_NOTE).collect();
    // linux-loader keeps the result of the last PT_NOTE it parses: have one.
    assert_eq!(note_segs.len(), 1, "exactly one PT_NOTE: {note_segs:?}");
    let notes = notes(IMAGE, note_segs[0]);
    let pvh: Vec<_> =
        notes.iter().filter(|(t, name, _)| *t == XEN_ELFNOTE_PHYS32_ENTRY && name == b"Xen\0").collect();
    assert_eq!(pvh.len(), 1, "one Xen note of type 18 in {notes:?}");
    let desc = &pvh[0].2;
    assert_eq!(desc.len(), 4, "PHYS32_ENTRY descriptor is 4 bytes");
    let entry = u64::from(u32_at(desc, 0));
    assert_eq!(entry, elf.entry, "the note names the ELF entry point");

    // The entry point lies in the first loaded segment.
    let text = elf.phdrs.iter().find(|p| p.p_type == PT_LOAD && p.paddr == LOAD_ADDR).unwrap();
    assert!(entry >= text.paddr && entry < text.paddr + text.filesz, "entry {entry:#x} outside {text:?}");
}

#[test]
fn entry_code_starts_in_32_bit_mode_with_cli() {
    // The first instruction at the PVH entry is `cli` (0xfa), then `cld` (0xfc).
    let elf = parse(IMAGE);
    let text = elf.phdrs.iter().find(|p| p.p_type == PT_LOAD && p.paddr == LOAD_ADDR).unwrap();
    let off = (text.offset + (elf.entry - text.paddr)) as usize;
    assert_eq!(&IMAGE[off..off + 2], &[0xfa, 0xfc]);
}
