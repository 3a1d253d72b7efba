//! Devices the guest reaches through port I/O, on a bus that knows nothing about
//! KVM: the VMM routes `in`/`out` exits here.
#![forbid(unsafe_code)]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

pub mod acpi_pm;
pub mod bus;
pub mod clock;
pub mod fuzzing;
pub mod ioapic;
pub mod pci;
pub mod pic;
pub mod pit;
pub mod rtc;
pub mod serial;
pub mod xen_platform;

pub use bus::{Bus, BusDevice, MmioBus, PioBus, PioDevice};
