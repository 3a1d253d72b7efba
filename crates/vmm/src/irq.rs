//! Interrupt wiring: the I/O APIC's messages reach the in-kernel local APICs as
//! MSIs, and devices raise I/O APIC pins.

use std::sync::{Arc, Mutex};

use vm_superio::Trigger;
use xenkvm_devices::acpi_pm::IrqLevel;
use xenkvm_devices::ioapic::{Ioapic, MsiSink};
use xenkvm_kvm::KvmVm;
use xenkvm_xen_core::Domain;

/// Delivers MSIs through KVM.
pub struct KvmMsi(pub Arc<KvmVm>);

impl MsiSink for KvmMsi {
    fn send_msi(&self, address: u64, data: u32) {
        if let Err(e) = self.0.signal_msi(address, data) {
            tracing::warn!("MSI {address:#x}/{data:#x} not delivered: {e}");
        }
    }
}

#[allow(dead_code)] // until the PCI devices' INTx lines take a GsiLine
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

/// A GSI as devices drive it: when the guest routed the GSI to a PIRQ
/// (XENFEAT_hvm_pirqs) the domain takes the line and the I/O APIC never sees
/// it; otherwise it is the I/O APIC's pin. The domain lock is taken before,
/// never while, the I/O APIC's (the I/O APIC's messages go straight to KVM).
#[derive(Clone)]
pub struct GsiLine {
    pub ioapic: Arc<Mutex<Ioapic>>,
    pub domain: Option<Arc<Mutex<Domain>>>,
    pub gsi: usize,
}

impl GsiLine {
    fn drive(&self, level: bool) {
        let taken = self.domain.as_ref().is_some_and(|d| {
            let gsi = u32::try_from(self.gsi).unwrap_or(u32::MAX);
            d.lock().is_ok_and(|mut d| d.set_gsi(gsi, level))
        });
        if !taken {
            if let Ok(mut io) = self.ioapic.lock() {
                io.set_irq(self.gsi, level);
            }
        }
    }
}

impl Trigger for GsiLine {
    type E = std::io::Error;

    fn trigger(&self) -> std::io::Result<()> {
        self.drive(true);
        self.drive(false);
        Ok(())
    }
}

impl IrqLevel for GsiLine {
    fn set_level(&self, asserted: bool) {
        self.drive(asserted);
    }
}

/// What hands out [`GsiLine`]s: the I/O APIC and, once it exists, the domain.
#[derive(Clone)]
pub struct IrqLines {
    pub ioapic: Arc<Mutex<Ioapic>>,
    pub domain: Option<Arc<Mutex<Domain>>>,
}

impl IrqLines {
    pub fn line(&self, gsi: usize) -> GsiLine {
        GsiLine { ioapic: self.ioapic.clone(), domain: self.domain.clone(), gsi }
    }
}

/// MSIs of emulated PCI devices: one that names a PIRQ (vector 0, the PIRQ
/// in the address: Linux's Xen MSI format) raises that PIRQ's event channel;
/// any other goes on to the local APICs (`apic`, KVM's MSI injection).
#[allow(dead_code)] // the PCI devices' MSIs, wired with them
pub struct PirqMsi {
    pub apic: Arc<dyn MsiSink>,
    pub domain: Arc<Mutex<Domain>>,
}

impl MsiSink for PirqMsi {
    fn send_msi(&self, address: u64, data: u32) {
        let Some(pirq) = xenkvm_xen_core::physdev::msi_pirq(address, data) else {
            return self.apic.send_msi(address, data);
        };
        let delivered = self.domain.lock().is_ok_and(|mut d| d.raise_pirq(pirq));
        if !delivered {
            tracing::debug!("MSI for PIRQ {pirq} dropped: no event channel bound to it");
        }
    }
}

#[cfg(test)]
mod tests;
