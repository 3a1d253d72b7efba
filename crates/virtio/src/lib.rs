//! virtio 1.x devices on PCI: the modern virtio-pci transport (capabilities
//! in configuration space, the common, notify, ISR and device regions and
//! the MSI-X table in one 64-bit memory BAR) and a virtio-net device whose
//! worker thread moves frames between the guest's virtqueues and a
//! [`NetBackend`] (a tap with 12-byte vnet headers).
//!
//! Everything the guest writes (queue sizes and addresses, vector numbers,
//! descriptors) is untrusted: bad values are ignored or stop the queue, and
//! nothing here panics on them.
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod common;
#[doc(hidden)]
pub mod fuzzing;
mod interrupt;
mod kick;
pub mod net;
pub mod pci;

pub use common::{DeviceState, QueueSlot};
pub use interrupt::Interrupts;
pub use kick::{wait_fds, Kick};
pub use net::{NetBackend, NetDevice, NetWorker, RxOffloads, VNET_HDR_LEN};
pub use pci::{Shared, VirtioDevice, VirtioPci, BAR_INDEX, BAR_SIZE};

/// The feature bit of virtio 1.x (modern devices only).
pub const VIRTIO_F_VERSION_1: u64 = 1 << 32;
/// Indirect descriptor tables.
pub const VIRTIO_RING_F_INDIRECT_DESC: u64 = 1 << 28;

/// Device status bits.
pub mod status {
    pub const ACKNOWLEDGE: u8 = 1;
    pub const DRIVER: u8 = 2;
    pub const DRIVER_OK: u8 = 4;
    pub const FEATURES_OK: u8 = 8;
    pub const DEVICE_NEEDS_RESET: u8 = 0x40;
    pub const FAILED: u8 = 0x80;
}

/// "No MSI-X vector" in the vector registers.
pub const NO_VECTOR: u16 = 0xFFFF;

/// ISR bits: a queue was used, the configuration changed.
pub const ISR_QUEUE: u8 = 1;
pub const ISR_CONFIG: u8 = 2;

/// A device that cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum VirtioError {
    #[error("a virtqueue of {0} entries is not a power of two up to 32768")]
    QueueSize(u16),
    #[error("the device has no virtqueue, or more than the transport allows")]
    QueueCount,
    #[error("the PCI configuration space has no room for the virtio capabilities")]
    Capability(#[from] xenkvm_devices::pci::CapabilityError),
    #[error("cannot create the notification eventfd")]
    EventFd(#[source] std::io::Error),
}
