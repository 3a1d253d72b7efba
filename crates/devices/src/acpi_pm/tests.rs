use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Mutex;

use super::*;

#[derive(Default)]
struct Requests {
    power_off: AtomicU32,
    reset: AtomicU32,
}

impl PowerControl for Requests {
    fn power_off(&self) {
        self.power_off.fetch_add(1, Ordering::SeqCst);
    }
    fn reset(&self) {
        self.reset.fetch_add(1, Ordering::SeqCst);
    }
}

struct Line(Arc<AtomicBool>);

impl IrqLevel for Line {
    fn set_level(&self, asserted: bool) {
        self.0.store(asserted, Ordering::SeqCst);
    }
}

struct Rig {
    pm: AcpiPm,
    requests: Arc<Requests>,
    sci: Arc<AtomicBool>,
    clock: Arc<AtomicU64>,
}

fn rig() -> Rig {
    let requests = Arc::new(Requests::default());
    let sci = Arc::new(AtomicBool::new(false));
    let clock = Arc::new(AtomicU64::new(0));
    let c = clock.clone();
    let pm = AcpiPm::new(Box::new(Line(sci.clone())), requests.clone(), Box::new(move || c.load(Ordering::SeqCst)));
    Rig { pm, requests, sci, clock }
}

fn read16(pm: &mut AcpiPm, offset: u64) -> u16 {
    let mut b = [0u8; 2];
    pm.read(offset, &mut b);
    u16::from_le_bytes(b)
}

fn timer(pm: &mut AcpiPm) -> u32 {
    let mut b = [0u8; 4];
    pm.read(u64::from(PM_TMR - PM_BASE), &mut b);
    u32::from_le_bytes(b)
}

const CNT: u64 = (PM1A_CNT - PM_BASE) as u64;

fn sleep_value(slp_typ: u16, enable: bool) -> [u8; 2] {
    ((slp_typ << 10) | if enable { 1 << 13 } else { 0 }).to_le_bytes()
}

#[test]
fn s5_with_slp_en_powers_off() {
    let mut r = rig();
    // ACPICA writes SLP_TYP first, then SLP_TYP with SLP_EN.
    r.pm.write(CNT, &sleep_value(u16::from(SLP_TYP_S5), false));
    assert_eq!(r.requests.power_off.load(Ordering::SeqCst), 0);
    r.pm.write(CNT, &sleep_value(u16::from(SLP_TYP_S5), true));
    assert_eq!(r.requests.power_off.load(Ordering::SeqCst), 1);
    assert_eq!(r.requests.reset.load(Ordering::SeqCst), 0);
}

#[test]
fn byte_write_of_the_high_half_also_sleeps() {
    let mut r = rig();
    r.pm.write(CNT + 1, &[sleep_value(u16::from(SLP_TYP_S5), true)[1]]);
    assert_eq!(r.requests.power_off.load(Ordering::SeqCst), 1);
}

#[test]
fn other_sleep_types_do_nothing() {
    let mut r = rig();
    for typ in (0..8).filter(|t| *t != u16::from(SLP_TYP_S5)) {
        r.pm.write(CNT, &sleep_value(typ, true));
    }
    assert_eq!(r.requests.power_off.load(Ordering::SeqCst), 0);
    assert_eq!(r.requests.reset.load(Ordering::SeqCst), 0);
}

#[test]
fn control_reads_sci_en_and_slp_typ_but_not_slp_en() {
    let mut r = rig();
    assert_eq!(read16(&mut r.pm, CNT), 1, "SCI_EN set at reset");
    r.pm.write(CNT, &sleep_value(3, true));
    assert_eq!(read16(&mut r.pm, CNT), (3 << 10) | 1);
    r.pm.write(CNT, &[0, 0]);
    assert_eq!(read16(&mut r.pm, CNT), 1, "SCI_EN cannot be cleared");
}

#[test]
fn pm_timer_counts_at_3_58_mhz_and_wraps() {
    let mut r = rig();
    assert_eq!(timer(&mut r.pm), 0);
    r.clock.store(1_000_000, Ordering::SeqCst);
    assert_eq!(timer(&mut r.pm), 3579);
    r.clock.store(1_000_000_000, Ordering::SeqCst);
    assert_eq!(timer(&mut r.pm), 3_579_545);
    let mut last = timer(&mut r.pm);
    for step in 1..100u64 {
        r.clock.store(1_000_000_000 + step * 12_345, Ordering::SeqCst);
        let now = timer(&mut r.pm);
        assert!(now > last, "monotonic");
        last = now;
    }
    // 2^32 ticks take about 1199.57 s; the count wraps to zero there.
    let wrap_ns = ((1u128 << 32) * 1_000_000_000).div_ceil(u128::from(PM_TIMER_HZ)) as u64;
    r.clock.store(wrap_ns, Ordering::SeqCst);
    assert_eq!(timer(&mut r.pm), 0);
    r.pm.write(u64::from(PM_TMR - PM_BASE), &[1, 2, 3, 4]);
    assert_eq!(timer(&mut r.pm), 0, "read-only");
}

#[test]
fn narrow_and_unaligned_reads_see_the_same_timer() {
    let mut r = rig();
    r.clock.store(2_000_000_000, Ordering::SeqCst);
    let full = timer(&mut r.pm).to_le_bytes();
    let mut hi = [0u8; 2];
    r.pm.read(u64::from(PM_TMR - PM_BASE) + 2, &mut hi);
    assert_eq!(hi, [full[2], full[3]]);
    let mut past = [0u8; 2];
    r.pm.read(u64::from(PM_PORTS) - 1, &mut past);
    assert_eq!(past, [full[3], 0xFF], "beyond the block reads as ones");
}

#[test]
fn power_button_raises_sci_only_when_enabled_and_status_clears_on_write_one() {
    let mut r = rig();
    r.pm.press_power_button();
    assert_eq!(read16(&mut r.pm, 0) & PWRBTN_STS, PWRBTN_STS);
    assert!(!r.sci.load(Ordering::SeqCst));
    r.pm.write(2, &PWRBTN_STS.to_le_bytes());
    assert!(r.sci.load(Ordering::SeqCst), "STS & EN asserts the SCI");
    r.pm.write(0, &0u16.to_le_bytes());
    assert!(r.sci.load(Ordering::SeqCst), "writing 0 leaves status alone");
    r.pm.write(0, &PWRBTN_STS.to_le_bytes());
    assert_eq!(read16(&mut r.pm, 0), 0);
    assert!(!r.sci.load(Ordering::SeqCst));
}

#[test]
fn enable_register_keeps_only_event_bits() {
    let mut r = rig();
    r.pm.write(0, &[0xFF, 0xFF, 0xFF, 0xFF]);
    assert_eq!(read16(&mut r.pm, 2), EVENT_BITS);
}

/// (offset, bytes) of each write.
type WriteLog = Arc<Mutex<Vec<(u64, Vec<u8>)>>>;

/// Records what reaches the wrapped configuration ports.
#[derive(Default)]
struct Inner(WriteLog);

impl BusDevice for Inner {
    fn read(&mut self, _offset: u64, data: &mut [u8]) {
        data.fill(0xAB);
    }
    fn write(&mut self, offset: u64, data: &[u8]) {
        if let Ok(mut log) = self.0.lock() {
            log.push((offset, data.to_vec()));
        }
    }
}

#[test]
fn cf9_resets_on_rst_cpu_and_passes_other_accesses_through() {
    let requests = Arc::new(Requests::default());
    let log = Arc::new(Mutex::new(Vec::new()));
    let mut port = ResetControl::new(Inner(log.clone()), requests.clone());
    port.write(1, &[0x02]);
    assert_eq!(requests.reset.load(Ordering::SeqCst), 0, "SYS_RST alone only picks the kind");
    let mut b = [0u8; 1];
    port.read(1, &mut b);
    assert_eq!(b, [0x02]);
    port.write(1, &[RESET_VALUE]);
    assert_eq!(requests.reset.load(Ordering::SeqCst), 1);
    port.write(1, &[0x0E]);
    assert_eq!(requests.reset.load(Ordering::SeqCst), 2);
    assert_eq!(requests.power_off.load(Ordering::SeqCst), 0);
    port.write(0, &0x8000_0000u32.to_le_bytes());
    port.write(5, &[7]);
    assert_eq!(*log.lock().unwrap(), vec![(0, vec![0, 0, 0, 0x80]), (5, vec![7])]);
    let mut dword = [0u8; 4];
    port.read(0, &mut dword);
    assert_eq!(dword, [0xAB; 4]);
}
