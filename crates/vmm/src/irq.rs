//! Interrupt wiring: the I/O APIC's messages reach the in-kernel local APICs as
//! MSIs, and devices raise I/O APIC pins.

use std::sync::{Arc, Mutex};

use vm_superio::Trigger;
use xenkvm_devices::acpi_pm::IrqLevel;
use xenkvm_devices::ioapic::{Ioapic, MsiSink};
use xenkvm_kvm::KvmVm;

/// Delivers MSIs through KVM.
pub struct KvmMsi(pub Arc<KvmVm>);

impl MsiSink for KvmMsi {
    fn send_msi(&self, address: u64, data: u32) {
        if let Err(e) = self.0.signal_msi(address, data) {
            tracing::warn!("MSI {address:#x}/{data:#x} not delivered: {e}");
        }
    }
}

/// An I/O APIC pin, as a device's interrupt line: pulsed by edge-triggered
/// devices ([`Trigger`]), driven by level-triggered ones ([`IrqLevel`]).
pub struct IoapicPin {
    pub ioapic: Arc<Mutex<Ioapic>>,
    pub pin: usize,
}

impl Trigger for IoapicPin {
    type E = std::io::Error;

    fn trigger(&self) -> std::io::Result<()> {
        if let Ok(mut io) = self.ioapic.lock() {
            io.pulse(self.pin);
        }
        Ok(())
    }
}

impl IrqLevel for IoapicPin {
    fn set_level(&self, asserted: bool) {
        if let Ok(mut io) = self.ioapic.lock() {
            io.set_irq(self.pin, asserted);
        }
    }
}
