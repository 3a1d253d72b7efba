//! The PC's pair of 8259A interrupt controllers (master at 0x20, slave at
//! 0xA0, cascaded on the master's IRQ2) with the PIIX edge/level control
//! registers (ELCR, 0x4D0-0x4D1). A guest booted with `noapic` takes its ISA
//! and PCI interrupts here; the VMM injects the vector the INTA cycle gives
//! ([`Pic::acknowledge`]) as an ExtINT on the boot vCPU.
//!
//! Every value comes from the guest: all bit positions are reduced modulo 8
//! and unknown ports read as all ones.

use std::sync::{Arc, Mutex};

use crate::bus::BusDevice;

/// Command and data ports of the master and the slave, and the ELCR pair.
pub const MASTER_BASE: u16 = 0x20;
pub const SLAVE_BASE: u16 = 0xA0;
pub const ELCR_BASE: u16 = 0x4D0;
/// Each of the three ranges is two ports wide.
pub const RANGE_LEN: u16 = 2;
/// The master input the slave's INT output drives.
const CASCADE: u8 = 2;
/// ELCR bits that can be set: IRQ 0, 1, 2, 8 and 13 are always edge-triggered.
const ELCR_WRITABLE: [u8; 2] = [0xF8, 0xDE];
/// Vector bases as firmware leaves them (the 8259A itself powers up
/// uninitialised); the guest reprograms both with ICW2.
const FIRMWARE_BASES: [u8; 2] = [0x08, 0x70];

/// Told the new level of the master's INT output whenever it changes. It is
/// called with the PIC's lock held, so it must not take that lock.
pub type OutputHook = Box<dyn Fn(bool) + Send>;

fn bit(irq: u8) -> u8 {
    1 << (irq & 7)
}

/// Where the initialisation sequence stands: which ICW the data port takes next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Init {
    Ready,
    Icw2,
    Icw3,
    Icw4,
}

/// One 8259A with its ELCR byte.
#[derive(Debug, Clone)]
struct Chip {
    irr: u8,
    isr: u8,
    imr: u8,
    /// Input levels as the devices last drove them (edge detection, level IRR).
    lines: u8,
    elcr: u8,
    elcr_writable: u8,
    /// ICW2: the vector of IRQ0 (bits 3-7).
    base: u8,
    /// The IRQ of highest priority (rotation moves it).
    top: u8,
    init: Init,
    need_icw4: bool,
    single: bool,
    auto_eoi: bool,
    rotate_on_aeoi: bool,
    read_isr: bool,
    poll: bool,
    special_mask: bool,
    /// ICW4's special fully nested mode: a nested slave request may interrupt
    /// a slave request in service (master only).
    fully_nested: bool,
}

impl Chip {
    fn new(base: u8, elcr_writable: u8) -> Self {
        Self {
            irr: 0,
            isr: 0,
            imr: 0xFF,
            lines: 0,
            elcr: 0,
            elcr_writable,
            base,
            top: 0,
            init: Init::Ready,
            need_icw4: false,
            single: false,
            auto_eoi: false,
            rotate_on_aeoi: false,
            read_isr: false,
            poll: false,
            special_mask: false,
            fully_nested: false,
        }
    }

    /// A device drives input `irq`: an edge input latches a rising edge in
    /// IRR (it stays there after the line falls), a level input's IRR bit
    /// follows the line.
    fn set_line(&mut self, irq: u8, level: bool) {
        let b = bit(irq);
        if self.elcr & b != 0 {
            self.irr = if level { self.irr | b } else { self.irr & !b };
        } else if level && self.lines & b == 0 {
            self.irr |= b;
        }
        self.lines = if level { self.lines | b } else { self.lines & !b };
    }

    /// The IRQ of highest priority among `mask`'s bits.
    fn highest(&self, mask: u8) -> Option<u8> {
        (0..8u8).map(|p| (self.top + p) & 7).find(|irq| mask & bit(*irq) != 0)
    }

    /// 0 for the highest priority, 7 for the lowest.
    fn priority(&self, irq: u8) -> u8 {
        irq.wrapping_sub(self.top) & 7
    }

    /// The IRQ this chip would signal, with `cascade` the slave's output
    /// (master only): the best unmasked request above everything in service.
    fn request(&self, cascade: bool) -> Option<u8> {
        let irr = if cascade { self.irr | bit(CASCADE) } else { self.irr };
        let req = self.highest(irr & !self.imr)?;
        let mut in_service = self.isr;
        if self.special_mask {
            in_service &= !self.imr;
        }
        if self.fully_nested {
            in_service &= !bit(CASCADE);
        }
        match self.highest(in_service) {
            Some(cur) if self.priority(cur) <= self.priority(req) => None,
            _ => Some(req),
        }
    }

    /// The INTA cycle for `irq`: in service (unless auto-EOI), and an edge
    /// request is consumed.
    fn ack(&mut self, irq: u8) {
        let b = bit(irq);
        if self.auto_eoi {
            if self.rotate_on_aeoi {
                self.top = (irq + 1) & 7;
            }
        } else {
            self.isr |= b;
        }
        if self.elcr & b == 0 {
            self.irr &= !b;
        }
    }

    /// ICW1: starts initialisation. The mask and the in-service bits clear
    /// and the edge detectors reset (an edge input needs a new rising edge);
    /// a level input still high keeps requesting.
    fn icw1(&mut self, value: u8) {
        self.irr = self.lines & self.elcr;
        self.isr = 0;
        self.imr = 0;
        self.top = 0;
        self.read_isr = false;
        self.poll = false;
        self.special_mask = false;
        self.auto_eoi = false;
        self.rotate_on_aeoi = false;
        self.fully_nested = false;
        self.need_icw4 = value & 0x01 != 0;
        self.single = value & 0x02 != 0;
        self.init = Init::Icw2;
        if value & 0x08 != 0 {
            // LTIM: the PIIX ignores it (the ELCR decides), and so do we.
            tracing::debug!("8259: ICW1 level-triggered mode ignored; the ELCR selects the trigger");
        }
    }

    fn after_icw3(&self) -> Init {
        if self.need_icw4 {
            Init::Icw4
        } else {
            Init::Ready
        }
    }

    fn write_data(&mut self, value: u8) {
        self.init = match self.init {
            Init::Ready => {
                self.imr = value;
                Init::Ready
            }
            Init::Icw2 => {
                self.base = value & 0xF8;
                if self.single {
                    self.after_icw3()
                } else {
                    Init::Icw3
                }
            }
            // The cascade is wired on IRQ2 whatever ICW3 says.
            Init::Icw3 => self.after_icw3(),
            Init::Icw4 => {
                self.auto_eoi = value & 0x02 != 0;
                self.fully_nested = value & 0x10 != 0;
                Init::Ready
            }
        };
    }

    /// OCW2: end of interrupt and rotation. `R SL EOI` in bits 7-5, the IRQ
    /// in bits 2-0.
    fn ocw2(&mut self, value: u8) {
        let irq = value & 7;
        match value >> 5 {
            0b000 => self.rotate_on_aeoi = false,
            0b100 => self.rotate_on_aeoi = true,
            0b001 => self.eoi_highest(false),
            0b101 => self.eoi_highest(true),
            0b011 => self.isr &= !bit(irq),
            0b111 => {
                self.isr &= !bit(irq);
                self.top = (irq + 1) & 7;
            }
            0b110 => self.top = (irq + 1) & 7,
            _ => {} // 0b010: no operation
        }
    }

    /// A non-specific EOI ends the highest-priority interrupt in service.
    fn eoi_highest(&mut self, rotate: bool) {
        if let Some(irq) = self.highest(self.isr) {
            self.isr &= !bit(irq);
            if rotate {
                self.top = (irq + 1) & 7;
            }
        }
    }

    /// OCW3: register read select, poll, special mask mode.
    fn ocw3(&mut self, value: u8) {
        if value & 0x04 != 0 {
            self.poll = true;
        }
        if value & 0x02 != 0 {
            self.read_isr = value & 0x01 != 0;
        }
        if value & 0x40 != 0 {
            self.special_mask = value & 0x20 != 0;
        }
    }

    fn write_command(&mut self, value: u8) {
        if value & 0x10 != 0 {
            self.icw1(value);
        } else if value & 0x08 != 0 {
            self.ocw3(value);
        } else {
            self.ocw2(value);
        }
    }

    /// A poll: the read acts as an INTA and returns `0x80 | irq`, or 0
    /// without a request.
    fn poll_read(&mut self, cascade: bool) -> u8 {
        self.poll = false;
        match self.request(cascade) {
            Some(irq) => {
                self.ack(irq);
                0x80 | irq
            }
            None => 0,
        }
    }

    fn write_elcr(&mut self, value: u8) {
        self.elcr = value & self.elcr_writable;
        // Inputs now level-triggered request while they are high.
        self.irr = (self.irr & !self.elcr) | (self.lines & self.elcr);
    }
}

/// The master/slave pair and its INT output.
pub struct Pic {
    master: Chip,
    slave: Chip,
    output: bool,
    hook: Option<OutputHook>,
}

impl Default for Pic {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Pic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pic").field("master", &self.master).field("slave", &self.slave).field("output", &self.output).finish()
    }
}

impl Pic {
    /// Both chips as firmware leaves them: vectors 0x08 and 0x70, every IRQ
    /// masked, all edge-triggered.
    pub fn new() -> Self {
        let [mb, sb] = FIRMWARE_BASES;
        let [mw, sw] = ELCR_WRITABLE;
        Self { master: Chip::new(mb, mw), slave: Chip::new(sb, sw), output: false, hook: None }
    }

    /// A pair that tells `hook` when its INT output changes.
    pub fn with_output_hook(hook: OutputHook) -> Self {
        Self { hook: Some(hook), ..Self::new() }
    }

    /// Drives ISA IRQ `irq` (0-15; IRQ2 is the cascade and others are ignored).
    pub fn set_irq(&mut self, irq: u8, level: bool) {
        match irq {
            CASCADE => {}
            0..=7 => self.master.set_line(irq, level),
            8..=15 => self.slave.set_line(irq - 8, level),
            _ => return,
        }
        self.update_output();
    }

    /// Whether INT is asserted (a vector would be delivered now).
    pub fn output(&self) -> bool {
        self.output
    }

    fn slave_output(&self) -> bool {
        !self.master.single && self.slave.request(false).is_some()
    }

    fn master_request(&self) -> Option<u8> {
        self.master.request(self.slave_output())
    }

    /// The vector an INTA cycle would return now, without acknowledging it.
    pub fn pending_vector(&self) -> Option<u8> {
        match self.master_request()? {
            CASCADE if !self.master.single => Some(self.slave.base | self.slave.request(false).unwrap_or(7)),
            irq => Some(self.master.base | irq),
        }
    }

    /// The INTA cycle: the vector of the best request, which goes in
    /// service. `None` when INT is low (nothing to inject). A cascade
    /// request the slave no longer backs gives the slave's spurious IRQ15.
    pub fn acknowledge(&mut self) -> Option<u8> {
        let irq = self.master_request()?;
        self.master.ack(irq);
        let vector = if irq == CASCADE && !self.master.single {
            match self.slave.request(false) {
                Some(s) => {
                    self.slave.ack(s);
                    self.slave.base | s
                }
                None => self.slave.base | 7,
            }
        } else {
            self.master.base | irq
        };
        self.update_output();
        Some(vector)
    }

    fn update_output(&mut self) {
        let now = self.master_request().is_some();
        if now != self.output {
            self.output = now;
            if let Some(hook) = &self.hook {
                hook(now);
            }
        }
    }

    /// Whether ISA IRQ `irq` is level-triggered (its ELCR bit).
    pub fn is_level(&self, irq: u8) -> bool {
        match irq {
            0..=7 => self.master.elcr & bit(irq) != 0,
            8..=15 => self.slave.elcr & bit(irq - 8) != 0,
            _ => false,
        }
    }

    /// Sets the ELCR as firmware does for the IRQs PCI interrupts use.
    pub fn set_level_triggered(&mut self, irq: u8) {
        match irq {
            0..=7 => self.master.write_elcr(self.master.elcr | bit(irq)),
            8..=15 => self.slave.write_elcr(self.slave.elcr | bit(irq - 8)),
            _ => {}
        }
    }

    /// An `in` from `port` (one byte).
    pub fn read_port(&mut self, port: u16) -> u8 {
        let value = match port {
            0x20 | 0xA0 => {
                let master = port == MASTER_BASE;
                let cascade = master && self.slave_output();
                let chip = if master { &mut self.master } else { &mut self.slave };
                if chip.poll {
                    chip.poll_read(cascade)
                } else if chip.read_isr {
                    chip.isr
                } else {
                    chip.irr | if cascade { bit(CASCADE) } else { 0 }
                }
            }
            0x21 => self.master.imr,
            0xA1 => self.slave.imr,
            0x4D0 => self.master.elcr,
            0x4D1 => self.slave.elcr,
            _ => 0xFF,
        };
        self.update_output();
        value
    }

    /// An `out` of `value` to `port`.
    pub fn write_port(&mut self, port: u16, value: u8) {
        match port {
            0x20 => self.master.write_command(value),
            0xA0 => self.slave.write_command(value),
            0x21 => self.master.write_data(value),
            0xA1 => self.slave.write_data(value),
            0x4D0 => self.master.write_elcr(value),
            0x4D1 => self.slave.write_elcr(value),
            _ => {}
        }
        self.update_output();
    }
}

/// One of the PIC's three port ranges on the port bus: `base` is the
/// range's first port, accesses are byte-wise.
pub struct PicPorts {
    pub pic: Arc<Mutex<Pic>>,
    pub base: u16,
}

impl PicPorts {
    /// The three ranges of `pic`, each with its base (attach each at its base,
    /// [`RANGE_LEN`] ports long).
    pub fn ranges(pic: &Arc<Mutex<Pic>>) -> [PicPorts; 3] {
        [MASTER_BASE, SLAVE_BASE, ELCR_BASE].map(|base| PicPorts { pic: pic.clone(), base })
    }

    /// The port of byte `i` of an access at `offset`; `None` outside the range.
    fn port(&self, offset: u64, i: usize) -> Option<u16> {
        let off = offset.checked_add(u64::try_from(i).ok()?)?;
        (off < u64::from(RANGE_LEN)).then(|| self.base.checked_add(u16::try_from(off).ok()?)).flatten()
    }
}

impl BusDevice for PicPorts {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        let Ok(mut pic) = self.pic.lock() else { return data.fill(0xFF) };
        for (i, b) in data.iter_mut().enumerate() {
            *b = self.port(offset, i).map_or(0xFF, |p| pic.read_port(p));
        }
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        let Ok(mut pic) = self.pic.lock() else { return };
        for (i, b) in data.iter().enumerate() {
            if let Some(p) = self.port(offset, i) {
                pic.write_port(p, *b);
            }
        }
    }
}

#[cfg(test)]
mod tests;
