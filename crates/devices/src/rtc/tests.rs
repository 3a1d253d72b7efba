//! RTC behaviour as Linux and firmware use it, on a manual wall clock.

use std::sync::atomic::Ordering;

use super::*;
use crate::clock::{CountIrq, ManualClock};


const SEC: u64 = 1_000_000_000;
/// 2024-02-29 13:45:07 UTC, a Thursday.
const LEAP_DAY: u64 = 1_709_214_307;
const GIB: u64 = 1 << 30;

struct Rig {
    rtc: Rtc<ManualClock, CountIrq>,
    clock: ManualClock,
    irqs: CountIrq,
}

impl Rig {
    /// An RTC whose host clock reads `secs` and `frac_ns` past the epoch.
    fn at(secs: u64, frac_ns: u64) -> Self {
        let clock = ManualClock::new(secs * SEC + frac_ns);
        let irqs = CountIrq::default();
        let rtc = Rtc::new(clock.clone(), irqs.clone(), RamSize::split(512 << 20, 0xC000_0000));
        Self { rtc, clock, irqs }
    }

    fn get(&mut self, index: u8) -> u8 {
        let now = self.clock.now_ns();
        self.rtc.write_port(0, index, now);
        self.rtc.read_port(1, now)
    }

    fn set(&mut self, index: u8, value: u8) {
        let now = self.clock.now_ns();
        self.rtc.write_port(0, index, now);
        self.rtc.write_port(1, value, now);
    }

    /// Seconds, minutes, hours, weekday, day, month, year, century.
    fn time(&mut self) -> [u8; 8] {
        [SECONDS, MINUTES, HOURS, WEEKDAY, DAY, MONTH, YEAR, CENTURY].map(|i| self.get(i))
    }

    fn irqs(&self) -> usize {
        self.irqs.0.load(Ordering::SeqCst)
    }
}

#[test]
fn reads_host_utc_in_bcd() {
    let mut r = Rig::at(LEAP_DAY, 500_000_000);
    assert_eq!(r.time(), [0x07, 0x45, 0x13, 0x05, 0x29, 0x02, 0x24, 0x20]);
    assert_eq!(r.get(REG_A), 0x26);
    assert_eq!(r.get(REG_B), 0x02);
    assert_eq!(r.get(REG_D), 0x80);
    r.clock.advance(SEC);
    assert_eq!(r.get(SECONDS), 0x08);
}

#[test]
fn binary_mode() {
    let mut r = Rig::at(LEAP_DAY, 0);
    r.set(REG_B, B_24H | B_DM);
    assert_eq!(r.time(), [7, 45, 13, 5, 29, 2, 24, 20]);
}

#[test]
fn twelve_hour_mode() {
    let mut r = Rig::at(LEAP_DAY, 0);
    r.set(REG_B, 0);
    assert_eq!(r.get(HOURS), 0x81, "1 PM");
    r.set(REG_B, B_DM);
    assert_eq!(r.get(HOURS), 0x81);
    let midnight = LEAP_DAY - (13 * 3600 + 45 * 60 + 7);
    r.clock.set((midnight + 30 * 60) * SEC);
    assert_eq!(r.get(HOURS), 12, "12 AM");
    r.clock.set((midnight + 12 * 3600) * SEC);
    assert_eq!(r.get(HOURS), 0x8C, "12 PM");
    r.clock.set((midnight + 11 * 3600) * SEC);
    assert_eq!(r.get(HOURS), 11);
}

#[test]
fn uip_in_the_last_244us_of_each_second() {
    let mut r = Rig::at(LEAP_DAY, 999_700_000);
    assert_eq!(r.get(REG_A) & A_UIP, 0);
    r.clock.set(LEAP_DAY * SEC + 999_756_000);
    assert_eq!(r.get(REG_A) & A_UIP, A_UIP);
    r.clock.set(LEAP_DAY * SEC + 999_999_999);
    assert_eq!(r.get(REG_A), 0x26 | A_UIP);
    r.clock.set((LEAP_DAY + 1) * SEC);
    assert_eq!(r.get(REG_A) & A_UIP, 0);
    r.clock.set((LEAP_DAY + 1) * SEC + 999_900_000);
    r.set(REG_B, B_24H | B_SET);
    assert_eq!(r.get(REG_A) & A_UIP, 0, "no updates while SET");
}

#[test]
fn set_time_like_linux_moves_the_clock() {
    let mut r = Rig::at(LEAP_DAY, 250_000_000);
    // mc146818_set_time: SET, divider reset, the fields, then restore.
    r.set(REG_B, B_24H | B_SET);
    r.set(REG_A, 0x26 | 0x70);
    for (i, v) in [(YEAR, 0x99), (MONTH, 0x12), (DAY, 0x31), (HOURS, 0x23), (MINUTES, 0x59), (SECONDS, 0x58), (CENTURY, 0x19)] {
        r.set(i, v);
    }
    r.clock.advance(5 * SEC);
    assert_eq!(r.time(), [0x58, 0x59, 0x23, 0x06, 0x31, 0x12, 0x99, 0x19], "frozen while set");
    r.set(REG_B, B_24H);
    r.clock.advance(SEC);
    assert_eq!(r.get(SECONDS), 0x58, "divider still in reset");
    r.set(REG_A, 0x26);
    r.clock.advance(3 * SEC);
    assert_eq!(r.time(), [0x01, 0x00, 0x00, 0x07, 0x01, 0x01, 0x00, 0x20]);
}

#[test]
fn set_time_in_binary_12h_mode() {
    let mut r = Rig::at(LEAP_DAY, 0);
    r.set(REG_B, B_SET | B_DM);
    r.set(HOURS, 0x80 | 11);
    r.set(MINUTES, 5);
    r.set(REG_B, B_DM | B_24H);
    assert_eq!(r.get(HOURS), 23);
    assert_eq!(r.get(MINUTES), 5);
    assert_eq!(r.get(DAY), 29);
}

#[test]
fn write_without_set_keeps_the_phase() {
    let mut r = Rig::at(LEAP_DAY, 500_000_000);
    r.set(SECONDS, 0x30);
    assert_eq!(r.get(SECONDS), 0x30);
    r.clock.advance(SEC / 2);
    assert_eq!(r.get(SECONDS), 0x31);
    assert_eq!(r.get(MINUTES), 0x45);
}

#[test]
fn register_c_clears_on_read() {
    let mut r = Rig::at(LEAP_DAY, 0);
    r.set(REG_A, 0x20);
    r.clock.advance(SEC);
    assert_eq!(r.get(REG_C), C_UF, "update-ended, no interrupt enabled");
    assert_eq!(r.get(REG_C), 0);
    r.set(REG_A, 0x26);
    r.clock.advance(SEC / 1024 + 1);
    assert_eq!(r.get(REG_C), C_PF);
    assert_eq!(r.irqs(), 0);
}

#[test]
fn update_interrupt_until_c_is_read() {
    let mut r = Rig::at(LEAP_DAY, 400_000_000);
    r.set(REG_A, 0x20);
    r.set(REG_B, B_24H | B_UIE);
    assert_eq!(r.rtc.service(), Some(600_000_000));
    r.clock.advance(600_000_000);
    assert_eq!(r.rtc.service(), None, "IRQF up: nothing more to raise");
    assert_eq!(r.irqs(), 1);
    r.clock.advance(SEC);
    r.rtc.service();
    assert_eq!(r.irqs(), 1, "no new edge while IRQF stays up");
    assert_eq!(r.get(REG_C), C_IRQF | C_UF);
    assert_eq!(r.rtc.service(), Some(SEC));
    r.clock.advance(SEC);
    r.rtc.service();
    assert_eq!(r.irqs(), 2);
}

#[test]
fn set_clears_uie() {
    let mut r = Rig::at(LEAP_DAY, 0);
    r.set(REG_B, B_24H | B_UIE | B_SET);
    assert_eq!(r.get(REG_B), B_24H | B_SET);
}

#[test]
fn periodic_interrupt() {
    let mut r = Rig::at(LEAP_DAY, 0);
    r.set(REG_B, B_24H | B_PIE);
    let wait = r.rtc.service();
    assert_eq!(wait, Some(976_563), "1024 Hz");
    r.clock.advance(976_563);
    r.rtc.service();
    assert_eq!(r.irqs(), 1);
    assert_eq!(r.get(REG_C), C_IRQF | C_PF);
    r.set(REG_A, 0x2F);
    assert_eq!(r.rtc.service(), Some(SEC / 2 - 976_563), "2 Hz");
    r.set(REG_A, 0x20);
    r.set(REG_B, B_24H);
    assert_eq!(r.rtc.service(), None);
}

#[test]
fn alarm_interrupt_and_wildcards() {
    let mut r = Rig::at(LEAP_DAY, 500_000_000);
    r.set(REG_A, 0x20);
    r.set(HOURS_ALARM, 0x13);
    r.set(MINUTES_ALARM, 0x45);
    r.set(SECONDS_ALARM, 0x10);
    r.set(REG_B, B_24H | B_AIE);
    assert_eq!(r.rtc.service(), Some(2 * SEC + SEC / 2));
    r.clock.advance(2 * SEC + SEC / 2);
    r.rtc.service();
    assert_eq!(r.irqs(), 1);
    assert_eq!(r.get(REG_C), C_IRQF | C_AF | C_UF);
    // Tomorrow, same time.
    assert_eq!(r.rtc.service(), Some(86_400 * SEC));
    r.set(HOURS_ALARM, 0xFF);
    r.set(MINUTES_ALARM, 0xC0);
    r.set(SECONDS_ALARM, 0x00);
    assert_eq!(r.rtc.service(), Some(50 * SEC));
    r.set(SECONDS_ALARM, 0x99);
    assert_eq!(r.rtc.service(), None, "an impossible alarm never fires");
}

#[test]
fn alarm_flag_without_interrupt_after_a_long_gap() {
    let mut r = Rig::at(LEAP_DAY, 0);
    r.set(REG_A, 0x20);
    r.set(HOURS_ALARM, 0x02);
    r.set(MINUTES_ALARM, 0x00);
    r.set(SECONDS_ALARM, 0x00);
    r.clock.advance(3 * 3600 * SEC);
    assert_eq!(r.get(REG_C), C_UF, "02:00:00 has not come yet");
    r.clock.advance(13 * 3600 * SEC);
    assert_eq!(r.get(REG_C), C_UF | C_AF);
}

#[test]
fn cmos_memory_bytes_for_512m() {
    let mut r = Rig::at(LEAP_DAY, 0);
    let bytes: Vec<u8> = [0x15, 0x16, 0x17, 0x18, 0x30, 0x31, 0x34, 0x35, 0x5B, 0x5C, 0x5D].map(|i| r.get(i)).into();
    assert_eq!(bytes, [0x80, 0x02, 0xFF, 0xFF, 0xFF, 0xFF, 0x00, 0x1F, 0, 0, 0]);
}

#[test]
fn cmos_memory_bytes_for_8g() {
    let ram = RamSize::split(8 * GIB, 0xC000_0000);
    assert_eq!(ram, RamSize { below_4g: 3 * GIB, above_4g: 5 * GIB });
    let map: Vec<(u8, u8)> = memory_bytes(ram).into();
    assert_eq!(
        map,
        [
            (0x15, 0x80),
            (0x16, 0x02),
            (0x17, 0xFF),
            (0x18, 0xFF),
            (0x30, 0xFF),
            (0x31, 0xFF),
            (0x34, 0x00),
            (0x35, 0xBF),
            (0x5B, 0x00),
            (0x5C, 0x40),
            (0x5D, 0x01),
        ]
    );
    let small = memory_bytes(RamSize::split(8 << 20, 0xC000_0000));
    assert_eq!(small[2..6], [(0x17, 0x00), (0x18, 0x1C), (0x30, 0x00), (0x31, 0x1C)]);
    assert_eq!(small[6..8], [(0x34, 0), (0x35, 0)]);
}

#[test]
fn cmos_ram_index_ignores_the_nmi_bit() {
    let mut r = Rig::at(LEAP_DAY, 0);
    r.set(0x80 | 0x40, 0xAB);
    assert_eq!(r.get(0x40), 0xAB);
    r.set(REG_D, 0);
    assert_eq!(r.get(REG_D), D_VRT);
    r.set(REG_C, 0xFF);
    assert_eq!(r.get(REG_C) & C_IRQF, 0);
    let mut wide = [0xAAu8; 2];
    BusDevice::read(&mut r.rtc, 1, &mut wide);
    assert_eq!(wide, [0, 0]);
    BusDevice::write(&mut r.rtc, 1, &[]);
}

#[test]
fn waker_runs_on_control_and_time_writes_only() {
    let mut r = Rig::at(LEAP_DAY, 0);
    let woken = CountIrq::default();
    let w = woken.clone();
    r.rtc.set_waker(Box::new(move || {
        let _ = w.trigger();
    }));
    r.set(0x40, 1);
    assert_eq!(woken.0.load(Ordering::SeqCst), 0);
    r.set(REG_B, B_24H | B_AIE);
    r.set(SECONDS_ALARM, 0);
    assert_eq!(woken.0.load(Ordering::SeqCst), 2);
}

#[test]
fn frozen_fields_do_not_normalise_between_writes() {
    // 2024-01-31 12:00:00: writing February first must not roll into March.
    let mut r = Rig::at(1_706_702_400, 0);
    r.set(REG_B, B_24H | B_SET);
    r.set(MONTH, 0x02);
    assert_eq!(r.get(DAY), 0x31, "Feb 31 shows as written");
    r.set(DAY, 0x15);
    r.set(REG_B, B_24H);
    assert_eq!([r.get(MONTH), r.get(DAY)], [0x02, 0x15]);
}
