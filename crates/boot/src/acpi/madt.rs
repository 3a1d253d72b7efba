//! The MADT: one local APIC per vCPU (ACPI processor UID = APIC id = vCPU
//! index), the I/O APIC, the ISA interrupt overrides and the LINT1 NMI.

use acpi_tables::madt::{EnabledStatus, IoApic, ProcessorLocalApic};
use acpi_tables::sdt::Sdt;

use super::{to_bytes, OEM_ID, OEM_REVISION, OEM_TABLE_ID};
use crate::layout::{IOAPIC_START, LAPIC_START};

/// MADT revision of ACPI 6.x.
const REVISION: u8 = 5;
/// Header plus the local APIC address and flags.
const HEADER_LEN: u32 = 44;
/// Flags: the machine also has dual 8259s, which the OS must mask.
const PCAT_COMPAT: u32 = 1;
/// APIC ids at or above this need x2APIC entries (255 is the xAPIC broadcast).
const FIRST_X2APIC_ID: u32 = 255;
/// MPS INTI flags: polarity in bits 0-1, trigger mode in bits 2-3.
const ACTIVE_HIGH: u16 = 0b01;
const EDGE: u16 = 0b01 << 2;
const LEVEL: u16 = 0b11 << 2;
/// ACPI processor UID meaning "every processor" in the NMI entries.
const ALL_PROCESSORS_U8: u8 = 0xFF;
const ALL_PROCESSORS_U32: u32 = u32::MAX;
/// The local APIC input wired to NMI.
const NMI_LINT: u8 = 1;
const ENABLED: u32 = 1;

/// The table for `cpus` vCPUs, with the I/O APIC at `ioapic_id` and the SCI on
/// ISA IRQ `sci_irq`.
pub(super) fn build(cpus: u32, ioapic_id: u8, sci_irq: u8) -> Vec<u8> {
    let mut t = Sdt::new(*b"APIC", HEADER_LEN, REVISION, OEM_ID, OEM_TABLE_ID, OEM_REVISION);
    t.write_u32(36, LAPIC_START as u32);
    t.write_u32(40, PCAT_COMPAT);
    for id in 0..cpus {
        t.append_slice(&processor(id));
    }
    t.append_slice(&to_bytes(&IoApic::new(ioapic_id, IOAPIC_START as u32, 0)));
    // The PIT's IRQ 0 is on pin 2, as on PC hardware.
    t.append_slice(&source_override(0, 2, ACTIVE_HIGH | EDGE));
    t.append_slice(&source_override(sci_irq, u32::from(sci_irq), ACTIVE_HIGH | LEVEL));
    t.append_slice(&local_apic_nmi());
    if cpus > FIRST_X2APIC_ID {
        t.append_slice(&local_x2apic_nmi());
    }
    t.as_slice().to_vec()
}

/// A Processor Local APIC entry, or a Processor Local x2APIC entry for ids that
/// do not fit the xAPIC's 8 bits.
fn processor(id: u32) -> Vec<u8> {
    match u8::try_from(id) {
        Ok(small) if id < FIRST_X2APIC_ID => to_bytes(&ProcessorLocalApic::new(small, small, EnabledStatus::Enabled)),
        _ => local_x2apic(id),
    }
}

/// Processor Local x2APIC structure (type 9).
fn local_x2apic(id: u32) -> Vec<u8> {
    let mut e = vec![9, 16, 0, 0];
    e.extend_from_slice(&id.to_le_bytes());
    e.extend_from_slice(&ENABLED.to_le_bytes());
    e.extend_from_slice(&id.to_le_bytes());
    e
}

/// Interrupt Source Override structure (type 2) for an ISA IRQ.
fn source_override(irq: u8, gsi: u32, flags: u16) -> Vec<u8> {
    let mut e = vec![2, 10, 0, irq];
    e.extend_from_slice(&gsi.to_le_bytes());
    e.extend_from_slice(&flags.to_le_bytes());
    e
}

/// Local APIC NMI structure (type 4): LINT1 of every processor, bus-conforming flags.
fn local_apic_nmi() -> Vec<u8> {
    vec![4, 6, ALL_PROCESSORS_U8, 0, 0, NMI_LINT]
}

/// Local x2APIC NMI structure (type 0xA), for processors with x2APIC entries.
fn local_x2apic_nmi() -> Vec<u8> {
    let mut e = vec![0xA, 12, 0, 0];
    e.extend_from_slice(&ALL_PROCESSORS_U32.to_le_bytes());
    e.extend_from_slice(&[NMI_LINT, 0, 0, 0]);
    e
}
