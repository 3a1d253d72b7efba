//! PIT behaviour as Linux uses it, on a manual clock.

use std::sync::atomic::Ordering;

use super::*;
use crate::clock::{CountIrq, ManualClock};


/// Ticks elapsed before the tests start, so nothing lines up with zero.
const T0: u64 = 123_457;

struct Rig {
    pit: Pit<ManualClock, CountIrq>,
    clock: ManualClock,
    irqs: CountIrq,
}

impl Rig {
    fn new() -> Self {
        let clock = ManualClock::new(ns_of_tick(T0));
        let irqs = CountIrq::default();
        Self { pit: Pit::new(clock.clone(), irqs.clone()), clock, irqs }
    }

    /// Moves the clock to `e` ticks after T0.
    fn at(&mut self, e: u64) -> &mut Self {
        self.clock.set(ns_of_tick(T0 + e));
        self
    }

    fn outb(&mut self, port: u16, v: u8) {
        let now = self.clock.now_ns();
        match port {
            SPEAKER_PORT => self.pit.write_speaker(v, now),
            _ => self.pit.write_port(u64::from(port - PIT_BASE), v, now),
        }
    }

    fn inb(&mut self, port: u16) -> u8 {
        let now = self.clock.now_ns();
        match port {
            SPEAKER_PORT => self.pit.read_speaker(now),
            _ => self.pit.read_port(u64::from(port - PIT_BASE), now),
        }
    }

    /// A two-byte count on channel `ch`.
    fn count(&mut self, ch: u16, n: u16) {
        let [lsb, msb] = n.to_le_bytes();
        self.outb(PIT_BASE + ch, lsb);
        self.outb(PIT_BASE + ch, msb);
    }

    /// A two-byte read of channel `ch`.
    fn read16(&mut self, ch: u16) -> u16 {
        let lsb = self.inb(PIT_BASE + ch);
        u16::from_le_bytes([lsb, self.inb(PIT_BASE + ch)])
    }

    fn latched(&mut self, ch: u16) -> u16 {
        self.outb(0x43, (ch as u8) << 6);
        self.read16(ch)
    }

    fn irqs(&self) -> usize {
        self.irqs.0.load(Ordering::SeqCst)
    }

    /// The next IRQ0 deadline, in ticks after T0.
    fn next_irq(&self) -> Option<u64> {
        self.pit.next_irq_ns().map(|ns| ticks(ns) - T0)
    }

    fn fire(&mut self) -> bool {
        let now = self.clock.now_ns();
        self.pit.fire_due(now)
    }
}

#[test]
fn idle_pit_schedules_nothing() {
    let mut r = Rig::new();
    assert_eq!(r.pit.service(), None);
    r.outb(0x43, 0x34);
    assert_eq!(r.pit.service(), None, "no count yet");
    assert_eq!(r.irqs(), 0);
}

#[test]
fn mode0_one_shot_fires_once_then_idles() {
    let mut r = Rig::new();
    r.outb(0x43, 0x30);
    r.count(0, 1193);
    assert_eq!(r.next_irq(), Some(1193));
    assert_eq!(r.at(100).latched(0), 1093);
    assert!(!r.at(1192).fire());
    assert!(r.at(1193).fire());
    assert_eq!(r.irqs(), 1);
    assert_eq!(r.next_irq(), None);
    // The counter wraps and keeps going; OUT stays high (status bit 7).
    assert_eq!(r.at(1193 + 10).latched(0), 0xFFFF - 9);
    r.outb(0x43, 0xE2);
    assert_eq!(r.inb(0x40) & 0x80, 0x80);
    assert!(!r.at(70_000).fire());
}

#[test]
fn mode2_periodic_deadlines_then_linux_shutdown() {
    let mut r = Rig::new();
    // pit_set_periodic at HZ=1000: mode 2, LATCH 1193.
    r.outb(0x43, 0x34);
    r.count(0, 1193);
    for k in 1..=5u64 {
        assert_eq!(r.next_irq(), Some(k * 1193));
        let e = k * 1193;
        assert!(r.at(e).fire());
        assert_eq!(r.at(e + 100).latched(0), 1093);
    }
    assert_eq!(r.irqs(), 5);
    // A late thread delivers one interrupt for several periods.
    assert!(r.at(10 * 1193 + 5).fire());
    assert_eq!(r.next_irq(), Some(11 * 1193));
    // pit_shutdown: mode 0 with count 0 fires once more, 65536 ticks later.
    let stop = 10 * 1193 + 50;
    r.at(stop).outb(0x43, 0x30);
    r.count(0, 0);
    assert_eq!(r.next_irq(), Some(stop + 0x1_0000));
    assert!(r.at(stop + 0x1_0000).fire());
    assert_eq!(r.next_irq(), None);
    assert_eq!(r.pit.service(), None);
}

#[test]
fn mode2_out_low_for_the_last_tick() {
    let mut r = Rig::new();
    r.outb(0x43, 0x34);
    r.count(0, 100);
    r.at(98);
    r.outb(0x43, 0xE2);
    assert_eq!(r.inb(0x40) & 0x80, 0x80);
    r.at(99);
    r.outb(0x43, 0xE2);
    assert_eq!(r.inb(0x40) & 0x80, 0);
    assert_eq!(r.read16(0), 1);
}

#[test]
fn mode2_new_count_waits_for_the_period_end() {
    let mut r = Rig::new();
    r.outb(0x43, 0x34);
    r.count(0, 1000);
    r.at(250).count(0, 500);
    assert_eq!(r.latched(0), 750);
    assert_eq!(r.next_irq(), Some(1000));
    assert!(r.at(1000).fire());
    assert_eq!(r.next_irq(), Some(1500));
    assert_eq!(r.at(1100).latched(0), 400);
}

#[test]
fn mode3_square_wave() {
    let mut r = Rig::new();
    r.outb(0x43, 0x36);
    r.count(0, 10);
    let mut seen = Vec::new();
    for e in 0..12 {
        r.at(e).outb(0x43, 0xC2);
        let status = r.inb(0x40);
        seen.push((r.read16(0), status & 0x80 != 0));
    }
    let high = |v| (v, true);
    let low = |v| (v, false);
    assert_eq!(
        seen,
        [high(10), high(8), high(6), high(4), high(2), low(10), low(8), low(6), low(4), low(2), high(10), high(8)]
    );
    assert_eq!(r.next_irq(), Some(10), "due, not yet delivered");
}

#[test]
fn mode3_odd_count_is_high_one_tick_longer() {
    let mut r = Rig::new();
    r.outb(0x43, 0x36);
    r.count(0, 7);
    let outs: Vec<bool> = (0..7).map(|e| r.pit.channels[0].out(T0 + e)).collect();
    assert_eq!(outs, [true, true, true, true, false, false, false]);
}

#[test]
fn mode4_strobe_fires_after_the_count() {
    let mut r = Rig::new();
    // Linux's one-shot clockevent: mode 4, then a count per event.
    r.outb(0x43, 0x38);
    r.count(0, 100);
    assert_eq!(r.next_irq(), Some(101));
    assert!(r.pit.channels[0].out(T0 + 99));
    assert!(!r.pit.channels[0].out(T0 + 100));
    assert!(r.at(101).fire());
    assert_eq!(r.next_irq(), None);
}

#[test]
fn latch_holds_until_read_and_ignores_relatches() {
    let mut r = Rig::new();
    r.outb(0x43, 0x34);
    r.count(0, 5000);
    r.at(1000).outb(0x43, 0x00);
    r.at(2000).outb(0x43, 0x00);
    assert_eq!(r.at(3000).read16(0), 4000);
    assert_eq!(r.read16(0), 2000, "live again after the latch was read");
}

#[test]
fn read_back_latches_status_then_count() {
    let mut r = Rig::new();
    r.outb(0x43, 0xB0);
    // Null count: a control word with no count yet.
    r.outb(0x43, 0xE8);
    assert_eq!(r.inb(0x42), 0x70);
    r.outb(0x61, 1);
    r.count(2, 300);
    r.at(50).outb(0x43, 0xC8);
    assert_eq!(r.inb(0x42), 0x30, "OUT low, count loaded, LSB/MSB mode 0");
    r.at(60);
    assert_eq!(r.read16(2), 250);
    // Count only, several channels at once.
    r.outb(0x43, 0x34);
    r.count(0, 1000);
    r.at(70).outb(0x43, 0xDA);
    r.at(80);
    assert_eq!(r.read16(0), 990);
    assert_eq!(r.read16(2), 230);
}

#[test]
fn lsb_only_msb_only_and_word_toggle() {
    let mut r = Rig::new();
    r.outb(0x43, 0x10);
    r.outb(0x40, 0x80);
    assert_eq!(r.at(0x10).inb(0x40), 0x70);
    r.outb(0x43, 0x20);
    r.outb(0x40, 0x12);
    assert_eq!(r.at(0x10 + 0x100).inb(0x40), 0x11);
    r.outb(0x43, 0x30);
    r.outb(0x40, 0x34);
    r.outb(0x40, 0x12);
    r.at(0x10 + 0x100 + 0x200);
    assert_eq!([r.inb(0x40), r.inb(0x40), r.inb(0x40)], [0x34, 0x10, 0x34]);
}

#[test]
fn mode0_first_byte_stops_the_count() {
    let mut r = Rig::new();
    r.outb(0x43, 0x30);
    r.count(0, 1000);
    r.at(100).outb(0x40, 0x00);
    assert_eq!(r.at(500).latched(0), 900);
    r.outb(0x40, 0x01);
    assert_eq!(r.next_irq(), Some(500 + 256));
}

#[test]
fn pit_calibrate_tsc_polls_out2_on_port_61() {
    let mut r = Rig::new();
    let v = r.inb(0x61);
    r.outb(0x61, (v & !0x02) | 0x01);
    r.outb(0x43, 0xB0);
    let latch: u16 = 11_931; // 10 ms
    r.count(2, latch);
    for e in [0, 1, 5000, u64::from(latch) - 1] {
        assert_eq!(r.at(e).inb(0x61) & 0x20, 0, "OUT2 low at {e}");
    }
    assert_eq!(r.at(latch.into()).inb(0x61) & 0x20, 0x20);
    assert_eq!(r.irqs(), 0, "channel 2 raises no interrupt");
}

#[test]
fn quick_pit_calibrate_sees_the_msb_fall() {
    let mut r = Rig::new();
    let v = r.inb(0x61);
    r.outb(0x61, (v & !0x02) | 0x01);
    r.outb(0x43, 0xB0);
    r.count(2, 0xFFFF);
    // pit_verify_msb: discard the LSB, compare the MSB.
    let mut msb_at = |e| {
        r.at(e).inb(0x42);
        r.inb(0x42)
    };
    assert_eq!(msb_at(0), 0xFF);
    assert_eq!(msb_at(254), 0xFF);
    assert_eq!(msb_at(256), 0xFE);
    assert_eq!(msb_at(256 * 10 + 3), 0xF5);
}

#[test]
fn gate_low_pauses_mode0_and_retriggers_mode1() {
    let mut r = Rig::new();
    r.outb(0x43, 0xB0);
    r.count(2, 1000);
    assert_eq!(r.at(500).latched(2), 1000, "gate low: not counting");
    r.outb(0x61, 0x01);
    r.at(600).outb(0x61, 0x00);
    assert_eq!(r.at(900).latched(2), 900);
    r.outb(0x61, 0x01);
    assert_eq!(r.at(950).latched(2), 850);
    // Mode 1: OUT high until a gate rising edge, low for the count.
    r.outb(0x61, 0x00);
    r.outb(0x43, 0xB2);
    r.count(2, 100);
    assert_eq!(r.inb(0x61) & 0x20, 0x20);
    r.at(1000).outb(0x61, 0x01);
    assert_eq!(r.at(1050).inb(0x61) & 0x20, 0);
    assert_eq!(r.latched(2), 50);
    assert_eq!(r.at(1100).inb(0x61) & 0x20, 0x20);
    // Retrigger reloads.
    r.outb(0x61, 0x00);
    r.outb(0x61, 0x01);
    assert_eq!(r.at(1130).latched(2), 70);
}

#[test]
fn mode5_strobes_after_trigger() {
    let mut r = Rig::new();
    r.outb(0x43, 0xBA);
    r.count(2, 20);
    assert!(r.pit.channels[2].out(T0 + 100));
    r.at(100).outb(0x61, 0x01);
    assert!(r.pit.channels[2].out(T0 + 119));
    assert!(!r.pit.channels[2].out(T0 + 120));
    assert!(r.pit.channels[2].out(T0 + 121));
}

#[test]
fn port_61_refresh_toggles_and_keeps_written_bits() {
    let mut r = Rig::new();
    r.outb(0x61, 0xFF);
    let (a, b) = (r.inb(0x61), r.inb(0x61));
    assert_eq!((a ^ b) & 0x10, 0x10);
    assert_eq!(a & 0x0F, 0x0F);
    assert_eq!(a & 0xC0, 0);
}

#[test]
fn waker_runs_when_channel_0_is_programmed() {
    let mut r = Rig::new();
    let woken = CountIrq::default();
    let w = woken.clone();
    r.pit.set_waker(Box::new(move || {
        let _ = w.trigger();
    }));
    r.outb(0x43, 0xB0);
    r.count(2, 10);
    assert_eq!(woken.0.load(Ordering::SeqCst), 0);
    r.outb(0x43, 0x34);
    r.count(0, 10);
    assert_eq!(woken.0.load(Ordering::SeqCst), 3);
}

#[test]
fn service_reports_time_to_the_next_edge() {
    let mut r = Rig::new();
    r.outb(0x43, 0x34);
    r.count(0, 1193);
    let left = r.pit.service();
    assert_eq!(left, Some(ns_of_tick(T0 + 1193) - ns_of_tick(T0)));
    r.at(1193);
    let left = r.pit.service();
    assert_eq!(r.irqs(), 1);
    assert_eq!(left, Some(ns_of_tick(T0 + 2386) - ns_of_tick(T0 + 1193)));
}

#[test]
fn bus_device_reads_fill_wide_accesses() {
    let mut r = Rig::new();
    let mut data = [0xAAu8; 2];
    BusDevice::read(&mut r.pit, 3, &mut data);
    assert_eq!(data, [0xFF, 0]);
    BusDevice::write(&mut r.pit, 7, &[0x34]);
    BusDevice::write(&mut r.pit, 0, &[]);
}
