//! The MC146818 CMOS real-time clock at ports 0x70 (index) and 0x71 (data),
//! with its 128 bytes of CMOS RAM.
//!
//! The guest's time is the host's UTC wall clock plus an offset that guest
//! writes move; nothing ticks. While the guest holds SET (or resets the
//! divider) the time is frozen so it can write a new one, as Linux's
//! `mc146818_set_time` does. Register C's flags are derived from the time that
//! passed since the last look, and IRQ8 is pulsed when an enabled flag rises,
//! either on a guest access or from a VMM thread through [`TimedIrq::service`].

mod calendar;
#[cfg(test)]
mod tests;

use vm_superio::Trigger;

use crate::bus::BusDevice;
use crate::clock::{Clock, TimedIrq, Waker};
use calendar::{from_bcd, to_bcd, DateTime, SECS_PER_DAY};

/// Index port; the data port follows it.
pub const RTC_BASE: u16 = 0x70;
/// Ports the RTC occupies.
pub const RTC_PORTS: u16 = 2;
/// ISA IRQ of the RTC.
pub const RTC_IRQ: usize = 8;

const SECONDS: u8 = 0x00;
const SECONDS_ALARM: u8 = 0x01;
const MINUTES: u8 = 0x02;
const MINUTES_ALARM: u8 = 0x03;
const HOURS: u8 = 0x04;
const HOURS_ALARM: u8 = 0x05;
const WEEKDAY: u8 = 0x06;
const DAY: u8 = 0x07;
const MONTH: u8 = 0x08;
const YEAR: u8 = 0x09;
const REG_A: u8 = 0x0A;
const REG_B: u8 = 0x0B;
const REG_C: u8 = 0x0C;
const REG_D: u8 = 0x0D;
const CENTURY: u8 = 0x32;

const A_UIP: u8 = 0x80;
/// Divider bits 6-4 = 11x hold the divider in reset (no updates).
const A_DIVIDER_RESET: u8 = 0x60;
const A_RATE: u8 = 0x0F;
/// 32.768 kHz time base, 1024 Hz periodic rate, as PC firmware leaves it.
const A_DEFAULT: u8 = 0x26;
const B_SET: u8 = 0x80;
const B_PIE: u8 = 0x40;
const B_AIE: u8 = 0x20;
const B_UIE: u8 = 0x10;
/// Binary (rather than BCD) data.
const B_DM: u8 = 0x04;
const B_24H: u8 = 0x02;
const C_IRQF: u8 = 0x80;
/// PF, AF, UF: their enables in register B sit at the same bits.
const C_FLAGS: u8 = 0x70;
const C_PF: u8 = 0x40;
const C_AF: u8 = 0x20;
const C_UF: u8 = 0x10;
/// Valid RAM and time: the battery is fine.
const D_VRT: u8 = 0x80;
/// Alarm bytes with both top bits set match any value.
const ALARM_ANY: u8 = 0xC0;

const NS_PER_SEC: i128 = 1_000_000_000;
/// UIP rises this long before each update of the time registers.
const UIP_NS: i128 = 244_000;
/// Time base of the periodic interrupt, Hz.
const TIME_BASE_HZ: i128 = 32_768;

/// Guest RAM as the CMOS memory-size bytes describe it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RamSize {
    pub below_4g: u64,
    pub above_4g: u64,
}

impl RamSize {
    /// `total` bytes of RAM, with whatever does not fit below `hole_start` above 4 GiB.
    pub fn split(total: u64, hole_start: u64) -> Self {
        let below_4g = total.min(hole_start);
        Self { below_4g, above_4g: total - below_4g }
    }
}

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;

/// Memory-size bytes as PC firmware leaves them: base memory, extended memory
/// (KiB above 1 MiB, twice), 64 KiB units above 16 MiB and above 4 GiB.
fn memory_bytes(ram: RamSize) -> [(u8, u8); 11] {
    let [base_lo, base_hi] = 640u16.to_le_bytes();
    let ext = u16::try_from(ram.below_4g.saturating_sub(MIB) / KIB).unwrap_or(u16::MAX);
    let [ext_lo, ext_hi] = ext.to_le_bytes();
    let above16 = u16::try_from(ram.below_4g.saturating_sub(16 * MIB) / (64 * KIB)).unwrap_or(u16::MAX);
    let [a16_lo, a16_hi] = above16.to_le_bytes();
    let high = (ram.above_4g / (64 * KIB)).min(0xFF_FFFF);
    let [h0, h1, h2, ..] = high.to_le_bytes();
    [
        (0x15, base_lo),
        (0x16, base_hi),
        (0x17, ext_lo),
        (0x18, ext_hi),
        (0x30, ext_lo),
        (0x31, ext_hi),
        (0x34, a16_lo),
        (0x35, a16_hi),
        (0x5B, h0),
        (0x5C, h1),
        (0x5D, h2),
    ]
}

/// The RTC, reading UTC from `C` (nanoseconds since the epoch) and raising IRQ8 through `T`.
pub struct Rtc<C: Clock, T: Trigger> {
    clock: C,
    irq: T,
    waker: Option<Waker>,
    index: u8,
    /// CMOS RAM; registers A and B and the alarms live at their indices too.
    cmos: [u8; 128],
    /// Guest time minus host time.
    offset_ns: i128,
    /// The guest's time while updates are stopped. Fields are kept as written
    /// (Feb 31 included) until updates restart, so the order of writes cannot matter.
    frozen: Option<DateTime>,
    /// Guest time up to which register C's flags are accounted for.
    synced_ns: i128,
    flags: u8,
    /// IRQF as last signalled on IRQ8.
    irq_raised: bool,
}

impl<C: Clock, T: Trigger> Rtc<C, T> {
    /// An RTC showing host time, with CMOS memory bytes for `ram`.
    pub fn new(clock: C, irq: T, ram: RamSize) -> Self {
        let mut cmos = [0u8; 128];
        for (index, value) in memory_bytes(ram) {
            if let Some(b) = cmos.get_mut(usize::from(index)) {
                *b = value;
            }
        }
        let mut rtc = Self {
            clock,
            irq,
            waker: None,
            index: 0,
            cmos,
            offset_ns: 0,
            frozen: None,
            synced_ns: 0,
            flags: 0,
            irq_raised: false,
        };
        rtc.set_raw(REG_A, A_DEFAULT);
        rtc.set_raw(REG_B, B_24H);
        rtc.synced_ns = rtc.guest_ns(rtc.clock.now_ns());
        rtc
    }

    fn raw(&self, index: u8) -> u8 {
        self.cmos.get(usize::from(index)).copied().unwrap_or(0xFF)
    }

    fn set_raw(&mut self, index: u8, value: u8) {
        if let Some(b) = self.cmos.get_mut(usize::from(index)) {
            *b = value;
        }
    }

    fn guest_ns(&self, host_ns: u64) -> i128 {
        i128::from(host_ns) + self.offset_ns
    }

    /// Updates stop while SET is held or the divider is in reset.
    fn halted(&self) -> bool {
        self.raw(REG_B) & B_SET != 0 || self.raw(REG_A) & A_DIVIDER_RESET == A_DIVIDER_RESET
    }

    /// The guest's current time.
    fn now(&self, host_ns: u64) -> DateTime {
        self.frozen.unwrap_or_else(|| DateTime::from_unix(secs_of(self.guest_ns(host_ns))))
    }

    /// Register value `v` (0-99) in the guest's data mode.
    fn encode(&self, v: i64) -> u8 {
        let v = u8::try_from(v.rem_euclid(100)).unwrap_or(0);
        if self.raw(REG_B) & B_DM != 0 {
            v
        } else {
            to_bcd(v)
        }
    }

    fn decode(&self, b: u8) -> i64 {
        i64::from(if self.raw(REG_B) & B_DM != 0 { b } else { from_bcd(b) })
    }

    /// Hour register: 0-23, or 1-12 with bit 7 for PM.
    fn encode_hour(&self, hour: i64) -> u8 {
        if self.raw(REG_B) & B_24H != 0 {
            return self.encode(hour);
        }
        let h12 = match hour % 12 {
            0 => 12,
            h => h,
        };
        self.encode(h12) | if hour >= 12 { 0x80 } else { 0 }
    }

    fn decode_hour(&self, b: u8) -> i64 {
        if self.raw(REG_B) & B_24H != 0 {
            return self.decode(b);
        }
        self.decode(b & 0x7F) % 12 + if b & 0x80 != 0 { 12 } else { 0 }
    }

    /// A time register, or `None` for other indices.
    fn read_time(&self, index: u8, host_ns: u64) -> Option<u8> {
        let t = self.now(host_ns);
        Some(match index {
            SECONDS => self.encode(t.second),
            MINUTES => self.encode(t.minute),
            HOURS => self.encode_hour(t.hour),
            WEEKDAY => self.encode(DateTime::from_unix(t.to_unix()).weekday + 1),
            DAY => self.encode(t.day),
            MONTH => self.encode(t.month),
            YEAR => self.encode(t.year.rem_euclid(100)),
            CENTURY => self.encode(t.year.div_euclid(100)),
            _ => return None,
        })
    }

    /// A write to a time register moves the guest's time; false for other indices.
    /// The weekday is derived from the date, so writes to it are dropped.
    fn write_time(&mut self, index: u8, value: u8, host_ns: u64) -> bool {
        self.sync(host_ns);
        let mut t = self.now(host_ns);
        match index {
            SECONDS => t.second = self.decode(value),
            MINUTES => t.minute = self.decode(value),
            HOURS => t.hour = self.decode_hour(value),
            WEEKDAY => {}
            DAY => t.day = self.decode(value),
            MONTH => t.month = self.decode(value),
            YEAR => t.year = t.year.div_euclid(100) * 100 + self.decode(value),
            CENTURY => t.year = self.decode(value) * 100 + t.year.rem_euclid(100),
            _ => return false,
        }
        self.set_time(t, host_ns);
        true
    }

    /// Makes the guest's time `t`; a running clock keeps its phase within the second.
    fn set_time(&mut self, t: DateTime, host_ns: u64) {
        match &mut self.frozen {
            Some(f) => *f = t,
            None => {
                let delta = i128::from(t.to_unix()) - i128::from(secs_of(self.guest_ns(host_ns)));
                self.offset_ns += delta * NS_PER_SEC;
            }
        }
        self.synced_ns = self.guest_ns(host_ns);
    }

    /// Register A or B changed: stopping updates freezes the time; restarting
    /// them starts the frozen second afresh.
    fn write_control(&mut self, index: u8, value: u8, host_ns: u64) {
        self.sync(host_ns);
        let was_halted = self.halted();
        let value = match index {
            REG_A => value & !A_UIP,
            // SET clears UIE.
            _ if value & B_SET != 0 => value & !B_UIE,
            _ => value,
        };
        self.set_raw(index, value);
        match (was_halted, self.halted()) {
            (false, true) => self.frozen = Some(self.now(host_ns)),
            (true, false) => {
                if let Some(t) = self.frozen.take() {
                    self.offset_ns = i128::from(t.to_unix()) * NS_PER_SEC - i128::from(host_ns);
                    self.synced_ns = self.guest_ns(host_ns);
                }
            }
            _ => {}
        }
        self.update_line();
    }

    /// Register A: UIP during the last 244 µs before an update.
    fn read_a(&self, host_ns: u64) -> u8 {
        let phase = self.guest_ns(host_ns).rem_euclid(NS_PER_SEC);
        let uip = !self.halted() && phase >= NS_PER_SEC - UIP_NS;
        self.raw(REG_A) | if uip { A_UIP } else { 0 }
    }

    /// Register C: the flags, with IRQF if an enabled one is set; reading clears them.
    fn read_c(&mut self, host_ns: u64) -> u8 {
        self.sync(host_ns);
        let value = self.flags | if self.irqf() { C_IRQF } else { 0 };
        self.flags = 0;
        if std::mem::take(&mut self.irq_raised) {
            // The thread stopped planning while IRQF was up.
            self.wake();
        }
        value
    }

    fn irqf(&self) -> bool {
        self.flags & self.raw(REG_B) & C_FLAGS != 0
    }

    /// Sets the flags of the events that happened since the last sync, and
    /// pulses IRQ8 if IRQF rose.
    fn sync(&mut self, host_ns: u64) {
        let now = self.guest_ns(host_ns);
        let last = std::mem::replace(&mut self.synced_ns, now);
        if now <= last {
            return;
        }
        if let Some(base) = self.period_base() {
            if periods(now, base) > periods(last, base) {
                self.flags |= C_PF;
            }
        }
        let (s0, s1) = (secs_of(last), secs_of(now));
        if s1 > s0 && !self.halted() {
            self.flags |= C_UF;
            if self.next_alarm(s0).is_some_and(|t| t <= s1) {
                self.flags |= C_AF;
            }
        }
        self.update_line();
    }

    /// IRQ8 follows IRQF; a rise is an edge on the I/O APIC pin.
    fn update_line(&mut self) {
        let level = self.irqf();
        if level && !self.irq_raised {
            // An undeliverable interrupt is the line's problem, not the guest's.
            let _ = self.irq.trigger();
        }
        self.irq_raised = level;
    }

    /// The periodic interrupt's period is 2^base / 32768 s; `None` when off.
    fn period_base(&self) -> Option<u32> {
        if self.raw(REG_A) & A_DIVIDER_RESET == A_DIVIDER_RESET {
            return None;
        }
        match self.raw(REG_A) & A_RATE {
            0 => None,
            // Rates 1 and 2 repeat rates 8 and 9 with a 32.768 kHz base.
            rs @ 1..=2 => Some(u32::from(rs) + 6),
            rs => Some(u32::from(rs) - 1),
        }
    }

    /// The second after `after` at which the alarm matches, if it ever does.
    fn next_alarm(&self, after: i64) -> Option<i64> {
        let sec = self.alarm_field(SECONDS_ALARM, 60)?;
        let min = self.alarm_field(MINUTES_ALARM, 60)?;
        let hour = self.alarm_field(HOURS_ALARM, 24)?;
        let fits = |want: Option<i64>, v: i64| want.is_none_or(|w| w == v);
        let day = after - after.rem_euclid(SECS_PER_DAY);
        for d in 0..2 {
            for h in (0..24).filter(|h| fits(hour, *h)) {
                for m in (0..60).filter(|m| fits(min, *m)) {
                    let base = day + d * SECS_PER_DAY + h * 3600 + m * 60;
                    if base + 59 <= after {
                        continue;
                    }
                    if let Some(s) = (0..60).find(|s| fits(sec, *s) && base + s > after) {
                        return Some(base + s);
                    }
                }
            }
        }
        None
    }

    /// An alarm byte: `Some(None)` matches anything, `None` never matches.
    fn alarm_field(&self, index: u8, limit: i64) -> Option<Option<i64>> {
        let b = self.raw(index);
        if b & ALARM_ANY == ALARM_ANY {
            return Some(None);
        }
        let v = if index == HOURS_ALARM { self.decode_hour(b) } else { self.decode(b) };
        (v < limit).then_some(Some(v))
    }

    /// Nanoseconds of guest time until the next enabled interrupt, if any.
    fn next_event(&self, host_ns: u64) -> Option<u64> {
        if self.irq_raised {
            return None;
        }
        let now = self.guest_ns(host_ns);
        let enabled = self.raw(REG_B);
        let mut next: Option<i128> = None;
        let mut consider = |at: i128| next = Some(next.map_or(at, |n| n.min(at)));
        if let Some(base) = self.period_base().filter(|_| enabled & B_PIE != 0) {
            consider(period_start(periods(now, base) + 1, base));
        }
        if !self.halted() {
            if enabled & B_UIE != 0 {
                consider((now.div_euclid(NS_PER_SEC) + 1) * NS_PER_SEC);
            }
            if let Some(t) = self.next_alarm(secs_of(now)).filter(|_| enabled & B_AIE != 0) {
                consider(i128::from(t) * NS_PER_SEC);
            }
        }
        next.map(|at| u64::try_from(at - now).unwrap_or(0))
    }

    /// A read of port 0x70 + `offset` at host time `host_ns`.
    pub fn read_port(&mut self, offset: u64, host_ns: u64) -> u8 {
        if offset == 0 {
            return self.index;
        }
        match self.index {
            REG_A => self.read_a(host_ns),
            REG_C => self.read_c(host_ns),
            REG_D => D_VRT,
            i => self.read_time(i, host_ns).unwrap_or_else(|| self.raw(i)),
        }
    }

    /// A write of `value` to port 0x70 + `offset` at host time `host_ns`.
    pub fn write_port(&mut self, offset: u64, value: u8, host_ns: u64) {
        if offset == 0 {
            // Bit 7 masks NMIs, which this machine does not have.
            self.index = value & 0x7F;
            return;
        }
        match self.index {
            REG_A | REG_B => self.write_control(self.index, value, host_ns),
            REG_C | REG_D => {}
            i => {
                if !self.write_time(i, value, host_ns) {
                    self.set_raw(i, value);
                }
            }
        }
        if matches!(self.index, 0..=REG_B | CENTURY) {
            self.wake();
        }
    }

    fn wake(&self) {
        if let Some(w) = &self.waker {
            w();
        }
    }
}

fn secs_of(ns: i128) -> i64 {
    i64::try_from(ns.div_euclid(NS_PER_SEC)).unwrap_or(i64::MAX)
}

/// Periodic-interrupt periods elapsed at guest time `ns`.
fn periods(ns: i128, base: u32) -> i128 {
    (ns * TIME_BASE_HZ).div_euclid(NS_PER_SEC << base)
}

/// Guest time at which period `k` starts.
fn period_start(k: i128, base: u32) -> i128 {
    let scaled = k * (NS_PER_SEC << base);
    scaled.div_euclid(TIME_BASE_HZ) + i128::from(scaled.rem_euclid(TIME_BASE_HZ) != 0)
}

impl<C: Clock, T: Trigger + Send> TimedIrq for Rtc<C, T> {
    fn service(&mut self) -> Option<u64> {
        let now = self.clock.now_ns();
        self.sync(now);
        self.next_event(now)
    }

    fn set_waker(&mut self, waker: Waker) {
        self.waker = Some(waker);
    }
}

impl<C: Clock, T: Trigger + Send> BusDevice for Rtc<C, T> {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        let now = self.clock.now_ns();
        let value = self.read_port(offset, now);
        data.fill(0);
        if let Some(b) = data.first_mut() {
            *b = value;
        }
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        if let Some(v) = data.first() {
            let now = self.clock.now_ns();
            self.write_port(offset, *v, now);
        }
    }
}
