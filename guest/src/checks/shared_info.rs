//! Sections 6 and 7: mapping shared_info with XENMEM_add_to_physmap, its
//! pvclock and wall clock, moving it outside RAM, and pvclock monotonicity.

use super::{note, spin, Report};
use crate::abi::*;
use crate::entry::UNMAPPED_VA;
use crate::hypercall::{map_shared_info, memory_op, va};
use crate::print::{hex, print};
use crate::pvclock::{self, TimeInfo};
use crate::shared::{read32, set_shared_info, shared_info, SHARED_INFO_PAGE};

/// A guest frame outside RAM (in the 3-4 GiB hole, inside the identity map)
/// where shared_info is moved to.
pub const HIGH_SHARED_INFO_GPFN: u64 = 0xF000_0000 >> XEN_PAGE_SHIFT;
/// Lowest plausible wall-clock seconds (September 2020).
const MIN_WC_SEC: u32 = 1_600_000_000;

pub fn run(r: &mut Report) {
    r.section("memory_op: shared_info");
    errors(r);

    let rc = map_shared_info(SHARED_INFO_PAGE.gfn());
    if r.rc("memory_op: add_to_physmap shared_info to a RAM page", rc, 0) {
        set_shared_info(SHARED_INFO_PAGE.addr());
        let first = check_contents(r, SHARED_INFO_PAGE.addr(), "in RAM");

        // Move it to a frame that is not RAM; from now on the old frame may be
        // a hole and is never touched again.
        let rc = map_shared_info(HIGH_SHARED_INFO_GPFN);
        if r.rc("memory_op: add_to_physmap shared_info to a frame outside RAM", rc, 0) {
            let high = HIGH_SHARED_INFO_GPFN << XEN_PAGE_SHIFT;
            set_shared_info(high);
            let moved = check_contents(r, high, "outside RAM");
            if let (Some(first), Some(moved)) = (first, moved) {
                r.check(
                    "shared_info: pvclock scale unchanged after the move",
                    moved.tsc_to_system_mul == first.tsc_to_system_mul && moved.tsc_shift == first.tsc_shift,
                    || print!("before: ", first, "; after: ", moved),
                );
            }
        }
    }

    monotonic(r);
}

/// The error cases, run before anything is mapped (so that a wrongly accepted
/// one cannot move a working shared_info).
fn errors(r: &mut Report) {
    let good = XenAddToPhysmap {
        domid: DOMID_SELF,
        size: 0,
        space: XENMAPSPACE_SHARED_INFO,
        idx: 0,
        gpfn: SHARED_INFO_PAGE.gfn(),
    };

    let mut xatp = XenAddToPhysmap { space: 99, ..good };
    let rc = memory_op(XENMEM_ADD_TO_PHYSMAP, va(&mut xatp));
    r.rc("memory_op: add_to_physmap space 99 is -EINVAL", rc, -EINVAL);

    let mut xatp = XenAddToPhysmap { idx: 1, ..good };
    let rc = memory_op(XENMEM_ADD_TO_PHYSMAP, va(&mut xatp));
    r.rc("memory_op: add_to_physmap shared_info idx 1 is -EINVAL", rc, -EINVAL);

    let mut xatp = XenAddToPhysmap { domid: 5, ..good };
    let rc = memory_op(XENMEM_ADD_TO_PHYSMAP, va(&mut xatp));
    r.rc("memory_op: add_to_physmap for domain 5 is -ESRCH", rc, -ESRCH);

    let mut xatp = good;
    let rc = memory_op(99, va(&mut xatp));
    r.rc("memory_op: unknown command 99 is -ENOSYS", rc, -ENOSYS);

    let rc = memory_op(XENMEM_ADD_TO_PHYSMAP, UNMAPPED_VA);
    r.rc("memory_op: add_to_physmap with an unmapped argument is -EFAULT", rc, -EFAULT);
}

/// Checks vcpu_info[0].time and the wall clock of a shared_info at `addr`;
/// returns the pvclock if it is valid.
fn check_contents(r: &mut Report, addr: u64, where_: &str) -> Option<TimeInfo> {
    // SAFETY: the hypervisor accepted `addr` for shared_info;
    // vcpu_info[0].time is at offset 32.
    let t = unsafe { TimeInfo::read(addr + VCPU_INFO_TIME as u64) };
    note!("shared_info ", where_, " at ", hex(addr), ": vcpu_info[0].time ", t);
    note!("pvclock TSC-stable flag: ", if t.tsc_stable() { "set" } else { "clear (the host TSC is not stable)" });
    let valid = r.check(
        "shared_info: vcpu_info[0].time is a valid pvclock",
        t.is_valid(),
        || print!(t, " (want even version, mul != 0)"),
    );

    // Wall clock: version-protocol read of wc_sec.
    let mut wc = (1, 0);
    for _ in 0..1000 {
        // SAFETY: as above; wc_version and wc_sec are u32 fields at 0xC00/0xC04.
        let (v1, sec, v2) = unsafe {
            (read32(addr + SHARED_INFO_WC_VERSION as u64), read32(addr + SHARED_INFO_WC_SEC as u64), read32(addr + SHARED_INFO_WC_VERSION as u64))
        };
        wc = (v1, sec);
        if v1 & 1 == 0 && v1 == v2 {
            break;
        }
    }
    note!("wc_version ", wc.0, " wc_sec ", wc.1);
    r.check("shared_info: wc_version is even", wc.0 & 1 == 0, || print!("wc_version ", wc.0));
    r.check(
        "shared_info: wc_sec is the host's wall clock",
        wc.1 > MIN_WC_SEC,
        || print!("wc_sec ", wc.1, " is not after ", MIN_WC_SEC),
    );
    valid.then_some(t)
}

/// Section 7: two pvclock readings some time apart increase.
fn monotonic(r: &mut Report) {
    r.section("pvclock");
    if shared_info().is_none() {
        r.fail("pvclock: time advances", || print!("shared_info is not mapped"));
        return;
    }
    let first = pvclock::now_ns();
    spin(100_000);
    let second = pvclock::now_ns();
    note!("pvclock readings ", first, " then ", second, " ns");
    r.check(
        "pvclock: time advances",
        matches!((first, second), (Some(a), Some(b)) if b > a),
        || print!("first ", first, ", second ", second),
    );
}
