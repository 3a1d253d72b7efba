//! Interrupt wiring: the I/O APIC's messages reach the in-kernel local APICs as
//! MSIs, and devices raise I/O APIC pins.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use vm_superio::Trigger;
use xenkvm_devices::acpi_pm::IrqLevel;
use xenkvm_devices::ioapic::{Ioapic, MsiSink, RouteSink, NUM_PINS};
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

/// KVM learns the I/O APIC's entries as routes, so that it exits on the EOI
/// of a level-triggered vector and the I/O APIC can clear remote IRR.
impl RouteSink for KvmMsi {
    fn routes_changed(&self, routes: &[(u32, u64, u32)]) {
        if let Err(e) = self.0.set_ioapic_routes(routes) {
            tracing::warn!("{e}: level-triggered I/O APIC lines may fire only once");
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

/// The wired-OR of every source on each GSI: a line is high while any of
/// its sources holds it high, so one device lowering a shared line (or the
/// Xen callback lowering its own) never hides another's (QEMU bug #2731).
/// Each source owns one bit of its pin's word.
#[derive(Default)]
pub struct SharedLevels {
    pins: [AtomicU32; NUM_PINS],
    next_source: AtomicU32,
    mirror: std::sync::OnceLock<LevelMirror>,
}

/// Also told of every change of a GSI's sources (the 8259 mirrors the
/// lines, `pic.rs`); called with the driver's lock held.
pub type LevelMirror = Box<dyn Fn(usize, &SharedLevels) + Send + Sync>;

/// The bit of the Xen callback line (devices take bits from 0 up).
pub const CALLBACK_SOURCE: u32 = 1 << 31;
/// Sources beyond this many per VM share the last device bit.
const DEVICE_SOURCES: u32 = 31;

impl SharedLevels {
    /// A source bit for a new device line.
    fn new_source(&self) -> u32 {
        let n = self.next_source.fetch_add(1, Ordering::Relaxed);
        1 << n.min(DEVICE_SOURCES - 1)
    }

    /// Sets `source`'s level on `gsi`; the line's resulting level. Callers
    /// hold the lock of whatever they drive, so results apply in order.
    pub fn set(&self, gsi: usize, source: u32, level: bool) -> bool {
        let Some(pin) = self.pins.get(gsi) else { return level };
        let now = if level { pin.fetch_or(source, Ordering::SeqCst) | source } else { pin.fetch_and(!source, Ordering::SeqCst) & !source };
        if let Some(mirror) = self.mirror.get() {
            mirror(gsi, self);
        }
        now != 0
    }

    /// Whether any source holds `gsi` high.
    pub fn is_high(&self, gsi: usize) -> bool {
        self.pins.get(gsi).is_some_and(|p| p.load(Ordering::SeqCst) != 0)
    }

    /// Installs the mirror (the first one stays).
    pub fn set_mirror(&self, mirror: LevelMirror) {
        let _ = self.mirror.set(mirror);
    }
}

/// A GSI as one device drives it: when the guest routed the GSI to a PIRQ
/// (XENFEAT_hvm_pirqs) the domain takes the line and the I/O APIC never sees
/// it; otherwise it is the I/O APIC's pin. The domain lock is taken before,
/// never while, the I/O APIC's (the I/O APIC's messages go straight to KVM).
#[derive(Clone)]
pub struct GsiLine {
    pub ioapic: Arc<Mutex<Ioapic>>,
    pub domain: Option<Arc<Mutex<Domain>>>,
    pub gsi: usize,
    levels: Arc<SharedLevels>,
    source: u32,
}

impl GsiLine {
    fn drive(&self, level: bool) {
        let gsi = u32::try_from(self.gsi).unwrap_or(u32::MAX);
        if let Some(Ok(mut d)) = self.domain.as_ref().map(|d| d.lock()) {
            if d.pirqs().of_gsi(gsi).is_some() {
                let high = self.levels.set(self.gsi, self.source, level);
                d.set_gsi(gsi, high);
                return;
            }
            // In PIC mode (`noapic`) Linux maps a PCI line by its link's PIC
            // IRQ (10 or 11), which every PCI GSI on that link shares.
            let pic = (gsi >= 16).then(|| crate::pic::pic_irq_of_gsi(self.gsi)).flatten().map(u32::from);
            if let Some(irq) = pic.filter(|irq| d.pirqs().of_gsi(*irq).is_some()) {
                self.levels.set(self.gsi, self.source, level);
                let high = (16..NUM_PINS)
                    .filter(|g| crate::pic::pic_irq_of_gsi(*g).map(u32::from) == Some(irq))
                    .any(|g| self.levels.is_high(g));
                d.set_gsi(irq, high);
                return;
            }
        }
        if let Ok(mut io) = self.ioapic.lock() {
            let high = self.levels.set(self.gsi, self.source, level);
            io.set_irq(self.gsi, high);
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

/// What hands out [`GsiLine`]s: the I/O APIC, the shared levels and, once
/// it exists, the domain.
#[derive(Clone)]
pub struct IrqLines {
    pub ioapic: Arc<Mutex<Ioapic>>,
    pub domain: Option<Arc<Mutex<Domain>>>,
    pub levels: Arc<SharedLevels>,
}

impl IrqLines {
    /// Lines of the I/O APIC alone (no PIRQ routing), for tests.
    #[cfg(test)]
    pub fn ioapic_only(ioapic: Arc<Mutex<Ioapic>>) -> Self {
        Self { ioapic, domain: None, levels: Arc::default() }
    }

    /// A new source on `gsi`.
    pub fn line(&self, gsi: usize) -> GsiLine {
        let source = self.levels.new_source();
        GsiLine { ioapic: self.ioapic.clone(), domain: self.domain.clone(), gsi, levels: self.levels.clone(), source }
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

    /// The event channel masks a PIRQ; Linux leaves the MSI-X entry masked.
    fn bypasses_mask(&self, address: u64, data: u32) -> bool {
        xenkvm_xen_core::physdev::msi_pirq(address, data).is_some()
    }
}

#[cfg(test)]
mod tests;
