//! virtio-net (virtio 1.x, section 5.1): one receive and one transmit
//! queue, the MAC and link status in the device configuration, and
//! checksum and TCP segmentation offloads both ways. Every frame carries the
//! 12-byte `virtio_net_hdr` (with `num_buffers`), which is also the vnet
//! header of a tap set to 12 bytes, so frames pass through unchanged.

mod worker;

use std::io;
use std::time::Duration;

pub use worker::{NetStats, NetWorker, Pass};

use crate::pci::VirtioDevice;
use crate::Kick;

/// The virtio device type of a network card.
pub const DEVICE_TYPE: u16 = 1;
/// Bytes of `struct virtio_net_hdr_mrg_rxbuf`: the header of every frame.
pub const VNET_HDR_LEN: usize = 12;
/// Largest frame with its header: a 64 KiB GSO packet and its Ethernet header.
pub const MAX_FRAME: usize = VNET_HDR_LEN + 65_550;
/// Entries of each queue.
pub const QUEUE_SIZE: u16 = 256;
/// Queue indexes.
pub const RX_QUEUE: usize = 0;
pub const TX_QUEUE: usize = 1;

/// Feature bits of virtio-net.
pub mod features {
    /// The device takes partial checksums (tx).
    pub const CSUM: u64 = 1 << 0;
    /// The driver takes partial checksums (rx).
    pub const GUEST_CSUM: u64 = 1 << 1;
    pub const MAC: u64 = 1 << 5;
    pub const GUEST_TSO4: u64 = 1 << 7;
    pub const GUEST_TSO6: u64 = 1 << 8;
    pub const GUEST_ECN: u64 = 1 << 9;
    pub const HOST_TSO4: u64 = 1 << 11;
    pub const HOST_TSO6: u64 = 1 << 12;
    pub const HOST_ECN: u64 = 1 << 13;
    pub const STATUS: u64 = 1 << 16;
}

/// `virtio_net_hdr` flags and GSO types.
pub mod hdr {
    pub const F_NEEDS_CSUM: u8 = 1;
    pub const F_DATA_VALID: u8 = 2;
    pub const GSO_NONE: u8 = 0;
    pub const GSO_TCPV4: u8 = 1;
    pub const GSO_TCPV6: u8 = 4;
    pub const GSO_ECN: u8 = 0x80;
}

/// Link status bit of the configuration's `status`.
const LINK_UP: u16 = 1;

/// What the guest takes on receive, from the negotiated features: the
/// backend asks its tap for no more (`TUNSETOFFLOAD`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RxOffloads {
    pub csum: bool,
    pub tso4: bool,
    pub tso6: bool,
    pub ecn: bool,
}

impl RxOffloads {
    pub fn from_features(f: u64) -> Self {
        let has = |bit: u64| f & bit != 0;
        let csum = has(features::GUEST_CSUM);
        Self {
            csum,
            tso4: csum && has(features::GUEST_TSO4),
            tso6: csum && has(features::GUEST_TSO6),
            ecn: csum && has(features::GUEST_ECN) && (has(features::GUEST_TSO4) || has(features::GUEST_TSO6)),
        }
    }
}

/// Where frames go and come from: raw frames that start with the 12-byte
/// vnet header.
pub trait NetBackend: Send {
    /// Sends one frame, given in pieces (the header first).
    fn write_frame(&mut self, bufs: &[&[u8]]) -> io::Result<()>;
    /// Reads one frame into `buf` (at least [`MAX_FRAME`] bytes): its
    /// length with the header, `None` when none is waiting.
    fn read_frame(&mut self, buf: &mut [u8]) -> io::Result<Option<usize>>;
    /// Sleeps until a frame may be read, `kick` fires, or `limit` passes;
    /// whether a frame may be read.
    fn wait_readable(&self, kick: &Kick, limit: Duration) -> bool;
    /// Limits what the backend hands over to what the guest takes.
    fn set_offloads(&mut self, rx: RxOffloads) -> io::Result<()> {
        let _ = rx;
        Ok(())
    }
}

/// The device side the transport sees: configuration and features.
pub struct NetDevice {
    mac: [u8; 6],
}

impl NetDevice {
    pub fn new(mac: [u8; 6]) -> Self {
        Self { mac }
    }

    /// `struct virtio_net_config`: mac, status, max_virtqueue_pairs.
    fn config_bytes(&self) -> [u8; 10] {
        let mut c = [0u8; 10];
        for (dst, src) in c.iter_mut().zip(self.mac.iter().chain(LINK_UP.to_le_bytes().iter()).chain(1u16.to_le_bytes().iter())) {
            *dst = *src;
        }
        c
    }
}

impl VirtioDevice for NetDevice {
    fn device_type(&self) -> u16 {
        DEVICE_TYPE
    }

    fn pci_class(&self) -> u32 {
        0x02_00_00
    }

    fn features(&self) -> u64 {
        use features::*;
        MAC | STATUS
            | CSUM
            | HOST_TSO4
            | HOST_TSO6
            | HOST_ECN
            | GUEST_CSUM
            | GUEST_TSO4
            | GUEST_TSO6
            | GUEST_ECN
            | crate::VIRTIO_RING_F_INDIRECT_DESC
    }

    fn queue_max_sizes(&self) -> Vec<u16> {
        vec![QUEUE_SIZE, QUEUE_SIZE]
    }

    /// Room for every `virtio_net_config` field a driver may read (the
    /// ones past `status` and `max_virtqueue_pairs` read as zero).
    fn config_len(&self) -> u64 {
        0x40
    }

    fn read_config(&self, offset: u64, data: &mut [u8]) {
        let c = self.config_bytes();
        for (i, d) in data.iter_mut().enumerate() {
            let at = usize::try_from(offset.saturating_add(i as u64)).unwrap_or(usize::MAX);
            *d = c.get(at).copied().unwrap_or(0);
        }
    }
}
