//! PCI: configuration spaces and the legacy configuration mechanism #1
//! (address at 0xCF8, data at 0xCFC..0xCFF) on bus 0.

mod config;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

pub use config::{Bar, ConfigSpace, PciId, NUM_BARS};

use crate::bus::PioDevice;

/// A PCI function the bus can reach.
pub trait PciFunction: Send {
    fn config(&self) -> &ConfigSpace;
    fn config_mut(&mut self) -> &mut ConfigSpace;
}

/// A function that is nothing but its configuration space (the host bridge).
pub struct PlainFunction(pub ConfigSpace);

impl PciFunction for PlainFunction {
    fn config(&self) -> &ConfigSpace {
        &self.0
    }
    fn config_mut(&mut self) -> &mut ConfigSpace {
        &mut self.0
    }
}

/// The i440FX-style host bridge identity at 00.0.
pub fn host_bridge() -> PlainFunction {
    PlainFunction(ConfigSpace::new(PciId {
        vendor: 0x8086,
        device: 0x1237,
        revision: 2,
        class: 0x06_00_00,
        subsystem_vendor: 0x1af4,
        subsystem: 0x1100,
    }))
}

/// Base of the mechanism #1 ports.
pub const CONFIG_ADDRESS: u16 = 0xCF8;
/// Ports claimed by [`PciRoot`]: address and data.
pub const CONFIG_PORTS: u16 = 8;

type Shared = Arc<Mutex<dyn PciFunction>>;

/// Bus 0 and its configuration-port interface.
#[derive(Default)]
pub struct PciRoot {
    address: u32,
    /// device number → function 0 of that device
    slots: BTreeMap<u8, Shared>,
}

/// Attaching a function to a slot that is taken or out of range.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("PCI slot {0} is taken or beyond 31")]
pub struct SlotError(pub u8);

impl PciRoot {
    pub fn new() -> Self {
        Self::default()
    }

    /// Puts `f` at device number `slot`, function 0.
    pub fn attach(&mut self, slot: u8, f: Shared) -> Result<(), SlotError> {
        if slot > 31 || self.slots.contains_key(&slot) {
            return Err(SlotError(slot));
        }
        self.slots.insert(slot, f);
        Ok(())
    }

    /// The function addressed by CONFIG_ADDRESS and the register offset, if enabled.
    fn target(&self, extra: u16) -> Option<(&Shared, u16)> {
        let a = self.address;
        let enabled = a & 0x8000_0000 != 0;
        let (bus, dev, func) = ((a >> 16) & 0xFF, ((a >> 11) & 0x1F) as u8, (a >> 8) & 0x7);
        if !enabled || bus != 0 || func != 0 {
            return None;
        }
        let f = self.slots.get(&dev)?;
        Some((f, (a & 0xFC) as u16 + extra))
    }
}

impl PioDevice for PciRoot {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        data.fill(0xFF);
        match offset {
            0 if data.len() == 4 => data.copy_from_slice(&self.address.to_le_bytes()),
            4..=7 => {
                if let Some((f, reg)) = self.target((offset - 4) as u16) {
                    if let Ok(f) = f.lock() {
                        f.config().read(reg, data);
                    }
                }
            }
            _ => {}
        }
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        match (offset, data) {
            (0, [a, b, c, d]) => self.address = u32::from_le_bytes([*a, *b, *c, *d]) & 0x80FF_FFFC,
            (4..=7, _) => {
                if let Some((f, reg)) = self.target((offset - 4) as u16) {
                    if let Ok(mut f) = f.lock() {
                        f.config_mut().write(reg, data);
                    }
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(dev: u32, reg: u32) -> [u8; 4] {
        (0x8000_0000 | (dev << 11) | reg).to_le_bytes()
    }

    #[test]
    fn mechanism_one_reaches_functions() {
        let mut root = PciRoot::new();
        root.attach(0, Arc::new(Mutex::new(host_bridge()))).unwrap();
        assert!(root.attach(0, Arc::new(Mutex::new(host_bridge()))).is_err());
        assert!(root.attach(32, Arc::new(Mutex::new(host_bridge()))).is_err());
        root.write(0, &addr(0, 0));
        let mut id = [0u8; 4];
        root.read(4, &mut id);
        assert_eq!(u32::from_le_bytes(id), 0x1237_8086);
        let mut hi = [0u8; 2];
        root.read(6, &mut hi);
        assert_eq!(u16::from_le_bytes(hi), 0x1237);
        // An empty slot and a disabled address read all ones.
        root.write(0, &addr(5, 0));
        root.read(4, &mut id);
        assert_eq!(id, [0xFF; 4]);
        root.write(0, &[0, 0, 0, 0]);
        root.read(4, &mut id);
        assert_eq!(id, [0xFF; 4]);
        let mut back = [0u8; 4];
        root.read(0, &mut back);
        assert_eq!(back, [0; 4]);
    }
}
