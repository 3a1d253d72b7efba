//! ACPI tables (RSDP, XSDT, FADT, FACS, MADT, DSDT), so that an ACPI guest finds
//! its processors, the interrupt wiring, the PCI root and the fixed power-management
//! registers. The MP table stays for guests that boot without ACPI.
//!
//! Everything goes in one image at [`ACPI_START`]: the RSDP first (the guest finds
//! it by scanning 0xE0000..0xFFFFF on 16-byte boundaries), then the tables.

mod dsdt;
mod madt;
mod pci_link;
#[cfg(test)]
mod tests;

use acpi_tables::facs::FACS;
use acpi_tables::fadt::{FADTBuilder, Flags};
use acpi_tables::gas::{AccessSize, AddressSpace, GAS};
use acpi_tables::rsdp::Rsdp;
use acpi_tables::xsdt::XSDT;
use acpi_tables::Aml;
use vm_memory::GuestMemoryBackend;

use crate::cpu::write;
use crate::mptable::{PciIrq, MPTABLE_START};
use crate::Error;

pub use dsdt::pci_intx_gsi;
pub use pci_link::{pci_gsi_pic_irq, LINK_IRQS};

/// Where the image goes: inside the RSDP scan range, in the E820-reserved BIOS
/// area, and below the MP table.
pub const ACPI_START: u64 = 0xE_0000;
/// Room for the whole image: everything up to the MP table.
pub const ACPI_MAX_SIZE: u64 = MPTABLE_START - ACPI_START;

pub(crate) const OEM_ID: [u8; 6] = *b"XENKVM";
pub(crate) const OEM_TABLE_ID: [u8; 8] = *b"XENKVM  ";
pub(crate) const OEM_REVISION: u32 = 1;

/// IAPC_BOOT_ARCH: user-visible legacy devices (COM1, RTC) exist; no VGA. No
/// 8042 bit: there is no keyboard controller.
const IAPC_LEGACY_DEVICES: u16 = 1 << 0;
const IAPC_VGA_NOT_PRESENT: u16 = 1 << 2;
/// Worst-case C2/C3 latencies above these limits say "not supported".
const C2_UNSUPPORTED_LATENCY: u16 = 101;
const C3_UNSUPPORTED_LATENCY: u16 = 1001;
/// CMOS index of the RTC's century register.
const RTC_CENTURY: u8 = 0x32;

/// The fixed hardware the VMM's ACPI PM device implements, as the FADT and the
/// DSDT describe it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PmHardware {
    /// ISA IRQ (and GSI) of the SCI; level-triggered, active high.
    pub sci_irq: u8,
    /// PM1a event block: PM1_STS then PM1_EN, 2 bytes each.
    pub pm1a_evt: u16,
    /// PM1a control block (2 bytes).
    pub pm1a_cnt: u16,
    /// 32-bit PM timer (4 bytes).
    pub pm_tmr: u16,
    /// Reset register (one byte of I/O space) and the value that resets.
    pub reset_port: u16,
    pub reset_value: u8,
    /// SLP_TYP value that means S5 (soft off).
    pub s5_slp_typ: u8,
}

/// What the tables describe.
#[derive(Debug, Clone, Copy)]
pub struct AcpiConfig<'a> {
    pub cpus: u32,
    /// PCI functions whose INTA# is wired to a fixed I/O APIC pin.
    pub pci: &'a [PciIrq],
    pub pm: PmHardware,
}

/// The tables as one image to copy to [`ACPI_START`], RSDP first.
pub fn build(cfg: &AcpiConfig) -> Result<Vec<u8>, Error> {
    let mut image = Image::default();
    // The RSDP goes first but points at the XSDT, which is built last.
    let rsdp_slot = image.append(16, &[0; 36]);
    let facs = image.append(64, &to_bytes(&FACS::new()));
    let dsdt = image.append(16, &dsdt::build(cfg.pci, cfg.pm.s5_slp_typ));
    let fadt = image.append(16, &fadt(&cfg.pm, dsdt, facs));
    let madt = image.append(16, &madt::build(cfg.cpus, crate::mptable::ioapic_id(cfg.cpus), cfg.pm.sci_irq));
    let mut xsdt = XSDT::new(OEM_ID, OEM_TABLE_ID, OEM_REVISION);
    xsdt.add_entry(fadt);
    xsdt.add_entry(madt);
    let xsdt = image.append(16, &to_bytes(&xsdt));
    image.put(rsdp_slot, &to_bytes(&Rsdp::new(OEM_ID, xsdt)));
    let size = image.bytes.len() as u64;
    if size > ACPI_MAX_SIZE {
        return Err(Error::AcpiTooLarge { size, max: ACPI_MAX_SIZE });
    }
    Ok(image.bytes)
}

/// Builds the tables and writes them at [`ACPI_START`]; returns the RSDP's address.
pub fn write_acpi_tables<M: GuestMemoryBackend>(mem: &M, cfg: &AcpiConfig) -> Result<u64, Error> {
    write(mem, "ACPI tables", ACPI_START, &build(cfg)?)?;
    Ok(ACPI_START)
}

/// The image under construction; offsets become guest addresses from [`ACPI_START`].
#[derive(Default)]
struct Image {
    bytes: Vec<u8>,
}

impl Image {
    /// Appends `table` at the next multiple of `align`; returns its guest address.
    fn append(&mut self, align: usize, table: &[u8]) -> u64 {
        let start = self.bytes.len().next_multiple_of(align);
        self.bytes.resize(start, 0);
        self.bytes.extend_from_slice(table);
        ACPI_START + start as u64
    }

    /// Overwrites the bytes at guest address `addr` (inside the image).
    fn put(&mut self, addr: u64, bytes: &[u8]) {
        let start = addr.checked_sub(ACPI_START).and_then(|o| usize::try_from(o).ok()).unwrap_or(usize::MAX);
        if let Some(dst) = self.bytes.get_mut(start..start.saturating_add(bytes.len())) {
            dst.copy_from_slice(bytes);
        }
    }
}

pub(crate) fn to_bytes(aml: &dyn Aml) -> Vec<u8> {
    let mut bytes = Vec::new();
    aml.to_aml_bytes(&mut bytes);
    bytes
}

/// A register in system I/O space, `bits` wide, for the FADT's X_ blocks.
fn io_register(port: u16, bits: u8, access: AccessSize) -> GAS {
    GAS::new(AddressSpace::SystemIo, bits, 0, access, port.into())
}

/// The FADT of a PC with fixed ACPI hardware (not hardware-reduced): ACPI is
/// always enabled (no SMI_CMD), the power button is a fixed feature, there is no
/// sleep button and no GPE block.
fn fadt(pm: &PmHardware, dsdt: u64, facs: u64) -> Vec<u8> {
    let mut f = FADTBuilder::new(OEM_ID, OEM_TABLE_ID, OEM_REVISION)
        .dsdt_64(dsdt)
        .firmware_ctrl_64(facs)
        .flag(Flags::Wbinvd)
        .flag(Flags::ProcC1)
        .flag(Flags::SlpButton)
        .flag(Flags::FixRtc)
        .flag(Flags::TmrValExt)
        .flag(Flags::ResetRegSup);
    f.sci_int = u16::from(pm.sci_irq).into();
    f.pm1a_evt_blk = u32::from(pm.pm1a_evt).into();
    f.pm1a_cnt_blk = u32::from(pm.pm1a_cnt).into();
    f.pm_tmr_blk = u32::from(pm.pm_tmr).into();
    f.pm1_evt_len = 4;
    f.pm1_cnt_len = 2;
    f.pm_tmr_len = 4;
    f.x_pm1a_evt_blk = io_register(pm.pm1a_evt, 32, AccessSize::WordAccess);
    f.x_pm1a_cnt_blk = io_register(pm.pm1a_cnt, 16, AccessSize::WordAccess);
    f.x_pm_tmr_blk = io_register(pm.pm_tmr, 32, AccessSize::DwordAccess);
    f.p_lvl2_lat = C2_UNSUPPORTED_LATENCY.into();
    f.p_lvl3_lat = C3_UNSUPPORTED_LATENCY.into();
    f.century = RTC_CENTURY;
    f.iapc_boot_arch = (IAPC_LEGACY_DEVICES | IAPC_VGA_NOT_PRESENT).into();
    f.reset_reg = io_register(pm.reset_port, 8, AccessSize::ByteAccess);
    f.reset_value = pm.reset_value;
    to_bytes(&f.finalize())
}
