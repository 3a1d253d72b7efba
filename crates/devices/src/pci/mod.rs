//! PCI: configuration spaces and the legacy configuration mechanism #1
//! (address at 0xCF8, data at 0xCFC..0xCFF) on bus 0.

mod config;
pub mod msix;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

pub use config::{Bar, CapabilityError, ConfigSpace, PciId, NUM_BARS};

use crate::bus::{BusDevice, PioDevice};

/// A PCI function the bus can reach.
pub trait PciFunction: Send {
    fn config(&self) -> &ConfigSpace;
    fn config_mut(&mut self) -> &mut ConfigSpace;

    /// A configuration read through the bus (default: the space as it is).
    fn config_read(&self, offset: u16, data: &mut [u8]) {
        self.config().read(offset, data);
    }

    /// A configuration write through the bus; a function with registers
    /// that act (e.g. MSI-X message control) overrides it to follow them.
    fn config_write(&mut self, offset: u16, data: &[u8]) {
        self.config_mut().write(offset, data);
    }

    /// A read of memory BAR `bar` at `offset` (default: all ones).
    fn bar_read(&mut self, bar: usize, offset: u64, data: &mut [u8]) {
        let _ = (bar, offset);
        data.fill(0xFF);
    }

    /// A write to memory BAR `bar` at `offset` (default: ignored).
    fn bar_write(&mut self, bar: usize, offset: u64, data: &[u8]) {
        let _ = (bar, offset, data);
    }
}

/// Memory decoding on in the command register.
const COMMAND_MEMORY: u16 = 1 << 1;

/// One memory BAR of a function as a device on the MMIO bus, at the address
/// the VMM placed it. The guest keeps firmware placements; a BAR the guest
/// moves elsewhere still answers here (logged once).
pub struct BarWindow {
    function: Arc<Mutex<dyn PciFunction>>,
    bar: usize,
    placed: Option<u64>,
    warned: bool,
}

impl BarWindow {
    /// The window of BAR `bar` of `function`, where that BAR is now.
    pub fn new(function: Arc<Mutex<dyn PciFunction>>, bar: usize) -> Self {
        let placed = function.lock().ok().and_then(|f| f.config().bar_addr64(bar));
        Self { function, bar, placed, warned: false }
    }

    /// The BAR's address and size, for the bus.
    pub fn range(&self) -> Option<(u64, u64)> {
        let size = self.function.lock().ok()?.config().bar_size(self.bar)?;
        Some((self.placed?, size))
    }

    /// Whether the function decodes memory; logs once if the guest moved
    /// the BAR (checked only while decoding is on: sizing turns it off).
    fn decodes(&mut self, f: &dyn PciFunction) -> bool {
        let on = f.config().command() & COMMAND_MEMORY != 0;
        let now = f.config().bar_addr64(self.bar);
        if on && now != self.placed && !self.warned {
            self.warned = true;
            tracing::warn!("PCI BAR {} moved by the guest from {:x?} to {:x?}; it stays where it was placed", self.bar, self.placed, now);
        }
        on
    }
}

impl BusDevice for BarWindow {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        let function = self.function.clone();
        let Ok(mut f) = function.lock() else { return data.fill(0xFF) };
        if self.decodes(&*f) {
            f.bar_read(self.bar, offset, data);
        } else {
            data.fill(0xFF);
        }
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        let function = self.function.clone();
        let Ok(mut f) = function.lock() else { return };
        if self.decodes(&*f) {
            f.bar_write(self.bar, offset, data);
        }
    }
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
                        f.config_read(reg, data);
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
                        f.config_write(reg, data);
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

    /// A function with one 64-bit BAR that remembers writes and answers reads
    /// with the offset.
    struct Echo {
        config: ConfigSpace,
        writes: Vec<(usize, u64, Vec<u8>)>,
        control_writes: usize,
    }

    impl PciFunction for Echo {
        fn config(&self) -> &ConfigSpace {
            &self.config
        }
        fn config_mut(&mut self) -> &mut ConfigSpace {
            &mut self.config
        }
        fn config_write(&mut self, offset: u16, data: &[u8]) {
            self.control_writes += 1;
            self.config.write(offset, data);
        }
        fn bar_read(&mut self, bar: usize, offset: u64, data: &mut [u8]) {
            data.fill(offset as u8 + bar as u8);
        }
        fn bar_write(&mut self, bar: usize, offset: u64, data: &[u8]) {
            self.writes.push((bar, offset, data.to_vec()));
        }
    }

    fn echo() -> Arc<Mutex<Echo>> {
        let id = PciId { vendor: 0x1af4, device: 0x1041, revision: 1, class: 0x02_00_00, subsystem_vendor: 0, subsystem: 0 };
        let mut config = ConfigSpace::new(id);
        config.set_bar(2, Bar::Mem64 { size: 0x4000, prefetchable: false }, 0xE100_0000u64);
        config.set_command(0x2);
        Arc::new(Mutex::new(Echo { config, writes: Vec::new(), control_writes: 0 }))
    }

    #[test]
    fn bar_window_forwards_while_memory_decodes() {
        let f = echo();
        let mut bus = crate::bus::Bus::new_mmio();
        let window = BarWindow::new(f.clone(), 2);
        assert_eq!(window.range(), Some((0xE100_0000, 0x4000)));
        bus.insert(0xE100_0000, 0x4000, Arc::new(Mutex::new(window))).unwrap();
        let mut b = [0u8; 4];
        bus.read(0xE100_0010, &mut b);
        assert_eq!(b, [0x12; 4]);
        assert!(bus.write(0xE100_3000, &[1, 2]));
        assert_eq!(f.lock().unwrap().writes, vec![(2, 0x3000, vec![1, 2])]);
        // Decoding off: all ones, writes dropped.
        f.lock().unwrap().config.set_command(0);
        bus.read(0xE100_0010, &mut b);
        assert_eq!(b, [0xFF; 4]);
        bus.write(0xE100_3000, &[1, 2]);
        assert_eq!(f.lock().unwrap().writes.len(), 1);
        // Moved by the guest: still served where it was placed.
        let mut g = f.lock().unwrap();
        g.config.set_command(0x2);
        g.config.write(0x18, &0xE200_0000u32.to_le_bytes());
        drop(g);
        bus.read(0xE100_0010, &mut b);
        assert_eq!(b, [0x12; 4]);
        assert_eq!(BarWindow::new(f.clone(), 0).range(), None, "no BAR 0");
    }

    #[test]
    fn config_accesses_go_through_the_function() {
        let mut root = PciRoot::new();
        let f = echo();
        root.attach(3, f.clone()).unwrap();
        root.write(0, &addr(3, 0x04));
        root.write(4, &[0x06, 0x00]);
        assert_eq!(f.lock().unwrap().control_writes, 1);
        assert_eq!(f.lock().unwrap().config.command(), 0x6);
        root.write(0, &addr(3, 0x18));
        let mut b = [0u8; 4];
        root.read(4, &mut b);
        assert_eq!(u32::from_le_bytes(b), 0xE100_0004);
        // A plain function's BAR reads all ones.
        let mut plain = host_bridge();
        plain.bar_read(0, 0, &mut b);
        assert_eq!(b, [0xFF; 4]);
        plain.bar_write(0, 0, &b);
    }
}
