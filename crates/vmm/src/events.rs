//! The VMM's side of event channels: upcalls into the guest, wake-ups of
//! waiting vCPUs and backends, and the Xen timer thread.
//!
//! The Xen core calls these ports with the domain lock held, so they only
//! signal, send an MSI or drive a line; they never take the domain lock.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use xenkvm_devices::ioapic::Ioapic;
use xenkvm_xen_core::ports::{BackendNotify, CallbackLine, Upcall, UpcallVia};
use xenkvm_xen_core::Domain;

use crate::irq::KvmMsi;
use crate::vcpu::RunControl;
use xenkvm_devices::ioapic::MsiSink;

/// A generation counter with a condition variable: waiters sleep until it moves.
#[derive(Default)]
pub struct Signal {
    generation: Mutex<u64>,
    cond: Condvar,
}

impl Signal {
    pub fn notify(&self) {
        if let Ok(mut g) = self.generation.lock() {
            *g = g.wrapping_add(1);
        }
        self.cond.notify_all();
    }

    pub fn current(&self) -> u64 {
        self.generation.lock().map(|g| *g).unwrap_or(0)
    }

    /// Sleeps until the generation differs from `seen` or `limit` passes.
    pub fn wait(&self, seen: u64, limit: Duration) {
        let Ok(g) = self.generation.lock() else { return };
        let _ = self.cond.wait_timeout_while(g, limit, |g| *g == seen);
    }
}

/// Counters for sparse diagnostics (the first few events, then powers of two).
static RAISED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
static TIMERS_SET: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
static FIRED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// PCI INTx routing of the MP table: the platform device's INTA#.
pub struct IntxRoute {
    pub slot: u8,
    pub ioapic_pin: usize,
}

/// Implements the core's `Upcall` port.
pub struct VmmUpcall {
    pub msi: KvmMsi,
    pub ioapic: Arc<Mutex<Ioapic>>,
    pub intx: IntxRoute,
    /// Woken when a waiting vCPU should re-check its wait.
    pub waiters: Arc<Signal>,
    /// Woken when a timer deadline moved.
    pub timers: Arc<Signal>,
    /// Mirrors the callback line, so vCPU 0 checks it without the domain lock.
    pub line_asserted: Arc<AtomicBool>,
    /// The line is asserted and no EOI will tell when to lower it (it is not
    /// a level-triggered, unmasked I/O APIC pin: the PIC, say): vCPU 0 polls.
    pub line_polled: Arc<AtomicBool>,
    /// The callback is one source of its line among the devices on it.
    pub levels: Arc<crate::irq::SharedLevels>,
}

impl Upcall for VmmUpcall {
    fn raise(&self, vcpu: u32, via: UpcallVia) {
        let n = RAISED.fetch_add(1, Ordering::Relaxed);
        if n < 4 || n.is_power_of_two() {
            tracing::info!("upcall #{n} to vCPU {vcpu} via {via:?}");
        }
        // A fixed, edge-triggered MSI to the vCPU's local APIC (APIC id = vCPU id).
        let vector = match via {
            UpcallVia::LapicVector(v) | UpcallVia::CallbackVector(v) => v,
        };
        self.msi.send_msi(0xFEE0_0000 | (u64::from(vcpu & 0xFF) << 12), u32::from(vector));
        self.waiters.notify();
    }

    fn set_line(&self, line: CallbackLine, asserted: bool) {
        let pin = match line {
            CallbackLine::Gsi(g) => usize::from(g),
            CallbackLine::PciIntx { dev, pin: 0 } if dev == self.intx.slot => self.intx.ioapic_pin,
            CallbackLine::PciIntx { dev, pin } => {
                tracing::warn!("callback via PCI {dev:02x} INT{} has no I/O APIC route", (b'A' + pin) as char);
                return;
            }
        };
        self.line_asserted.store(asserted, Ordering::SeqCst);
        if let Ok(mut io) = self.ioapic.lock() {
            self.line_polled.store(asserted && !io.level_unmasked(pin), Ordering::SeqCst);
            let high = self.levels.set(pin, crate::irq::CALLBACK_SOURCE, asserted);
            io.set_irq(pin, high);
        }
    }

    fn kick(&self, _vcpu: u32) {
        self.waiters.notify();
    }

    fn timer_changed(&self, vcpu: u32, deadline_ns: Option<u64>) {
        let n = TIMERS_SET.fetch_add(1, Ordering::Relaxed);
        if n < 4 || n.is_power_of_two() {
            tracing::info!("timer #{n} of vCPU {vcpu}: deadline {deadline_ns:?}");
        }
        self.timers.notify();
    }
}

/// Implements the core's `BackendNotify` port: records which backend ports
/// the guest kicked and wakes the backend threads.
#[derive(Default)]
pub struct Backends {
    pending: Mutex<BTreeSet<u32>>,
    pub signal: Signal,
}

impl Backends {
    /// Takes the kick of `port`, if there was one.
    pub fn take(&self, port: u32) -> bool {
        self.pending.lock().map(|mut p| p.remove(&port)).unwrap_or(false)
    }
}

impl BackendNotify for Backends {
    fn notify(&self, backend_port: u32) {
        if let Ok(mut p) = self.pending.lock() {
            p.insert(backend_port);
        }
        self.signal.notify();
    }
}

/// When a XenBus backend thread looks at the store again: after any change
/// (xenstored bumps `changes`), and at least once a second in case it missed one.
pub struct StoreRecheck {
    changes: Arc<std::sync::atomic::AtomicU64>,
    seen: Option<u64>,
    checked: std::time::Instant,
}

impl StoreRecheck {
    const EVERY: Duration = Duration::from_secs(1);

    pub fn new(changes: Arc<std::sync::atomic::AtomicU64>) -> Self {
        Self { changes, seen: None, checked: std::time::Instant::now() }
    }

    /// Whether it is time; if so, the next look is due after the next change.
    pub fn due(&mut self) -> bool {
        let now = self.changes.load(Ordering::Acquire);
        if self.seen == Some(now) && self.checked.elapsed() < Self::EVERY {
            return false;
        }
        self.seen = Some(now);
        self.checked = std::time::Instant::now();
        true
    }
}

/// Runs one backend until the VM stops. `pass` serves its ring once, on a
/// kick of backend `port` by the guest (or every `poll`, in case a kick was
/// missed), and says whether the guest's end of the channel should be told.
pub fn serve_backend(
    port: u32,
    domain: &Mutex<Domain>,
    backends: &Backends,
    control: &RunControl,
    poll: Duration,
    mut pass: impl FnMut() -> bool,
) {
    while !control.stopping() {
        let seen = backends.signal.current();
        backends.take(port);
        if pass() {
            if let Ok(mut d) = domain.lock() {
                let _ = d.backend_send(port);
            }
        }
        backends.signal.wait(seen, poll);
    }
}

/// Longest sleep of the timer thread: it re-plans, and re-raises upcalls the
/// guest has not taken, at least this often.
const TIMER_SLICE: Duration = Duration::from_millis(20);

/// The Xen timer thread: fires due timers (VIRQ_TIMER) and sleeps until the
/// next deadline or until a vCPU re-arms.
pub fn run_timers(domain: Arc<Mutex<Domain>>, timers: Arc<Signal>, control: Arc<RunControl>) {
    while !control.stopping() {
        let seen = timers.current();
        let sleep = {
            let Ok(mut d) = domain.lock() else { return };
            let now = d.now_ns();
            let n = FIRED.fetch_add(1, Ordering::Relaxed);
            if n.is_power_of_two() && n >= 64 {
                tracing::info!("timer thread pass #{n} at {now} ns, next {:?}", d.next_timer_deadline());
            }
            let next = d.fire_timers(now);
            d.reassert_upcalls();
            match next {
                Some(next) => Duration::from_nanos(next.saturating_sub(d.now_ns())).min(TIMER_SLICE),
                None => TIMER_SLICE,
            }
        };
        timers.wait(seen, sleep);
    }
}
