//! How the device interrupts the driver: an MSI-X vector when the driver
//! enabled MSI-X, else the INTx line with the ISR status bits (reading the
//! ISR clears them and lowers the line).

use std::sync::{Arc, Mutex};

use xenkvm_devices::acpi_pm::IrqLevel;
use xenkvm_devices::ioapic::MsiSink;
use xenkvm_devices::pci::msix::Msix;

use crate::{ISR_CONFIG, ISR_QUEUE, NO_VECTOR};

/// The INTx line and the ISR bits that hold it up.
struct Intx {
    isr: u8,
    line: Box<dyn IrqLevel>,
}

/// The device's interrupt state, shared by the transport (vCPU threads) and
/// the worker thread.
pub struct Interrupts {
    msix: Mutex<Msix>,
    intx: Mutex<Intx>,
}

impl Interrupts {
    pub fn new(vectors: u16, msi: Arc<dyn MsiSink>, line: Box<dyn IrqLevel>) -> Self {
        Self { msix: Mutex::new(Msix::new(vectors, msi)), intx: Mutex::new(Intx { isr: 0, line }) }
    }

    /// Runs `f` on the MSI-X state (table and PBA accesses, control changes).
    pub fn with_msix<T>(&self, f: impl FnOnce(&mut Msix) -> T) -> Option<T> {
        self.msix.lock().ok().map(|mut m| f(&mut m))
    }

    /// Number of MSI-X vectors.
    pub fn vectors(&self) -> u16 {
        self.with_msix(|m| m.vectors()).unwrap_or(0)
    }

    /// Signals a used buffer on a queue whose vector is `vector`.
    pub fn queue(&self, vector: u16) {
        self.signal(vector, ISR_QUEUE);
    }

    /// Signals a configuration change (`vector`: the config vector).
    pub fn config(&self, vector: u16) {
        self.signal(vector, ISR_CONFIG);
    }

    fn signal(&self, vector: u16, isr_bit: u8) {
        let msix_on = self.with_msix(|m| m.enabled()).unwrap_or(false);
        if msix_on {
            // With MSI-X on, a source without a vector raises nothing.
            if vector != NO_VECTOR {
                let _ = self.with_msix(|m| m.notify(vector));
            }
            return;
        }
        if let Ok(mut intx) = self.intx.lock() {
            intx.isr |= isr_bit;
            intx.line.set_level(true);
        }
    }

    /// The driver's ISR read: the bits, now cleared, and the line lowered.
    pub fn read_isr(&self) -> u8 {
        let Ok(mut intx) = self.intx.lock() else { return 0 };
        let isr = std::mem::take(&mut intx.isr);
        if isr != 0 {
            intx.line.set_level(false);
        }
        isr
    }

    /// The ISR bits without clearing them (tests, diagnostics).
    pub fn isr(&self) -> u8 {
        self.intx.lock().map(|i| i.isr).unwrap_or(0)
    }

    /// Device reset: no interrupt stays pending.
    pub fn reset(&self) {
        let _ = self.read_isr();
    }
}
