//! The vCPU threads: each runs its vCPU until the guest stops, handing exits to
//! devices and hypercalls to the Xen domain.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use xenkvm_devices::ioapic::Ioapic;

use crate::builder::{Signals, CONSOLE_GFN, XENSTORE_GFN};
use xenkvm_kvm::kick::VcpuKicker;
use xenkvm_kvm::xen::XenTimeAttrs;
use xenkvm_devices::{MmioBus, PioBus};
use xenkvm_kvm::{ExitHandler, KvmVcpu, VcpuEvent};
use xenkvm_xen_core::{Domain, HypercallRequest, Outcome, ShutdownReason, Wait};

/// Why the guest stopped running.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GuestEnd {
    Shutdown(ShutdownReason),
    TripleFault,
    /// `hlt` with interrupts disabled: nothing can wake the vCPU.
    HaltedForever(u32),
    Timeout,
    Fatal(String),
    /// A QMP client sent `quit`.
    HostQuit,
    /// A QMP client sent `system_reset`.
    HostReset,
}

/// State the vCPU threads and the main thread share.
#[derive(Default)]
pub struct RunControl {
    stop: AtomicBool,
    end: Mutex<Option<GuestEnd>>,
    changed: Condvar,
}

impl RunControl {
    /// Records how the guest ended (the first report wins) and stops all vCPUs.
    pub fn finish(&self, end: GuestEnd) {
        if let Ok(mut slot) = self.end.lock() {
            slot.get_or_insert(end);
        }
        self.stop.store(true, Ordering::SeqCst);
        self.changed.notify_all();
    }

    /// Whether the main thread stopped the guest at its wall-clock limit.
    pub fn timed_out(&self) -> bool {
        self.end.lock().is_ok_and(|e| *e == Some(GuestEnd::Timeout))
    }

    pub fn stopping(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    /// Waits until the guest ends or `limit` passes.
    pub fn wait(&self, limit: Option<Duration>) -> GuestEnd {
        let deadline = limit.map(|l| std::time::Instant::now() + l);
        let Ok(mut slot) = self.end.lock() else { return GuestEnd::Fatal("run state poisoned".into()) };
        loop {
            if let Some(end) = slot.clone() {
                return end;
            }
            let step = match deadline {
                Some(d) => match d.checked_duration_since(std::time::Instant::now()) {
                    Some(left) => left,
                    None => return GuestEnd::Timeout,
                },
                None => Duration::from_secs(3600),
            };
            slot = match self.changed.wait_timeout(slot, step) {
                Ok((s, _)) => s,
                Err(_) => return GuestEnd::Fatal("run state poisoned".into()),
            };
        }
    }
}

/// Longest sleep between checks while a vCPU waits in SCHEDOP_block/poll
/// (kicks from the core end a sleep early).
const WAIT_SLICE: Duration = Duration::from_millis(50);

/// What a vCPU thread needs to handle its exits.
pub struct Handler {
    pub bus: PioBus,
    pub mmio: MmioBus,
    pub ioapic: Arc<Mutex<Ioapic>>,
    pub domain: Arc<Mutex<Domain>>,
    pub control: Arc<RunControl>,
    pub hypercall_msr: u32,
    pub signals: Signals,
    pub time_attrs: Option<Arc<XenTimeAttrs>>,
    pub kicker: Arc<VcpuKicker>,
    /// Backend ports of the toolstack's xenstore and console channels, which
    /// survive a soft reset.
    pub keep_ports: [u32; 2],
}

impl Handler {
    fn domain(&self) -> Option<std::sync::MutexGuard<'_, Domain>> {
        match self.domain.lock() {
            Ok(d) => Some(d),
            Err(_) => {
                self.control.finish(GuestEnd::Fatal("Xen state lock poisoned".into()));
                None
            }
        }
    }

    /// Blocks the calling vCPU (without holding the domain lock) until the wait
    /// is over, then completes the hypercall.
    /// SHUTDOWN_soft_reset (kexec): the Xen state is reset as a toolstack
    /// does it, and the guest carries on (the hypercall returns 0).
    fn soft_reset(&mut self) -> Option<i64> {
        let mut d = self.domain()?;
        if let Err(e) = d.soft_reset(&self.keep_ports) {
            drop(d);
            self.control.finish(GuestEnd::Fatal(format!("soft reset failed: {e}")));
            return None;
        }
        if let Err(e) = d.seed_reserved(Some(CONSOLE_GFN), Some(XENSTORE_GFN)) {
            tracing::warn!("soft reset: cannot re-seed the reserved grants: {e:?}");
        }
        drop(d);
        self.signals.soft_resets.fetch_add(1, Ordering::AcqRel);
        self.signals.backends.signal.notify();
        Some(0)
    }

    fn wait(&mut self, req: &HypercallRequest, wait: &Wait) -> Option<i64> {
        loop {
            if self.control.stopping() {
                return None;
            }
            let seen = self.signals.waiters.current();
            let d = self.domain()?;
            if d.wait_done(req.vcpu, wait) {
                break;
            }
            let left = d.wait_deadline(req.vcpu, wait).map(|dl| Duration::from_nanos(dl.saturating_sub(d.now_ns())));
            drop(d);
            self.signals.waiters.wait(seen, left.map_or(WAIT_SLICE, |l| l.min(WAIT_SLICE)));
        }
        Some(self.domain()?.end_wait(req.vcpu, req.paging))
    }
}

impl ExitHandler for Handler {
    fn pio_read(&mut self, port: u16, data: &mut [u8]) {
        self.bus.read(port.into(), data);
    }

    fn pio_write(&mut self, port: u16, data: &[u8]) {
        if !self.bus.write(port.into(), data) {
            tracing::debug!("write to unclaimed port {port:#x}");
        }
    }

    fn mmio_read(&mut self, addr: u64, data: &mut [u8]) {
        self.mmio.read(addr, data);
    }

    fn mmio_write(&mut self, addr: u64, data: &[u8]) {
        if !self.mmio.write(addr, data) {
            tracing::debug!("write to unclaimed MMIO {addr:#x}");
        }
    }

    fn ioapic_eoi(&mut self, vector: u8) {
        // The callback line comes down at its EOI if the guest has cleared
        // evtchn_upcall_pending by then (Linux does, in the handler); if new
        // events came, it stays high and the EOI fires it again.
        if self.signals.line_asserted.load(std::sync::atomic::Ordering::SeqCst) {
            if let Ok(mut d) = self.domain.lock() {
                d.sync_callback_line();
            }
        }
        if let Ok(mut io) = self.ioapic.lock() {
            io.end_of_interrupt(vector);
        }
    }

    fn hypercall(&mut self, req: &HypercallRequest) -> Option<i64> {
        let outcome = self.domain()?.hypercall(req);
        match outcome {
            Outcome::Return(v) => Some(v),
            Outcome::Wait(w) => self.wait(req, &w),
            Outcome::Shutdown(ShutdownReason::SoftReset) => self.soft_reset(),
            Outcome::Shutdown(r) => {
                self.control.finish(GuestEnd::Shutdown(r));
                None
            }
        }
    }

    fn wrmsr(&mut self, index: u32, value: u64, compat: bool) -> bool {
        if index != self.hypercall_msr {
            return false;
        }
        let Some(mut d) = self.domain() else { return false };
        match d.write_hypercall_page(value, compat) {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!("guest hypercall MSR write {value:#x} refused: {e}");
                false
            }
        }
    }
}

/// Logs the top of a stopped vCPU's stack (return addresses show where a hung
/// guest is); nothing if it cannot be read.
fn log_stack(vcpu: &KvmVcpu, domain: &Mutex<Domain>) {
    let Some((rsp, paging)) = vcpu.stack_and_paging() else { return };
    let Ok(d) = domain.lock() else { return };
    let view = xenkvm_xen_core::guest::GuestView::new(d.phys(), paging);
    let mut words = Vec::new();
    for i in 0..48u64 {
        let mut b = [0u8; 8];
        if view.read_bytes(rsp.wrapping_add(i * 8), &mut b).is_err() {
            break;
        }
        words.push(format!("{:#x}", u64::from_le_bytes(b)));
    }
    tracing::warn!("vCPU {} stack at {rsp:#x}: {}", vcpu.id, words.join(" "));
}

/// The body of a vCPU thread.
pub fn run_vcpu(mut vcpu: KvmVcpu, mut handler: Handler) {
    if let Ok(mut d) = handler.domain.lock() {
        d.vcpu_started(vcpu.id);
    }
    let control = handler.control.clone();
    handler.kicker.register_current(vcpu.id);
    while !control.stopping() {
        if let Some(t) = &handler.time_attrs {
            t.apply(vcpu.id);
        }
        if let (crate::pic::PIC_VCPU, Some(pic)) = (vcpu.id, &handler.signals.pic) {
            crate::pic::offer(&mut vcpu, pic);
        }
        let event = match vcpu.run_once(&mut handler) {
            Ok(e) => e,
            Err(e) => VcpuEvent::Fatal(e.to_string()),
        };
        if vcpu.id == 0 && handler.signals.line_polled.load(std::sync::atomic::Ordering::SeqCst) {
            // No EOI will come for this line (see `ioapic_eoi`): the guest
            // clears evtchn_upcall_pending itself, lower the line then.
            if let Ok(mut d) = handler.domain.lock() {
                d.sync_callback_line();
            }
        }
        match event {
            VcpuEvent::Continue | VcpuEvent::Interrupted | VcpuEvent::Stop | VcpuEvent::InterruptWindow => {}
            VcpuEvent::Halted { if_flag: false } => control.finish(GuestEnd::HaltedForever(vcpu.id)),
            // Nothing delivers interrupts yet: treat a halt as a pause and retry.
            VcpuEvent::Halted { if_flag: true } => std::thread::sleep(Duration::from_millis(1)),
            VcpuEvent::TripleFault => control.finish(GuestEnd::TripleFault),
            VcpuEvent::Fatal(msg) => control.finish(GuestEnd::Fatal(format!("vCPU {}: {msg}", vcpu.id))),
        }
    }
    handler.kicker.unregister(vcpu.id);
    if control.timed_out() {
        tracing::warn!("stopped at the wall-clock limit: {}", vcpu.describe());
        log_stack(&vcpu, &handler.domain);
    }
}
