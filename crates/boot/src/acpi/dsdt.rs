//! The DSDT: the PCI root bridge with its windows and interrupt routing (I/O
//! APIC GSIs, or link devices in PIC mode: `pci_link.rs`), the ISA devices
//! the guest cannot probe safely (COM1, the RTC), and \_S5.

use acpi_tables::aml::{
    AddressSpace, AddressSpaceCacheable, Device, EISAName, Name, Package, PackageBuilder, Path, ResourceTemplate,
    Scope, IO, ZERO,
};
use acpi_tables::sdt::Sdt;
use acpi_tables::{Aml, AmlSink};

use super::pci_link;
use super::{to_bytes, OEM_ID, OEM_REVISION, OEM_TABLE_ID};
use crate::layout::{IOAPIC_START, MMIO_HOLE_START};
use crate::mptable::PciIrq;

/// Revision 2: AML integers are 64 bits wide.
const REVISION: u8 = 2;
/// Mechanism #1 configuration ports, consumed by the host bridge itself.
const PCI_CONFIG_PORT: u16 = 0xCF8;
const PCI_CONFIG_LEN: u8 = 8;
/// The bridge forwards all other ports to the bus.
const IO_WINDOWS: [(u16, u16); 2] = [(0x0000, 0x0CF7), (0x0D00, 0xFFFF)];
/// 32-bit MMIO window: the hole below 4 GiB up to the I/O APIC.
const MEM_WINDOW: (u32, u32) = (MMIO_HOLE_START as u32, IOAPIC_START as u32 - 1);
/// First I/O APIC pin for PCI INTx; pins 16-23 are shared by the slots.
const PCI_GSI_BASE: u32 = 16;
const PCI_GSI_COUNT: u32 = 8;
const PCI_SLOTS: u8 = 32;
const COM1_PORT: u16 = 0x3F8;
const COM1_IRQ: u8 = 4;
const RTC_PORT: u16 = 0x70;
const RTC_IRQ: u8 = 8;

/// The GSI of `slot`'s INTx `pin` (0 = INTA#) by the rotation the _PRT uses,
/// which puts slot 2's INTA# on GSI 16.
pub fn pci_intx_gsi(slot: u8, pin: u8) -> u32 {
    PCI_GSI_BASE + (u32::from(slot) + u32::from(pin) + PCI_GSI_COUNT - 2) % PCI_GSI_COUNT
}

/// The table: `pci` entries override the rotation for their INTA#; `s5` is the
/// SLP_TYP value the PM device treats as soft off.
pub(super) fn build(pci: &[PciIrq], s5: u8) -> Vec<u8> {
    let s5_package = Package::new(vec![&s5, &s5, &ZERO, &ZERO]);
    let s5_name = Name::new(Path::new("_S5_"), &s5_package);
    let pci0 = pci_root(pci);
    let links = RawAml(pci_link::link_devices());
    let sb = Scope::new(Path::new("\\_SB_"), vec![&links, &pci0]);
    let mut t = Sdt::new(*b"DSDT", 36, REVISION, OEM_ID, OEM_TABLE_ID, OEM_REVISION);
    let mut aml = Vec::new();
    s5_name.to_aml_bytes(&mut aml);
    aml.extend(pci_link::pic_method());
    sb.to_aml_bytes(&mut aml);
    t.append_slice(&aml);
    t.as_slice().to_vec()
}

/// `\_SB.PCI0` with COM1 and the RTC below it (their ports reach the ISA bus
/// through the bridge's I/O window). No _ADR: a device has _HID or _ADR, not both.
fn pci_root(pci: &[PciIrq]) -> RawAml {
    let hid = Name::new(Path::new("_HID"), &EISAName::new("PNP0A03"));
    let uid = Name::new(Path::new("_UID"), &ZERO);
    let bbn = Name::new(Path::new("_BBN"), &ZERO);
    let bus = AddressSpace::new_bus_number(0u16, 0xFFu16);
    let config = IO::new(PCI_CONFIG_PORT, PCI_CONFIG_PORT, 1, PCI_CONFIG_LEN);
    let [io_low, io_high] = IO_WINDOWS.map(|(min, max)| AddressSpace::new_io(min, max, None));
    let mem = AddressSpace::new_memory(AddressSpaceCacheable::NotCacheable, true, MEM_WINDOW.0, MEM_WINDOW.1, None);
    let crs = Name::new(
        Path::new("_CRS"),
        &ResourceTemplate::new(vec![&bus, &config, &io_low, &io_high, &mem]),
    );
    let (apic, pic) = routing_tables(pci);
    let prt = RawAml(pci_link::prt_method(&apic, &pic));
    let com1 = isa_device("COM1", "PNP0501", 1, COM1_PORT, 8, COM1_IRQ);
    let rtc = isa_device("RTC_", "PNP0B00", 0, RTC_PORT, 2, RTC_IRQ);
    RawAml(to_bytes(&Device::new(
        Path::new("PCI0"),
        vec![&hid, &uid, &bbn, &crs, &prt, &com1, &rtc],
    )))
}

/// _PRT: every slot's four pins to GSIs 16-23, with `pci`'s INTA# as wired;
/// and the same in PIC mode, each GSI replaced by its link device.
fn routing_tables(pci: &[PciIrq]) -> (PackageBuilder, PackageBuilder) {
    let mut prt = PackageBuilder::new();
    let mut pic = PackageBuilder::new();
    for slot in 0..PCI_SLOTS {
        for pin in 0u8..4 {
            let wired = pci.iter().find(|p| p.slot == slot && pin == 0);
            let gsi = wired.map_or(pci_intx_gsi(slot, pin), |p| u32::from(p.ioapic_pin));
            // Address 0xSSSSFFFF: any function of the slot. Source 0: `gsi` is a GSI.
            let address = (u32::from(slot) << 16) | 0xFFFF;
            prt.add_element(&Package::new(vec![&address, &pin, &ZERO, &gsi]));
            pci_link::pic_entry(&mut pic, address, pin, gsi);
        }
    }
    (prt, pic)
}

/// A legacy device with one fixed I/O range and one ISA IRQ.
fn isa_device(name: &str, hid: &str, uid: u8, port: u16, len: u8, irq: u8) -> RawAml {
    let hid = Name::new(Path::new("_HID"), &EISAName::new(hid));
    let uid = Name::new(Path::new("_UID"), &uid);
    let io = IO::new(port, port, 1, len);
    let irq = IrqNoFlags(irq);
    let crs = Name::new(Path::new("_CRS"), &ResourceTemplate::new(vec![&io, &irq]));
    RawAml(to_bytes(&Device::new(Path::new(name), vec![&hid, &uid, &crs])))
}

/// Already-encoded AML, so that a subtree can outlive the values it borrowed.
struct RawAml(Vec<u8>);

impl Aml for RawAml {
    fn to_aml_bytes(&self, sink: &mut dyn AmlSink) {
        sink.vec(&self.0);
    }
}

/// The short IRQ descriptor (`IRQNoFlags`): one ISA IRQ, edge-triggered,
/// active high, exclusive; what ISA devices' _CRS use.
struct IrqNoFlags(u8);

impl Aml for IrqNoFlags {
    fn to_aml_bytes(&self, sink: &mut dyn AmlSink) {
        // Small resource item 0x4 (IRQ), 2 bytes long.
        sink.byte(0x22);
        sink.word(1u16.checked_shl(u32::from(self.0)).unwrap_or(0));
    }
}
