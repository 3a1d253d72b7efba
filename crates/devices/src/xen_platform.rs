//! The Xen platform PCI device (5853:0001) that HVM guests' PV drivers probe
//! for, and its fixed I/O ports at 0x10 with the unplug protocol.
//!
//! The fixed ports: a 16-bit read of 0x10 gives the magic 0x49d2; an 8-bit read
//! of 0x12 gives the protocol version (1). The guest then writes its product
//! number (16 bits to 0x12) and build (32 bits to 0x10), and asks with a 16-bit
//! write to 0x10 for emulated devices to be unplugged. 8-bit writes to 0x12 are
//! a log channel; an 8-bit write to 0x10 sets platform flags.

use std::sync::{Arc, Mutex};

use crate::bus::PioDevice;
use crate::pci::{Bar, ConfigSpace, PciFunction, PciId};

/// First fixed port and their count.
pub const FIXED_PORT_BASE: u16 = 0x10;
pub const FIXED_PORT_COUNT: u16 = 16;
/// Size of BAR0 (I/O) and BAR1 (prefetchable MMIO, where grant frames go).
pub const IO_BAR_SIZE: u32 = 0x100;
pub const MMIO_BAR_SIZE: u32 = 16 << 20;

const MAGIC: u16 = 0x49d2;
const PROTOCOL_VERSION: u8 = 1;
/// Longest log line kept before it is flushed.
const LOG_LINE_MAX: usize = 256;

/// Unplug request bits.
pub const UNPLUG_ALL_IDE_DISKS: u16 = 1 << 0;
pub const UNPLUG_ALL_NICS: u16 = 1 << 1;
pub const UNPLUG_AUX_IDE_DISKS: u16 = 1 << 2;
pub const UNPLUG_NVME_DISKS: u16 = 1 << 3;

/// What the guest's drivers told the platform device.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PlatformState {
    pub product: Option<u16>,
    pub build: Option<u32>,
    /// Every unplug mask the guest wrote, or-ed together.
    pub unplugged: u16,
    pub flags: u8,
}

const COMMAND_IO: u16 = 1 << 0;
const COMMAND_MEM: u16 = 1 << 1;

/// The PCI function.
pub struct XenPlatform {
    config: ConfigSpace,
}

impl XenPlatform {
    /// The device with BAR0 at I/O `io_base` and BAR1 at `mmio_base`.
    pub fn new(io_base: u32, mmio_base: u32) -> Self {
        let mut config = ConfigSpace::new(PciId {
            vendor: 0x5853,
            device: 0x0001,
            revision: 1,
            class: 0xFF_80_00,
            subsystem_vendor: 0x5853,
            subsystem: 0x0001,
        });
        config.set_interrupt_pin(1);
        config.set_bar(0, Bar::Io { size: IO_BAR_SIZE }, io_base);
        config.set_bar(1, Bar::Mem32 { size: MMIO_BAR_SIZE, prefetchable: true }, mmio_base);
        // Decoding on, as PC firmware leaves a device it placed (and as QEMU's
        // guests see it): Linux then has nothing to enable.
        config.set_command(COMMAND_IO | COMMAND_MEM);
        Self { config }
    }
}

impl PciFunction for XenPlatform {
    fn config(&self) -> &ConfigSpace {
        &self.config
    }
    fn config_mut(&mut self) -> &mut ConfigSpace {
        &mut self.config
    }
}

/// The fixed ports 0x10..0x1F.
pub struct PlatformPorts {
    state: Arc<Mutex<PlatformState>>,
    log: Vec<u8>,
}

impl PlatformPorts {
    pub fn new(state: Arc<Mutex<PlatformState>>) -> Self {
        Self { state, log: Vec::new() }
    }

    /// Bytes of the guest's log line not yet flushed.
    pub fn log_len(&self) -> usize {
        self.log.len()
    }

    fn log_byte(&mut self, b: u8) {
        if b == b'\n' || self.log.len() >= LOG_LINE_MAX {
            let line: String = self.log.drain(..).map(|c| if c.is_ascii_graphic() || c == b' ' { c as char } else { '.' }).collect();
            tracing::info!("guest platform log: {line}");
        }
        if b != b'\n' {
            self.log.push(b);
        }
    }
}

impl PioDevice for PlatformPorts {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        data.fill(0xFF);
        match (offset, data.len()) {
            (0, 2) => data.copy_from_slice(&MAGIC.to_le_bytes()),
            (0, 1) => data.fill(self.state.lock().map(|s| s.flags).unwrap_or(0)),
            (2, 1) => data.fill(PROTOCOL_VERSION),
            _ => {}
        }
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        let Ok(mut s) = self.state.lock() else { return };
        match (offset, data) {
            (0, [a, b]) => {
                let mask = u16::from_le_bytes([*a, *b]);
                s.unplugged |= mask;
                tracing::info!("guest asked to unplug emulated devices (mask {mask:#x}); none are emulated yet");
            }
            (0, [a, b, c, d]) => s.build = Some(u32::from_le_bytes([*a, *b, *c, *d])),
            (0, [f]) => s.flags = *f,
            (2, [a, b]) => s.product = Some(u16::from_le_bytes([*a, *b])),
            (2, [c]) => {
                drop(s);
                self.log_byte(*c);
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linux_unplug_handshake() {
        let state = Arc::new(Mutex::new(PlatformState::default()));
        let mut p = PlatformPorts::new(state.clone());
        let mut w = [0u8; 2];
        p.read(0, &mut w);
        assert_eq!(u16::from_le_bytes(w), 0x49d2);
        let mut b = [0u8; 1];
        p.read(2, &mut b);
        assert_eq!(b, [1]);
        p.write(2, &3u16.to_le_bytes());
        p.write(0, &1u32.to_le_bytes());
        p.write(0, &(UNPLUG_ALL_IDE_DISKS | UNPLUG_ALL_NICS).to_le_bytes());
        for c in b"hello\n" {
            p.write(2, &[*c]);
        }
        let s = state.lock().unwrap().clone();
        assert_eq!(s.product, Some(3));
        assert_eq!(s.build, Some(1));
        assert_eq!(s.unplugged, 3);
        let mut other = [0u8; 4];
        p.read(4, &mut other);
        assert_eq!(other, [0xFF; 4]);
    }

    #[test]
    fn pci_identity() {
        let d = XenPlatform::new(0xC000, 0xF000_0000);
        let mut id = [0u8; 4];
        d.config().read(0, &mut id);
        assert_eq!(u32::from_le_bytes(id), 0x0001_5853);
        assert_eq!(d.config().bar_addr(1), Some(0xF000_0000));
        let mut pin = [0u8; 1];
        d.config().read(0x3D, &mut pin);
        assert_eq!(pin, [1]);
        // I/O and memory decoding are on from the start, as firmware leaves them.
        assert_eq!(d.config().command() & 0x3, 0x3);
    }

    #[test]
    fn log_channel_is_bounded() {
        let state = Arc::new(Mutex::new(PlatformState::default()));
        let mut p = PlatformPorts::new(state);
        for _ in 0..10_000 {
            p.write(2, b"x");
        }
        assert!(p.log.len() <= LOG_LINE_MAX);
    }
}
