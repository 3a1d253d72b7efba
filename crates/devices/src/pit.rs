//! The Intel 8254 programmable interval timer at ports 0x40-0x43, and the
//! port 0x61 register that drives its channel 2 gate and reads channel 2's OUT.
//!
//! Counters are computed from a [`Clock`] on every access, never ticked, so an
//! idle PIT costs nothing. Channel 0's OUT drives IRQ0: a VMM thread asks
//! [`Pit::next_irq_ns`] when the next rising edge is due and calls
//! [`Pit::fire_due`] then (both through [`TimedIrq::service`]).

mod channel;
#[cfg(test)]
mod tests;

use std::sync::{Arc, Mutex};

use vm_superio::Trigger;

use crate::bus::BusDevice;
use crate::clock::{Clock, TimedIrq, Waker};
use channel::Channel;

/// First port of the PIT (channel 0); 0x43 is the control word.
pub const PIT_BASE: u16 = 0x40;
/// Ports the PIT occupies.
pub const PIT_PORTS: u16 = 4;
/// "NMI status and control": speaker gate and data, channel 2 OUT.
pub const SPEAKER_PORT: u16 = 0x61;
/// Input clock, Hz.
pub const PIT_HZ: u64 = 1_193_182;

const NS_PER_SEC: u64 = 1_000_000_000;
const CONTROL: u64 = 3;
/// Port 0x61 bits: channel 2 gate, speaker data (both writable with bits 2-3),
/// the refresh toggle, channel 2 OUT.
const P61_GATE2: u8 = 1 << 0;
const P61_WRITABLE: u8 = 0x0F;
const P61_REFRESH: u8 = 1 << 4;
const P61_OUT2: u8 = 1 << 5;

/// PIT ticks elapsed at `ns`.
fn ticks(ns: u64) -> u64 {
    u64::try_from(u128::from(ns) * u128::from(PIT_HZ) / u128::from(NS_PER_SEC)).unwrap_or(u64::MAX)
}

/// The first nanosecond at which tick `t` has elapsed.
fn ns_of_tick(t: u64) -> u64 {
    let ns = (u128::from(t) * u128::from(NS_PER_SEC)).div_ceil(u128::from(PIT_HZ));
    u64::try_from(ns).unwrap_or(u64::MAX)
}

/// The PIT, reading time from `C` and raising IRQ0 through `T`.
pub struct Pit<C: Clock, T: Trigger> {
    clock: C,
    irq: T,
    waker: Option<Waker>,
    channels: [Channel; 3],
    /// Port 0x61 bits 0-3 as written.
    speaker: u8,
    refresh: bool,
    /// IRQ0 edges at or before this tick have been delivered.
    fired_until: u64,
}

impl<C: Clock, T: Trigger> Pit<C, T> {
    /// A PIT at power-on: nothing programmed, channel 2's gate low.
    pub fn new(clock: C, irq: T) -> Self {
        let channels = [Channel::new(true), Channel::new(true), Channel::new(false)];
        Self { clock, irq, waker: None, channels, speaker: 0, refresh: false, fired_until: 0 }
    }

    /// A read of port 0x40 + `offset` at host time `now_ns`.
    pub fn read_port(&mut self, offset: u64, now_ns: u64) -> u8 {
        let now = ticks(now_ns);
        match self.channel(offset) {
            Some(ch) => ch.read(now),
            // The control register is write-only.
            None => 0xFF,
        }
    }

    /// A write of `value` to port 0x40 + `offset` at host time `now_ns`.
    pub fn write_port(&mut self, offset: u64, value: u8, now_ns: u64) {
        let now = ticks(now_ns);
        if offset == CONTROL {
            self.control(value, now);
        } else if let Some(ch) = self.channel(offset) {
            ch.write(value, now);
            if offset == 0 {
                self.wake();
            }
        }
    }

    fn channel(&mut self, offset: u64) -> Option<&mut Channel> {
        usize::try_from(offset).ok().and_then(|i| self.channels.get_mut(i))
    }

    fn control(&mut self, cw: u8, now: u64) {
        let select = cw >> 6;
        if select == 3 {
            return self.read_back(cw, now);
        }
        let Some(ch) = self.channel(select.into()) else { return };
        if cw & 0x30 == 0 {
            ch.latch_count(now);
        } else {
            ch.control(cw, now);
            if select == 0 {
                self.wake();
            }
        }
    }

    /// Read-back: bits 1-3 pick channels; bit 5 clear latches counts, bit 4 clear latches status.
    fn read_back(&mut self, cw: u8, now: u64) {
        for (i, ch) in self.channels.iter_mut().enumerate() {
            if cw & (2 << i) == 0 {
                continue;
            }
            if cw & 0x20 == 0 {
                ch.latch_count(now);
            }
            if cw & 0x10 == 0 {
                ch.latch_status(now);
            }
        }
    }

    /// A read of port 0x61: the refresh bit flips on every read, as programs
    /// polling it for a change expect.
    pub fn read_speaker(&mut self, now_ns: u64) -> u8 {
        self.refresh = !self.refresh;
        let out2 = self.channels[2].out(ticks(now_ns));
        self.speaker | if self.refresh { P61_REFRESH } else { 0 } | if out2 { P61_OUT2 } else { 0 }
    }

    /// A write of port 0x61: bit 0 is channel 2's gate.
    pub fn write_speaker(&mut self, value: u8, now_ns: u64) {
        self.speaker = value & P61_WRITABLE;
        self.channels[2].set_gate(value & P61_GATE2 != 0, ticks(now_ns));
    }

    /// Host time of the next IRQ0 rising edge not yet delivered (it may be
    /// in the past if [`Pit::fire_due`] is late), or `None` while channel 0 is idle.
    pub fn next_irq_ns(&self) -> Option<u64> {
        self.channels[0].next_rising_edge(self.fired_until).map(ns_of_tick)
    }

    /// Pulses IRQ0 if a rising edge of channel 0's OUT came by `now_ns`
    /// (several missed edges make one interrupt). Returns whether it fired.
    pub fn fire_due(&mut self, now_ns: u64) -> bool {
        let now = ticks(now_ns);
        let due = self.channels[0].next_rising_edge(self.fired_until).is_some_and(|edge| edge <= now);
        self.fired_until = self.fired_until.max(now);
        if due {
            // An undeliverable interrupt is the line's problem, not the guest's.
            let _ = self.irq.trigger();
        }
        due
    }

    fn wake(&self) {
        if let Some(w) = &self.waker {
            w();
        }
    }

    fn now_ns(&self) -> u64 {
        self.clock.now_ns()
    }
}

impl<C: Clock, T: Trigger + Send> TimedIrq for Pit<C, T> {
    fn service(&mut self) -> Option<u64> {
        let now = self.now_ns();
        self.fire_due(now);
        self.next_irq_ns().map(|t| t.saturating_sub(now))
    }

    fn set_waker(&mut self, waker: Waker) {
        self.waker = Some(waker);
    }
}

/// Fills a read with `value` in its first byte.
fn fill(data: &mut [u8], value: u8) {
    data.fill(0);
    if let Some(b) = data.first_mut() {
        *b = value;
    }
}

impl<C: Clock, T: Trigger + Send> BusDevice for Pit<C, T> {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        let now = self.now_ns();
        fill(data, self.read_port(offset, now));
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        if let Some(v) = data.first() {
            let now = self.now_ns();
            self.write_port(offset, *v, now);
        }
    }
}

/// Port 0x61, sharing the PIT with the device at 0x40-0x43.
pub struct SpeakerPort<C: Clock, T: Trigger>(pub Arc<Mutex<Pit<C, T>>>);

impl<C: Clock, T: Trigger + Send> BusDevice for SpeakerPort<C, T> {
    fn read(&mut self, _offset: u64, data: &mut [u8]) {
        let value = match self.0.lock() {
            Ok(mut pit) => {
                let now = pit.now_ns();
                pit.read_speaker(now)
            }
            Err(_) => 0xFF,
        };
        fill(data, value);
    }

    fn write(&mut self, _offset: u64, data: &[u8]) {
        if let (Some(v), Ok(mut pit)) = (data.first(), self.0.lock()) {
            let now = pit.now_ns();
            pit.write_speaker(*v, now);
        }
    }
}
