//! EVTCHNOP_* sub-ops: success paths, Xen's errnos in Xen's order, port
//! limits, and the backends' (domain 0) side.

use super::*;
use xenkvm_xen_abi::errno::XenErrno;
use xenkvm_xen_abi::event_channel::*;
use xenkvm_xen_abi::xen::*;

pub fn op<T: IntoBytes + Immutable>(t: &mut TestDomain, cmd: u32, rec: &T) -> i64 {
    t.put(SCRATCH, rec);
    t.call(HYPERVISOR_EVENT_CHANNEL_OP, &[u64::from(cmd), SCRATCH])
}

fn port_result(rc: i64, port: u32) -> Result<u32, i64> {
    if rc == 0 {
        Ok(port)
    } else {
        Err(rc)
    }
}

pub fn alloc_unbound(t: &mut TestDomain, dom: u16, remote_dom: u16) -> Result<u32, i64> {
    let rc = op(t, EVTCHNOP_ALLOC_UNBOUND, &EvtchnAllocUnbound { dom, remote_dom, port: 0 });
    port_result(rc, t.get::<EvtchnAllocUnbound>(SCRATCH).port)
}

pub fn bind_interdomain(t: &mut TestDomain, remote_dom: u16, remote_port: u32) -> Result<u32, i64> {
    let rc = op(t, EVTCHNOP_BIND_INTERDOMAIN, &EvtchnBindInterdomain { remote_dom, pad: 0, remote_port, local_port: 0 });
    port_result(rc, t.get::<EvtchnBindInterdomain>(SCRATCH).local_port)
}

pub fn bind_virq(t: &mut TestDomain, virq: u32, vcpu: u32) -> Result<u32, i64> {
    let rc = op(t, EVTCHNOP_BIND_VIRQ, &EvtchnBindVirq { virq, vcpu, port: 0 });
    port_result(rc, t.get::<EvtchnBindVirq>(SCRATCH).port)
}

pub fn bind_ipi(t: &mut TestDomain, vcpu: u32) -> Result<u32, i64> {
    let rc = op(t, EVTCHNOP_BIND_IPI, &EvtchnBindIpi { vcpu, port: 0 });
    port_result(rc, t.get::<EvtchnBindIpi>(SCRATCH).port)
}

pub fn status(t: &mut TestDomain, dom: u16, port: u32) -> Result<EvtchnStatus, i64> {
    let rc = op(t, EVTCHNOP_STATUS, &EvtchnStatus { dom, port, ..Default::default() });
    if rc == 0 {
        Ok(t.get(SCRATCH))
    } else {
        Err(rc)
    }
}

pub fn send(t: &mut TestDomain, port: u32) -> i64 {
    op(t, EVTCHNOP_SEND, &EvtchnSend { port })
}

pub fn close(t: &mut TestDomain, port: u32) -> i64 {
    op(t, EVTCHNOP_CLOSE, &EvtchnClose { port })
}

pub fn unmask(t: &mut TestDomain, port: u32) -> i64 {
    op(t, EVTCHNOP_UNMASK, &EvtchnUnmask { port })
}

fn bind_vcpu(t: &mut TestDomain, port: u32, vcpu: u32) -> i64 {
    op(t, EVTCHNOP_BIND_VCPU, &EvtchnBindVcpu { port, vcpu })
}

fn st(t: &mut TestDomain, port: u32) -> (u32, u32, [u32; 2]) {
    let s = status(t, DOMID_SELF, port).unwrap();
    (s.status, s.vcpu, s.u)
}

#[test]
fn alloc_unbound_and_status() {
    let mut t = TestDomain::new();
    assert_eq!(alloc_unbound(&mut t, DOMID_SELF, 0), Ok(1), "port 0 is reserved");
    assert_eq!(alloc_unbound(&mut t, 1, DOMID_SELF), Ok(2), "our own id names us too");
    assert_eq!(alloc_unbound(&mut t, DOMID_SELF, 42), Ok(3), "Xen does not check the remote domain");
    assert_eq!(st(&mut t, 1), (EVTCHNSTAT_UNBOUND, 0, [0, 0]));
    assert_eq!(st(&mut t, 2), (EVTCHNSTAT_UNBOUND, 0, [1, 0]), "DOMID_SELF is stored as our id");
    assert_eq!(st(&mut t, 3).2, [42, 0]);
    assert_eq!(alloc_unbound(&mut t, 0, 0), Err(EPERM), "domain 0 exists but is not ours");
    assert_eq!(alloc_unbound(&mut t, 5, 0), Err(ESRCH));
    assert_eq!(alloc_unbound(&mut t, DOMID_XEN, 0), Err(ESRCH));
    assert_eq!(t.call(HYPERVISOR_EVENT_CHANNEL_OP, &[u64::from(EVTCHNOP_ALLOC_UNBOUND), RAM_SIZE]), EFAULT);
    assert_eq!(alloc_unbound(&mut t, DOMID_SELF, 0), Ok(4), "failures allocate nothing");
    // The command is an int: the upper half of the register is ignored.
    t.put(SCRATCH, &EvtchnAllocUnbound { dom: DOMID_SELF, remote_dom: 0, port: 0 });
    assert_eq!(t.call(HYPERVISOR_EVENT_CHANNEL_OP, &[1 << 32 | u64::from(EVTCHNOP_ALLOC_UNBOUND), SCRATCH]), 0);
}

#[test]
fn status_errors_and_union() {
    let mut t = TestDomain::new();
    assert_eq!(st(&mut t, 0), (EVTCHNSTAT_CLOSED, 0, [0, 0]), "reserved reads as closed");
    assert_eq!(st(&mut t, 63).0, EVTCHNSTAT_CLOSED, "inside the first bucket");
    assert_eq!(status(&mut t, DOMID_SELF, 64).unwrap_err(), EINVAL, "no second bucket yet");
    assert_eq!(status(&mut t, 0, 1).unwrap_err(), EPERM);
    assert_eq!(status(&mut t, 9, 1).unwrap_err(), ESRCH);
    assert_eq!(t.call(HYPERVISOR_EVENT_CHANNEL_OP, &[u64::from(EVTCHNOP_STATUS), RAM_SIZE - 8]), EFAULT);
    // Only the member that applies is written; the rest comes back as passed.
    let p = alloc_unbound(&mut t, DOMID_SELF, 0).unwrap();
    t.put(SCRATCH, &EvtchnStatus { dom: DOMID_SELF, port: p, u: [0xAAAA_AAAA, 0xBBBB_BBBB], ..Default::default() });
    assert_eq!(t.call(HYPERVISOR_EVENT_CHANNEL_OP, &[u64::from(EVTCHNOP_STATUS), SCRATCH]), 0);
    assert_eq!(t.get::<EvtchnStatus>(SCRATCH).u, [0xAAAA_0000, 0xBBBB_BBBB]);
}

#[test]
fn loopback_interdomain() {
    let mut t = TestDomain::new();
    let a = alloc_unbound(&mut t, DOMID_SELF, DOMID_SELF).unwrap();
    assert_eq!(bind_interdomain(&mut t, 7, a), Err(ESRCH));
    assert_eq!(bind_interdomain(&mut t, DOMID_SELF, 5000), Err(EINVAL));
    assert_eq!(bind_interdomain(&mut t, DOMID_SELF, 40), Err(EINVAL), "free port");
    let b = bind_interdomain(&mut t, 1, a).unwrap();
    assert_eq!(b, a + 1);
    assert!(t.d.port_pending(b), "the new local port is always set pending");
    assert!(!t.d.port_pending(a));
    assert_eq!(st(&mut t, a), (EVTCHNSTAT_INTERDOMAIN, 0, [1, b]));
    assert_eq!(st(&mut t, b), (EVTCHNSTAT_INTERDOMAIN, 0, [1, a]));
    assert_eq!(bind_interdomain(&mut t, DOMID_SELF, a), Err(EINVAL), "already bound");
    assert_eq!(send(&mut t, b), 0);
    assert!(t.d.port_pending(a));
    // A port waiting for another domain cannot be bound from here.
    let other = alloc_unbound(&mut t, DOMID_SELF, 0).unwrap();
    assert_eq!(bind_interdomain(&mut t, DOMID_SELF, other), Err(EINVAL));
    // Closing one end leaves the other unbound, waiting for us again.
    assert_eq!(close(&mut t, a), 0);
    assert_eq!(st(&mut t, a).0, EVTCHNSTAT_CLOSED);
    assert!(!t.d.port_pending(a), "close clears the pending bit");
    assert_eq!(st(&mut t, b), (EVTCHNSTAT_UNBOUND, 0, [1, 0]));
    assert_eq!(send(&mut t, b), 0, "sends on an unbound port are dropped");
    assert_eq!(bind_interdomain(&mut t, DOMID_SELF, b), Ok(a), "lowest free port again");
}

#[test]
fn backend_channels() {
    let mut t = TestDomain::new();
    // Guest-allocated port, bound by the backend (the store/console pattern).
    let g = alloc_unbound(&mut t, DOMID_SELF, 0).unwrap();
    assert_eq!(t.d.backend_bind_interdomain(g + 1), Err(XenErrno::Einval));
    let b = t.d.backend_bind_interdomain(g).unwrap();
    assert_eq!(b, 1);
    assert_eq!(t.d.backend_bind_interdomain(g), Err(XenErrno::Einval), "already bound");
    assert_eq!(t.d.backend_peer(b), Some(g));
    assert_eq!(st(&mut t, g), (EVTCHNSTAT_INTERDOMAIN, 0, [0, b]));
    assert_eq!(send(&mut t, g), 0);
    assert_eq!(send(&mut t, g), 0);
    assert_eq!(*t.backends.0.lock().unwrap(), vec![b, b]);
    assert!(!t.d.port_pending(g));
    assert_eq!(t.d.backend_send(b), Ok(()));
    assert!(t.d.port_pending(g));
    // The guest closes: the backend's end waits for the guest again.
    assert_eq!(close(&mut t, g), 0);
    assert_eq!(t.d.backend_peer(b), None);
    assert_eq!(t.d.backend_send(b), Ok(()), "dropped");
    assert_eq!(bind_interdomain(&mut t, 0, b), Ok(g));
    assert!(t.d.port_pending(g));
    // The backend closes: the guest's end waits for domain 0 again.
    assert_eq!(t.d.backend_close(b), Ok(()));
    assert_eq!(st(&mut t, g), (EVTCHNSTAT_UNBOUND, 0, [0, 0]));
    assert_eq!(t.d.backend_send(b), Err(XenErrno::Einval));
    assert_eq!(t.d.backend_close(b), Err(XenErrno::Einval));
    assert_eq!(t.d.backend_close(0), Err(XenErrno::Einval), "reserved");
    // Backend-allocated port, bound by the guest.
    let b2 = t.d.backend_alloc_unbound().unwrap();
    assert_eq!(b2, 1, "freed backend ports are reused");
    assert_eq!(bind_interdomain(&mut t, 0, 9), Err(EINVAL));
    let g2 = bind_interdomain(&mut t, 0, b2).unwrap();
    assert_eq!(t.d.backend_peer(b2), Some(g2));
    // Toolstack allocation for a backend.
    let g3 = t.d.alloc_unbound_for_backend().unwrap();
    assert_eq!(st(&mut t, g3), (EVTCHNSTAT_UNBOUND, 0, [0, 0]));
}

#[test]
fn bind_virq_rules() {
    let mut t = TestDomain::new();
    let p = bind_virq(&mut t, VIRQ_TIMER, 0).unwrap();
    assert_eq!(bind_virq(&mut t, VIRQ_TIMER, 0), Err(EEXIST));
    assert_eq!(bind_virq(&mut t, VIRQ_TIMER, 1), Ok(p + 1), "once per vCPU");
    assert_eq!(bind_virq(&mut t, NR_VIRQS, 0), Err(EINVAL));
    assert_eq!(bind_virq(&mut t, u32::MAX, 0), Err(EINVAL));
    assert_eq!(bind_virq(&mut t, VIRQ_DEBUG, 2), Err(ENOENT));
    assert_eq!(bind_virq(&mut t, VIRQ_DEBUG, u32::MAX), Err(ENOENT));
    assert_eq!(bind_virq(&mut t, VIRQ_CONSOLE, 1), Err(EINVAL), "global VIRQs bind on vCPU 0");
    assert_eq!(bind_virq(&mut t, VIRQ_CONSOLE, 0), Err(EBUSY), "owned by the hardware domain");
    assert_eq!(bind_virq(&mut t, VIRQ_ARCH_0, 0), Err(EBUSY));
    assert_eq!(bind_virq(&mut t, VIRQ_ARGO, 1), Err(EINVAL));
    let argo = bind_virq(&mut t, VIRQ_ARGO, 0).unwrap();
    assert_eq!(bind_virq(&mut t, VIRQ_ARGO, 0), Err(EEXIST));
    assert_eq!(st(&mut t, p + 1), (EVTCHNSTAT_VIRQ, 1, [VIRQ_TIMER, 0]));
    // Per-vCPU VIRQs stay on their vCPU; per-domain ones may move.
    assert_eq!(bind_vcpu(&mut t, p + 1, 0), EINVAL);
    assert_eq!(bind_vcpu(&mut t, argo, 1), 0);
    assert_eq!(st(&mut t, argo), (EVTCHNSTAT_VIRQ, 1, [VIRQ_ARGO, 0]));
    assert_eq!(close(&mut t, argo), 0, "unbinds from vCPU 0's table");
    assert_eq!(bind_virq(&mut t, VIRQ_ARGO, 0), Ok(argo));
    assert_eq!(close(&mut t, p + 1), 0);
    assert_eq!(bind_virq(&mut t, VIRQ_TIMER, 1), Ok(p + 1));
    assert_eq!(t.call(HYPERVISOR_EVENT_CHANNEL_OP, &[u64::from(EVTCHNOP_BIND_VIRQ), RAM_SIZE]), EFAULT);
}

#[test]
fn bind_ipi_and_bind_vcpu() {
    let mut t = TestDomain::new();
    let p = bind_ipi(&mut t, 1).unwrap();
    assert_eq!(st(&mut t, p), (EVTCHNSTAT_IPI, 1, [0, 0]));
    assert_eq!(bind_ipi(&mut t, 2), Err(ENOENT));
    assert_eq!(bind_vcpu(&mut t, p, 0), EINVAL, "IPIs stay on their vCPU");
    let u = alloc_unbound(&mut t, DOMID_SELF, 0).unwrap();
    assert_eq!(bind_vcpu(&mut t, u, 1), 0);
    assert_eq!(st(&mut t, u).1, 1);
    assert_eq!(bind_vcpu(&mut t, 5000, 7), ENOENT, "the vCPU is checked first");
    assert_eq!(bind_vcpu(&mut t, 5000, 1), EINVAL);
    assert_eq!(bind_vcpu(&mut t, 40, 1), EINVAL, "free port");
    assert_eq!(bind_vcpu(&mut t, 0, 1), EINVAL, "reserved port");
    // A freed port notifies vCPU 0 again.
    assert_eq!(close(&mut t, u), 0);
    assert_eq!(alloc_unbound(&mut t, DOMID_SELF, 0), Ok(u));
    assert_eq!(st(&mut t, u).1, 0);
}

#[test]
fn close_and_send_errors() {
    let mut t = TestDomain::new();
    assert_eq!(close(&mut t, 0), EINVAL);
    assert_eq!(close(&mut t, 10), EINVAL, "free");
    assert_eq!(close(&mut t, 64), EINVAL, "invalid");
    assert_eq!(close(&mut t, u32::MAX), EINVAL);
    assert_eq!(send(&mut t, 0), EINVAL);
    assert_eq!(send(&mut t, 10), EINVAL);
    assert_eq!(send(&mut t, 9999), EINVAL);
    let v = bind_virq(&mut t, VIRQ_TIMER, 0).unwrap();
    assert_eq!(send(&mut t, v), EINVAL, "VIRQ ports cannot be sent on");
    let u = alloc_unbound(&mut t, DOMID_SELF, 0).unwrap();
    assert_eq!(send(&mut t, u), 0);
    assert!(!t.d.port_pending(u));
    assert_eq!(close(&mut t, u), 0);
    assert_eq!(close(&mut t, u), EINVAL, "twice");
    assert_eq!(t.call(HYPERVISOR_EVENT_CHANNEL_OP, &[u64::from(EVTCHNOP_CLOSE), RAM_SIZE]), EFAULT);
    assert_eq!(t.call(HYPERVISOR_EVENT_CHANNEL_OP, &[u64::from(EVTCHNOP_SEND), RAM_SIZE]), EFAULT);
    assert_eq!(t.call(HYPERVISOR_EVENT_CHANNEL_OP, &[u64::from(EVTCHNOP_UNMASK), RAM_SIZE]), EFAULT);
    assert_eq!(unmask(&mut t, 64), EINVAL);
    assert_eq!(unmask(&mut t, 10), 0, "a free port in a valid bucket is ignored");
}

#[test]
fn reset_closes_everything() {
    let mut t = TestDomain::new();
    let v = bind_virq(&mut t, VIRQ_TIMER, 1).unwrap();
    let i = bind_ipi(&mut t, 0).unwrap();
    let g = alloc_unbound(&mut t, DOMID_SELF, 0).unwrap();
    let b = t.d.backend_bind_interdomain(g).unwrap();
    assert_eq!(send(&mut t, i), 0);
    assert!(t.d.port_pending(i));
    assert_eq!(op(&mut t, EVTCHNOP_RESET, &EvtchnReset { dom: 0 }), EPERM);
    assert_eq!(op(&mut t, EVTCHNOP_RESET, &EvtchnReset { dom: 3 }), ESRCH);
    assert_eq!(op(&mut t, EVTCHNOP_RESET_CONT, &EvtchnReset { dom: DOMID_SELF }), EBUSY, "no reset in progress");
    assert_eq!(t.call(HYPERVISOR_EVENT_CHANNEL_OP, &[u64::from(EVTCHNOP_RESET), RAM_SIZE]), EFAULT);
    assert_eq!(op(&mut t, EVTCHNOP_RESET, &EvtchnReset { dom: DOMID_SELF }), 0);
    for p in [v, i, g] {
        assert_eq!(st(&mut t, p).0, EVTCHNSTAT_CLOSED);
    }
    assert!(!t.d.port_pending(i));
    assert_eq!(st(&mut t, 0).0, EVTCHNSTAT_CLOSED, "port 0 stays reserved");
    assert_eq!(t.d.backend_peer(b), None);
    assert_eq!(bind_virq(&mut t, VIRQ_TIMER, 1), Ok(1), "VIRQ bindings are gone too");
    assert_eq!(op(&mut t, EVTCHNOP_RESET, &EvtchnReset { dom: 1 }), 0);
}

#[test]
fn fifo_pirq_and_unknown_ops() {
    let mut t = TestDomain::new();
    let init = EvtchnInitControl { control_gfn: 0x20, offset: 0, vcpu: 0, link_bits: 0, pad: [0; 7] };
    assert_eq!(op(&mut t, EVTCHNOP_INIT_CONTROL, &init), ENOSYS, "FIFO refused: guests fall back to 2-level");
    assert_eq!(op(&mut t, EVTCHNOP_EXPAND_ARRAY, &EvtchnExpandArray { array_gfn: 0x21 }), ENOSYS);
    let p = bind_ipi(&mut t, 0).unwrap();
    assert_eq!(op(&mut t, EVTCHNOP_SET_PRIORITY, &EvtchnSetPriority { port: p, priority: 7 }), ENOSYS);
    assert_eq!(op(&mut t, EVTCHNOP_SET_PRIORITY, &EvtchnSetPriority { port: 64, priority: 7 }), EINVAL);
    assert_eq!(t.call(HYPERVISOR_EVENT_CHANNEL_OP, &[u64::from(EVTCHNOP_SET_PRIORITY), RAM_SIZE]), EFAULT);
    assert_eq!(op(&mut t, EVTCHNOP_BIND_PIRQ, &EvtchnBindPirq { pirq: 16, flags: 0, port: 0 }), EINVAL);
    assert_eq!(t.call(HYPERVISOR_EVENT_CHANNEL_OP, &[u64::from(EVTCHNOP_BIND_PIRQ), RAM_SIZE]), EFAULT);
    for cmd in [15, 99, u64::from(u32::MAX)] {
        assert_eq!(t.call(HYPERVISOR_EVENT_CHANNEL_OP, &[cmd, SCRATCH]), ENOSYS, "cmd {cmd}");
    }
}

#[test]
fn ports_run_out_at_the_cap() {
    let mut t = TestDomain::new();
    for expect in 1..=DEFAULT_CAP {
        assert_eq!(bind_ipi(&mut t, 0), Ok(expect));
    }
    assert_eq!(st(&mut t, DEFAULT_CAP).0, EVTCHNSTAT_IPI);
    assert_eq!(status(&mut t, DOMID_SELF, 1024).unwrap_err(), EINVAL, "the table grew in 64-port buckets");
    assert_eq!(bind_ipi(&mut t, 0), Err(ENOSPC));
    assert_eq!(alloc_unbound(&mut t, DOMID_SELF, 0), Err(ENOSPC));
    assert_eq!(bind_virq(&mut t, VIRQ_TIMER, 0), Err(ENOSPC));
    assert_eq!(bind_interdomain(&mut t, DOMID_SELF, 5000), Err(ENOSPC), "allocation comes before the remote check");
    assert_eq!(t.d.alloc_unbound_for_backend(), Err(XenErrno::Enospc));
    assert_eq!(bind_virq(&mut t, VIRQ_TIMER, 0), Err(ENOSPC), "the failed bind left nothing behind");
    assert_eq!(close(&mut t, 500), 0);
    assert_eq!(bind_virq(&mut t, VIRQ_TIMER, 0), Ok(500));
}

const DEFAULT_CAP: u32 = crate::evtchn::DEFAULT_MAX_EVTCHN_PORT;

#[test]
fn abi_limit_depends_on_the_shared_info_layout() {
    let mut t = TestDomain::new();
    t.d.set_max_evtchn_port(u32::MAX);
    for _ in 1..4096 {
        bind_ipi(&mut t, 1).unwrap();
    }
    assert_eq!(bind_ipi(&mut t, 1), Err(ENOSPC), "4096 ports with a 64-bit shared_info");
    let mut t = TestDomain::new();
    t.d.set_max_evtchn_port(u32::MAX);
    t.d.latch_shared_info_layout(true);
    for _ in 1..1024 {
        bind_ipi(&mut t, 1).unwrap();
    }
    assert_eq!(bind_ipi(&mut t, 1), Err(ENOSPC), "1024 compat");
    let mut t = TestDomain::new();
    t.d.set_max_evtchn_port(3);
    assert_eq!((bind_ipi(&mut t, 0), bind_ipi(&mut t, 0), bind_ipi(&mut t, 0)), (Ok(1), Ok(2), Ok(3)));
    assert_eq!(bind_ipi(&mut t, 0), Err(ENOSPC));
}

#[test]
fn backend_ports_run_out() {
    let mut t = TestDomain::new();
    for expect in 1..crate::evtchn::MAX_BACKEND_PORTS {
        assert_eq!(t.d.backend_alloc_unbound(), Ok(expect));
    }
    assert_eq!(t.d.backend_alloc_unbound(), Err(XenErrno::Enospc));
    assert_eq!(t.d.backend_close(7), Ok(()));
    assert_eq!(t.d.backend_alloc_unbound(), Ok(7));
}
