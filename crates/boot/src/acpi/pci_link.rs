//! PCI interrupt routing for a guest in PIC mode (Linux `noapic`, `acpi=noirq`
//! aside): ACPI calls `\_PIC(0)`, and `\_SB.PCI0._PRT` then names interrupt
//! link devices (PNP0C0F) instead of I/O APIC GSIs. Each link has one fixed,
//! level-triggered, active-low, shared ISA IRQ (10 or 11), which the VMM
//! mirrors every PCI INTx line of that link onto (`pci_gsi_pic_irq`).
//! Linux's pci_link.c wants `_PRS`, `_CRS` and `_SRS` (it always sets the IRQ
//! it picked), and evaluates `_DIS` and `_STA`.

use acpi_tables::aml::{
    Arg, Device, EISAName, Else, If, Method, Name, Package, PackageBuilder, Path, ResourceTemplate, Return, Store,
    ZERO,
};
use acpi_tables::{Aml, AmlSink};

use super::to_bytes;

/// First GSI of the PCI INTx lines and how many there are.
const PCI_GSI_BASE: u32 = 16;
const PCI_GSI_COUNT: u32 = 8;
/// The ISA IRQ of each link LNKA-LNKD (the ELCR marks them level-triggered).
pub const LINK_IRQS: [u8; 4] = [10, 11, 10, 11];
/// _STA: present, enabled, shown in the UI, functioning.
const STA_ENABLED: u8 = 0x0F;

/// The link (0 = LNKA) a PCI INTx GSI takes in PIC mode.
fn link_of_gsi(gsi: u32) -> Option<usize> {
    let i = gsi.checked_sub(PCI_GSI_BASE).filter(|i| *i < PCI_GSI_COUNT)?;
    usize::try_from(i % 4).ok()
}

/// The PIC IRQ of PCI INTx GSI `gsi` (16-23) in PIC mode.
pub fn pci_gsi_pic_irq(gsi: u32) -> Option<u8> {
    LINK_IRQS.get(link_of_gsi(gsi)?).copied()
}

/// LNKA-LNKD, in `\_SB`.
fn link_name(link: usize) -> String {
    let letter = char::from(b'A' + u8::try_from(link % 4).unwrap_or(0));
    format!("LNK{letter}")
}

fn link_path(link: usize) -> Path {
    Path::new(&format!("\\_SB_.{}", link_name(link)))
}

/// `\PICF` (0: PIC mode, the state before any call) and `\_PIC`, which
/// the OS calls with its interrupt model.
pub(super) fn pic_method() -> Vec<u8> {
    let flag = Name::new(Path::new("\\PICF"), &ZERO);
    let picf = Path::new("\\PICF");
    let store = Store::new(&picf, &Arg(0));
    let method = Method::new(Path::new("\\_PIC"), 1, false, vec![&store]);
    let mut aml = to_bytes(&flag);
    aml.extend(to_bytes(&method));
    aml
}

/// The four link devices, for `\_SB`.
pub(super) fn link_devices() -> Vec<u8> {
    LINK_IRQS.iter().enumerate().flat_map(|(i, irq)| link_device(i, *irq)).collect()
}

fn link_device(link: usize, irq: u8) -> Vec<u8> {
    let path = Path::new(&link_name(link));
    let hid = Name::new(Path::new("_HID"), &EISAName::new("PNP0C0F"));
    let uid_value = u8::try_from(link + 1).unwrap_or(0);
    let uid = Name::new(Path::new("_UID"), &uid_value);
    let sta = Name::new(Path::new("_STA"), &STA_ENABLED);
    let level = IrqLevelShared(irq);
    let template = ResourceTemplate::new(vec![&level]);
    let prs = Name::new(Path::new("_PRS"), &template);
    let crs = Name::new(Path::new("_CRS"), &template);
    // The IRQ is fixed: setting it (to the only possible value) or
    // disabling the link changes nothing.
    let srs = Method::new(Path::new("_SRS"), 1, false, vec![]);
    let dis = Method::new(Path::new("_DIS"), 0, false, vec![]);
    to_bytes(&Device::new(path, vec![&hid, &uid, &sta, &prs, &crs, &srs, &dis]))
}

/// `_PRT` as a method: `apic` (GSIs) once the OS said APIC mode, else
/// `pic` (the links). Both tables are named objects of the bridge.
pub(super) fn prt_method(apic: &PackageBuilder, pic: &PackageBuilder) -> Vec<u8> {
    let prta = Name::new(Path::new("PRTA"), apic);
    let prtp = Name::new(Path::new("PRTP"), pic);
    let picf = Path::new("\\PICF");
    let (a, p) = (Path::new("PRTA"), Path::new("PRTP"));
    let (ret_a, ret_p) = (Return::new(&a), Return::new(&p));
    let when_apic = If::new(&picf, vec![&ret_a]);
    let otherwise = Else::new(vec![&ret_p]);
    let method = Method::new(Path::new("_PRT"), 0, false, vec![&when_apic, &otherwise]);
    let mut aml = to_bytes(&prta);
    aml.extend(to_bytes(&prtp));
    aml.extend(to_bytes(&method));
    aml
}

/// A PIC-mode _PRT entry: `address` (0xSSSSFFFF) `pin` through `gsi`'s link.
pub(super) fn pic_entry(prt: &mut PackageBuilder, address: u32, pin: u8, gsi: u32) {
    let link = link_path(link_of_gsi(gsi).unwrap_or(0));
    prt.add_element(&Package::new(vec![&address, &pin, &link, &ZERO]));
}

/// The 3-byte IRQ descriptor `IRQ (Level, ActiveLow, Shared) {irq}`: what
/// PCI interrupt links report.
struct IrqLevelShared(u8);

impl Aml for IrqLevelShared {
    fn to_aml_bytes(&self, sink: &mut dyn AmlSink) {
        // Small resource item 0x4 (IRQ), 3 bytes long.
        sink.byte(0x23);
        sink.word(1u16.checked_shl(u32::from(self.0)).unwrap_or(0));
        // Bit 0 clear: level; bit 3: active low; bit 4: shared.
        sink.byte(0x18);
    }
}
