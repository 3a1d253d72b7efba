//! Xen's per-vCPU timers (`public/vcpu.h`, `HYPERVISOR_set_timer_op`): a
//! singleshot and a periodic timer per vCPU, in Xen system nanoseconds. Expiry
//! sends `VIRQ_TIMER` to the vCPU (Xen's `send_timer_event`), if bound.
//!
//! The timers are plain data. The core tells the VMM when a vCPU's earliest
//! deadline changes ([`Upcall::timer_changed`](crate::ports::Upcall)); the VMM's
//! timer thread calls [`Domain::fire_timers`] once
//! [`Domain::next_timer_deadline`] has passed. A vCPU waiting in SCHEDOP_block
//! or SCHEDOP_poll also resumes when its own timer is due
//! ([`Domain::wait_done`]), and its due timers fire before it blocks and when
//! it resumes.

use xenkvm_xen_abi::errno::XenErrno;
use xenkvm_xen_abi::event_channel::VIRQ_TIMER;
use xenkvm_xen_abi::vcpu::*;

use crate::domain::Domain;
use crate::guest::GuestView;
use crate::hypercall::{HypercallRequest, Wait};

/// One vCPU's timers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VcpuTimers {
    /// The singleshot deadline, if armed.
    pub singleshot: Option<u64>,
    /// The periodic timer's period (0: stopped).
    pub period: u64,
    /// System time of the last periodic event (Xen's `periodic_last_event`,
    /// which survives stopping the timer).
    pub periodic_last: u64,
    /// The periodic timer's next deadline while it runs.
    pub periodic_next: Option<u64>,
}

impl VcpuTimers {
    /// The earliest armed deadline.
    pub fn deadline(&self) -> Option<u64> {
        match (self.singleshot, self.periodic_next) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

/// Shortest period `VCPUOP_set_periodic_timer` accepts (`MILLISECS(1)`).
const MIN_PERIOD_NS: u64 = 1_000_000;
/// Longest (`STIME_DELTA_MAX`).
const MAX_PERIOD_NS: u64 = u64::MAX >> 2;
/// `set_timer_op` turns absurd timeouts into this delay (Xen's "Linux workaround").
const HUGE_TIMEOUT_DELAY_NS: i64 = 100_000_000;
/// The first Xen (4.18) that ignores `VCPU_SSHOTTMR_future`.
const XEN_IGNORES_SSHOTTMR_FUTURE: u32 = 0x4_0012;

impl Domain {
    /// The timer sub-ops of `HYPERVISOR_vcpu_op` for target `vcpu` (already
    /// checked to exist), in Xen's `common_vcpu_op` order.
    pub(crate) fn vcpu_timer_op(&mut self, req: &HypercallRequest, cmd: u64, vcpu: u32, arg: u64) -> Result<i64, XenErrno> {
        let view = GuestView::new(&self.mem, req.paging);
        match cmd {
            VCPUOP_SET_PERIODIC_TIMER => {
                let set: VcpuSetPeriodicTimer = view.read_obj(arg)?;
                if !(MIN_PERIOD_NS..=MAX_PERIOD_NS).contains(&set.period_ns) {
                    return Err(XenErrno::Einval);
                }
                self.set_periodic_timer(vcpu, set.period_ns);
            }
            VCPUOP_STOP_PERIODIC_TIMER => self.set_periodic_timer(vcpu, 0),
            VCPUOP_SET_SINGLESHOT_TIMER => {
                // Only a vCPU's own singleshot timer may be set.
                if vcpu != req.vcpu {
                    return Err(XenErrno::Einval);
                }
                let (timeout, flags) = if req.compat() {
                    let s: CompatVcpuSetSingleshotTimer = view.read_obj(arg)?;
                    (s.timeout_abs_ns, s.flags)
                } else {
                    let s: VcpuSetSingleshotTimer = view.read_obj(arg)?;
                    (s.timeout_abs_ns, s.flags)
                };
                let now = self.now_ns();
                if timeout < now
                    && flags & VCPU_SSHOTTMR_FUTURE != 0
                    && self.cfg.xen_version < XEN_IGNORES_SSHOTTMR_FUTURE
                {
                    return Err(XenErrno::Etime);
                }
                // Past deadlines (including those Xen's signed time sees as
                // negative) fire at once.
                self.set_singleshot(vcpu, timeout, now);
            }
            VCPUOP_STOP_SINGLESHOT_TIMER => {
                if vcpu != req.vcpu {
                    return Err(XenErrno::Einval);
                }
                self.update_timers(vcpu, |t| t.singleshot = None);
            }
            _ => return Err(XenErrno::Enosys),
        }
        Ok(0)
    }

    /// `HYPERVISOR_set_timer_op`: the caller's singleshot timer at an absolute
    /// signed time; 0 stops it. Compat callers pass the value as two halves.
    pub(crate) fn set_timer_op(&mut self, req: &HypercallRequest) -> Result<i64, XenErrno> {
        let timeout = if req.compat() { (req.arg(1) << 32 | (req.arg(0) & 0xFFFF_FFFF)) as i64 } else { req.arg(0) as i64 };
        let now = self.now_ns();
        let offset = timeout.wrapping_sub(now as i64);
        if timeout == 0 {
            self.update_timers(req.vcpu, |t| t.singleshot = None);
        } else if timeout < 0 || (offset > 0 && offset >> 50 != 0) {
            // Wrapped or more than ~13 days away: fire in 100 ms instead.
            tracing::info!("vcpu {}: huge set_timer_op timeout {timeout:#x}; firing in 100 ms", req.vcpu);
            let at = now.saturating_add(HUGE_TIMEOUT_DELAY_NS as u64);
            self.update_timers(req.vcpu, |t| t.singleshot = Some(at));
        } else {
            self.set_singleshot(req.vcpu, timeout as u64, now);
        }
        Ok(0)
    }

    /// Arms `vcpu`'s singleshot timer, or fires it at once if `timeout` passed.
    fn set_singleshot(&mut self, vcpu: u32, timeout: u64, now: u64) {
        if timeout < now || (timeout as i64) < 0 {
            self.update_timers(vcpu, |t| t.singleshot = None);
            self.send_virq(vcpu, VIRQ_TIMER);
        } else {
            self.update_timers(vcpu, |t| t.singleshot = Some(timeout));
        }
    }

    /// Xen's `vcpu_set_periodic_timer` (0 stops the timer).
    fn set_periodic_timer(&mut self, vcpu: u32, period: u64) {
        let now = self.now_ns();
        self.update_timers(vcpu, |t| {
            t.period = period;
            t.periodic_next = None;
        });
        if period != 0 {
            self.periodic_work(vcpu, now);
        }
    }

    /// Xen's `vcpu_periodic_timer_work`: sends the event if a period has passed
    /// since the last one, then re-arms.
    fn periodic_work(&mut self, vcpu: u32, now: u64) {
        let Some(t) = self.timers(vcpu) else { return };
        if t.period == 0 {
            return;
        }
        let mut next = t.periodic_last.saturating_add(t.period);
        if now >= next {
            self.send_virq(vcpu, VIRQ_TIMER);
            next = now.saturating_add(t.period);
            self.update_timers(vcpu, |t| t.periodic_last = now);
        }
        self.update_timers(vcpu, |t| t.periodic_next = Some(next));
    }

    fn timers(&self, vcpu: u32) -> Option<VcpuTimers> {
        self.events.vcpus.get(vcpu as usize).map(|v| v.timers)
    }

    /// Changes `vcpu`'s timers and tells the VMM if the earliest deadline moved.
    fn update_timers(&mut self, vcpu: u32, f: impl FnOnce(&mut VcpuTimers)) {
        let Some(t) = self.events.vcpus.get_mut(vcpu as usize).map(|v| &mut v.timers) else { return };
        let before = t.deadline();
        f(t);
        let after = t.deadline();
        if before != after {
            self.ports.upcall.timer_changed(vcpu, after);
        }
    }

    /// `vcpu`'s earliest Xen timer deadline (system ns), if any is armed.
    pub fn timer_deadline(&self, vcpu: u32) -> Option<u64> {
        self.timers(vcpu).and_then(|t| t.deadline())
    }

    /// The earliest timer deadline of the domain and its vCPU.
    pub fn next_timer_deadline(&self) -> Option<(u32, u64)> {
        (0..self.cfg.vcpus).filter_map(|v| Some((v, self.timer_deadline(v)?))).min_by_key(|&(_, d)| d)
    }

    /// Fires every timer due at system time `now`: a singleshot timer disarms, a
    /// periodic one re-arms, and each sends `VIRQ_TIMER` to its vCPU. Returns the
    /// next deadline.
    pub fn fire_timers(&mut self, now: u64) -> Option<u64> {
        for vcpu in 0..self.cfg.vcpus {
            self.fire_vcpu_timers(vcpu, now);
        }
        self.next_timer_deadline().map(|(_, d)| d)
    }

    /// Fires `vcpu`'s timers that are due at `now`.
    pub(crate) fn fire_vcpu_timers(&mut self, vcpu: u32, now: u64) {
        let Some(t) = self.timers(vcpu) else { return };
        if t.singleshot.is_some_and(|d| d <= now) {
            self.update_timers(vcpu, |t| t.singleshot = None);
            self.send_virq(vcpu, VIRQ_TIMER);
        }
        if t.periodic_next.is_some_and(|d| d <= now) {
            self.periodic_work(vcpu, now);
        }
    }

    /// Whether one of `vcpu`'s timers is due.
    pub(crate) fn timer_due(&self, vcpu: u32) -> bool {
        self.timer_deadline(vcpu).is_some_and(|d| self.now_ns() >= d)
    }

    /// When a vCPU waiting for `wait` must look again at the latest: the wait's
    /// own deadline or the vCPU's next timer, whichever comes first.
    pub fn wait_deadline(&self, vcpu: u32, wait: &Wait) -> Option<u64> {
        match (wait.deadline_ns, self.timer_deadline(vcpu)) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}
