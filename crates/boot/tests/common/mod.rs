//! Hand-built kernel images and guest memory for the loader tests.
#![allow(dead_code)]

use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};
use xenkvm_boot::ram_regions;

pub const MIB: u64 = 1 << 20;
pub const GIB: u64 = 1 << 30;

/// Guest memory backing `ram_regions(bytes)` (lazily allocated, so large sizes are cheap).
pub fn guest_memory(bytes: u64) -> GuestMemoryMmap<()> {
    let ranges: Vec<(GuestAddress, usize)> = ram_regions(bytes)
        .into_iter()
        .map(|(a, s)| (a, s as usize))
        .collect();
    GuestMemoryMmap::from_ranges(&ranges).unwrap()
}

pub fn read_u64(mem: &GuestMemoryMmap<()>, addr: u64) -> u64 {
    mem.read_obj(GuestAddress(addr)).unwrap()
}

pub fn read_bytes(mem: &GuestMemoryMmap<()>, addr: u64, len: usize) -> Vec<u8> {
    let mut buf = vec![0; len];
    mem.read_slice(&mut buf, GuestAddress(addr)).unwrap();
    buf
}

/// A note: name (with NUL), type, descriptor.
pub type Note<'a> = (&'a [u8], u32, &'a [u8]);

/// An ELF64 x86-64 executable with one PT_LOAD per `(paddr, data)` and, if `notes`
/// is non-empty, one PT_NOTE holding them.
pub fn elf(class: u8, entry: u64, loads: &[(u64, &[u8])], notes: &[Note<'_>]) -> Vec<u8> {
    let phnum = loads.len() + usize::from(!notes.is_empty());
    let mut note_bytes = Vec::new();
    for (name, kind, desc) in notes {
        note_bytes.extend_from_slice(&(name.len() as u32).to_le_bytes());
        note_bytes.extend_from_slice(&(desc.len() as u32).to_le_bytes());
        note_bytes.extend_from_slice(&kind.to_le_bytes());
        for part in [*name, *desc] {
            note_bytes.extend_from_slice(part);
            note_bytes.resize(note_bytes.len().next_multiple_of(4), 0);
        }
    }
    let data_start = 64 + 56 * phnum;
    let mut out = vec![0u8; data_start];
    out[..4].copy_from_slice(b"\x7fELF");
    out[4] = class;
    out[5] = 1; // little-endian
    out[6] = 1; // EV_CURRENT
    out[16..18].copy_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    out[18..20].copy_from_slice(&0x3eu16.to_le_bytes()); // EM_X86_64
    out[20..24].copy_from_slice(&1u32.to_le_bytes());
    out[24..32].copy_from_slice(&entry.to_le_bytes());
    out[32..40].copy_from_slice(&64u64.to_le_bytes()); // e_phoff
    out[52..54].copy_from_slice(&64u16.to_le_bytes()); // e_ehsize
    out[54..56].copy_from_slice(&56u16.to_le_bytes()); // e_phentsize
    out[56..58].copy_from_slice(&(phnum as u16).to_le_bytes());

    let mut phdrs = Vec::new();
    let mut push = |out: &mut Vec<u8>, p_type: u32, paddr: u64, data: &[u8]| {
        let offset = out.len() as u64;
        out.extend_from_slice(data);
        let mut ph = [0u8; 56];
        ph[0..4].copy_from_slice(&p_type.to_le_bytes());
        ph[4..8].copy_from_slice(&5u32.to_le_bytes()); // R+X
        ph[8..16].copy_from_slice(&offset.to_le_bytes());
        ph[16..24].copy_from_slice(&paddr.to_le_bytes()); // vaddr
        ph[24..32].copy_from_slice(&paddr.to_le_bytes());
        ph[32..40].copy_from_slice(&(data.len() as u64).to_le_bytes());
        ph[40..48].copy_from_slice(&(data.len() as u64).to_le_bytes());
        ph[48..56].copy_from_slice(&4u64.to_le_bytes());
        phdrs.extend_from_slice(&ph);
    };
    for (paddr, data) in loads {
        push(&mut out, 1, *paddr, data);
    }
    if !notes.is_empty() {
        push(&mut out, 4, 0, &note_bytes);
    }
    out[64..data_start].copy_from_slice(&phdrs);
    out
}

/// The PVH entry note.
pub fn pvh_note(entry: &[u8; 4]) -> Note<'_> {
    (b"Xen\0", 18, entry)
}

/// Parameters of a fake bzImage.
pub struct FakeBz {
    pub version: u16,
    pub xloadflags: u16,
    pub pref_address: u64,
    pub init_size: u32,
    pub initrd_addr_max: u32,
    pub cmdline_size: u32,
    pub payload: Vec<u8>,
}

impl Default for FakeBz {
    fn default() -> Self {
        FakeBz {
            version: 0x020f,
            xloadflags: 0x1 | 0x2, // XLF_KERNEL_64 | XLF_CAN_BE_LOADED_ABOVE_4G
            pref_address: 0x100_0000,
            init_size: 0x40_0000,
            initrd_addr_max: 0x7fff_ffff,
            cmdline_size: 0x7ff,
            payload: (0..0x3000u32).map(|i| (i * 7) as u8).collect(),
        }
    }
}

pub const SETUP_SECTS: u8 = 4;

impl FakeBz {
    /// Boot sector + 4 setup sectors with the header at its documented offsets, then the payload.
    pub fn build(&self) -> Vec<u8> {
        let mut out = vec![0u8; (usize::from(SETUP_SECTS) + 1) * 512];
        let mut put = |off: usize, bytes: &[u8]| out[off..off + bytes.len()].copy_from_slice(bytes);
        put(0x1f1, &[SETUP_SECTS]);
        put(0x1fe, &0xAA55u16.to_le_bytes());
        put(0x200, &[0xeb, 0x66]); // jmp over the header
        put(0x202, b"HdrS");
        put(0x206, &self.version.to_le_bytes());
        put(0x211, &[0x01]); // loadflags: LOADED_HIGH
        put(0x214, &0x10_0000u32.to_le_bytes()); // code32_start
        put(0x22c, &self.initrd_addr_max.to_le_bytes());
        put(0x230, &0x20_0000u32.to_le_bytes()); // kernel_alignment
        put(0x234, &[1]); // relocatable_kernel
        put(0x236, &self.xloadflags.to_le_bytes());
        put(0x238, &self.cmdline_size.to_le_bytes());
        put(0x258, &self.pref_address.to_le_bytes());
        put(0x260, &self.init_size.to_le_bytes());
        out.extend_from_slice(&self.payload);
        out
    }
}
