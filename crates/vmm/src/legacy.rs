//! The legacy PC timers on the port bus (8254 PIT with port 0x61, CMOS RTC),
//! and the thread that raises their interrupts on time.
//!
//! The thread sleeps until the earliest interrupt either device has scheduled;
//! the devices wake it when the guest reprograms them. With nothing scheduled
//! (Linux stops the PIT once the Xen timer takes over) it just sleeps.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use xenkvm_devices::clock::{MonotonicClock, TimedIrq, WallClock};
use xenkvm_devices::pit::{Pit, SpeakerPort, PIT_BASE, PIT_PORTS, SPEAKER_PORT};
use xenkvm_devices::rtc::{RamSize, Rtc, RTC_BASE, RTC_IRQ, RTC_PORTS};
use xenkvm_devices::PioBus;

use crate::events::Signal;
use crate::irq::IrqLines;
use crate::vcpu::RunControl;
use crate::VmmError;

/// I/O APIC pin of ISA IRQ0 (the MP table routes it to pin 2, as PCs do).
const PIT_PIN: usize = 2;
/// Shortest sleep between passes: a guest programming a very fast timer gets
/// at most this rate of interrupts rather than a spinning thread.
const MIN_SLEEP: Duration = Duration::from_micros(100);
/// Sleep while nothing is scheduled (a guest change wakes the thread sooner).
const IDLE_SLEEP: Duration = Duration::from_secs(3600);

/// The timer devices and the signal that wakes their thread.
pub struct LegacyTimers {
    devices: Vec<Arc<Mutex<dyn TimedIrq>>>,
    signal: Arc<Signal>,
}

/// Puts the PIT (0x40-0x43, 0x61) and the RTC (0x70-0x71) on `bus`, with
/// CMOS memory bytes for `memory_bytes` of RAM.
pub fn attach(bus: &mut PioBus, lines: &IrqLines, memory_bytes: u64) -> Result<LegacyTimers, VmmError> {
    let pin = |pin| lines.line(pin);
    let pit = Arc::new(Mutex::new(Pit::new(MonotonicClock::new(), pin(PIT_PIN))));
    bus.insert(PIT_BASE.into(), PIT_PORTS.into(), pit.clone())?;
    bus.insert(SPEAKER_PORT.into(), 1, Arc::new(Mutex::new(SpeakerPort(pit.clone()))))?;
    let ram = RamSize::split(memory_bytes, xenkvm_boot::layout::MMIO_HOLE_START);
    let rtc = Arc::new(Mutex::new(Rtc::new(WallClock, pin(RTC_IRQ), ram)));
    bus.insert(RTC_BASE.into(), RTC_PORTS.into(), rtc.clone())?;
    let signal = Arc::new(Signal::default());
    let devices: Vec<Arc<Mutex<dyn TimedIrq>>> = vec![pit, rtc];
    for dev in &devices {
        let signal = signal.clone();
        if let Ok(mut d) = dev.lock() {
            d.set_waker(Box::new(move || signal.notify()));
        }
    }
    Ok(LegacyTimers { devices, signal })
}

impl LegacyTimers {
    /// What to notify to make the thread look at `control` again.
    pub fn signal(&self) -> Arc<Signal> {
        self.signal.clone()
    }

    /// The thread body: raises due interrupts and sleeps until the next one.
    pub fn run(&self, control: &RunControl) {
        while !control.stopping() {
            let seen = self.signal.current();
            let next = self.devices.iter().filter_map(|d| d.lock().ok()?.service()).min();
            let sleep = next.map_or(IDLE_SLEEP, |ns| Duration::from_nanos(ns).max(MIN_SLEEP));
            self.signal.wait(seen, sleep);
        }
    }
}

#[cfg(test)]
mod tests {
    use xenkvm_devices::ioapic::{Ioapic, MsiSink};

    use super::*;
    use crate::vcpu::GuestEnd;

    struct NoMsi;
    impl MsiSink for NoMsi {
        fn send_msi(&self, _address: u64, _data: u32) {}
    }

    fn wired(memory_bytes: u64) -> (PioBus, LegacyTimers) {
        let ioapic = Arc::new(Mutex::new(Ioapic::new(Arc::new(NoMsi))));
        let mut bus = PioBus::new();
        let timers = attach(&mut bus, &IrqLines::ioapic_only(ioapic), memory_bytes).unwrap();
        (bus, timers)
    }

    fn inb(bus: &PioBus, port: u16) -> u8 {
        let mut b = [0u8];
        bus.read(port.into(), &mut b);
        b[0]
    }

    fn cmos(bus: &PioBus, index: u8) -> u8 {
        bus.write(0x70, &[index]);
        inb(bus, 0x71)
    }

    #[test]
    fn ports_reach_the_pit_and_rtc() {
        let (bus, timers) = wired(8 << 30);
        let seen = timers.signal.current();
        // Channel 0 in mode 2: programming it wakes the thread.
        assert!(bus.write(0x43, &[0x34]));
        assert_ne!(timers.signal.current(), seen);
        // Read-back status of channel 0: null count, LSB/MSB, mode 2.
        bus.write(0x43, &[0xE2]);
        assert_eq!(inb(&bus, 0x40), 0x80 | 0x40 | 0x34);
        bus.write(0x61, &[0x03]);
        assert_eq!(inb(&bus, 0x61) & 0x0F, 0x03);
        assert_eq!(cmos(&bus, 0x0D), 0x80);
        // 5 GiB above 4 GiB, in 64 KiB units.
        assert_eq!([cmos(&bus, 0x5B), cmos(&bus, 0x5C), cmos(&bus, 0x5D)], [0x00, 0x40, 0x01]);
    }

    #[test]
    fn thread_returns_once_the_vm_stops() {
        let (_bus, timers) = wired(512 << 20);
        let control = RunControl::default();
        control.finish(GuestEnd::Timeout);
        timers.run(&control);
    }
}
