//! The I/O APIC of the split irqchip: 24 pins whose redirection entries turn
//! line changes into MSIs for the in-kernel local APICs.
//!
//! Edge-triggered pins fire on a rising edge. Level-triggered pins fire while
//! asserted and not awaiting EOI (remote IRR); [`Ioapic::end_of_interrupt`]
//! clears remote IRR and re-fires a line that is still asserted.

use std::sync::Arc;

use crate::bus::BusDevice;

/// Guest-physical base of the I/O APIC registers.
pub const IOAPIC_BASE: u64 = 0xFEC0_0000;
/// Size of its MMIO window.
pub const IOAPIC_SIZE: u64 = 0x1000;
/// Number of pins.
pub const NUM_PINS: usize = 24;

const IOREGSEL: u64 = 0x00;
const IOWIN: u64 = 0x10;
const REG_ID: u32 = 0x00;
const REG_VERSION: u32 = 0x01;
const REG_ARB: u32 = 0x02;
const REG_REDIR: u32 = 0x10;
/// Version 0x11 with 24 entries (max index 23).
const VERSION: u32 = 0x0017_0011;

const MASKED: u64 = 1 << 16;
const LEVEL: u64 = 1 << 15;
const REMOTE_IRR: u64 = 1 << 14;
const DELIVERY_STATUS: u64 = 1 << 12;
/// Bits the guest may write: vector, delivery mode, destination mode,
/// polarity, trigger mode, mask, destination and its extension (bits 49-55,
/// destination bits 8-14 when the guest uses the 15-bit extended ID).
const WRITABLE: u64 = 0xFFFE_0000_0001_AFFF;

/// Where interrupt messages go (the local APICs, through the accelerator).
pub trait MsiSink: Send + Sync {
    fn send_msi(&self, address: u64, data: u32);

    /// Whether a device's message is delivered even while its MSI-X entry
    /// (or function) is masked: under Xen, a message naming a PIRQ is masked
    /// through its event channel instead, and Linux never unmasks the entry.
    fn bypasses_mask(&self, _address: u64, _data: u32) -> bool {
        false
    }
}

/// Who learns the redirection entries as MSI routes `(pin, address, data)`
/// of the unmasked pins, whenever the guest changes one (the accelerator:
/// with a split irqchip, KVM exits on the EOI of a level-triggered vector
/// only if a route names it).
pub trait RouteSink: Send + Sync {
    fn routes_changed(&self, routes: &[(u32, u64, u32)]);
}

/// The I/O APIC.
pub struct Ioapic {
    id: u32,
    select: u32,
    redir: [u64; NUM_PINS],
    /// Line levels as the devices drive them.
    asserted: u32,
    sink: Arc<dyn MsiSink>,
    routes: Option<Arc<dyn RouteSink>>,
}

impl Ioapic {
    pub fn new(sink: Arc<dyn MsiSink>) -> Self {
        Self { id: 0, select: 0, redir: [MASKED; NUM_PINS], asserted: 0, sink, routes: None }
    }

    /// Sets who learns the routes (and tells it the current ones).
    pub fn set_route_sink(&mut self, routes: Arc<dyn RouteSink>) {
        self.routes = Some(routes);
        self.publish_routes();
    }

    /// The unmasked pins' messages.
    pub fn routes(&self) -> Vec<(u32, u64, u32)> {
        (0u32..)
            .zip(self.redir.iter())
            .filter(|(_, e)| **e & MASKED == 0)
            .map(|(pin, e)| {
                let (address, data) = msi_of(*e);
                (pin, address, data)
            })
            .collect()
    }

    fn publish_routes(&self) {
        if let Some(r) = &self.routes {
            r.routes_changed(&self.routes());
        }
    }

    /// Drives pin `pin` to `level`. Out-of-range pins are ignored.
    pub fn set_irq(&mut self, pin: usize, level: bool) {
        let Some(entry) = self.redir.get(pin).copied() else { return };
        let bit = 1u32 << pin;
        let was = self.asserted & bit != 0;
        if level {
            self.asserted |= bit;
        } else {
            self.asserted &= !bit;
        }
        let fire = if entry & LEVEL != 0 { level } else { level && !was };
        if fire {
            self.service(pin);
        }
    }

    /// Whether `pin` is unmasked and level-triggered: its interrupts end with
    /// an EOI that reaches [`Ioapic::end_of_interrupt`].
    pub fn level_unmasked(&self, pin: usize) -> bool {
        self.redir.get(pin).is_some_and(|e| e & (LEVEL | MASKED) == LEVEL)
    }

    /// A rising and falling edge on an edge-triggered pin.
    pub fn pulse(&mut self, pin: usize) {
        self.set_irq(pin, true);
        self.set_irq(pin, false);
    }

    /// The local APIC acknowledged `vector`: level pins with that vector may fire again.
    pub fn end_of_interrupt(&mut self, vector: u8) {
        for pin in 0..NUM_PINS {
            let Some(e) = self.redir.get_mut(pin) else { continue };
            if *e & LEVEL != 0 && *e & 0xFF == u64::from(vector) && *e & REMOTE_IRR != 0 {
                *e &= !REMOTE_IRR;
                if self.asserted & (1 << pin) != 0 {
                    self.service(pin);
                }
            }
        }
    }

    fn service(&mut self, pin: usize) {
        let Some(e) = self.redir.get_mut(pin) else { return };
        if *e & MASKED != 0 || (*e & LEVEL != 0 && *e & REMOTE_IRR != 0) {
            return;
        }
        if *e & LEVEL != 0 {
            *e |= REMOTE_IRR;
        }
        let (address, data) = msi_of(*e);
        self.sink.send_msi(address, data);
    }

    fn read_reg(&self) -> u32 {
        match self.select {
            REG_ID => self.id << 24,
            REG_VERSION => VERSION,
            REG_ARB => self.id << 24,
            r if r >= REG_REDIR => {
                let i = ((r - REG_REDIR) / 2) as usize;
                let e = self.redir.get(i).copied().unwrap_or(0);
                if r % 2 == 0 { e as u32 } else { (e >> 32) as u32 }
            }
            _ => 0,
        }
    }

    fn write_reg(&mut self, v: u32) {
        match self.select {
            REG_ID => self.id = (v >> 24) & 0xF,
            r if r >= REG_REDIR => {
                let i = ((r - REG_REDIR) / 2) as usize;
                let high = r % 2 == 1;
                let Some(e) = self.redir.get_mut(i) else { return };
                let new = if high { (*e & 0xFFFF_FFFF) | (u64::from(v) << 32) } else { (*e & !0xFFFF_FFFF) | u64::from(v) };
                let old = *e;
                *e = (*e & !WRITABLE) | (new & WRITABLE);
                *e &= !DELIVERY_STATUS;
                if (old ^ *e) & WRITABLE != 0 {
                    self.publish_routes();
                }
                let Some(e) = self.redir.get(i) else { return };
                // Unmasking a level line that is still asserted delivers it.
                if self.asserted & (1 << i) != 0 && *e & LEVEL != 0 {
                    self.service(i);
                }
            }
            _ => {}
        }
    }
}

/// The MSI address and data a redirection entry describes.
fn msi_of(e: u64) -> (u64, u32) {
    let dest = (e >> 56) & 0xFF;
    let ext_dest = (e >> 49) & 0x7F;
    let dest_mode = (e >> 11) & 1;
    // The extended ID travels in address bits 5-11, as in a device's MSI.
    let address = 0xFEE0_0000 | (dest << 12) | (ext_dest << 5) | (dest_mode << 2);
    let data = (e & 0xFF) | (((e >> 8) & 0x7) << 8) | (((e >> 15) & 1) << 15) | (1 << 14);
    (address, data as u32)
}

impl BusDevice for Ioapic {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        let v = match offset {
            IOREGSEL => self.select,
            IOWIN => self.read_reg(),
            _ => 0,
        };
        for (d, s) in data.iter_mut().zip(v.to_le_bytes()) {
            *d = s;
        }
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        let mut b = [0u8; 4];
        for (d, s) in b.iter_mut().zip(data) {
            *d = *s;
        }
        let v = u32::from_le_bytes(b);
        match offset {
            IOREGSEL => self.select = v & 0xFF,
            IOWIN => self.write_reg(v),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[derive(Default)]
    struct Msis(Mutex<Vec<(u64, u32)>>);
    impl MsiSink for Msis {
        fn send_msi(&self, address: u64, data: u32) {
            self.0.lock().unwrap().push((address, data));
        }
    }

    fn program(io: &mut Ioapic, pin: u32, low: u32, high: u32) {
        io.write(IOREGSEL, &(REG_REDIR + 2 * pin + 1).to_le_bytes());
        io.write(IOWIN, &high.to_le_bytes());
        io.write(IOREGSEL, &(REG_REDIR + 2 * pin).to_le_bytes());
        io.write(IOWIN, &low.to_le_bytes());
    }

    #[test]
    fn version_and_masked_reset_state() {
        let msis = Arc::new(Msis::default());
        let mut io = Ioapic::new(msis.clone());
        io.write(IOREGSEL, &REG_VERSION.to_le_bytes());
        let mut v = [0u8; 4];
        io.read(IOWIN, &mut v);
        assert_eq!(u32::from_le_bytes(v), VERSION);
        io.pulse(4);
        assert!(msis.0.lock().unwrap().is_empty(), "masked at reset");
    }

    #[test]
    fn edge_pin_sends_one_msi_per_rising_edge() {
        let msis = Arc::new(Msis::default());
        let mut io = Ioapic::new(msis.clone());
        program(&mut io, 4, 0x24, 1 << 24);
        io.set_irq(4, true);
        io.set_irq(4, true);
        io.set_irq(4, false);
        io.pulse(4);
        let sent = msis.0.lock().unwrap().clone();
        assert_eq!(sent, vec![(0xFEE0_1000, 0x4024), (0xFEE0_1000, 0x4024)]);
    }

    #[test]
    fn extended_destination_bits_reach_the_message() {
        let msis = Arc::new(Msis::default());
        let mut io = Ioapic::new(msis.clone());
        // Destination 0x1234: low byte in bits 56-63, bits 8-14 in 49-55.
        program(&mut io, 5, 0x40, (0x34 << 24) | (0x12 << 17));
        io.pulse(5);
        assert_eq!(msis.0.lock().unwrap()[0], (0xFEE3_4000 | (0x12 << 5), 0x4040));
        // Bit 48 stays reserved.
        program(&mut io, 6, 0x41, 1 << 16);
        io.pulse(6);
        assert_eq!(msis.0.lock().unwrap()[1].0, 0xFEE0_0000);
    }

    #[derive(Default)]
    struct Routes(Mutex<Vec<Vec<(u32, u64, u32)>>>);
    impl RouteSink for Routes {
        fn routes_changed(&self, routes: &[(u32, u64, u32)]) {
            self.0.lock().unwrap().push(routes.to_vec());
        }
    }

    #[test]
    fn unmasked_entries_are_published_as_routes_when_they_change() {
        let mut io = Ioapic::new(Arc::new(Msis::default()));
        let routes = Arc::new(Routes::default());
        io.set_route_sink(routes.clone());
        assert_eq!(routes.0.lock().unwrap().pop(), Some(vec![]), "all masked at first");
        program(&mut io, 9, 0x31 | (1 << 15), 0);
        let last = routes.0.lock().unwrap().last().cloned().unwrap();
        assert_eq!(last, vec![(9, 0xFEE0_0000, 0xC031)], "level SCI, trigger bit in the data");
        assert!(io.level_unmasked(9) && !io.level_unmasked(8) && !io.level_unmasked(99));
        let n = routes.0.lock().unwrap().len();
        program(&mut io, 9, 0x31 | (1 << 15), 0);
        assert_eq!(routes.0.lock().unwrap().len(), n, "an unchanged entry publishes nothing");
        program(&mut io, 9, 0x31 | (1 << 16), 0);
        assert_eq!(routes.0.lock().unwrap().last().cloned().unwrap(), vec![], "masked: gone");
    }

    #[test]
    fn level_pin_waits_for_eoi() {
        let msis = Arc::new(Msis::default());
        let mut io = Ioapic::new(msis.clone());
        program(&mut io, 9, 0x31 | (1 << 15), 0);
        io.set_irq(9, true);
        io.set_irq(9, true);
        assert_eq!(msis.0.lock().unwrap().len(), 1, "remote IRR holds the second");
        io.end_of_interrupt(0x31);
        assert_eq!(msis.0.lock().unwrap().len(), 2, "still asserted: fires again");
        io.set_irq(9, false);
        io.end_of_interrupt(0x31);
        assert_eq!(msis.0.lock().unwrap().len(), 2);
        assert_eq!(msis.0.lock().unwrap()[0].1, 0xC031);
    }

    #[test]
    fn bad_pins_and_registers_are_ignored() {
        let msis = Arc::new(Msis::default());
        let mut io = Ioapic::new(msis);
        io.set_irq(99, true);
        io.write(IOREGSEL, &0xFFu32.to_le_bytes());
        io.write(IOWIN, &1u32.to_le_bytes());
        let mut v = [0u8; 4];
        io.read(IOWIN, &mut v);
        assert_eq!(v, [0; 4]);
        io.read(0x40, &mut v);
    }
}
