//! Section 11: HYPERVISOR_sched_op: yield, block with an event pending, poll
//! with a timeout (and its runstate accounting), poll argument checks, poll on
//! a pending port, and shutdown with a bad argument.

use core::sync::atomic::{AtomicU64, Ordering};

use super::vcpu::Runstate;
use super::Report;
use crate::print::print;
use crate::abi::*;
use crate::entry::UNMAPPED_VA;
use crate::hypercall::{sched_op, va};
use crate::pvclock;
use crate::shared::{runstate, shared_info, vcpu_info, write64, write8};

/// Poll timeout of the blocking poll.
const POLL_NS: u64 = 2_000_000;
/// Least blocked time the runstate area must account for it.
const MIN_BLOCKED_NS: u64 = 1_000_000;
/// A call that must not block has to return within this much time. The polls
/// that test it carry a 1 s timeout so that a wrong implementation shows as a
/// slow return rather than a hang.
const IMMEDIATE_NS: u64 = 100_000_000;
const SAFETY_TIMEOUT_NS: u64 = 1_000_000_000;

fn poll(ports: &mut [u32], nr_ports: u32, timeout: u64) -> i64 {
    let mut arg = SchedPoll { ports: ports.as_mut_ptr() as u64, nr_ports, pad: 0, timeout };
    sched_op(SCHEDOP_POLL, va(&mut arg))
}

/// The guest's pvclock time, or a failed check named `name`.
fn now_or_fail(r: &mut Report, name: &str) -> Option<u64> {
    let now = pvclock::now_ns();
    if now.is_none() {
        r.fail(name, || print!("no valid pvclock to time it with"));
    }
    now
}

/// Acknowledges any pending upcall in vCPU 0's `vcpu_info`, as an event
/// handler would: Xen marks one pending when a vcpu_info is registered, and a
/// pending upcall makes SCHEDOP_block and SCHEDOP_poll return at once.
fn clear_upcall() {
    if let Some(vi) = vcpu_info() {
        // SAFETY: vi is the registered vcpu_info (or shared_info's slot 0);
        // the guest owns evtchn_upcall_pending and evtchn_pending_sel.
        unsafe {
            write8(vi + VCPU_INFO_UPCALL_PENDING as u64, 0);
            write64(vi + VCPU_INFO_PENDING_SEL as u64, 0);
        }
    }
}

pub fn run(r: &mut Report) {
    r.section("sched_op");
    clear_upcall();
    let rc = sched_op(SCHEDOP_YIELD, 0);
    r.rc("sched_op: yield", rc, 0);

    block_with_pending_event(r);
    poll_timeout(r);

    if let Some(now) = now_or_fail(r, "sched_op: poll with 129 ports is -EINVAL") {
        let mut ports = [0u32; 129];
        let rc = poll(&mut ports, 129, now + SAFETY_TIMEOUT_NS);
        r.rc("sched_op: poll with 129 ports is -EINVAL", rc, -EINVAL);
    }

    if let Some(now) = now_or_fail(r, "sched_op: poll on port 5000 is -EINVAL") {
        let mut ports = [5000u32];
        let rc = poll(&mut ports, 1, now + SAFETY_TIMEOUT_NS);
        r.rc("sched_op: poll on port 5000 is -EINVAL", rc, -EINVAL);
    }

    poll_pending_port(r);

    let rc = sched_op(99, 0);
    r.rc("sched_op: unknown op 99 is -ENOSYS", rc, -ENOSYS);

    let rc = sched_op(SCHEDOP_SHUTDOWN, UNMAPPED_VA);
    r.rc("sched_op: shutdown with an unmapped argument is -EFAULT", rc, -EFAULT);
}

/// SCHEDOP_block returns at once while `evtchn_upcall_pending` is set.
fn block_with_pending_event(r: &mut Report) {
    const NAME: &str = "sched_op: block with an upcall pending returns at once";
    let Some(vi) = vcpu_info() else {
        r.fail(NAME, || print!("no vcpu_info mapped (it would block forever)"));
        return;
    };
    let Some(start) = now_or_fail(r, NAME) else { return };
    // SAFETY: vi is the registered vcpu_info (or shared_info's slot 0);
    // evtchn_upcall_pending is its first byte and the guest may set it.
    unsafe { write8(vi + VCPU_INFO_UPCALL_PENDING as u64, 1) };
    let rc = sched_op(SCHEDOP_BLOCK, 0);
    clear_upcall();
    let elapsed = pvclock::now_ns().unwrap_or(u64::MAX).wrapping_sub(start);
    r.check(
        NAME,
        rc == 0 && elapsed < IMMEDIATE_NS,
        || print!("returned ", rc, " after ", elapsed, " ns"),
    );
}

/// SCHEDOP_poll with no ports sleeps until the timeout, and the runstate area
/// accounts the sleep as blocked time.
fn poll_timeout(r: &mut Report) {
    const NAME: &str = "sched_op: poll with no ports sleeps until the timeout";
    clear_upcall();
    let Some(start) = now_or_fail(r, NAME) else { return };
    // SAFETY: runstate() is the area the hypervisor accepted.
    let before = runstate().map(|a| unsafe { Runstate::read(a) });
    let mut ports = [0u32; 1];
    let rc = poll(&mut ports, 0, start + POLL_NS);
    let elapsed = pvclock::now_ns().unwrap_or(0).wrapping_sub(start);
    r.check(
        NAME,
        rc == 0 && (POLL_NS..u64::MAX / 2).contains(&elapsed),
        || print!("returned ", rc, " after ", elapsed, " ns, expected >= ", POLL_NS, " ns"),
    );

    const RS_NAME: &str = "sched_op: runstate blocked time grew by the poll";
    let (Some(before), Some(addr)) = (before, runstate()) else {
        r.fail(RS_NAME, || print!("no runstate area registered"));
        return;
    };
    // SAFETY: as above.
    let after = unsafe { Runstate::read(addr) };
    let grew = after.time[RUNSTATE_BLOCKED].wrapping_sub(before.time[RUNSTATE_BLOCKED]);
    r.check(
        RS_NAME,
        (MIN_BLOCKED_NS..u64::MAX / 2).contains(&grew),
        || {
            print!(
                "time[blocked] ", before.time[RUNSTATE_BLOCKED], " -> ", after.time[RUNSTATE_BLOCKED], " (+", grew,
                " ns, expected >= ", MIN_BLOCKED_NS, ")"
            )
        },
    );
    r.check(
        "sched_op: runstate says running after the poll",
        after.state == RUNSTATE_RUNNING,
        || print!("state ", after.state),
    );
}

/// SCHEDOP_poll on a port whose pending bit is set returns at once.
fn poll_pending_port(r: &mut Report) {
    const NAME: &str = "sched_op: poll on a pending port returns at once";
    const PORT: u32 = 5;
    let Some(si) = shared_info() else {
        r.fail(NAME, || print!("shared_info is not mapped"));
        return;
    };
    let Some(start) = now_or_fail(r, NAME) else { return };
    // SAFETY: evtchn_pending[0] is an 8-byte aligned word of the mapped
    // shared_info; the hypervisor may update other bits concurrently, hence
    // atomic read-modify-write.
    let pending = unsafe { &*((si + SHARED_INFO_EVTCHN_PENDING as u64) as *const AtomicU64) };
    pending.fetch_or(1 << PORT, Ordering::SeqCst);
    let mut ports = [PORT];
    let rc = poll(&mut ports, 1, start + SAFETY_TIMEOUT_NS);
    let elapsed = pvclock::now_ns().unwrap_or(u64::MAX).wrapping_sub(start);
    pending.fetch_and(!(1 << PORT), Ordering::SeqCst);
    r.check(
        NAME,
        rc == 0 && elapsed < IMMEDIATE_NS,
        || print!("returned ", rc, " after ", elapsed, " ns"),
    );
}
