//! ACPI fixed hardware: the PM1a event and control blocks, the PM timer, and
//! the reset register at 0xCF9. The guest powers off by writing SLP_EN with the
//! S5 sleep type and resets through the reset register; both requests go to a
//! [`PowerControl`].
//!
//! ACPI is always enabled (the FADT has no SMI_CMD), so SCI_EN reads as set.
//! Registers are byte-addressable: any access width at any offset works, the
//! way the chipset decodes them.

use std::sync::Arc;
use std::time::Instant;

use crate::bus::BusDevice;

/// First port of the block: PM1a_EVT (PM1_STS, PM1_EN), PM1a_CNT, PM_TMR.
pub const PM_BASE: u16 = 0x600;
/// PM1a event block: PM1_STS (2 bytes) then PM1_EN (2 bytes).
pub const PM1A_EVT: u16 = PM_BASE;
/// PM1a control block (2 bytes).
pub const PM1A_CNT: u16 = PM_BASE + 4;
/// PM timer (4 bytes).
pub const PM_TMR: u16 = PM_BASE + 8;
/// Ports claimed from [`PM_BASE`].
pub const PM_PORTS: u16 = 12;
/// ISA IRQ of the SCI.
pub const SCI_IRQ: u8 = 9;
/// SLP_TYP value that means S5 (soft off); the DSDT's \_S5 says the same.
pub const SLP_TYP_S5: u8 = 5;
/// The reset control register, and the value the FADT tells the guest to write.
pub const RESET_PORT: u16 = 0xCF9;
pub const RESET_VALUE: u8 = 0x06;
/// PM timer frequency in Hz.
pub const PM_TIMER_HZ: u64 = 3_579_545;

/// PM1_STS/PM1_EN bits that raise the SCI: timer carry, global lock release,
/// power button, sleep button, RTC alarm.
const EVENT_BITS: u16 = (1 << 0) | (1 << 5) | (1 << 8) | (1 << 9) | (1 << 10);
const PWRBTN_STS: u16 = 1 << 8;
/// PM1_STS bits that exist (write 1 to clear); the others read as zero.
const STS_BITS: u16 = EVENT_BITS | (1 << 4) | (1 << 14) | (1 << 15);
const SCI_EN: u16 = 1 << 0;
/// PM1_CNT bits kept as written: BM_RLD and SLP_TYP. GBL_RLS and SLP_EN are
/// actions and read as zero.
const CNT_KEPT: u16 = (1 << 1) | (0b111 << 10);
const SLP_TYP_SHIFT: u8 = 10 - 8;
const SLP_EN_HIGH_BYTE: u8 = 1 << (13 - 8);
/// Reset control register: RST_CPU starts the reset; SYS_RST and FULL_RST only
/// choose its kind, which does not matter here.
const RST_CPU: u8 = 1 << 2;
const RCR_KEPT: u8 = (1 << 1) | (1 << 3);

/// What the guest can ask of the machine.
pub trait PowerControl: Send + Sync {
    fn power_off(&self);
    fn reset(&self);
}

/// A level-sensitive interrupt line (the SCI).
pub trait IrqLevel: Send {
    fn set_level(&self, asserted: bool);
}

/// A monotonic source of nanoseconds, for the PM timer.
pub type NanosSource = Box<dyn Fn() -> u64 + Send>;

/// The host's monotonic clock, counted from the call.
pub fn host_nanos() -> NanosSource {
    let origin = Instant::now();
    Box::new(move || u64::try_from(origin.elapsed().as_nanos()).unwrap_or(u64::MAX))
}

/// The PM1a blocks and the PM timer, at [`PM_BASE`].
pub struct AcpiPm {
    sts: u16,
    en: u16,
    cnt: u16,
    sci_asserted: bool,
    sci: Box<dyn IrqLevel>,
    power: Arc<dyn PowerControl>,
    now_ns: NanosSource,
}

impl AcpiPm {
    pub fn new(sci: Box<dyn IrqLevel>, power: Arc<dyn PowerControl>, now_ns: NanosSource) -> Self {
        Self { sts: 0, en: 0, cnt: SCI_EN, sci_asserted: false, sci, power, now_ns }
    }

    /// A press of the fixed-feature power button: the guest sees PWRBTN_STS
    /// and, if it enabled the event, an SCI.
    pub fn press_power_button(&mut self) {
        self.sts |= PWRBTN_STS;
        self.update_sci();
    }

    /// The timer's 32-bit count: 3.579545 MHz since the clock's origin, wrapping.
    fn timer(&self) -> u32 {
        let ticks = u128::from((self.now_ns)()) * u128::from(PM_TIMER_HZ) / 1_000_000_000;
        ticks as u32
    }

    /// The block as the guest sees it, with the timer read once per access.
    fn registers(&self) -> [u8; PM_PORTS as usize] {
        let mut r = [0u8; PM_PORTS as usize];
        let mut put = |at: usize, bytes: &[u8]| {
            if let Some(dst) = r.get_mut(at..at + bytes.len()) {
                dst.copy_from_slice(bytes);
            }
        };
        put(0, &self.sts.to_le_bytes());
        put(2, &self.en.to_le_bytes());
        put(4, &self.cnt.to_le_bytes());
        put(8, &self.timer().to_le_bytes());
        r
    }

    fn write_byte(&mut self, offset: u64, v: u8) {
        match offset {
            0 => self.sts &= !(u16::from(v) & STS_BITS),
            1 => self.sts &= !((u16::from(v) << 8) & STS_BITS),
            2 => self.en = (self.en & 0xFF00) | (u16::from(v) & EVENT_BITS),
            3 => self.en = (self.en & 0x00FF) | ((u16::from(v) << 8) & EVENT_BITS),
            4 => self.cnt = (self.cnt & 0xFF00) | (u16::from(v) & CNT_KEPT) | SCI_EN,
            5 => self.write_cnt_high(v),
            // The timer is read-only; the gap at 6-7 is reserved.
            _ => {}
        }
    }

    /// SLP_TYP and SLP_EN: entering S5 powers the machine off.
    fn write_cnt_high(&mut self, v: u8) {
        self.cnt = (self.cnt & 0x00FF) | ((u16::from(v) << 8) & CNT_KEPT);
        if v & SLP_EN_HIGH_BYTE == 0 {
            return;
        }
        let slp_typ = (v >> SLP_TYP_SHIFT) & 0b111;
        if slp_typ == SLP_TYP_S5 {
            tracing::info!("ACPI: guest entered S5 (soft off)");
            self.power.power_off();
        } else {
            tracing::warn!("ACPI: guest asked for sleep type {slp_typ}, which the DSDT does not offer; ignored");
        }
    }

    fn update_sci(&mut self) {
        let level = self.sts & self.en & EVENT_BITS != 0;
        if level != self.sci_asserted {
            self.sci_asserted = level;
            self.sci.set_level(level);
        }
    }
}

impl BusDevice for AcpiPm {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        let regs = self.registers();
        for (i, b) in data.iter_mut().enumerate() {
            let at = usize::try_from(offset).ok().and_then(|o| o.checked_add(i));
            *b = at.and_then(|at| regs.get(at)).copied().unwrap_or(0xFF);
        }
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        for (i, v) in data.iter().enumerate() {
            self.write_byte(offset.saturating_add(i as u64), *v);
        }
        self.update_sci();
    }
}

/// The PCI configuration ports (0xCF8-0xCFF) with the reset control register:
/// a byte access to 0xCF9 is the RCR, everything else goes to `inner`, as on
/// the PIIX/ICH chipsets where only dword accesses to 0xCF8 hit CONFIG_ADDRESS.
pub struct ResetControl<D> {
    inner: D,
    rcr: u8,
    power: Arc<dyn PowerControl>,
}

/// Offset of 0xCF9 in the configuration-port range.
const RCR_OFFSET: u64 = 1;

impl<D: BusDevice> ResetControl<D> {
    pub fn new(inner: D, power: Arc<dyn PowerControl>) -> Self {
        Self { inner, rcr: 0, power }
    }
}

impl<D: BusDevice> BusDevice for ResetControl<D> {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        match data {
            [b] if offset == RCR_OFFSET => *b = self.rcr,
            _ => self.inner.read(offset, data),
        }
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        match data {
            [v] if offset == RCR_OFFSET => {
                self.rcr = v & RCR_KEPT;
                if v & RST_CPU != 0 {
                    tracing::info!("ACPI: guest reset the machine (port 0xCF9 = {v:#04x})");
                    self.power.reset();
                }
            }
            _ => self.inner.write(offset, data),
        }
    }
}

#[cfg(test)]
mod tests;
