//! Lines raised by devices and by the Xen callback reach the 8259 as a
//! guest in PIC mode programs it, with the I/O APIC still driven too.

use std::sync::atomic::{AtomicUsize, Ordering};

use xenkvm_devices::ioapic::{Ioapic, MsiSink};
use xenkvm_devices::pic::Pic;
use xenkvm_kvm::kick::VcpuKicker;
use vm_superio::Trigger;
use xenkvm_devices::acpi_pm::IrqLevel;

use super::*;
use crate::irq::{IrqLines, CALLBACK_SOURCE};

#[derive(Default)]
struct CountMsi(AtomicUsize);
impl MsiSink for CountMsi {
    fn send_msi(&self, _: u64, _: u32) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// Lines with the PIC mirror, and the PIC on a port bus, programmed as
/// Linux's `init_8259A` does (vectors 0x30/0x38), every IRQ unmasked.
fn machine() -> (IrqLines, Arc<Mutex<Pic>>, PioBus, Arc<CountMsi>) {
    let msi = Arc::new(CountMsi::default());
    let ioapic = Arc::new(Mutex::new(Ioapic::new(msi.clone())));
    let lines = IrqLines::ioapic_only(ioapic);
    let pic = create(Arc::new(VcpuKicker::new(libc::SIGRTMIN(), 1)));
    lines.levels.set_mirror(mirror(pic.clone()));
    let mut bus = PioBus::new();
    attach(&mut bus, &pic).unwrap();
    for (cmd, data, base, icw3) in [(0x20u64, 0x21u64, 0x30u8, 0x04u8), (0xA0, 0xA1, 0x38, 0x02)] {
        for (port, v) in [(cmd, 0x11), (data, base), (data, icw3), (data, 0x01), (data, 0x00)] {
            assert!(bus.write(port, &[v]));
        }
    }
    (lines, pic, bus, msi)
}

fn ack(pic: &Mutex<Pic>) -> Option<u8> {
    pic.lock().unwrap().acknowledge()
}

fn eoi(bus: &PioBus, irq: u8) {
    if irq >= 8 {
        bus.write(0xA0, &[0x60 | (irq - 8)]);
        bus.write(0x20, &[0x62]);
    } else {
        bus.write(0x20, &[0x60 | irq]);
    }
}

#[test]
fn gsis_map_to_isa_and_link_irqs() {
    assert_eq!(pic_irq_of_gsi(2), Some(0), "the PIT's override");
    assert_eq!(pic_irq_of_gsi(0), None);
    assert_eq!([1, 4, 8, 9, 15].map(pic_irq_of_gsi), [1, 4, 8, 9, 15].map(Some));
    assert_eq!([16, 17, 18, 19].map(pic_irq_of_gsi), [10, 11, 10, 11].map(Some));
    assert_eq!(pic_irq_of_gsi(24), None);
}

#[test]
fn pit_pulse_on_gsi_2_is_irq_0() {
    let (lines, pic, bus, _) = machine();
    lines.line(2).trigger().unwrap();
    assert_eq!(ack(&pic), Some(0x30));
    eoi(&bus, 0);
    assert_eq!(ack(&pic), None, "an edge fires once");
}

#[test]
fn com1_and_rtc_reach_their_irqs() {
    let (lines, pic, bus, _) = machine();
    lines.line(4).set_level(true);
    assert_eq!(ack(&pic), Some(0x34));
    eoi(&bus, 4);
    lines.line(8).trigger().unwrap();
    assert_eq!(ack(&pic), Some(0x38));
}

#[test]
fn pci_intx_is_a_level_link_irq_shared_by_its_gsis() {
    let (lines, pic, bus, msi) = machine();
    assert!(pic.lock().unwrap().is_level(10) && pic.lock().unwrap().is_level(11), "ELCR as firmware leaves it");
    let (a, b) = (lines.line(16), lines.line(18));
    a.set_level(true);
    b.set_level(true);
    assert_eq!(ack(&pic), Some(0x3A));
    a.set_level(false);
    eoi(&bus, 10);
    assert_eq!(ack(&pic), Some(0x3A), "GSI 18 still holds IRQ 10");
    b.set_level(false);
    eoi(&bus, 10);
    assert_eq!(ack(&pic), None);
    lines.line(17).set_level(true);
    assert_eq!(ack(&pic), Some(0x3B));
    assert_eq!(msi.0.load(Ordering::SeqCst), 0, "the I/O APIC stays masked, as Linux leaves it with noapic");
}

#[test]
fn xen_callback_on_the_platform_intx_reaches_irq_10() {
    let (lines, pic, bus, _) = machine();
    // What VmmUpcall::set_line does for PCI 00:02 INTA# (GSI 16).
    let gsi = xenkvm_boot::acpi::pci_intx_gsi(2, 0) as usize;
    lines.levels.set(gsi, CALLBACK_SOURCE, true);
    assert_eq!(pic.lock().unwrap().pending_vector(), Some(0x3A));
    assert_eq!(ack(&pic), Some(0x3A));
    // Linux's handler clears the upcall flag; the VMM lowers the line, then the EOI.
    lines.levels.set(gsi, CALLBACK_SOURCE, false);
    eoi(&bus, 10);
    assert_eq!(ack(&pic), None);
    // Linux's platform-pci names an IRQ below 16 as a GSI callback instead.
    lines.levels.set(10, CALLBACK_SOURCE, true);
    assert_eq!(ack(&pic), Some(0x3A));
}

#[test]
fn masked_irq_waits_for_the_unmask() {
    let (lines, pic, bus, _) = machine();
    bus.write(0x21, &[0xFF]);
    lines.line(2).trigger().unwrap();
    assert_eq!(ack(&pic), None);
    bus.write(0x21, &[0xFE]);
    assert_eq!(ack(&pic), Some(0x30));
}
