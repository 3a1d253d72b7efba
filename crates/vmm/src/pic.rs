//! The 8259 pair in the machine: a guest booted with `noapic` (the "XT-PIC"
//! case) takes its ISA interrupts, its PCI INTx lines and the Xen platform
//! device's callback here, through the boot vCPU's LINT0 (ExtINT).
//!
//! Every GSI is mirrored onto its PIC IRQ as well as driven on the I/O APIC
//! pin: an OS in APIC mode masks the 8259 (and LINT0), an OS in PIC mode
//! leaves the I/O APIC masked, so driving both is harmless. ISA IRQ0 is GSI
//! 2 (the MADT's override); PCI GSIs 16-23 share the link IRQs the DSDT's
//! PIC-mode `_PRT` names (`xenkvm_boot::acpi::pci_gsi_pic_irq`).

use std::sync::{Arc, Mutex};

use xenkvm_devices::ioapic::NUM_PINS;
use xenkvm_devices::pic::{Pic, PicPorts, RANGE_LEN};
use xenkvm_devices::PioBus;
use xenkvm_kvm::kick::VcpuKicker;
use xenkvm_kvm::KvmVcpu;

use crate::irq::{LevelMirror, SharedLevels};
use crate::VmmError;

/// The vCPU whose LINT0 takes ExtINT (Linux sets it up on the BSP only).
pub const PIC_VCPU: u32 = 0;

/// The PIC IRQ that `gsi` drives, if any.
pub fn pic_irq_of_gsi(gsi: usize) -> Option<u8> {
    match gsi {
        2 => Some(0),
        1 | 3..=15 => u8::try_from(gsi).ok(),
        _ => xenkvm_boot::acpi::pci_gsi_pic_irq(u32::try_from(gsi).ok()?),
    }
}

/// The PIC, with its INT output kicking the boot vCPU out of `KVM_RUN` (it
/// injects before its next run) and the PCI link IRQs level-triggered, as
/// firmware leaves the ELCR.
pub fn create(kicker: Arc<VcpuKicker>) -> Arc<Mutex<Pic>> {
    let mut pic = Pic::with_output_hook(Box::new(move |up| {
        // The boot vCPU's own port writes are followed by its check anyway.
        if up && !kicker.is_current(PIC_VCPU) {
            kicker.kick(PIC_VCPU);
        }
    }));
    for irq in xenkvm_boot::acpi::LINK_IRQS {
        pic.set_level_triggered(irq);
    }
    Arc::new(Mutex::new(pic))
}

/// Mirrors each GSI's level onto its PIC IRQ: the OR of every GSI sharing
/// that IRQ, read under the PIC's lock so the last writer leaves it right.
pub fn mirror(pic: Arc<Mutex<Pic>>) -> LevelMirror {
    Box::new(move |gsi: usize, levels: &SharedLevels| {
        let Some(irq) = pic_irq_of_gsi(gsi) else { return };
        let Ok(mut p) = pic.lock() else { return };
        let high = (0..NUM_PINS).filter(|g| pic_irq_of_gsi(*g) == Some(irq)).any(|g| levels.is_high(g));
        p.set_irq(irq, high);
    })
}

/// Puts the master, the slave and the ELCR on the port bus.
pub fn attach(bus: &mut PioBus, pic: &Arc<Mutex<Pic>>) -> Result<(), VmmError> {
    for ports in PicPorts::ranges(pic) {
        let base = ports.base;
        bus.insert(base.into(), RANGE_LEN.into(), Arc::new(Mutex::new(ports)))?;
    }
    Ok(())
}

/// Before each `KVM_RUN` of the boot vCPU: injects the PIC's interrupt if
/// KVM can take it now (the INTA happens here), else asks KVM for an exit
/// when the guest can take one (KVM_EXIT_IRQ_WINDOW_OPEN).
pub fn offer(vcpu: &mut KvmVcpu, pic: &Mutex<Pic>) {
    let Ok(mut p) = pic.lock() else { return };
    if p.output() && vcpu.ready_for_interrupt() {
        if let Some(vector) = p.acknowledge() {
            if let Err(e) = vcpu.inject_external(vector) {
                tracing::warn!("8259 vector {vector:#x} not injected: {e}");
            }
        }
        // KVM holds one ExtINT: anything still pending waits for a window.
    }
    vcpu.set_interrupt_window_request(p.output());
}

#[cfg(test)]
mod tests;
