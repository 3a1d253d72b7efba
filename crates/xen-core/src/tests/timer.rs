//! Xen timers: VCPUOP_{set,stop}_{singleshot,periodic}_timer, set_timer_op,
//! expiry into VIRQ_TIMER, and SCHEDOP_block ending on a timer.

use super::evtchn::bind_virq;
use super::*;
use crate::Wait;
use xenkvm_xen_abi::event_channel::VIRQ_TIMER;
use xenkvm_xen_abi::sched::*;
use xenkvm_xen_abi::vcpu::*;
use xenkvm_xen_abi::xen::*;
use UpcallEvent::Timer;

const ARGS: u64 = SCRATCH + 0x800;

fn singleshot_on(t: &mut TestDomain, caller: u32, target: u64, timeout_abs_ns: u64, flags: u32) -> i64 {
    t.put(ARGS, &VcpuSetSingleshotTimer { timeout_abs_ns, flags, pad: 0 });
    let req = t.request(caller, HYPERVISOR_VCPU_OP, &[VCPUOP_SET_SINGLESHOT_TIMER, target, ARGS]);
    match t.d.hypercall(&req) {
        Outcome::Return(v) => v,
        other => panic!("{other:?}"),
    }
}

fn singleshot(t: &mut TestDomain, timeout_abs_ns: u64, flags: u32) -> i64 {
    singleshot_on(t, 0, 0, timeout_abs_ns, flags)
}

fn periodic(t: &mut TestDomain, vcpu: u64, period_ns: u64) -> i64 {
    t.put(ARGS, &VcpuSetPeriodicTimer { period_ns });
    t.call(HYPERVISOR_VCPU_OP, &[VCPUOP_SET_PERIODIC_TIMER, vcpu, ARGS])
}

/// Whether VIRQ_TIMER's port is pending; clears it (as the guest's handler would).
fn took_tick(t: &mut TestDomain, port: u32) -> bool {
    let hit = t.d.port_pending(port);
    assert!(t.d.shared_info.write(0x800, &[0; 8]));
    assert!(t.d.shared_info.write(0, &[0; 16]));
    assert!(t.d.shared_info.write(64, &[0; 16]));
    hit
}

#[test]
fn singleshot_fires_virq_timer() {
    let mut t = TestDomain::new();
    let port = bind_virq(&mut t, VIRQ_TIMER, 0).unwrap();
    let now = t.d.now_ns();
    assert_eq!(singleshot(&mut t, now + 1_000, 0), 0);
    assert_eq!(t.upcall.take(), vec![Timer(0, Some(now + 1_000))]);
    assert_eq!(t.d.timer_deadline(0), Some(now + 1_000));
    assert_eq!(t.d.next_timer_deadline(), Some((0, now + 1_000)));
    assert_eq!(t.d.fire_timers(now + 999), Some(now + 1_000), "not yet");
    assert!(!t.d.port_pending(port));
    assert_eq!(t.d.fire_timers(now + 1_000), None);
    assert!(t.d.port_pending(port));
    assert_eq!(t.d.shared_info.load_u64(8), 1, "selector");
    assert!(t.d.upcall_pending(0));
    assert_eq!(t.upcall.take(), vec![Timer(0, None)]);
    assert_eq!(t.d.timer_deadline(0), None);
    // Re-arm, then stop.
    assert_eq!(singleshot(&mut t, now + 5_000, 0), 0);
    assert_eq!(t.call(HYPERVISOR_VCPU_OP, &[VCPUOP_STOP_SINGLESHOT_TIMER, 0, 0]), 0);
    assert_eq!(t.d.timer_deadline(0), None);
    assert_eq!(t.upcall.take(), vec![Timer(0, Some(now + 5_000)), Timer(0, None)]);
}

#[test]
fn singleshot_in_the_past() {
    let mut t = TestDomain::new();
    let port = bind_virq(&mut t, VIRQ_TIMER, 0).unwrap();
    t.advance_ns(10_000);
    let now = t.d.now_ns();
    // Xen 4.17 (the test domain's version) honours VCPU_SSHOTTMR_future.
    assert_eq!(singleshot(&mut t, now - 1, VCPU_SSHOTTMR_FUTURE), ETIME);
    assert!(!t.d.port_pending(port));
    // Without the flag a past deadline fires at once.
    assert_eq!(singleshot(&mut t, now - 1, 0), 0);
    assert!(took_tick(&mut t, port));
    assert_eq!(t.d.timer_deadline(0), None);
    // Xen 4.18 and later ignore the flag.
    t.d.cfg.xen_version = 0x40012;
    assert_eq!(singleshot(&mut t, now - 1, VCPU_SSHOTTMR_FUTURE), 0);
    assert!(took_tick(&mut t, port));
    // A deadline Xen's signed time sees as negative is in the past too.
    assert_eq!(singleshot(&mut t, 1 << 63, 0), 0);
    assert!(took_tick(&mut t, port));
    // With nothing bound, expiry is silent.
    let mut t = TestDomain::new();
    assert_eq!(singleshot(&mut t, 0, 0), 0);
    assert!(!t.d.upcall_pending(0));
}

#[test]
fn singleshot_errors() {
    let mut t = TestDomain::new();
    let now = t.d.now_ns();
    assert_eq!(singleshot_on(&mut t, 0, 1, now + 10, 0), EINVAL, "only the caller's own timer");
    assert_eq!(singleshot_on(&mut t, 0, 2, now + 10, 0), ENOENT);
    assert_eq!(t.call(HYPERVISOR_VCPU_OP, &[VCPUOP_STOP_SINGLESHOT_TIMER, 1, 0]), EINVAL);
    assert_eq!(t.call(HYPERVISOR_VCPU_OP, &[VCPUOP_SET_SINGLESHOT_TIMER, 0, RAM_SIZE]), EFAULT);
    assert_eq!(singleshot_on(&mut t, 1, 1, now + 10, 0), 0);
    assert_eq!(t.d.timer_deadline(1), Some(now + 10));
    // The compat record is 12 bytes: it fits where the 16-byte one does not.
    let at = RAM_SIZE - 12;
    t.put(at, &CompatVcpuSetSingleshotTimer { timeout_abs_ns: now + 77, flags: 0 });
    assert_eq!(t.call(HYPERVISOR_VCPU_OP, &[VCPUOP_SET_SINGLESHOT_TIMER, 0, at]), EFAULT);
    t.compat = true;
    assert_eq!(t.call(HYPERVISOR_VCPU_OP, &[VCPUOP_SET_SINGLESHOT_TIMER, 0, at]), 0);
    assert_eq!(t.d.timer_deadline(0), Some(now + 77));
}

#[test]
fn periodic_timer() {
    let mut t = TestDomain::new();
    let port = bind_virq(&mut t, VIRQ_TIMER, 1).unwrap();
    assert_eq!(periodic(&mut t, 1, 999_999), EINVAL, "shorter than 1 ms");
    assert_eq!(periodic(&mut t, 1, 0), EINVAL);
    assert_eq!(periodic(&mut t, 1, (u64::MAX >> 2) + 1), EINVAL);
    assert_eq!(periodic(&mut t, 2, 1_000_000), ENOENT);
    assert_eq!(t.call(HYPERVISOR_VCPU_OP, &[VCPUOP_SET_PERIODIC_TIMER, 1, RAM_SIZE]), EFAULT);
    // Any vCPU may set another's periodic timer. At system time 0 the first
    // period has not passed since the (zero) last event.
    assert_eq!(t.d.now_ns(), 0);
    assert_eq!(periodic(&mut t, 1, 1_000_000), 0);
    assert!(!t.d.port_pending(port));
    assert_eq!(t.d.timer_deadline(1), Some(1_000_000));
    assert_eq!(t.upcall.take(), vec![Timer(1, Some(1_000_000))]);
    assert_eq!(t.d.fire_timers(1_000_500), Some(2_000_500), "re-armed a period after the event");
    assert!(took_tick(&mut t, port));
    assert_eq!(t.upcall.take(), vec![Timer(1, Some(2_000_500))]);
    assert_eq!(t.d.fire_timers(2_000_000), Some(2_000_500));
    assert!(!took_tick(&mut t, port));
    assert_eq!(t.d.fire_timers(2_000_500), Some(3_000_500));
    assert!(took_tick(&mut t, port));
    // Stopping keeps the last event time; restarting after a period fires at once.
    assert_eq!(t.call(HYPERVISOR_VCPU_OP, &[VCPUOP_STOP_PERIODIC_TIMER, 1, 0]), 0);
    assert_eq!(t.d.timer_deadline(1), None);
    t.advance_ns(5_000_000);
    assert_eq!(periodic(&mut t, 1, 1_000_000), 0);
    assert!(took_tick(&mut t, port));
    assert_eq!(t.d.timer_deadline(1), Some(6_000_000));
    // Linux stops the (never started) periodic timer of each vCPU: fine.
    assert_eq!(t.call(HYPERVISOR_VCPU_OP, &[VCPUOP_STOP_PERIODIC_TIMER, 0, 0]), 0);
}

#[test]
fn both_timers_and_the_earliest_deadline() {
    let mut t = TestDomain::new();
    assert_eq!(periodic(&mut t, 0, 2_000_000), 0);
    assert_eq!(singleshot_on(&mut t, 1, 1, 3_000_000, 0), 0);
    assert_eq!(singleshot(&mut t, 1_500_000, 0), 0);
    assert_eq!(t.d.timer_deadline(0), Some(1_500_000));
    assert_eq!(t.d.next_timer_deadline(), Some((0, 1_500_000)));
    assert_eq!(t.d.fire_timers(1_500_000), Some(2_000_000));
    assert_eq!(t.d.next_timer_deadline(), Some((0, 2_000_000)));
    assert_eq!(t.d.fire_timers(2_500_000), Some(3_000_000));
    assert_eq!(t.d.next_timer_deadline(), Some((1, 3_000_000)));
}

#[test]
fn set_timer_op_forms() {
    let mut t = TestDomain::new();
    let port = bind_virq(&mut t, VIRQ_TIMER, 0).unwrap();
    t.advance_ns(1_000);
    assert_eq!(t.call(HYPERVISOR_SET_TIMER_OP, &[50_000]), 0);
    assert_eq!(t.d.timer_deadline(0), Some(50_000));
    assert_eq!(t.call(HYPERVISOR_SET_TIMER_OP, &[0]), 0, "0 stops");
    assert_eq!(t.d.timer_deadline(0), None);
    // Negative, or more than 2^50 ns ahead: 100 ms from now instead.
    assert_eq!(t.call(HYPERVISOR_SET_TIMER_OP, &[u64::MAX]), 0);
    assert_eq!(t.d.timer_deadline(0), Some(1_000 + 100_000_000));
    assert_eq!(t.call(HYPERVISOR_SET_TIMER_OP, &[1_000 + (1 << 50)]), 0);
    assert_eq!(t.d.timer_deadline(0), Some(1_000 + 100_000_000));
    assert_eq!(t.call(HYPERVISOR_SET_TIMER_OP, &[1_000 + (1 << 50) - 1]), 0);
    assert_eq!(t.d.timer_deadline(0), Some(1_000 + (1 << 50) - 1));
    // A past time fires at once.
    assert_eq!(t.call(HYPERVISOR_SET_TIMER_OP, &[999]), 0);
    assert_eq!(t.d.timer_deadline(0), None);
    assert!(took_tick(&mut t, port));
    // Compat callers pass the low and high halves.
    t.compat = true;
    assert_eq!(t.call(HYPERVISOR_SET_TIMER_OP, &[0x2345_6789, 0x1]), 0);
    assert_eq!(t.d.timer_deadline(0), Some(0x1_2345_6789));
    assert_eq!(t.call(HYPERVISOR_SET_TIMER_OP, &[0, 0]), 0);
    assert_eq!(t.d.timer_deadline(0), None);
}

#[test]
fn block_ends_when_the_timer_is_due() {
    let mut t = TestDomain::new();
    let port = bind_virq(&mut t, VIRQ_TIMER, 0).unwrap();
    let deadline = t.d.now_ns() + 1_000;
    assert_eq!(singleshot(&mut t, deadline, 0), 0);
    let block = Wait { deadline_ns: None, ports: vec![] };
    assert_eq!(t.outcome(HYPERVISOR_SCHED_OP, &[SCHEDOP_BLOCK]), Outcome::Wait(block.clone()));
    assert!(!t.d.wait_done(0, &block));
    assert_eq!(t.d.wait_deadline(0, &block), Some(deadline));
    let later = Wait { deadline_ns: Some(deadline + 5), ports: vec![] };
    assert_eq!(t.d.wait_deadline(0, &later), Some(deadline));
    assert_eq!(t.d.wait_deadline(1, &later), Some(deadline + 5));
    t.advance_ns(1_000);
    assert!(t.d.wait_done(0, &block), "the timer is due");
    assert!(!t.d.port_pending(port), "the timer thread has not run yet");
    t.d.end_wait(0, t.paging);
    assert!(t.d.port_pending(port), "end_wait fired it");
    assert!(t.d.upcall_pending(0));
    assert_eq!(t.d.timer_deadline(0), None);
    // A timer already due when the vCPU blocks fires first, and its event
    // ends the block at once.
    assert!(took_tick(&mut t, port));
    let soon = t.d.now_ns() + 10;
    assert_eq!(singleshot(&mut t, soon, 0), 0);
    t.advance_ns(10);
    assert_eq!(t.outcome(HYPERVISOR_SCHED_OP, &[SCHEDOP_BLOCK]), Outcome::Return(0));
    assert!(t.d.port_pending(port));
}
