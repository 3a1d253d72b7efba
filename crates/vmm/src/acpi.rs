//! ACPI glue: the tables in guest memory, the PM device on the port bus, and
//! the guest's power-off and reset requests ending the run.

use std::sync::{Arc, Mutex};

use vm_memory::GuestMemoryMmap;
use xenkvm_boot::acpi::{AcpiConfig, PmHardware};
use xenkvm_boot::mptable::PciIrq;
use xenkvm_devices::acpi_pm::{self, AcpiPm, PowerControl};
use xenkvm_devices::PioBus;
use xenkvm_xen_core::ShutdownReason;

use crate::irq::IrqLines;
use crate::vcpu::{GuestEnd, RunControl};
use crate::VmmError;

/// The PM device's registers, as the FADT and DSDT describe them.
const PM_HARDWARE: PmHardware = PmHardware {
    sci_irq: acpi_pm::SCI_IRQ,
    pm1a_evt: acpi_pm::PM1A_EVT,
    pm1a_cnt: acpi_pm::PM1A_CNT,
    pm_tmr: acpi_pm::PM_TMR,
    reset_port: acpi_pm::RESET_PORT,
    reset_value: acpi_pm::RESET_VALUE,
    s5_slp_typ: acpi_pm::SLP_TYP_S5,
};

/// ACPI power-off and reset end the run the way SCHEDOP_shutdown does, so
/// `run` restarts the guest on reset unless `-no-reboot`.
impl PowerControl for RunControl {
    fn power_off(&self) {
        self.finish(GuestEnd::Shutdown(ShutdownReason::Poweroff));
    }

    fn reset(&self) {
        self.finish(GuestEnd::Shutdown(ShutdownReason::Reboot));
    }
}

/// Writes the ACPI tables for `cpus` vCPUs and the `pci` interrupt wiring.
pub fn write_tables(ram: &GuestMemoryMmap<()>, cpus: u32, pci: &[PciIrq]) -> Result<(), VmmError> {
    let cfg = AcpiConfig { cpus, pci, pm: PM_HARDWARE };
    xenkvm_boot::acpi::write_acpi_tables(ram, &cfg).map_err(VmmError::WriteAcpiTables)?;
    Ok(())
}

/// Puts the PM1a blocks and the PM timer on `bus`, with the SCI on its I/O APIC pin.
pub fn attach_pm(bus: &mut PioBus, lines: &IrqLines, power: Arc<dyn PowerControl>) -> Result<(), VmmError> {
    let sci = lines.line(usize::from(acpi_pm::SCI_IRQ));
    let pm = AcpiPm::new(Box::new(sci), power, acpi_pm::host_nanos());
    bus.insert(acpi_pm::PM_BASE.into(), acpi_pm::PM_PORTS.into(), Arc::new(Mutex::new(pm)))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use xenkvm_devices::acpi_pm::ResetControl;
    use xenkvm_devices::ioapic::{Ioapic, MsiSink};
    use xenkvm_devices::pci::{self, PciRoot};

    use super::*;

    struct NoMsi;
    impl MsiSink for NoMsi {
        fn send_msi(&self, _address: u64, _data: u32) {}
    }

    /// The port bus as `devices` wires the ACPI parts, and the run it reports to.
    fn wired() -> (PioBus, Arc<RunControl>) {
        let control = Arc::new(RunControl::default());
        let ioapic = Arc::new(Mutex::new(Ioapic::new(Arc::new(NoMsi))));
        let mut bus = PioBus::new();
        let pci = ResetControl::new(PciRoot::new(), control.clone());
        bus.insert(pci::CONFIG_ADDRESS.into(), pci::CONFIG_PORTS.into(), Arc::new(Mutex::new(pci))).unwrap();
        attach_pm(&mut bus, &crate::irq::IrqLines::ioapic_only(ioapic), control.clone()).unwrap();
        (bus, control)
    }

    #[test]
    fn s5_write_ends_the_run_as_poweroff() {
        let (bus, control) = wired();
        let slp = (u16::from(acpi_pm::SLP_TYP_S5) << 10) | (1 << 13);
        assert!(bus.write(acpi_pm::PM1A_CNT.into(), &slp.to_le_bytes()));
        assert_eq!(control.wait(Some(Duration::ZERO)), GuestEnd::Shutdown(ShutdownReason::Poweroff));
    }

    #[test]
    fn reset_register_ends_the_run_as_reboot() {
        let (bus, control) = wired();
        assert!(bus.write(acpi_pm::RESET_PORT.into(), &[acpi_pm::RESET_VALUE]));
        assert_eq!(control.wait(Some(Duration::ZERO)), GuestEnd::Shutdown(ShutdownReason::Reboot));
    }

    #[test]
    fn pm_timer_runs_on_the_bus() {
        let (bus, control) = wired();
        let read = || {
            let mut b = [0u8; 4];
            bus.read(acpi_pm::PM_TMR.into(), &mut b);
            u32::from_le_bytes(b)
        };
        let first = read();
        std::thread::sleep(Duration::from_millis(2));
        assert!(read().wrapping_sub(first) >= 7000, "about 3580 ticks a millisecond");
        assert!(!control.stopping());
    }
}
