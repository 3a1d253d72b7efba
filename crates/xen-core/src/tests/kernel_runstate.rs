//! Runstate records handed to the host kernel (the `KernelTime` port): the
//! kernel keeps the record and accounts preemption; the core only reports the
//! blocked periods it serves itself.

use super::*;
use crate::ports::KernelTime;
use xenkvm_xen_abi::sched::*;
use xenkvm_xen_abi::vcpu::*;
use xenkvm_xen_abi::xen::*;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Asked {
    RunstateAt(u32, Option<u64>),
    RunstateNow(u32, i32),
    UpdateFlag(bool),
}

/// A kernel that keeps runstate records unless `refuse` is set.
#[derive(Default)]
struct RecordingTime {
    asked: Mutex<Vec<Asked>>,
    refuse: bool,
}

impl RecordingTime {
    fn take(&self) -> Vec<Asked> {
        std::mem::take(&mut *self.asked.lock().unwrap())
    }
}

impl KernelTime for RecordingTime {
    fn now_ns(&self) -> u64 {
        1_000_000
    }
    fn vcpu_info_at(&self, _vcpu: u32, _gpa: u64) -> bool {
        false
    }
    fn time_area_at(&self, _vcpu: u32, _gpa: Option<u64>) -> bool {
        false
    }
    fn runstate_area_at(&self, vcpu: u32, gpa: Option<u64>) -> bool {
        self.asked.lock().unwrap().push(Asked::RunstateAt(vcpu, gpa));
        !self.refuse
    }
    fn runstate_now(&self, vcpu: u32, state: i32) {
        self.asked.lock().unwrap().push(Asked::RunstateNow(vcpu, state));
    }
    fn runstate_update_flag(&self, on: bool) {
        self.asked.lock().unwrap().push(Asked::UpdateFlag(on));
    }
}

fn with_time(refuse: bool) -> (TestDomain, Arc<RecordingTime>) {
    let mut t = TestDomain::new();
    let k = Arc::new(RecordingTime { refuse, ..Default::default() });
    t.d.set_kernel_time(k.clone());
    t.d.vcpu_started(0);
    (t, k)
}

fn register(t: &mut TestDomain, addr: u64) -> i64 {
    t.put(SCRATCH, &VcpuRegisterMemoryArea { addr });
    t.call(HYPERVISOR_VCPU_OP, &[VCPUOP_REGISTER_RUNSTATE_MEMORY_AREA, 0, SCRATCH])
}

#[test]
fn the_kernel_keeps_the_record_and_hears_of_blocked_periods() {
    let (mut t, k) = with_time(false);
    assert_eq!(register(&mut t, 0x40_000), 0);
    assert_eq!(k.take(), [Asked::RunstateAt(0, Some(0x40_000)), Asked::RunstateNow(0, RUNSTATE_RUNNING)]);
    // The core writes nothing into the area the kernel keeps.
    assert_eq!(t.get::<VcpuRunstateInfo>(0x40_000).state_entry_time, 0);
    assert!(matches!(t.outcome(HYPERVISOR_SCHED_OP, &[SCHEDOP_BLOCK]), Outcome::Wait(_)));
    assert_eq!(k.take(), [Asked::RunstateNow(0, RUNSTATE_BLOCKED)]);
    assert_eq!(t.d.end_wait(0, t.paging), 0);
    assert_eq!(k.take(), [Asked::RunstateNow(0, RUNSTATE_RUNNING)]);
    assert_eq!(t.get::<VcpuRunstateInfo>(0x40_000).state_entry_time, 0);
    // vm_assist(runstate_update_flag) is passed on.
    assert_eq!(t.call(HYPERVISOR_VM_ASSIST, &[VMASST_CMD_ENABLE, VMASST_TYPE_RUNSTATE_UPDATE_FLAG]), 0);
    assert_eq!(k.take(), [Asked::UpdateFlag(true)]);
}

#[test]
fn records_the_kernel_cannot_keep_stay_with_the_core() {
    // Crossing a page: the core keeps it, and takes back what the kernel had.
    let (mut t, k) = with_time(false);
    assert_eq!(register(&mut t, 0x40_000), 0);
    k.take();
    assert_eq!(register(&mut t, 0x40_FF0), 0);
    assert_eq!(k.take(), [Asked::RunstateAt(0, None)]);
    assert_eq!(t.get::<VcpuRunstateInfo>(0x40_FF0).state, RUNSTATE_RUNNING);
    // A kernel that refuses leaves the record to the core too.
    let (mut t, k) = with_time(true);
    assert_eq!(register(&mut t, 0x40_000), 0);
    assert_eq!(k.take(), [Asked::RunstateAt(0, Some(0x40_000))]);
    assert!(t.get::<VcpuRunstateInfo>(0x40_000).state_entry_time > 0);
    // A compat (32-bit) caller's record is the core's.
    let (mut t, k) = with_time(false);
    t.compat = true;
    assert_eq!(register(&mut t, 0x40_000), 0);
    assert_eq!(k.take(), []);
}
