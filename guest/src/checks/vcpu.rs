//! Section 9: HYPERVISOR_vcpu_op: vcpu_info placement, the vcpu time area and
//! the runstate area.

use super::{note, Report};
use crate::print::print;
use crate::abi::*;
use crate::hypercall::{va, vcpu_op};
use crate::pvclock::TimeInfo;
use crate::shared::{
    fill, read32, read64, set_runstate, set_vcpu_info, AREA_PAGE, RUNSTATE_AREA_OFFSET, TIME_AREA_OFFSET,
    VCPU_INFO_OFFSET, VCPU_INFO_PAGE,
};

/// A consistent snapshot of a `vcpu_runstate_info`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Runstate {
    pub state: i32,
    /// `state_entry_time` without `XEN_RUNSTATE_UPDATE`.
    pub entry_time: u64,
    pub time: [u64; 4],
}

impl Runstate {
    /// Reads the area at `addr`, waiting out updates in progress (flagged by
    /// `XEN_RUNSTATE_UPDATE` or a changed `state_entry_time`).
    ///
    /// # Safety
    /// `addr` must point at a readable, 8-byte aligned runstate area.
    pub unsafe fn read(addr: u64) -> Self {
        let mut snap = Self::default();
        for _ in 0..100_000 {
            // SAFETY: forwarded to the caller; offsets of vcpu_runstate_info.
            unsafe {
                let e1 = read64(addr + RUNSTATE_ENTRY_TIME as u64);
                snap.state = read32(addr + RUNSTATE_STATE as u64) as i32;
                for (i, t) in snap.time.iter_mut().enumerate() {
                    *t = read64(addr + (RUNSTATE_TIME + 8 * i) as u64);
                }
                let e2 = read64(addr + RUNSTATE_ENTRY_TIME as u64);
                snap.entry_time = e1 & !XEN_RUNSTATE_UPDATE;
                if e1 == e2 && e1 & XEN_RUNSTATE_UPDATE == 0 {
                    break;
                }
            }
            core::hint::spin_loop();
        }
        snap
    }
}

fn register_vcpu_info(vcpu: u64, mfn: u64, offset: u32) -> i64 {
    let mut arg = VcpuRegisterVcpuInfo { mfn, offset, rsvd: 0 };
    vcpu_op(VCPUOP_REGISTER_VCPU_INFO, vcpu, va(&mut arg))
}

pub fn run(r: &mut Report) {
    r.section("vcpu_op");
    let gfn = VCPU_INFO_PAGE.gfn();
    let offset = VCPU_INFO_OFFSET as u32;

    // Argument errors first: they must be reported before "already registered".
    let rc = register_vcpu_info(7, gfn, offset);
    r.rc("vcpu_op: register_vcpu_info for vcpu 7 is -ENOENT", rc, -ENOENT);
    let rc = register_vcpu_info(0, gfn, 4090);
    r.rc("vcpu_op: register_vcpu_info at offset 4090 is -ENXIO", rc, -ENXIO);
    let rc = register_vcpu_info(0, gfn, 3);
    r.rc("vcpu_op: register_vcpu_info at offset 3 is -ENXIO", rc, -ENXIO);

    let rc = register_vcpu_info(0, gfn, offset);
    if r.rc("vcpu_op: register_vcpu_info", rc, 0) {
        let addr = VCPU_INFO_PAGE.addr() + VCPU_INFO_OFFSET;
        set_vcpu_info(addr);
        // SAFETY: our page; vcpu_info.time is 8-byte aligned inside it.
        let t = unsafe { TimeInfo::read(addr + VCPU_INFO_TIME as u64) };
        r.check(
            "vcpu_op: registered vcpu_info holds a valid pvclock",
            t.is_valid(),
            || print!(t),
        );
    }
    let rc = register_vcpu_info(0, gfn, offset);
    r.rc("vcpu_op: register_vcpu_info again is -EINVAL", rc, -EINVAL);

    let time_area = AREA_PAGE.addr() + TIME_AREA_OFFSET;
    // SAFETY: our page, 32 bytes at offset 0.
    unsafe { fill(time_area, 32, 0) };
    let mut arg = VcpuRegisterMemoryArea { addr: time_area };
    let rc = vcpu_op(VCPUOP_REGISTER_VCPU_TIME_MEMORY_AREA, 0, va(&mut arg));
    if r.rc("vcpu_op: register_vcpu_time_memory_area", rc, 0) {
        // SAFETY: as above.
        let t = unsafe { TimeInfo::read(time_area) };
        r.check("vcpu_op: vcpu time area holds a valid pvclock", t.is_valid(), || print!(t));
    }

    let runstate = AREA_PAGE.addr() + RUNSTATE_AREA_OFFSET;
    // SAFETY: our page, 48 bytes at offset 64.
    unsafe { fill(runstate, VCPU_RUNSTATE_INFO_SIZE, 0) };
    let mut arg = VcpuRegisterMemoryArea { addr: runstate };
    let rc = vcpu_op(VCPUOP_REGISTER_RUNSTATE_MEMORY_AREA, 0, va(&mut arg));
    if r.rc("vcpu_op: register_runstate_memory_area", rc, 0) {
        set_runstate(runstate);
        // SAFETY: as above.
        let rs = unsafe { Runstate::read(runstate) };
        note!(
            "runstate state ", rs.state, " entry ", rs.entry_time, " time ", rs.time[0], "/", rs.time[1], "/",
            rs.time[2], "/", rs.time[3]
        );
        r.check(
            "vcpu_op: runstate area says running since a non-zero time",
            rs.state == RUNSTATE_RUNNING && rs.entry_time != 0,
            || print!("state ", rs.state, ", state_entry_time ", rs.entry_time),
        );
    }

    let rc = vcpu_op(99, 0, 0);
    r.rc("vcpu_op: unknown op 99 is -ENOSYS", rc, -ENOSYS);
}
