//! vcpu_op areas, runstate accounting, vm_assist and sched_op.

use super::*;
use crate::{ShutdownReason, Wait};
use xenkvm_xen_abi::sched::*;
use xenkvm_xen_abi::shared_info::*;
use xenkvm_xen_abi::vcpu::*;
use xenkvm_xen_abi::xen::*;

fn register_vcpu_info(t: &mut TestDomain, vcpu: u64, mfn: u64, offset: u32) -> i64 {
    t.put(SCRATCH, &VcpuRegisterVcpuInfo { mfn, offset, rsvd: 0 });
    t.call(HYPERVISOR_VCPU_OP, &[VCPUOP_REGISTER_VCPU_INFO, vcpu, SCRATCH])
}

#[test]
fn register_vcpu_info_checks_in_xen_order() {
    let mut t = TestDomain::new();
    assert_eq!(register_vcpu_info(&mut t, 0, 0x20, 4096 - 63), ENXIO);
    assert_eq!(register_vcpu_info(&mut t, 0, 0x20, 3), ENXIO);
    assert_eq!(register_vcpu_info(&mut t, 2, 0x20, 64), ENOENT);
    assert_eq!(register_vcpu_info(&mut t, u64::MAX, 0x20, 64), ENOENT);
    assert_eq!(register_vcpu_info(&mut t, 0, RAM_SIZE >> 12, 64), EINVAL, "not RAM");
    assert_eq!(register_vcpu_info(&mut t, 0, 0x20, 64), 0);
    assert_eq!(register_vcpu_info(&mut t, 0, 0x21, 64), EINVAL, "already registered");
    assert_eq!(t.call(HYPERVISOR_VCPU_OP, &[VCPUOP_REGISTER_VCPU_INFO, 0, RAM_SIZE]), EFAULT);
    assert_eq!(t.call(HYPERVISOR_VCPU_OP, &[99, 0, SCRATCH]), ENOSYS);
}

#[test]
fn register_vcpu_info_fills_the_new_area() {
    let mut t = TestDomain::new();
    assert_eq!(register_vcpu_info(&mut t, 1, 0x20, 128), 0);
    let base = 0x20_000 + 128;
    let info: VcpuInfo = t.get(base);
    assert_eq!(info.evtchn_upcall_pending, 1, "marked pending so no event is lost");
    assert_eq!(info.evtchn_pending_sel, u64::MAX);
    assert_ne!(info.time.tsc_to_system_mul, 0);
    assert_eq!(info.time.version % 2, 0);
    assert!(t.d.upcall_pending(1));
    assert!(!t.d.upcall_pending(0));
}

#[test]
fn time_area_gets_a_pvclock() {
    let mut t = TestDomain::new();
    t.put(SCRATCH, &VcpuRegisterMemoryArea { addr: 0x30_000 });
    assert_eq!(t.call(HYPERVISOR_VCPU_OP, &[VCPUOP_REGISTER_VCPU_TIME_MEMORY_AREA, 0, SCRATCH]), 0);
    let pv: VcpuTimeInfo = t.get(0x30_000);
    assert_eq!(pv.flags & XEN_PVCLOCK_TSC_STABLE_BIT, XEN_PVCLOCK_TSC_STABLE_BIT);
    assert_eq!(pv.tsc_to_system_mul, 1 << 31, "1 GHz: shift 1, mul 2^31");
    assert_eq!(pv.tsc_shift, 1);
    // Like Xen, an unusable address is accepted and simply not written.
    t.put(SCRATCH, &VcpuRegisterMemoryArea { addr: RAM_SIZE * 4 });
    assert_eq!(t.call(HYPERVISOR_VCPU_OP, &[VCPUOP_REGISTER_VCPU_TIME_MEMORY_AREA, 0, SCRATCH]), 0);
}

fn register_runstate(t: &mut TestDomain, addr: u64) -> i64 {
    t.put(SCRATCH, &VcpuRegisterMemoryArea { addr });
    t.call(HYPERVISOR_VCPU_OP, &[VCPUOP_REGISTER_RUNSTATE_MEMORY_AREA, 0, SCRATCH])
}

fn poll(t: &mut TestDomain, ports: &[u32], timeout: u64) -> Outcome {
    let ports_at = SCRATCH + 0x100;
    for (i, p) in ports.iter().enumerate() {
        t.put(ports_at + 4 * i as u64, p);
    }
    t.put(SCRATCH, &SchedPoll { ports: ports_at, nr_ports: ports.len() as u32, pad: 0, timeout });
    t.outcome(HYPERVISOR_SCHED_OP, &[SCHEDOP_POLL, SCRATCH])
}

#[test]
fn runstate_tracks_blocked_time() {
    let mut t = TestDomain::new();
    t.d.vcpu_started(0);
    t.advance_ns(1_000);
    assert_eq!(register_runstate(&mut t, 0x40_000), 0);
    let rs: VcpuRunstateInfo = t.get(0x40_000);
    assert_eq!(rs.state, RUNSTATE_RUNNING);
    let deadline = t.d.now_ns() + 2_000_000;
    let out = poll(&mut t, &[], deadline);
    assert_eq!(out, Outcome::Wait(Wait { deadline_ns: Some(deadline), ports: vec![] }));
    assert_eq!(t.get::<VcpuRunstateInfo>(0x40_000).state, RUNSTATE_BLOCKED);
    let wait = Wait { deadline_ns: Some(deadline), ports: vec![] };
    assert!(!t.d.wait_done(0, &wait));
    t.advance_ns(2_000_000);
    assert!(t.d.wait_done(0, &wait));
    assert_eq!(t.d.end_wait(0, t.paging), 0);
    let rs: VcpuRunstateInfo = t.get(0x40_000);
    assert_eq!(rs.state, RUNSTATE_RUNNING);
    assert_eq!(rs.time[RUNSTATE_BLOCKED as usize], 2_000_000);
    assert!(rs.time[RUNSTATE_RUNNING as usize] >= 1_000);
    // get_runstate_info reports the same.
    assert_eq!(t.call(HYPERVISOR_VCPU_OP, &[VCPUOP_GET_RUNSTATE_INFO, 0, 0x50_000]), 0);
    assert_eq!(t.get::<VcpuRunstateInfo>(0x50_000), rs);
}

#[test]
fn runstate_update_flag_and_compat_layout() {
    let mut t = TestDomain::new();
    t.compat = true;
    assert_eq!(t.call(HYPERVISOR_VM_ASSIST, &[VMASST_CMD_ENABLE, VMASST_TYPE_RUNSTATE_UPDATE_FLAG]), 0);
    t.advance_ns(500);
    t.d.vcpu_started(0);
    assert_eq!(register_runstate(&mut t, 0x40_000), 0);
    let rs: CompatVcpuRunstateInfo = t.get(0x40_000);
    let entry = rs.state_entry_time;
    assert_eq!(entry, 500, "update flag cleared after the write");
}

#[test]
fn vm_assist_types() {
    let mut t = TestDomain::new();
    assert_eq!(t.call(HYPERVISOR_VM_ASSIST, &[VMASST_CMD_ENABLE, VMASST_TYPE_RUNSTATE_UPDATE_FLAG]), 0);
    assert_eq!(t.call(HYPERVISOR_VM_ASSIST, &[VMASST_CMD_DISABLE, VMASST_TYPE_RUNSTATE_UPDATE_FLAG]), 0);
    assert_eq!(t.call(HYPERVISOR_VM_ASSIST, &[VMASST_CMD_ENABLE, VMASST_TYPE_WRITABLE_PAGETABLES]), EINVAL);
    assert_eq!(t.call(HYPERVISOR_VM_ASSIST, &[7, VMASST_TYPE_RUNSTATE_UPDATE_FLAG]), EINVAL);
    assert_eq!(t.call(HYPERVISOR_VM_ASSIST, &[VMASST_CMD_ENABLE, u64::MAX]), EINVAL);
}

#[test]
fn poll_rules() {
    let mut t = TestDomain::new();
    // shared_info must be mapped for the guest to set pending bits; the core's
    // page is the same object either way.
    let too_many: Vec<u32> = (1..=129).collect();
    assert_eq!(poll(&mut t, &too_many, 0), Outcome::Return(EINVAL));
    assert_eq!(poll(&mut t, &[4096], 0), Outcome::Return(EINVAL));
    t.put(SCRATCH, &SchedPoll { ports: RAM_SIZE, nr_ports: 1, pad: 0, timeout: 0 });
    assert_eq!(t.outcome(HYPERVISOR_SCHED_OP, &[SCHEDOP_POLL, SCRATCH]), Outcome::Return(EFAULT));
    assert_eq!(t.outcome(HYPERVISOR_SCHED_OP, &[SCHEDOP_POLL, RAM_SIZE]), Outcome::Return(EFAULT));
    // A past deadline returns at once.
    t.advance_ns(10);
    assert_eq!(poll(&mut t, &[3], 1), Outcome::Return(0));
    assert_eq!(poll(&mut t, &[3, 5], 0), Outcome::Wait(Wait { deadline_ns: None, ports: vec![3, 5] }));
    t.d.end_wait(0, t.paging);
}

#[test]
fn poll_returns_at_once_for_a_pending_port() {
    let mut t = TestDomain::new();
    let mut si = [0u8; 4096];
    si[0x800] = 1 << 5; // port 5 pending
    assert!(t.d.shared_info.write(0, &si));
    assert_eq!(poll(&mut t, &[2, 5], 0), Outcome::Return(0));
    assert!(t.d.port_pending(5));
    assert!(!t.d.port_pending(4));
    assert!(!t.d.port_pending(u32::MAX));
}

#[test]
fn block_returns_at_once_when_an_upcall_is_pending() {
    let mut t = TestDomain::new();
    assert_eq!(t.outcome(HYPERVISOR_SCHED_OP, &[SCHEDOP_BLOCK]), Outcome::Wait(Wait { deadline_ns: None, ports: vec![] }));
    t.d.end_wait(0, t.paging);
    assert!(t.d.shared_info.write(0, &[1]));
    assert_eq!(t.outcome(HYPERVISOR_SCHED_OP, &[SCHEDOP_BLOCK]), Outcome::Return(0));
}

#[test]
fn shutdown_reasons() {
    let mut t = TestDomain::new();
    let mut shut = |reason: u32| {
        t.put(SCRATCH, &SchedShutdown { reason });
        t.outcome(HYPERVISOR_SCHED_OP, &[SCHEDOP_SHUTDOWN, SCRATCH])
    };
    assert_eq!(shut(SHUTDOWN_POWEROFF), Outcome::Shutdown(ShutdownReason::Poweroff));
    assert_eq!(shut(SHUTDOWN_REBOOT), Outcome::Shutdown(ShutdownReason::Reboot));
    assert_eq!(shut(SHUTDOWN_CRASH), Outcome::Shutdown(ShutdownReason::Crash));
    assert_eq!(shut(SHUTDOWN_WATCHDOG), Outcome::Shutdown(ShutdownReason::Watchdog));
    assert_eq!(shut(SHUTDOWN_SOFT_RESET), Outcome::Shutdown(ShutdownReason::SoftReset));
    assert_eq!(shut(SHUTDOWN_SUSPEND), Outcome::Return(1), "suspend is cancelled");
    assert_eq!(shut(0x1_00), Outcome::Shutdown(ShutdownReason::Poweroff), "Xen keeps 8 bits");
    assert_eq!(shut(77), Outcome::Shutdown(ShutdownReason::Other(77)));
}

#[test]
fn sched_op_errors() {
    let mut t = TestDomain::new();
    assert_eq!(t.call(HYPERVISOR_SCHED_OP, &[SCHEDOP_YIELD]), 0);
    assert_eq!(t.call(HYPERVISOR_SCHED_OP, &[SCHEDOP_SHUTDOWN, RAM_SIZE]), EFAULT);
    assert_eq!(t.call(HYPERVISOR_SCHED_OP, &[SCHEDOP_REMOTE_SHUTDOWN, SCRATCH]), EPERM);
    assert_eq!(t.call(HYPERVISOR_SCHED_OP, &[99, SCRATCH]), ENOSYS);
}
