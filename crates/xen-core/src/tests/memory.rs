//! The balloon's memory ops on plain memory: decrease_reservation frees host
//! memory through the port and is counted, populate_physmap undoes it, and
//! every bad request gets Xen's answer.

use std::sync::{Arc, Mutex};

use xenkvm_xen_abi::memory::*;
use xenkvm_xen_abi::xen::{DOMID_SELF, HYPERVISOR_MEMORY_OP};

use super::*;
use crate::ports::{RamControl, RamError};

const RES: u64 = 0x2000; // the reservation struct
const LIST: u64 = 0x3000; // the frame list
const RAM_PAGES: u64 = RAM_SIZE >> 12;

#[derive(Default)]
struct RecordingRam(Mutex<Vec<(u64, u64)>>);

impl RamControl for RecordingRam {
    fn release(&self, gfn: u64, count: u64) -> Result<(), RamError> {
        if gfn == 0x999 {
            return Err(RamError { gfn, count, reason: "test refusal".into() });
        }
        self.0.lock().unwrap().push((gfn, count));
        Ok(())
    }
}

fn setup() -> (TestDomain, Arc<RecordingRam>) {
    let mut t = TestDomain::new();
    let ram = Arc::new(RecordingRam::default());
    t.d.set_ram_control(ram.clone());
    (t, ram)
}

fn reservation(t: &mut TestDomain, cmd: u64, frames: &[u64], order: u32, domid: u16) -> i64 {
    for (i, f) in frames.iter().enumerate() {
        t.put(LIST + 8 * i as u64, f);
    }
    let r = XenMemoryReservation { extent_start: LIST, nr_extents: frames.len() as u64, extent_order: order, mem_flags: 0, domid, _pad: [0; 6] };
    t.put(RES, &r);
    t.call(HYPERVISOR_MEMORY_OP, &[cmd, RES])
}

fn query(t: &mut TestDomain, cmd: u64, domid: u16) -> i64 {
    t.put(RES, &domid);
    t.call(HYPERVISOR_MEMORY_OP, &[cmd, RES])
}

#[test]
fn decrease_releases_frames_and_populate_takes_them_back() {
    let (mut t, ram) = setup();
    assert_eq!(query(&mut t, XENMEM_CURRENT_RESERVATION, DOMID_SELF), RAM_PAGES as i64);
    assert_eq!(reservation(&mut t, XENMEM_DECREASE_RESERVATION, &[0x100, 0x101, 0x2ff], 0, DOMID_SELF), 3);
    assert_eq!(ram.0.lock().unwrap().as_slice(), [(0x100, 1), (0x101, 1), (0x2ff, 1)]);
    assert_eq!(query(&mut t, XENMEM_CURRENT_RESERVATION, DOMID_SELF), RAM_PAGES as i64 - 3);
    assert_eq!(query(&mut t, XENMEM_MAXIMUM_RESERVATION, 1), RAM_PAGES as i64);
    assert_eq!(t.d.current_pages() * 4096, RAM_SIZE - 3 * 4096);
    // An order-2 extent: four frames at once, aligned.
    assert_eq!(reservation(&mut t, XENMEM_DECREASE_RESERVATION, &[0x400], 2, DOMID_SELF), 1);
    assert_eq!(t.d.released_pages(), 7);
    assert_eq!(reservation(&mut t, XENMEM_POPULATE_PHYSMAP, &[0x100, 0x101, 0x2ff, 0x400], 0, DOMID_SELF), 4);
    assert_eq!(t.d.released_pages(), 3, "three frames of the order-2 extent stay released");
    assert_eq!(reservation(&mut t, XENMEM_INCREASE_RESERVATION, &[0x400], 2, DOMID_SELF), 1);
    assert_eq!(query(&mut t, XENMEM_CURRENT_RESERVATION, DOMID_SELF), RAM_PAGES as i64);
}

#[test]
fn a_call_stops_at_the_first_bad_frame_and_reports_the_count() {
    let (mut t, ram) = setup();
    let beyond_ram = RAM_PAGES + 5;
    assert_eq!(reservation(&mut t, XENMEM_DECREASE_RESERVATION, &[0x10, beyond_ram, 0x11], 0, DOMID_SELF), 1);
    assert_eq!(reservation(&mut t, XENMEM_DECREASE_RESERVATION, &[0x999], 0, DOMID_SELF), 0, "the host refused");
    assert_eq!(reservation(&mut t, XENMEM_DECREASE_RESERVATION, &[0x401], 2, DOMID_SELF), 0, "misaligned extent");
    assert_eq!(reservation(&mut t, XENMEM_DECREASE_RESERVATION, &[u64::MAX], 0, DOMID_SELF), 0);
    assert_eq!(reservation(&mut t, XENMEM_POPULATE_PHYSMAP, &[beyond_ram], 0, DOMID_SELF), 0, "no growth past RAM");
    assert_eq!(ram.0.lock().unwrap().len(), 1);
    assert_eq!(t.d.released_pages(), 1);
}

#[test]
fn overlay_frames_cannot_be_released() {
    let (mut t, _) = setup();
    t.put(RES, &XenAddToPhysmap { domid: DOMID_SELF, size: 0, space: XENMAPSPACE_SHARED_INFO, idx: 0, gpfn: 0x50 });
    assert_eq!(t.call(HYPERVISOR_MEMORY_OP, &[XENMEM_ADD_TO_PHYSMAP, RES]), 0);
    assert_eq!(reservation(&mut t, XENMEM_DECREASE_RESERVATION, &[0x50], 0, DOMID_SELF), 0);
}

#[test]
fn orders_domains_and_continuations_get_xens_answers() {
    let (mut t, _) = setup();
    assert_eq!(reservation(&mut t, XENMEM_DECREASE_RESERVATION, &[0], MAX_ORDER_PLUS_ONE, DOMID_SELF), 0, "order above 9");
    assert_eq!(reservation(&mut t, XENMEM_DECREASE_RESERVATION, &[0x10], 0, 0), EPERM);
    assert_eq!(reservation(&mut t, XENMEM_DECREASE_RESERVATION, &[0x10], 0, 7), ESRCH);
    assert_eq!(query(&mut t, XENMEM_CURRENT_RESERVATION, 0), EPERM);
    assert_eq!(t.call(HYPERVISOR_MEMORY_OP, &[XENMEM_DECREASE_RESERVATION, 0x0dea_dbee_f000]), EFAULT);
    // A continuation: start at extent 2 of three.
    for (i, f) in [0x20u64, 0x21, 0x22].iter().enumerate() {
        t.put(LIST + 8 * i as u64, f);
    }
    t.put(RES, &XenMemoryReservation { extent_start: LIST, nr_extents: 3, extent_order: 0, mem_flags: 0, domid: DOMID_SELF, _pad: [0; 6] });
    assert_eq!(t.call(HYPERVISOR_MEMORY_OP, &[XENMEM_DECREASE_RESERVATION | 2 << MEMOP_EXTENT_SHIFT, RES]), 3);
    assert_eq!(t.d.released_pages(), 1);
    assert_eq!(t.call(HYPERVISOR_MEMORY_OP, &[XENMEM_DECREASE_RESERVATION | 9 << MEMOP_EXTENT_SHIFT, RES]), 9, "start past the end");
    assert_eq!(t.call(HYPERVISOR_MEMORY_OP, &[XENMEM_MAXIMUM_RAM_PAGE, 0]), RAM_PAGES as i64);
}

#[test]
fn the_compat_layout_works() {
    let (mut t, ram) = setup();
    t.compat = true;
    t.put(LIST, &0x30u32);
    t.put(LIST + 4, &0x31u32);
    let r = CompatXenMemoryReservation { extent_start: LIST as u32, nr_extents: 2, extent_order: 0, mem_flags: 0, domid: DOMID_SELF, _pad: [0; 2] };
    t.put(RES, &r);
    assert_eq!(t.call(HYPERVISOR_MEMORY_OP, &[XENMEM_DECREASE_RESERVATION, RES]), 2);
    assert_eq!(ram.0.lock().unwrap().as_slice(), [(0x30, 1), (0x31, 1)]);
}

const MAX_ORDER_PLUS_ONE: u32 = crate::memory::reservation::MAX_EXTENT_ORDER + 1;
