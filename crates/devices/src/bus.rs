//! The port-I/O bus: non-overlapping port ranges, each owned by one device.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// A device on the port-I/O bus. `offset` is relative to the device's first port.
pub trait PioDevice: Send {
    fn read(&mut self, offset: u16, data: &mut [u8]);
    fn write(&mut self, offset: u16, data: &[u8]);
}

/// Adding a device whose range is empty or overlaps another.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("Port range {base:#x}+{len} overlaps a device or is empty")]
pub struct InsertError {
    pub base: u16,
    pub len: u16,
}

type Shared = Arc<Mutex<dyn PioDevice>>;

/// Routes port accesses to devices.
#[derive(Default, Clone)]
pub struct PioBus {
    /// base → (len, device)
    devices: BTreeMap<u16, (u16, Shared)>,
}

impl PioBus {
    pub fn new() -> Self {
        Self::default()
    }

    /// Attaches `dev` at ports `base..base+len`.
    pub fn insert(&mut self, base: u16, len: u16, dev: Shared) -> Result<(), InsertError> {
        let end = u32::from(base) + u32::from(len);
        let overlaps = self
            .devices
            .iter()
            .any(|(b, (l, _))| u32::from(*b) < end && u32::from(base) < u32::from(*b) + u32::from(*l));
        if len == 0 || end > 0x1_0000 || overlaps {
            return Err(InsertError { base, len });
        }
        self.devices.insert(base, (len, dev));
        Ok(())
    }

    fn find(&self, port: u16) -> Option<(u16, &Shared)> {
        let (base, (len, dev)) = self.devices.range(..=port).next_back()?;
        (u32::from(port) < u32::from(*base) + u32::from(*len)).then_some((port - base, dev))
    }

    /// An `in`: unclaimed ports read as all ones, like an empty ISA bus.
    pub fn read(&self, port: u16, data: &mut [u8]) {
        match self.find(port) {
            Some((offset, dev)) => match dev.lock() {
                Ok(mut d) => d.read(offset, data),
                Err(_) => data.fill(0xFF),
            },
            None => data.fill(0xFF),
        }
    }

    /// An `out`: writes to unclaimed ports are dropped. Returns whether a device took it.
    pub fn write(&self, port: u16, data: &[u8]) -> bool {
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

impl PioDevice for Sink {
    fn read(&mut self, _offset: u16, data: &mut [u8]) {
        data.fill(0);
    }
    fn write(&mut self, _offset: u16, _data: &[u8]) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Recorder(Vec<(u16, u8)>);
    impl PioDevice for Recorder {
        fn read(&mut self, offset: u16, data: &mut [u8]) {
            data.fill(offset as u8);
        }
        fn write(&mut self, offset: u16, data: &[u8]) {
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
    }
}
