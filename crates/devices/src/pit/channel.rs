//! One counter of the 8254, computed from the tick it started at rather than
//! decremented: its value and OUT at any tick follow from the mode, the count
//! it was loaded with and the gate.
//!
//! Times are ticks of the 1.193182 MHz input clock. Counts are 1..=65536 (a
//! written 0 means 65536); values read back are the low 16 bits. BCD counting
//! is not modelled: the flag is kept only for the status byte.

/// Where a counter stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Run {
    /// Not counting (no count yet, gate low, or waiting for a trigger).
    /// `done`: the terminal count was already reached (one-shot modes).
    Held { value: u32, out: bool, done: bool },
    /// Counting down from `from` since tick `start`.
    Counting { start: u64, from: u32, done: bool },
}

/// A count written during a period of mode 2 or 3, loaded when the period ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Pending {
    at: u64,
    reload: u32,
}

/// Read/write access of a counter (control word bits 5-4).
const ACCESS_LSB: u8 = 1;
const ACCESS_MSB: u8 = 2;

/// One counter.
#[derive(Clone, Copy, Debug)]
pub struct Channel {
    /// Control word bits 5-0 as written (access, mode, BCD), for the status byte.
    config: u8,
    /// Mode 0-5 (control word values 6 and 7 mean modes 2 and 3).
    mode: u8,
    reload: u32,
    has_count: bool,
    null_count: bool,
    run: Run,
    pending: Option<Pending>,
    gate: bool,
    /// First byte of a two-byte count, waiting for the second.
    write_lsb: Option<u8>,
    /// Two-byte reads: the next byte read is the MSB.
    read_msb_next: bool,
    latch: Option<u16>,
    status: Option<u8>,
}

/// `from - elapsed`, wrapping through 0 as the 16-bit counter does.
fn wrap_down(from: u32, elapsed: u64) -> u32 {
    let e = u32::try_from(elapsed % 0x1_0000).unwrap_or(0);
    (from + 0x1_0000 - e) % 0x1_0000
}

/// A written count: 0 stands for 65536.
fn count_of(raw: u32) -> u32 {
    if raw == 0 {
        0x1_0000
    } else {
        raw
    }
}

impl Channel {
    /// A counter at power-on: mode 0, no count, OUT low.
    pub fn new(gate: bool) -> Self {
        Self {
            // LSB-then-MSB access, mode 0, binary.
            config: 0x30,
            mode: 0,
            reload: 0x1_0000,
            has_count: false,
            null_count: true,
            run: Run::Held { value: 0, out: false, done: false },
            pending: None,
            gate,
            write_lsb: None,
            read_msb_next: false,
            latch: None,
            status: None,
        }
    }

    /// Loads a count written during a period once that period has ended.
    fn settle(&mut self, now: u64) {
        if let Some(p) = self.pending.filter(|p| now >= p.at) {
            self.run = Run::Counting { start: p.at, from: p.reload, done: false };
            self.reload = p.reload;
            self.pending = None;
            self.null_count = false;
        }
    }

    /// Counter value and OUT at tick `now`.
    fn sample(&self, now: u64) -> (u32, bool) {
        match self.run {
            Run::Held { value, out, .. } => (value, out),
            Run::Counting { start, from, done } => self.counting(now.saturating_sub(start), from, done),
        }
    }

    /// Counter value and OUT `e` ticks after counting started from `from`.
    fn counting(&self, e: u64, from: u32, done: bool) -> (u32, bool) {
        let from = from.max(1);
        let phase = || u32::try_from(e % u64::from(from)).unwrap_or(0);
        match self.mode {
            // Rate generator: OUT low for the last tick of each period.
            2 => {
                let p = phase();
                (from - p, p + 1 != from)
            }
            // Square wave: high for the first half (rounded up), counting by two.
            3 => {
                let (p, high) = (phase(), from.div_ceil(2));
                let q = if p < high { p } else { p - high };
                ((from & !1).saturating_sub(2 * q), p < high)
            }
            // Strobes: OUT low for one tick at the terminal count.
            4 | 5 => (wrap_down(from, e), done || e != u64::from(from)),
            // One-shots: OUT rises at the terminal count and stays high.
            _ => (wrap_down(from, e), done || e >= u64::from(from)),
        }
    }

    /// Stops counting, keeping the value; OUT is `out` or, if `None`, what it was.
    fn hold(&mut self, now: u64, out: Option<bool>) {
        if let Run::Counting { start, from, done } = self.run {
            let (value, was) = self.sample(now);
            let done = done || now.saturating_sub(start) >= u64::from(from);
            self.run = Run::Held { value, out: out.unwrap_or(was), done };
        }
    }

    /// Starts counting down from the programmed count.
    fn start(&mut self, now: u64) {
        self.run = Run::Counting { start: now, from: self.reload, done: false };
        self.pending = None;
        self.null_count = false;
    }

    /// A control word for this counter (not a latch command).
    pub fn control(&mut self, cw: u8, now: u64) {
        self.settle(now);
        let value = self.sample(now).0;
        self.config = cw & 0x3F;
        self.mode = match (cw >> 1) & 7 {
            6 => 2,
            7 => 3,
            m => m,
        };
        self.has_count = false;
        self.null_count = true;
        self.pending = None;
        self.write_lsb = None;
        self.read_msb_next = false;
        self.latch = None;
        self.status = None;
        self.run = Run::Held { value, out: self.mode != 0, done: false };
    }

    fn access(&self) -> u8 {
        (self.config >> 4) & 3
    }

    /// A byte written to the counter's port.
    pub fn write(&mut self, byte: u8, now: u64) {
        self.settle(now);
        match self.access() {
            ACCESS_LSB => self.load(u32::from(byte), now),
            ACCESS_MSB => self.load(u32::from(byte) << 8, now),
            _ => match self.write_lsb.take() {
                Some(lsb) => self.load(u32::from(lsb) | u32::from(byte) << 8, now),
                None => {
                    self.write_lsb = Some(byte);
                    // Mode 0 stops at the first byte of a new count, OUT low.
                    if self.mode == 0 {
                        self.hold(now, Some(false));
                    }
                }
            },
        }
    }

    /// A complete count was written.
    fn load(&mut self, raw: u32, now: u64) {
        let count = count_of(raw);
        let first = !self.has_count;
        self.has_count = true;
        self.null_count = false;
        match self.mode {
            0 | 4 => {
                self.reload = count;
                if self.gate {
                    self.start(now);
                } else {
                    self.run = Run::Held { value: count, out: self.mode == 4, done: false };
                }
            }
            // Periodic modes finish the current period before taking a new count.
            2 | 3 => match self.run {
                Run::Counting { start, from, .. } if !first => {
                    let from = u64::from(from.max(1));
                    let at = start.saturating_add((now.saturating_sub(start) / from + 1).saturating_mul(from));
                    self.pending = Some(Pending { at, reload: count });
                    self.null_count = true;
                }
                _ => {
                    self.reload = count;
                    if self.gate {
                        self.start(now);
                    } else {
                        self.run = Run::Held { value: count, out: true, done: false };
                    }
                }
            },
            // Gate-triggered modes use the count at the next trigger.
            _ => {
                self.reload = count;
                self.null_count = true;
            }
        }
    }

    /// The gate input changed (or was re-driven) to `level`.
    pub fn set_gate(&mut self, level: bool, now: u64) {
        self.settle(now);
        let (rising, falling) = (level && !self.gate, !level && self.gate);
        self.gate = level;
        match self.mode {
            0 | 4 if falling => self.hold(now, None),
            0 | 4 if rising && self.has_count => {
                if let Run::Held { value, done, .. } = self.run {
                    self.run = Run::Counting { start: now, from: count_of(value), done };
                }
            }
            // Gate low forces OUT high and stops; high restarts the period.
            2 | 3 if falling => self.hold(now, Some(true)),
            2 | 3 | 1 | 5 if rising && self.has_count => {
                if let Some(p) = self.pending.take() {
                    self.reload = p.reload;
                }
                self.start(now);
            }
            _ => {}
        }
    }

    /// OUT at tick `now`.
    pub fn out(&self, now: u64) -> bool {
        let mut c = *self;
        c.settle(now);
        c.sample(now).1
    }

    /// Latch command: freezes the value for reading (ignored while a latch is unread).
    pub fn latch_count(&mut self, now: u64) {
        self.settle(now);
        if self.latch.is_none() {
            self.latch = Some(self.sample(now).0 as u16);
        }
    }

    /// Read-back status latch: OUT, null count, and the programmed control bits.
    pub fn latch_status(&mut self, now: u64) {
        self.settle(now);
        if self.status.is_none() {
            let out = u8::from(self.sample(now).1) << 7;
            let null = u8::from(self.null_count) << 6;
            self.status = Some(out | null | self.config);
        }
    }

    /// A byte read from the counter's port: a latched status, a latched count,
    /// or the live count, LSB/MSB as programmed.
    pub fn read(&mut self, now: u64) -> u8 {
        self.settle(now);
        if let Some(s) = self.status.take() {
            return s;
        }
        let value = self.latch.unwrap_or(self.sample(now).0 as u16);
        let [lsb, msb] = value.to_le_bytes();
        let (byte, finished) = match self.access() {
            ACCESS_LSB => (lsb, true),
            ACCESS_MSB => (msb, true),
            _ => {
                let high = self.read_msb_next;
                self.read_msb_next = !high;
                (if high { msb } else { lsb }, high)
            }
        };
        if finished {
            self.latch = None;
        }
        byte
    }

    /// The first tick after `after` at which OUT rises, if it will without
    /// further programming.
    pub fn next_rising_edge(&self, after: u64) -> Option<u64> {
        let mut c = *self;
        c.settle(after);
        let Run::Counting { start, from, done } = c.run else { return None };
        let from = u64::from(from.max(1));
        let edge = match c.mode {
            0 | 1 if !done => start.saturating_add(from),
            4 | 5 if !done => start.saturating_add(from + 1),
            2 | 3 => {
                let periods = if after < start { 1 } else { (after - start) / from + 1 };
                start.saturating_add(periods.saturating_mul(from))
            }
            _ => return None,
        };
        (edge > after).then_some(edge)
    }
}
