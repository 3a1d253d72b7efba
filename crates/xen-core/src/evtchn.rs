//! Event channels: `HYPERVISOR_event_channel_op` (`public/event_channel.h`), the
//! 2-level delivery into shared_info and vcpu_info, and the upcall that follows.
//! Errors and their order follow Xen's `common/event_channel.c` and `event_2l.c`.
//!
//! **Port tables.** The guest's ports are a plain `Vec<Port>` indexed by port
//! number. Like Xen it grows in buckets of [`EVTCHNS_PER_BUCKET`]: a port beyond
//! the last bucket is invalid (-EINVAL), a port inside it may be free
//! (`EVTCHNSTAT_closed`). Port 0 is reserved. Ports are allocated lowest first,
//! below both the ABI limit ([`Domain::max_ports`]: 4096 ports with a 64-bit
//! shared_info, 1024 compat) and the configurable cap
//! ([`Domain::set_max_evtchn_port`], default xl's 1023).
//!
//! **Backends as domain 0.** The VMM's PV backends play domain 0 for the guest.
//! Their ports live in a second, smaller table in the same `EventState`, with
//! their own numbering (port 0 reserved). The guest reaches them as domain id 0:
//! `alloc_unbound(remote_dom = 0)` then [`Domain::backend_bind_interdomain`], or
//! [`Domain::backend_alloc_unbound`] then the guest's `bind_interdomain(0, port)`.
//! A guest `EVTCHNOP_send` on such a channel calls
//! [`BackendNotify::notify`](crate::ports::BackendNotify) with the backend's port;
//! [`Domain::backend_send`] goes the other way. Loopback channels (remote
//! `DOMID_SELF` or our own id) connect two ports of the guest's table.
//!
//! **Delivery** (`evtchn_2l_set_pending`): set the port's pending bit; if it was
//! clear and the port is unmasked, set bit `port / bits-per-word` in the target
//! vCPU's `evtchn_pending_sel` (its registered vcpu_info, else its shared_info
//! slot); if that was clear, set `evtchn_upcall_pending` and, if that was clear,
//! raise the upcall (`evtchn/deliver.rs`). Every step is an atomic
//! read-modify-write on memory the vCPUs use concurrently.

mod backend;
mod deliver;
pub use deliver::KERNEL_RESCUE_PASSES;

use xenkvm_xen_abi::errno::XenErrno;
use xenkvm_xen_abi::event_channel::*;
use xenkvm_xen_abi::xen::{DOMID_SELF, HYPERVISOR_EVENT_CHANNEL_OP};

use crate::domain::Domain;
use crate::guest::GuestView;
use crate::hypercall::{HypercallRequest, Wait};
use crate::ports::CallbackLine;
use crate::timer::VcpuTimers;

/// Ports per bucket: Xen allocates a page of 64-byte `struct evtchn` at a time.
pub const EVTCHNS_PER_BUCKET: u32 = 64;
/// Default highest port number (xl's `max_event_channels` default, 1023).
pub const DEFAULT_MAX_EVTCHN_PORT: u32 = 1023;
/// The domain id under which the guest reaches the VMM's backends.
pub const DOMID_BACKEND: u16 = 0;
/// Size of the backends' port table (port 0 reserved).
pub const MAX_BACKEND_PORTS: u32 = 4096;

/// The other end of an interdomain channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Remote {
    /// A port of the guest itself (loopback).
    Guest(u32),
    /// A port of the VMM's backends (domain 0).
    Backend(u32),
}

/// State of one guest port (Xen's `ECS_*`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum PortState {
    #[default]
    Free,
    Reserved,
    /// Waiting for `remote_dom` to bind.
    Unbound { remote_dom: u16 },
    Interdomain(Remote),
    /// Bound to a PIRQ (a GSI or MSI routed to an event channel).
    Pirq(u32),
    Virq(u32),
    Ipi,
}

/// One guest port.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Port {
    pub state: PortState,
    /// The vCPU whose selector and upcall a pending event raises.
    pub notify_vcpu: u32,
}

/// One port of the backends' table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum BackendPort {
    #[default]
    Free,
    Reserved,
    /// Accepts a binding from the guest.
    Unbound,
    Interdomain { guest_port: u32 },
}

/// Per-vCPU event state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VcpuEvents {
    /// Xen's `virq_to_evtchn`: the port bound to each VIRQ (0: none).
    pub virq_port: [u32; NR_VIRQS as usize],
    /// `HVMOP_set_evtchn_upcall_vector` (0: none).
    pub upcall_vector: u8,
    pub timers: VcpuTimers,
    /// What the vCPU waits for in SCHEDOP_block/poll, between `Outcome::Wait`
    /// and `end_wait`.
    pub wait: Option<Wait>,
    /// How many [`Domain::reassert_upcalls`] passes in a row found
    /// `evtchn_upcall_pending` set.
    pub pending_passes: u32,
}

/// All event-channel state of a domain, in plain data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventState {
    pub ports: Vec<Port>,
    pub backend: Vec<BackendPort>,
    pub vcpus: Vec<VcpuEvents>,
    /// Highest port number the guest may allocate (Xen's `max_evtchn_port`).
    pub max_port: u32,
    /// The callback line (GSI / PCI INTx) currently asserted, if any.
    pub asserted_line: Option<CallbackLine>,
}

impl EventState {
    pub fn new(vcpus: u32) -> Self {
        let mut ports = vec![Port::default(); EVTCHNS_PER_BUCKET as usize];
        if let Some(p) = ports.first_mut() {
            p.state = PortState::Reserved;
        }
        Self {
            ports,
            backend: vec![BackendPort::Reserved],
            vcpus: vec![VcpuEvents::default(); vcpus as usize],
            max_port: DEFAULT_MAX_EVTCHN_PORT,
            asserted_line: None,
        }
    }
}

/// Xen's VIRQ classes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum VirqType {
    Vcpu,
    Domain,
    Global,
}

fn virq_type(virq: u32) -> VirqType {
    match virq {
        VIRQ_TIMER | VIRQ_DEBUG | VIRQ_XENOPROF | VIRQ_XENPMU => VirqType::Vcpu,
        VIRQ_ARGO => VirqType::Domain,
        // Everything else, including x86's VIRQ_ARCH_* (VIRQ_MCA), is global.
        _ => VirqType::Global,
    }
}

/// Which domain an `evtchn_*` `dom` field names.
enum DomRef {
    Guest,
    Backend,
}

impl Domain {
    pub(crate) fn event_channel_op(&mut self, req: &HypercallRequest) -> Result<i64, XenErrno> {
        // Xen takes the command as an `int`.
        let (cmd, arg) = (req.arg(0) as u32, req.arg(1));
        let view = GuestView::new(&self.mem, req.paging);
        match cmd {
            EVTCHNOP_ALLOC_UNBOUND => {
                let mut a: EvtchnAllocUnbound = view.read_obj(arg)?;
                if let DomRef::Backend = self.evtchn_dom(a.dom)? {
                    return Err(XenErrno::Eperm);
                }
                let port = self.get_free_port()?;
                let remote_dom = if a.remote_dom == DOMID_SELF { self.cfg.domid } else { a.remote_dom };
                self.set_port(port, PortState::Unbound { remote_dom }, 0);
                a.port = port;
                self.write_back(req, arg, &a)
            }
            EVTCHNOP_BIND_INTERDOMAIN => {
                let mut b: EvtchnBindInterdomain = view.read_obj(arg)?;
                b.local_port = self.bind_interdomain(b.remote_dom, b.remote_port)?;
                self.write_back(req, arg, &b)
            }
            EVTCHNOP_BIND_VIRQ => {
                let mut b: EvtchnBindVirq = view.read_obj(arg)?;
                b.port = self.bind_virq(b.virq, b.vcpu)?;
                self.write_back(req, arg, &b)
            }
            EVTCHNOP_BIND_IPI => {
                let mut b: EvtchnBindIpi = view.read_obj(arg)?;
                self.check_vcpu(b.vcpu)?;
                b.port = self.get_free_port()?;
                self.set_port(b.port, PortState::Ipi, b.vcpu);
                self.write_back(req, arg, &b)
            }
            EVTCHNOP_BIND_PIRQ => {
                let mut b: EvtchnBindPirq = view.read_obj(arg)?;
                let port = self.get_free_port()?;
                self.bind_pirq(b.pirq, port)?;
                self.set_port(port, PortState::Pirq(b.pirq), 0);
                self.pirq_bound(b.pirq);
                b.port = port;
                self.write_back(req, arg, &b)
            }
            EVTCHNOP_CLOSE => {
                let c: EvtchnClose = view.read_obj(arg)?;
                self.evtchn_close(c.port).map(|()| 0)
            }
            EVTCHNOP_SEND => {
                let s: EvtchnSend = view.read_obj(arg)?;
                self.evtchn_send(s.port).map(|()| 0)
            }
            EVTCHNOP_STATUS => {
                let mut s: EvtchnStatus = view.read_obj(arg)?;
                self.evtchn_status(&mut s)?;
                self.write_back(req, arg, &s)
            }
            EVTCHNOP_BIND_VCPU => {
                let b: EvtchnBindVcpu = view.read_obj(arg)?;
                self.evtchn_bind_vcpu(b.port, b.vcpu).map(|()| 0)
            }
            EVTCHNOP_UNMASK => {
                let u: EvtchnUnmask = view.read_obj(arg)?;
                let p = self.events.ports.get(u.port as usize).copied().ok_or(XenErrno::Einval)?;
                if usable(p.state) {
                    self.unmask_2l(u.port, p.notify_vcpu);
                }
                Ok(0)
            }
            EVTCHNOP_RESET | EVTCHNOP_RESET_CONT => {
                let r: EvtchnReset = view.read_obj(arg)?;
                if let DomRef::Backend = self.evtchn_dom(r.dom)? {
                    return Err(XenErrno::Eperm);
                }
                if cmd == EVTCHNOP_RESET_CONT {
                    // Only Xen's own continuation resumes a reset; none is in progress.
                    return Err(XenErrno::Ebusy);
                }
                for port in 1..self.events.ports.len() as u32 {
                    let _ = self.evtchn_close(port);
                }
                Ok(0)
            }
            // FIFO ABI: refused so that the guest falls back to 2-level (Linux
            // does on any error from init_control; QEMU and KVM answer -ENOSYS too).
            EVTCHNOP_INIT_CONTROL | EVTCHNOP_EXPAND_ARRAY => Err(XenErrno::Enosys),
            EVTCHNOP_SET_PRIORITY => {
                // 2-level has no priorities: -ENOSYS once the port is valid.
                let s: EvtchnSetPriority = view.read_obj(arg)?;
                self.events.ports.get(s.port as usize).ok_or(XenErrno::Einval)?;
                Err(XenErrno::Enosys)
            }
            _ => {
                self.report_unknown(HYPERVISOR_EVENT_CHANNEL_OP, u64::from(cmd), "event_channel_op sub-op");
                Err(XenErrno::Enosys)
            }
        }
    }

    /// Copies an IN/OUT record back; like Xen, a failed copy leaves the new
    /// binding in place and reports -EFAULT.
    fn write_back<T: zerocopy::IntoBytes + zerocopy::Immutable>(&self, req: &HypercallRequest, arg: u64, val: &T) -> Result<i64, XenErrno> {
        GuestView::new(&self.mem, req.paging).write_obj(arg, val)?;
        Ok(0)
    }

    /// Resolves a `dom` field: the guest itself, or domain 0 (which exists, but
    /// which an unprivileged guest may not act on: -EPERM in the callers).
    fn evtchn_dom(&self, dom: u16) -> Result<DomRef, XenErrno> {
        if dom == DOMID_SELF || dom == self.cfg.domid {
            Ok(DomRef::Guest)
        } else if dom == DOMID_BACKEND {
            Ok(DomRef::Backend)
        } else {
            Err(XenErrno::Esrch)
        }
    }

    fn check_vcpu(&self, vcpu: u32) -> Result<(), XenErrno> {
        if vcpu < self.cfg.vcpus {
            Ok(())
        } else {
            Err(XenErrno::Enoent)
        }
    }

    /// Xen's `get_free_port`: the lowest free port, adding a bucket when all
    /// valid ports are in use. The caller sets its state.
    fn get_free_port(&mut self) -> Result<u32, XenErrno> {
        let limit = self.max_ports().min(self.events.max_port.saturating_add(1));
        let ports = &mut self.events.ports;
        if let Some(free) = ports.iter().take(limit as usize).position(|p| p.state == PortState::Free) {
            return Ok(free as u32);
        }
        let next = ports.len() as u32;
        if next >= limit {
            return Err(XenErrno::Enospc);
        }
        ports.resize(ports.len() + EVTCHNS_PER_BUCKET as usize, Port::default());
        Ok(next)
    }

    fn set_port(&mut self, port: u32, state: PortState, notify_vcpu: u32) {
        if let Some(p) = self.events.ports.get_mut(port as usize) {
            *p = Port { state, notify_vcpu };
        }
    }

    fn bind_interdomain(&mut self, remote_dom: u16, rport: u32) -> Result<u32, XenErrno> {
        let rd = self.evtchn_dom(remote_dom)?;
        let lport = self.get_free_port()?;
        let own = self.cfg.domid;
        let remote = match rd {
            DomRef::Guest => match self.events.ports.get(rport as usize) {
                Some(Port { state: PortState::Unbound { remote_dom }, .. }) if *remote_dom == own => Remote::Guest(rport),
                _ => return Err(XenErrno::Einval),
            },
            DomRef::Backend => match self.events.backend.get(rport as usize) {
                Some(BackendPort::Unbound) => Remote::Backend(rport),
                _ => return Err(XenErrno::Einval),
            },
        };
        self.set_port(lport, PortState::Interdomain(remote), 0);
        match remote {
            Remote::Guest(r) => {
                if let Some(p) = self.events.ports.get_mut(r as usize) {
                    p.state = PortState::Interdomain(Remote::Guest(lport));
                }
            }
            Remote::Backend(r) => {
                if let Some(p) = self.events.backend.get_mut(r as usize) {
                    *p = BackendPort::Interdomain { guest_port: lport };
                }
            }
        }
        // Notifications sent while the remote end was unbound were dropped:
        // Xen always sets the new local port pending.
        self.evtchn_set_pending(0, lport);
        Ok(lport)
    }

    fn bind_virq(&mut self, virq: u32, vcpu: u32) -> Result<u32, XenErrno> {
        if virq >= NR_VIRQS {
            return Err(XenErrno::Einval);
        }
        let ty = virq_type(virq);
        if ty != VirqType::Vcpu && vcpu != 0 {
            return Err(XenErrno::Einval);
        }
        self.check_vcpu(vcpu)?;
        if ty == VirqType::Global {
            // Global VIRQs belong to the hardware domain.
            return Err(XenErrno::Ebusy);
        }
        let bound = self.events.vcpus.get(vcpu as usize).and_then(|v| v.virq_port.get(virq as usize)).copied();
        if bound != Some(0) {
            return Err(XenErrno::Eexist);
        }
        let port = self.get_free_port()?;
        self.set_port(port, PortState::Virq(virq), vcpu);
        if let Some(slot) = self.events.vcpus.get_mut(vcpu as usize).and_then(|v| v.virq_port.get_mut(virq as usize)) {
            *slot = port;
        }
        if virq == VIRQ_TIMER {
            self.kernel_timer_port(vcpu, Some(port));
        }
        Ok(port)
    }

    /// `evtchn_close` as the guest issues it.
    pub(crate) fn evtchn_close(&mut self, port: u32) -> Result<(), XenErrno> {
        let p = self.events.ports.get(port as usize).copied().ok_or(XenErrno::Einval)?;
        match p.state {
            PortState::Free | PortState::Reserved => return Err(XenErrno::Einval),
            PortState::Unbound { .. } | PortState::Ipi => {}
            PortState::Pirq(pirq) => self.unbind_pirq(pirq),
            PortState::Virq(virq) => {
                let owner = if virq_type(virq) == VirqType::Vcpu { p.notify_vcpu } else { 0 };
                if let Some(slot) = self.events.vcpus.get_mut(owner as usize).and_then(|v| v.virq_port.get_mut(virq as usize)) {
                    if *slot == port {
                        *slot = 0;
                    }
                }
                if virq == VIRQ_TIMER {
                    self.kernel_timer_port(owner, None);
                }
            }
            PortState::Interdomain(Remote::Guest(r)) => {
                let own = self.cfg.domid;
                if let Some(rp) = self.events.ports.get_mut(r as usize) {
                    rp.state = PortState::Unbound { remote_dom: own };
                }
            }
            PortState::Interdomain(Remote::Backend(r)) => {
                if let Some(bp) = self.events.backend.get_mut(r as usize) {
                    *bp = BackendPort::Unbound;
                }
            }
        }
        // evtchn_free: clear the pending bit, back to vCPU 0.
        self.clear_pending(port);
        self.set_port(port, PortState::Free, 0);
        Ok(())
    }

    fn evtchn_send(&mut self, port: u32) -> Result<(), XenErrno> {
        let p = self.events.ports.get(port as usize).copied().ok_or(XenErrno::Einval)?;
        match p.state {
            PortState::Interdomain(Remote::Guest(r)) => {
                let target = self.events.ports.get(r as usize).map_or(0, |rp| rp.notify_vcpu);
                self.evtchn_set_pending(target, r);
            }
            PortState::Interdomain(Remote::Backend(r)) => self.ports.backends.notify(r),
            PortState::Ipi => self.evtchn_set_pending(p.notify_vcpu, port),
            // Nobody listens yet: silently dropped.
            PortState::Unbound { .. } => {}
            _ => return Err(XenErrno::Einval),
        }
        Ok(())
    }

    fn evtchn_status(&self, s: &mut EvtchnStatus) -> Result<(), XenErrno> {
        if let DomRef::Backend = self.evtchn_dom(s.dom)? {
            return Err(XenErrno::Eperm);
        }
        let p = self.events.ports.get(s.port as usize).copied().ok_or(XenErrno::Einval)?;
        s.status = match p.state {
            PortState::Free | PortState::Reserved => EVTCHNSTAT_CLOSED,
            PortState::Unbound { remote_dom } => {
                s.set_u_dom(remote_dom);
                EVTCHNSTAT_UNBOUND
            }
            PortState::Interdomain(remote) => {
                match remote {
                    Remote::Guest(r) => s.set_u_interdomain(self.cfg.domid, r),
                    Remote::Backend(r) => s.set_u_interdomain(DOMID_BACKEND, r),
                }
                EVTCHNSTAT_INTERDOMAIN
            }
            PortState::Pirq(pirq) => {
                s.u[0] = pirq;
                EVTCHNSTAT_PIRQ
            }
            PortState::Virq(virq) => {
                s.u[0] = virq;
                EVTCHNSTAT_VIRQ
            }
            PortState::Ipi => EVTCHNSTAT_IPI,
        };
        s.vcpu = p.notify_vcpu;
        Ok(())
    }

    fn evtchn_bind_vcpu(&mut self, port: u32, vcpu: u32) -> Result<(), XenErrno> {
        self.check_vcpu(vcpu)?;
        let p = self.events.ports.get_mut(port as usize).ok_or(XenErrno::Einval)?;
        match p.state {
            PortState::Virq(virq) if virq_type(virq) != VirqType::Vcpu => p.notify_vcpu = vcpu,
            PortState::Unbound { .. } | PortState::Interdomain(_) | PortState::Pirq(_) => p.notify_vcpu = vcpu,
            _ => return Err(XenErrno::Einval),
        }
        Ok(())
    }

    /// The guest port `port`, if it exists (for the VMM and tests).
    pub fn evtchn_port(&self, port: u32) -> Option<Port> {
        self.events.ports.get(port as usize).copied()
    }

    /// Caps the port numbers the guest may allocate (Xen's `max_evtchn_port`,
    /// xl's `max_event_channels - 1`). The ABI limit still applies.
    pub fn set_max_evtchn_port(&mut self, max: u32) {
        self.events.max_port = max;
    }

    /// Sends VIRQ `virq` to `vcpu` if the guest bound it (per-vCPU VIRQs; the
    /// domain VIRQ on vCPU 0's binding). Returns whether a port was bound.
    pub fn send_virq(&mut self, vcpu: u32, virq: u32) -> bool {
        let owner = if virq_type(virq) == VirqType::Vcpu { vcpu } else { 0 };
        let port = self.events.vcpus.get(owner as usize).and_then(|v| v.virq_port.get(virq as usize)).copied().unwrap_or(0);
        if port == 0 {
            return false;
        }
        let target = if owner == vcpu { vcpu } else { self.events.ports.get(port as usize).map_or(0, |p| p.notify_vcpu) };
        self.evtchn_set_pending(target, port);
        true
    }

}

/// Xen's `evtchn_usable` for guest ports: bound to something.
fn usable(state: PortState) -> bool {
    !matches!(state, PortState::Free | PortState::Reserved)
}
