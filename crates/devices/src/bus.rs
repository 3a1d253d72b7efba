//! An address bus for port I/O or MMIO: non-overlapping ranges, each owned by
//! one device. The same type serves both ([`PioBus`], [`MmioBus`]).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// A device on a bus. `offset` is relative to the start of the device's range.
pub trait BusDevice: Send {
    fn read(&mut self, offset: u64, data: &mut [u8]);
    fn write(&mut self, offset: u64, data: &[u8]);
}

/// Former name, for port-I/O devices.
pub use BusDevice as PioDevice;

/// Adding a device whose range is empty or overlaps another.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("Range {base:#x}+{len:#x} overlaps a device or is empty")]
pub struct InsertError {
    pub base: u64,
    pub len: u64,
}

type Shared = Arc<Mutex<dyn BusDevice>>;

/// Routes accesses to devices.
#[derive(Clone)]
pub struct Bus {
    /// base → (len, device)
    devices: BTreeMap<u64, (u64, Shared)>,
    /// Exclusive upper end of the address space (0x10000 for ports).
    limit: u128,
}

impl Default for Bus {
    fn default() -> Self {
        Self::new()
    }
}

/// The port-I/O bus.
pub type PioBus = Bus;
/// The MMIO bus.
pub type MmioBus = Bus;

impl Bus {
    /// A port-I/O bus (ports 0..0xFFFF).
    pub fn new() -> Self {
        Self { devices: BTreeMap::new(), limit: 0x1_0000 }
    }

    /// An MMIO bus (the whole 64-bit space).
    pub fn new_mmio() -> Self {
        Self { devices: BTreeMap::new(), limit: 1 << 64 }
    }

    /// Attaches `dev` at `base..base+len`.
    pub fn insert(&mut self, base: u64, len: u64, dev: Shared) -> Result<(), InsertError> {
        let end = u128::from(base) + u128::from(len);
        let overlaps = self
            .devices
            .iter()
            .any(|(b, (l, _))| u128::from(*b) < end && u128::from(base) < u128::from(*b) + u128::from(*l));
        if len == 0 || end > self.limit || overlaps {
            return Err(InsertError { base, len });
        }
        self.devices.insert(base, (len, dev));
        Ok(())
    }

    fn find(&self, addr: u64) -> Option<(u64, &Shared)> {
        let (base, (len, dev)) = self.devices.range(..=addr).next_back()?;
        (u128::from(addr) < u128::from(*base) + u128::from(*len)).then_some((addr - base, dev))
    }

    /// A read: unclaimed addresses read as all ones, like an empty ISA bus.
    pub fn read(&self, port: u64, data: &mut [u8]) {
        match self.find(port) {
            Some((offset, dev)) => match dev.lock() {
                Ok(mut d) => d.read(offset, data),
                Err(_) => data.fill(0xFF),
            },
            None => data.fill(0xFF),
        }
    }

    /// A write: writes to unclaimed addresses are dropped. Returns whether a device took it.
    pub fn write(&self, port: u64, data: &[u8]) -> bool {
        match self.find(port) {
            Some((offset, dev)) => {
                if let Ok(mut d) = dev.lock() {
                    d.write(offset, data);
                }
                true
            }
            None => false,
        }
    }
}

/// A port range that ignores writes and reads as zero (POST code port 0x80,
/// also used as a minimal exit for benchmarks).
pub struct Sink;

impl BusDevice for Sink {
    fn read(&mut self, _offset: u64, data: &mut [u8]) {
        data.fill(0);
    }
    fn write(&mut self, _offset: u64, _data: &[u8]) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Recorder(Vec<(u64, u8)>);
    impl BusDevice for Recorder {
        fn read(&mut self, offset: u64, data: &mut [u8]) {
            data.fill(offset as u8);
        }
        fn write(&mut self, offset: u64, data: &[u8]) {
            self.0.push((offset, data[0]));
        }
    }

    #[test]
    fn routes_by_range() {
        let mut bus = PioBus::new();
        let rec = Arc::new(Mutex::new(Recorder(Vec::new())));
        bus.insert(0x3f8, 8, rec.clone()).unwrap();
        assert!(bus.write(0x3f9, &[7]));
        assert!(!bus.write(0x400, &[7]));
        let mut b = [0u8; 1];
        bus.read(0x3ff, &mut b);
        assert_eq!(b, [7]);
        bus.read(0x3f7, &mut b);
        assert_eq!(b, [0xFF]);
        assert_eq!(rec.lock().unwrap().0, vec![(1, 7)]);
    }

    #[test]
    fn rejects_overlap_and_empty() {
        let mut bus = PioBus::new();
        bus.insert(0x10, 4, Arc::new(Mutex::new(Sink))).unwrap();
        assert!(bus.insert(0x12, 4, Arc::new(Mutex::new(Sink))).is_err());
        assert!(bus.insert(0x0E, 4, Arc::new(Mutex::new(Sink))).is_err());
        assert!(bus.insert(0x20, 0, Arc::new(Mutex::new(Sink))).is_err());
        assert!(bus.insert(0xFFFF, 2, Arc::new(Mutex::new(Sink))).is_err());
        bus.insert(0x14, 4, Arc::new(Mutex::new(Sink))).unwrap();
        let mut mmio = Bus::new_mmio();
        mmio.insert(0xFEC0_0000, 0x1000, Arc::new(Mutex::new(Sink))).unwrap();
        assert!(mmio.insert(u64::MAX, 2, Arc::new(Mutex::new(Sink))).is_err());
    }
}
