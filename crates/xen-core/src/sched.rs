//! `HYPERVISOR_sched_op` (`public/sched.h`): yield, block, poll and shutdown.

use xenkvm_xen_abi::errno::XenErrno;
use xenkvm_xen_abi::sched::*;
use xenkvm_xen_abi::vcpu::{RUNSTATE_BLOCKED, RUNSTATE_RUNNING};
use xenkvm_xen_abi::xen::HYPERVISOR_SCHED_OP;

use crate::domain::Domain;
use crate::guest::GuestView;
use crate::hypercall::{HypercallRequest, Outcome, ShutdownReason, Wait};
use crate::paging::PagingState;

impl Domain {
    pub(crate) fn sched_op(&mut self, req: &HypercallRequest) -> Outcome {
        let (cmd, arg) = (req.arg(0), req.arg(1));
        match cmd {
            SCHEDOP_YIELD => Outcome::Return(0),
            SCHEDOP_BLOCK => self.begin_wait(req, Wait { deadline_ns: None, ports: Vec::new() }),
            SCHEDOP_SHUTDOWN => match GuestView::new(&self.mem, req.paging).read_obj::<SchedShutdown>(arg) {
                Ok(s) => self.shutdown(s.reason),
                Err(e) => Outcome::Return(e.to_ret()),
            },
            SCHEDOP_POLL => match self.poll_args(req, arg) {
                Ok(Some(wait)) => self.begin_wait(req, wait),
                Ok(None) => Outcome::Return(0),
                Err(e) => Outcome::Return(e.to_ret()),
            },
            SCHEDOP_SHUTDOWN_CODE => match GuestView::new(&self.mem, req.paging).read_obj::<SchedShutdown>(arg) {
                // Only recorded for a later crash report by Xen; nothing to do here.
                Ok(_) => Outcome::Return(0),
                Err(e) => Outcome::Return(e.to_ret()),
            },
            // Acting on other domains or pinning needs privilege a guest lacks.
            SCHEDOP_REMOTE_SHUTDOWN | SCHEDOP_PIN_OVERRIDE => Outcome::Return(XenErrno::Eperm.to_ret()),
            _ => {
                self.report_unknown(HYPERVISOR_SCHED_OP, cmd, "sched_op sub-op");
                Outcome::Return(XenErrno::Enosys.to_ret())
            }
        }
    }

    /// Xen narrows the reason to 8 bits and hands any value to the toolstack.
    fn shutdown(&mut self, reason: u32) -> Outcome {
        let code = reason as u8;
        let r = match u32::from(code) {
            SHUTDOWN_POWEROFF => ShutdownReason::Poweroff,
            SHUTDOWN_REBOOT => ShutdownReason::Reboot,
            SHUTDOWN_CRASH => ShutdownReason::Crash,
            SHUTDOWN_WATCHDOG => ShutdownReason::Watchdog,
            SHUTDOWN_SOFT_RESET => ShutdownReason::SoftReset,
            SHUTDOWN_SUSPEND => {
                // No toolstack saves the guest: report the suspend as cancelled
                // (return 1), which tells the guest to carry on where it was.
                tracing::warn!("guest asked to suspend; not supported, resuming it at once (suspend cancelled)");
                return Outcome::Return(1);
            }
            _ => ShutdownReason::Other(code),
        };
        Outcome::Shutdown(r)
    }

    /// Validates a `sched_poll`. `None` means a port is already pending.
    fn poll_args(&self, req: &HypercallRequest, arg: u64) -> Result<Option<Wait>, XenErrno> {
        let view = GuestView::new(&self.mem, req.paging);
        let (ports_ptr, nr_ports, timeout) = if req.compat() {
            let p: CompatSchedPoll = view.read_obj(arg)?;
            (u64::from(p.ports), p.nr_ports, p.timeout)
        } else {
            let p: SchedPoll = view.read_obj(arg)?;
            (p.ports, p.nr_ports, p.timeout)
        };
        if nr_ports > SCHED_POLL_MAX_PORTS {
            return Err(XenErrno::Einval);
        }
        let mut ports = Vec::with_capacity(nr_ports as usize);
        for i in 0..u64::from(nr_ports) {
            let mut b = [0u8; 4];
            view.read_bytes(ports_ptr.wrapping_add(i * 4), &mut b)?;
            let port = u32::from_le_bytes(b);
            if port >= self.max_ports() {
                return Err(XenErrno::Einval);
            }
            if self.port_pending(port) {
                return Ok(None);
            }
            ports.push(port);
        }
        Ok(Some(Wait { deadline_ns: (timeout != 0).then_some(timeout), ports }))
    }

    fn begin_wait(&mut self, req: &HypercallRequest, wait: Wait) -> Outcome {
        // A due timer fires first: its event may be what ends the wait.
        let now = self.now_ns();
        self.fire_vcpu_timers(req.vcpu, now);
        if self.wait_done(req.vcpu, &wait) {
            return Outcome::Return(0);
        }
        if let Some(v) = self.events.vcpus.get_mut(req.vcpu as usize) {
            v.wait = Some(wait.clone());
        }
        self.set_runstate(req.vcpu, RUNSTATE_BLOCKED, req.paging);
        Outcome::Wait(wait)
    }

    /// Whether a blocked vCPU may resume: an awaited port (or, with no ports,
    /// any upcall) is pending, the deadline has passed, or one of the vCPU's
    /// Xen timers is due. [`Domain::wait_deadline`] says when to look again.
    pub fn wait_done(&self, vcpu: u32, wait: &Wait) -> bool {
        let event = if wait.ports.is_empty() {
            self.upcall_pending(vcpu)
        } else {
            wait.ports.iter().any(|p| self.port_pending(*p))
        };
        event || wait.deadline_ns.is_some_and(|d| self.now_ns() >= d) || self.timer_due(vcpu)
    }

    /// Completes a wait: the vCPU runs again; the value goes to rax.
    pub fn end_wait(&mut self, vcpu: u32, paging: PagingState) -> i64 {
        if let Some(v) = self.events.vcpus.get_mut(vcpu as usize) {
            v.wait = None;
        }
        let now = self.now_ns();
        self.fire_vcpu_timers(vcpu, now);
        self.set_runstate(vcpu, RUNSTATE_RUNNING, paging);
        0
    }
}
