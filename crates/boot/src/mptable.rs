//! An Intel MultiProcessor Specification 1.4 table, so that a guest without
//! ACPI finds its local APICs, the I/O APIC and how ISA and PCI interrupts are
//! wired, and runs in APIC mode.

use vm_memory::GuestMemoryBackend;

use crate::cpu::write;
use crate::Error;

/// Where the floating pointer and the table go: the BIOS area Linux scans.
pub const MPTABLE_START: u64 = 0xF_0000;
const LAPIC_ADDR: u32 = 0xFEE0_0000;
const IOAPIC_ADDR: u32 = 0xFEC0_0000;
const APIC_VERSION: u8 = 0x14;
const BUS_PCI: u8 = 0;
const BUS_ISA: u8 = 1;

/// A PCI function's INTA# wired to an I/O APIC pin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PciIrq {
    pub slot: u8,
    pub ioapic_pin: u8,
}

fn checksum(bytes: &[u8]) -> u8 {
    bytes.iter().fold(0u8, |a, b| a.wrapping_add(*b)).wrapping_neg()
}

fn processor(id: u8) -> [u8; 20] {
    let mut e = [0u8; 20];
    e[0] = 0;
    e[1] = id;
    e[2] = APIC_VERSION;
    e[3] = 1 | if id == 0 { 2 } else { 0 };
    e[4..8].copy_from_slice(&0x600u32.to_le_bytes());
    e[8..12].copy_from_slice(&0x201u32.to_le_bytes());
    e
}

fn bus(id: u8, name: &[u8; 6]) -> [u8; 8] {
    let mut e = [1, id, 0, 0, 0, 0, 0, 0];
    e[2..8].copy_from_slice(name);
    e
}

fn io_interrupt(kind: u8, flags: u16, bus: u8, irq: u8, ioapic: u8, pin: u8) -> [u8; 8] {
    let f = flags.to_le_bytes();
    [3, kind, f[0], f[1], bus, irq, ioapic, pin]
}

/// The table's bytes for `cpus` processors (at most 254) and `pci` interrupts.
pub fn build(cpus: u8, pci: &[PciIrq]) -> Vec<u8> {
    let ioapic_id = cpus;
    let mut entries: Vec<u8> = Vec::new();
    let mut count = 0u16;
    let mut push = |e: &[u8]| {
        entries.extend_from_slice(e);
        count += 1;
    };
    for id in 0..cpus {
        push(&processor(id));
    }
    push(&bus(BUS_PCI, b"PCI   "));
    push(&bus(BUS_ISA, b"ISA   "));
    let mut ioapic = [2, ioapic_id, 0x11, 1, 0, 0, 0, 0];
    ioapic[4..8].copy_from_slice(&IOAPIC_ADDR.to_le_bytes());
    push(&ioapic);
    // ISA IRQs: 0 goes to pin 2 as on PC hardware; IRQ 2 is the cascade.
    push(&io_interrupt(3, 0, BUS_ISA, 0, ioapic_id, 0));
    for irq in (0u8..16).filter(|i| *i != 2) {
        let pin = if irq == 0 { 2 } else { irq };
        push(&io_interrupt(0, 0, BUS_ISA, irq, ioapic_id, pin));
    }
    // PCI INTA#: active low, level triggered.
    for p in pci {
        push(&io_interrupt(0, 0xF, BUS_PCI, p.slot << 2, ioapic_id, p.ioapic_pin));
    }
    // LINT0 is ExtINT, LINT1 is NMI, on every local APIC.
    push(&[4, 3, 0, 0, BUS_ISA, 0, 0xFF, 0]);
    push(&[4, 1, 0, 0, BUS_ISA, 0, 0xFF, 1]);

    let table_len = 44 + entries.len();
    let mut head = [0u8; 44];
    head[0..4].copy_from_slice(b"PCMP");
    head[4..6].copy_from_slice(&(table_len as u16).to_le_bytes());
    head[6] = 4;
    head[8..16].copy_from_slice(b"XENKVM  ");
    head[16..28].copy_from_slice(b"0.1         ");
    head[34..36].copy_from_slice(&count.to_le_bytes());
    head[36..40].copy_from_slice(&LAPIC_ADDR.to_le_bytes());
    // The checksum covers the header and the entries.
    let mut sum = head.to_vec();
    sum.extend_from_slice(&entries);
    head[7] = checksum(&sum);
    let mut header = head.to_vec();
    header.extend_from_slice(&entries);

    let mut fp = [0u8; 16];
    fp[0..4].copy_from_slice(b"_MP_");
    fp[4..8].copy_from_slice(&((MPTABLE_START + 16) as u32).to_le_bytes());
    fp[8] = 1;
    fp[9] = 4;
    fp[10] = checksum(&fp);
    let mut out = fp.to_vec();
    out.extend_from_slice(&header);
    out
}

/// The I/O APIC's id for `cpus` processors: the first id above the local APICs'
/// (capped at 254), as [`build`] and the ACPI MADT give it.
pub fn ioapic_id(cpus: u32) -> u8 {
    u8::try_from(cpus.min(254)).unwrap_or(254)
}

/// Writes the table at [`MPTABLE_START`].
pub fn write_mptable<M: GuestMemoryBackend>(mem: &M, cpus: u32, pci: &[PciIrq]) -> Result<(), Error> {
    let cpus = u8::try_from(cpus.min(254)).unwrap_or(254);
    write(mem, "MP table", MPTABLE_START, &build(cpus, pci))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksums_and_counts() {
        let t = build(2, &[PciIrq { slot: 2, ioapic_pin: 16 }]);
        assert_eq!(&t[0..4], b"_MP_");
        assert_eq!(t[..16].iter().fold(0u8, |a, b| a.wrapping_add(*b)), 0);
        let table = &t[16..];
        assert_eq!(&table[0..4], b"PCMP");
        let len = u16::from_le_bytes([table[4], table[5]]) as usize;
        assert_eq!(len, table.len());
        assert_eq!(table.iter().fold(0u8, |a, b| a.wrapping_add(*b)), 0);
        let count = u16::from_le_bytes([table[34], table[35]]);
        // 2 CPUs, 2 buses, 1 IOAPIC, ExtINT + 15 ISA, 1 PCI, 2 local.
        assert_eq!(count, 2 + 2 + 1 + 16 + 1 + 2);
        // BSP flag only on CPU 0.
        assert_eq!(table[44 + 3], 3);
        assert_eq!(table[64 + 3], 1);
    }
}
