//! Grant tables: `grant_table_op`, grant frames in the physmap, and the backend API.

use super::*;
use crate::gnttab::{GrantAccess, GrantError, MAX_BATCH};
use xenkvm_xen_abi::grant_table::*;
use xenkvm_xen_abi::memory::*;
use xenkvm_xen_abi::xen::*;

const OWN: u16 = 1;
/// A guest frame outside RAM.
const HOLE: u64 = (RAM_SIZE >> 12) + 0x100;

fn op(t: &mut TestDomain, cmd: u32, uop: u64, count: u64) -> i64 {
    t.call(HYPERVISOR_GRANT_TABLE_OP, &[cmd.into(), uop, count])
}

fn add_frame(t: &mut TestDomain, idx: u64, gpfn: u64) -> i64 {
    t.put(SCRATCH, &XenAddToPhysmap { domid: DOMID_SELF, size: 0, space: XENMAPSPACE_GRANT_TABLE, idx, gpfn });
    t.call(HYPERVISOR_MEMORY_OP, &[XENMEM_ADD_TO_PHYSMAP, SCRATCH])
}

/// Writes entry `gref` as the guest would, straight into the grant frame.
fn grant(t: &TestDomain, gref: u32, flags: u16, domid: u16, frame: u32) {
    let page = t.d.grant_table().frame(gref / 512).unwrap();
    assert!(page.write((gref % 512) as usize * 8, GrantEntryV1 { flags, domid, frame }.as_bytes()));
}

fn flags(t: &TestDomain, gref: u32) -> u16 {
    t.d.grant_entry(gref).unwrap().flags
}

fn query(t: &mut TestDomain, dom: u16) -> (i64, GnttabQuerySize) {
    t.put(SCRATCH, &GnttabQuerySize { dom, nr_frames: 77, max_nr_frames: 77, status: 99, ..Default::default() });
    let rc = op(t, GNTTABOP_QUERY_SIZE, SCRATCH, 1);
    (rc, t.get(SCRATCH))
}

#[test]
fn query_size() {
    let mut t = TestDomain::new();
    for dom in [DOMID_SELF, OWN] {
        let (rc, q) = query(&mut t, dom);
        assert_eq!((rc, q.status, q.nr_frames, q.max_nr_frames), (0, GNTST_OKAY, 1, 64));
    }
    let (rc, q) = query(&mut t, 5);
    assert_eq!((rc, q.status, q.nr_frames), (0, GNTST_BAD_DOMAIN, 77), "other fields untouched");
    assert_eq!(query(&mut t, 0).1.status, GNTST_PERMISSION_DENIED, "domain 0 exists but is not ours to query");
    assert_eq!(op(&mut t, GNTTABOP_QUERY_SIZE, SCRATCH, 0), EINVAL);
    assert_eq!(op(&mut t, GNTTABOP_QUERY_SIZE, SCRATCH, 2), EINVAL);
    assert_eq!(op(&mut t, GNTTABOP_QUERY_SIZE, RAM_SIZE, 1), EFAULT);
    assert_eq!(op(&mut t, GNTTABOP_QUERY_SIZE, RAM_SIZE - 8, 1), EFAULT);
    t.compat = true;
    assert_eq!(query(&mut t, DOMID_SELF).1.max_nr_frames, 64, "same layout in compat");
}

#[test]
fn command_word_and_count_checks() {
    let mut t = TestDomain::new();
    t.put(SCRATCH, &GnttabQuerySize { dom: DOMID_SELF, ..Default::default() });
    // Continuation bits are refused for every command but cache_flush.
    assert_eq!(op(&mut t, GNTTABOP_QUERY_SIZE | 1 << 12, SCRATCH, 1), EINVAL);
    assert_eq!(op(&mut t, GNTTABOP_CACHE_FLUSH | 1 << 12, SCRATCH, 1), ENOSYS);
    // cmd and count are 32-bit: the upper half of the register is ignored.
    assert_eq!(t.call(HYPERVISOR_GRANT_TABLE_OP, &[1 << 32 | u64::from(GNTTABOP_QUERY_SIZE), SCRATCH, 1 << 32 | 1]), 0);
    assert_eq!(op(&mut t, GNTTABOP_QUERY_SIZE, SCRATCH, 1 << 31), EINVAL, "(int)count < 0");
    assert_eq!(op(&mut t, GNTTABOP_COPY, SCRATCH, u64::from(u32::MAX)), EINVAL);
    for cmd in [GNTTABOP_DUMP_TABLE, GNTTABOP_CACHE_FLUSH, 13, GNTTABOP_CMD_MASK] {
        assert_eq!(op(&mut t, cmd, SCRATCH, 1), ENOSYS, "cmd {cmd}");
    }
    assert_eq!(op(&mut t, GNTTABOP_TRANSFER, SCRATCH, 1), -95, "-EOPNOTSUPP, as gnttab=no-transfer");
}

#[test]
fn set_and_get_version() {
    let mut t = TestDomain::new();
    let set = |t: &mut TestDomain, version: u32| {
        t.put(SCRATCH, &GnttabSetVersion { version });
        (op(t, GNTTABOP_SET_VERSION, SCRATCH, 1), t.get::<u32>(SCRATCH))
    };
    assert_eq!(set(&mut t, 1), (0, 1));
    assert_eq!(set(&mut t, 2), (ENOSYS, 1), "no v2; the record reports v1");
    assert_eq!(set(&mut t, 0), (EINVAL, 1));
    assert_eq!(set(&mut t, 3), (EINVAL, 1));
    assert_eq!(op(&mut t, GNTTABOP_SET_VERSION, RAM_SIZE, 1), EFAULT);
    let get = |t: &mut TestDomain, dom: u16| {
        t.put(SCRATCH, &GnttabGetVersion { dom, pad: 0xAAAA, version: 9 });
        (op(t, GNTTABOP_GET_VERSION, SCRATCH, 1), t.get::<GnttabGetVersion>(SCRATCH))
    };
    let (rc, g) = get(&mut t, DOMID_SELF);
    assert_eq!((rc, g.version, g.pad), (0, 1, 0xAAAA));
    assert_eq!(get(&mut t, OWN).0, 0);
    let (rc, g) = get(&mut t, 0);
    assert_eq!((rc, g.version), (EPERM, 9), "nothing written on error");
    assert_eq!(get(&mut t, 5).0, ESRCH);
    assert_eq!(op(&mut t, GNTTABOP_GET_VERSION, RAM_SIZE - 4, 1), EFAULT);
}

fn setup(t: &mut TestDomain, dom: u16, nr_frames: u32, list: u64) -> (i64, i16) {
    let rc = if t.compat {
        let list = list as u32;
        t.put(SCRATCH, &CompatGnttabSetupTable { dom, nr_frames, status: 99, frame_list: list, ..Default::default() });
        op(t, GNTTABOP_SETUP_TABLE, SCRATCH, 1)
    } else {
        t.put(SCRATCH, &GnttabSetupTable { dom, nr_frames, status: 99, frame_list: list, ..Default::default() });
        op(t, GNTTABOP_SETUP_TABLE, SCRATCH, 1)
    };
    (rc, t.get(SCRATCH + 8))
}

#[test]
fn setup_table_native() {
    let mut t = TestDomain::new();
    let list = SCRATCH + 0x100;
    assert_eq!(add_frame(&mut t, 0, HOLE), 0);
    t.put(list, &[0xAAu8; 32]);
    assert_eq!(setup(&mut t, DOMID_SELF, 3, list), (0, GNTST_OKAY));
    assert_eq!(t.get::<[u64; 3]>(list), [HOLE, u64::MAX, u64::MAX], "unmapped frames are INVALID_GFN");
    assert_eq!(t.get::<[u8; 8]>(list + 24), [0xAA; 8]);
    assert_eq!(query(&mut t, DOMID_SELF).1.nr_frames, 3, "the table grew");
    assert_eq!(setup(&mut t, OWN, 0, 0), (0, GNTST_OKAY));
    assert_eq!(setup(&mut t, DOMID_SELF, 65, list), (0, GNTST_GENERAL_ERROR));
    assert_eq!(setup(&mut t, DOMID_SELF, u32::MAX, list), (0, GNTST_GENERAL_ERROR));
    assert_eq!(query(&mut t, DOMID_SELF).1.nr_frames, 3);
    assert_eq!(setup(&mut t, 5, 1, list), (0, GNTST_BAD_DOMAIN));
    assert_eq!(setup(&mut t, 0, 1, list), (0, GNTST_PERMISSION_DENIED));
    assert_eq!(setup(&mut t, DOMID_SELF, 2, RAM_SIZE - 8), (0, GNTST_BAD_VIRT_ADDR), "second element faults");
    assert_eq!(t.get::<u64>(RAM_SIZE - 8), HOLE, "elements before the fault are written");
    assert_eq!(setup(&mut t, DOMID_SELF, 1, u64::MAX - 3), (0, GNTST_BAD_VIRT_ADDR));
    assert_eq!(op(&mut t, GNTTABOP_SETUP_TABLE, SCRATCH, 0), EINVAL);
    assert_eq!(op(&mut t, GNTTABOP_SETUP_TABLE, SCRATCH, 2), EINVAL);
    assert_eq!(op(&mut t, GNTTABOP_SETUP_TABLE, RAM_SIZE - 16, 1), EFAULT);
}

#[test]
fn setup_table_compat() {
    let mut t = TestDomain::new();
    let list = SCRATCH + 0x100;
    assert_eq!(add_frame(&mut t, 1, HOLE), 0);
    assert_eq!(add_frame(&mut t, 0, HOLE + 1), 0);
    t.compat = true;
    t.put(list, &[0xAAu8; 16]);
    assert_eq!(setup(&mut t, DOMID_SELF, 2, list), (0, GNTST_OKAY));
    assert_eq!(t.get::<[u32; 3]>(list), [HOLE as u32 + 1, HOLE as u32, 0xAAAA_AAAA], "4-byte elements");
    assert_eq!(setup(&mut t, DOMID_SELF, 3, list), (0, GNTST_ADDRESS_TOO_BIG), "INVALID_GFN does not fit");
    assert_eq!(t.get::<[u32; 3]>(list), [HOLE as u32 + 1, HOLE as u32, 0xAAAA_AAAA], "stops at that element");
    assert_eq!(setup(&mut t, DOMID_SELF, 65, list), (0, GNTST_GENERAL_ERROR));
    assert_eq!(setup(&mut t, 5, 1, list), (0, GNTST_BAD_DOMAIN));
    assert_eq!(setup(&mut t, DOMID_SELF, 1, RAM_SIZE), (0, GNTST_BAD_VIRT_ADDR));
    assert_eq!(op(&mut t, GNTTABOP_SETUP_TABLE, SCRATCH, 0), 0, "compat: a count of 0 does nothing");
    assert_eq!(op(&mut t, GNTTABOP_SETUP_TABLE, SCRATCH, 2), EINVAL);
    assert_eq!(op(&mut t, GNTTABOP_SETUP_TABLE, RAM_SIZE - 8, 1), EFAULT);
}

#[test]
fn get_status_frames_of_a_v1_table() {
    for compat in [false, true] {
        let mut t = TestDomain::new();
        t.compat = compat;
        let run = |t: &mut TestDomain, nr_frames: u32, dom: u16| {
            t.put(SCRATCH, &GnttabGetStatusFrames { nr_frames, dom, status: 99, frame_list: SCRATCH + 64 });
            (op(t, GNTTABOP_GET_STATUS_FRAMES, SCRATCH, 1), t.get::<i16>(SCRATCH + 6))
        };
        assert_eq!(run(&mut t, 0, DOMID_SELF), (0, GNTST_OKAY));
        assert_eq!(run(&mut t, 1, DOMID_SELF), (0, GNTST_GENERAL_ERROR), "no status frames in v1");
        assert_eq!(run(&mut t, 0, 5), (0, GNTST_BAD_DOMAIN));
        assert_eq!(run(&mut t, 0, 0), (0, GNTST_PERMISSION_DENIED));
        assert_eq!(op(&mut t, GNTTABOP_GET_STATUS_FRAMES, SCRATCH, 2), EINVAL);
        assert_eq!(op(&mut t, GNTTABOP_GET_STATUS_FRAMES, SCRATCH, 0), if compat { 0 } else { EINVAL });
        assert_eq!(op(&mut t, GNTTABOP_GET_STATUS_FRAMES, RAM_SIZE, 1), EFAULT);
    }
}

#[test]
fn grant_frames_in_the_physmap() {
    let mut t = TestDomain::new();
    t.put(0x5000, &[0x5Au8; 8]);
    assert_eq!(add_frame(&mut t, 0, 5), 0);
    // The guest writes entries through the frame and the backends see them.
    t.d.phys().write_in_page(0x5000 + 8, GrantEntryV1 { flags: 1, domid: 0, frame: 42 }.as_bytes()).unwrap();
    assert_eq!(t.d.grant_entry(1), Some(GrantEntryV1 { flags: 1, domid: 0, frame: 42 }));
    assert_eq!(add_frame(&mut t, 0, 5), 0, "same place again");
    assert_eq!(add_frame(&mut t, 0, HOLE), 0);
    assert_eq!(t.get::<[u8; 8]>(0x5000), [0x5A; 8], "RAM is back where the frame was");
    assert_eq!(t.get::<GrantEntryV1>((HOLE << 12) + 8).frame, 42);
    assert_eq!(*t.physmap.moves.lock().unwrap(), vec![(None, 5), (Some(5), HOLE)]);
    // Mapping frame 3 grows the table to 4 frames.
    assert_eq!(add_frame(&mut t, 3, HOLE + 3), 0);
    assert_eq!(query(&mut t, DOMID_SELF).1.nr_frames, 4);
    assert_eq!(t.d.grant_table().frame_gfn(3), Some(HOLE + 3));
    assert_eq!(t.d.grant_table().frame_gfn(1), None);
    assert!(t.d.grant_entry(4 * 512 - 1).is_some() && t.d.grant_entry(4 * 512).is_none());
    // Compat callers use the 16-byte record.
    t.compat = true;
    t.put(SCRATCH, &CompatXenAddToPhysmap { domid: DOMID_SELF, size: 0, space: XENMAPSPACE_GRANT_TABLE, idx: 1, gpfn: 9 });
    assert_eq!(t.call(HYPERVISOR_MEMORY_OP, &[XENMEM_ADD_TO_PHYSMAP, SCRATCH]), 0);
    assert_eq!(t.d.grant_table().frame_gfn(1), Some(9));
}

#[test]
fn grant_frame_errors() {
    let mut t = TestDomain::new();
    assert_eq!(add_frame(&mut t, 64, HOLE), EINVAL, "beyond max_frames");
    assert_eq!(add_frame(&mut t, XENMAPIDX_GRANT_TABLE_STATUS, HOLE), EINVAL, "no v2 status frames");
    assert_eq!(add_frame(&mut t, 1 << 32, HOLE), EINVAL);
    assert_eq!(add_frame(&mut t, 0, 1 << 40), EINVAL, "beyond max_gfn");
    assert_eq!(add_frame(&mut t, 0, u64::MAX), EINVAL);
    t.physmap.fail.store(true, Ordering::SeqCst);
    assert_eq!(add_frame(&mut t, 0, HOLE), EINVAL);
    assert_eq!(t.d.grant_table().frame_gfn(0), None, "a refused mapping changes nothing");
    t.physmap.fail.store(false, Ordering::SeqCst);
    t.put(SCRATCH, &XenAddToPhysmap { domid: 5, size: 0, space: XENMAPSPACE_GRANT_TABLE, idx: 0, gpfn: HOLE });
    assert_eq!(t.call(HYPERVISOR_MEMORY_OP, &[XENMEM_ADD_TO_PHYSMAP, SCRATCH]), ESRCH);
    assert_eq!(query(&mut t, DOMID_SELF).1.nr_frames, 1);
}

#[test]
fn special_pages_displace_each_other() {
    let mut t = TestDomain::new();
    t.put(SCRATCH, &XenAddToPhysmap { domid: DOMID_SELF, size: 0, space: XENMAPSPACE_SHARED_INFO, idx: 0, gpfn: HOLE });
    assert_eq!(t.call(HYPERVISOR_MEMORY_OP, &[XENMEM_ADD_TO_PHYSMAP, SCRATCH]), 0);
    assert_eq!(add_frame(&mut t, 0, HOLE), 0);
    assert_eq!(t.d.shared_info_gfn(), None, "shared_info was unhooked");
    grant(&t, 0, GTF_PERMIT_ACCESS, 0, 7);
    assert_eq!(t.get::<GrantEntryV1>(HOLE << 12).frame, 7);
    t.put(SCRATCH, &XenAddToPhysmap { domid: DOMID_SELF, size: 0, space: XENMAPSPACE_SHARED_INFO, idx: 0, gpfn: HOLE });
    assert_eq!(t.call(HYPERVISOR_MEMORY_OP, &[XENMEM_ADD_TO_PHYSMAP, SCRATCH]), 0);
    assert_eq!(t.d.grant_table().frame_gfn(0), None, "the grant frame was unhooked");
    assert_eq!(add_frame(&mut t, 0, HOLE + 1), 0);
    assert_eq!(t.physmap.moves.lock().unwrap().last(), Some(&(None, HOLE + 1)), "nothing removed at HOLE");
}

fn copy_rec(src: (u64, u16, u16), dst: (u64, u16, u16), len: u16, flags: u16) -> GnttabCopy {
    let ptr = |(u, domid, offset)| GnttabCopyPtr { u, domid, offset, pad: 0 };
    GnttabCopy { source: ptr(src), dest: ptr(dst), len, flags, status: 99, pad: 0 }
}

fn copy(t: &mut TestDomain, ops: &[GnttabCopy]) -> (i64, Vec<i16>) {
    for (i, c) in ops.iter().enumerate() {
        t.put(SCRATCH + 40 * i as u64, c);
    }
    let rc = op(t, GNTTABOP_COPY, SCRATCH, ops.len() as u64);
    (rc, (0..ops.len()).map(|i| t.get::<i16>(SCRATCH + 40 * i as u64 + 36)).collect())
}

const SRC: u64 = 0x20;
const DST: u64 = 0x21;

#[test]
fn copy_between_own_frames() {
    let mut t = TestDomain::new();
    t.put(SRC << 12, &[0x11u8; 4096]);
    let own = |gfn, off| (gfn, DOMID_SELF, off);
    let (rc, st) = copy(&mut t, &[copy_rec(own(SRC, 0), own(DST, 100), 4096 - 100, 0), copy_rec((9, 5, 9), (9, 5, 9), 0, 0)]);
    assert_eq!((rc, st), (0, vec![GNTST_OKAY, GNTST_OKAY]), "a zero-length copy ignores every other field");
    assert_eq!(t.bytes(DST << 12, 101)[99..], [0, 0x11]);
    let cases = [
        (copy_rec((SRC, OWN, 0), own(DST, 0), 8, 0), GNTST_PERMISSION_DENIED),
        (copy_rec(own(SRC, 0), (DST, 0, 0), 8, 0), GNTST_PERMISSION_DENIED),
        (copy_rec((1, 5, 0), own(DST, 0), 8, GNTCOPY_SOURCE_GREF), GNTST_BAD_DOMAIN),
        (copy_rec((1, 0, 0), own(DST, 0), 8, GNTCOPY_SOURCE_GREF), GNTST_BAD_GNTREF),
        (copy_rec(own(RAM_SIZE >> 12, 0), own(DST, 0), 8, 0), GNTST_BAD_PAGE),
        (copy_rec(own(SRC, 0), own(u64::MAX, 0), 8, 0), GNTST_BAD_PAGE),
        (copy_rec(own(SRC, 4090), own(DST, 0), 8, 0), GNTST_BAD_COPY_ARG),
        (copy_rec(own(SRC, 0), own(DST, u16::MAX), 1, 0), GNTST_BAD_COPY_ARG),
        (copy_rec(own(SRC, 0), own(DST, 0), u16::MAX, 0), GNTST_BAD_COPY_ARG),
        (copy_rec(own(SRC, 0), own(DST, 0), 1, 0), GNTST_OKAY),
    ];
    let (rc, st) = copy(&mut t, &cases.map(|c| c.0));
    assert_eq!(rc, 0);
    assert_eq!(st, cases.map(|c| c.1).to_vec(), "each record gets its own status");
}

#[test]
fn copy_through_own_grants() {
    let mut t = TestDomain::new();
    t.put(SRC << 12, b"granted!");
    grant(&t, 10, GTF_PERMIT_ACCESS | GTF_READONLY, OWN, SRC as u32);
    grant(&t, 11, GTF_PERMIT_ACCESS, OWN, DST as u32);
    grant(&t, 12, GTF_PERMIT_ACCESS, 0, DST as u32);
    grant(&t, 13, GTF_PERMIT_ACCESS, OWN, (RAM_SIZE >> 12) as u32);
    let g = |gref| (gref, DOMID_SELF, 0);
    let both = GNTCOPY_SOURCE_GREF | GNTCOPY_DEST_GREF;
    let cases = [
        (copy_rec(g(10), g(11), 8, both), GNTST_OKAY),
        (copy_rec(g(10), (11, OWN, 8), 8, both), GNTST_OKAY),
        (copy_rec(g(11), g(10), 8, both), GNTST_GENERAL_ERROR),
        (copy_rec(g(10), g(12), 8, both), GNTST_GENERAL_ERROR),
        (copy_rec(g(10), g(13), 8, both), GNTST_BAD_PAGE),
        (copy_rec(g(10), g(512), 8, both), GNTST_BAD_GNTREF),
        (copy_rec(g(1 << 31), g(11), 8, both), GNTST_BAD_GNTREF),
        (copy_rec(g(10), g(11), 4097, both), GNTST_BAD_COPY_ARG),
    ];
    let (rc, st) = copy(&mut t, &cases.map(|c| c.0));
    assert_eq!(rc, 0);
    assert_eq!(st, cases.map(|c| c.1).to_vec());
    assert_eq!(&t.bytes(DST << 12, 16), b"granted!granted!");
    for gref in [10, 11, 12, 13] {
        assert_eq!(flags(&t, gref) & (GTF_READING | GTF_WRITING), 0, "ref {gref} released");
    }
}

#[test]
fn copy_batches_and_faults() {
    let mut t = TestDomain::new();
    let one = copy_rec((SRC, DOMID_SELF, 0), (DST, DOMID_SELF, 0), 4, 0);
    assert_eq!(op(&mut t, GNTTABOP_COPY, SCRATCH, 0), 0);
    assert_eq!(op(&mut t, GNTTABOP_COPY, SCRATCH, u64::from(MAX_BATCH) + 1), EINVAL, "bounded batch");
    // The second record runs off the end of RAM: the first one is done.
    let at = RAM_SIZE - 40;
    t.put(at, &one);
    assert_eq!(op(&mut t, GNTTABOP_COPY, at, 2), EFAULT);
    assert_eq!(t.get::<i16>(at + 36), GNTST_OKAY);
    assert_eq!(op(&mut t, GNTTABOP_COPY, u64::MAX - 8, 1), EFAULT);
    // A full batch of copies completes.
    for i in 0..u64::from(MAX_BATCH) {
        t.put(0x40_0000 + 40 * i, &one);
    }
    assert_eq!(op(&mut t, GNTTABOP_COPY, 0x40_0000, MAX_BATCH.into()), 0);
    assert_eq!(t.get::<i16>(0x40_0000 + 40 * u64::from(MAX_BATCH - 1) + 36), GNTST_OKAY);
}

#[test]
fn copy_compat_layout() {
    let mut t = TestDomain::new();
    t.compat = true;
    t.put(SRC << 12, b"compat");
    let ptr = |u, offset| CompatGnttabCopyPtr { u, domid: DOMID_SELF, offset };
    t.put(SCRATCH, &CompatGnttabCopy { source: ptr(SRC as u32, 0), dest: ptr(DST as u32, 2), len: 6, flags: 0, status: 9, pad: 0 });
    let bad = CompatGnttabCopy { source: ptr(0x7FFF_FFFF, 0), dest: ptr(DST as u32, 0), len: 6, flags: 0, status: 9, pad: 0 };
    t.put(SCRATCH + 24, &bad);
    assert_eq!(op(&mut t, GNTTABOP_COPY, SCRATCH, 2), 0);
    assert_eq!((t.get::<i16>(SCRATCH + 20), t.get::<i16>(SCRATCH + 44)), (GNTST_OKAY, GNTST_BAD_PAGE));
    assert_eq!(&t.bytes((DST << 12) + 2, 6), b"compat");
}

#[test]
fn map_and_unmap_from_the_guest() {
    let mut t = TestDomain::new();
    let map = |t: &mut TestDomain, flags: u32, dom: u16, gref: u32| {
        t.put(SCRATCH, &GnttabMapGrantRef { host_addr: HOLE << 12, flags, gref, dom, status: 99, handle: 5, dev_bus_addr: 6 });
        let rc = op(t, GNTTABOP_MAP_GRANT_REF, SCRATCH, 1);
        let m: GnttabMapGrantRef = t.get(SCRATCH);
        assert_eq!((m.handle, m.dev_bus_addr), (5, 6), "only the status changes");
        (rc, m.status)
    };
    let host = GNTMAP_HOST_MAP;
    assert_eq!(map(&mut t, 0, OWN, 0), (0, GNTST_BAD_GNTREF), "neither host nor device map");
    assert_eq!(map(&mut t, GNTMAP_READONLY, OWN, 0), (0, GNTST_BAD_GNTREF));
    assert_eq!(map(&mut t, GNTMAP_DEVICE_MAP, OWN, 0), (0, GNTST_GENERAL_ERROR), "no device maps in HVM");
    assert_eq!(map(&mut t, host | GNTMAP_CONTAINS_PTE, OWN, 0), (0, GNTST_GENERAL_ERROR));
    assert_eq!(map(&mut t, host | GNTMAP_APPLICATION_MAP, OWN, 0), (0, GNTST_GENERAL_ERROR));
    assert_eq!(map(&mut t, host, 5, 0), (0, GNTST_BAD_DOMAIN));
    assert_eq!(map(&mut t, host, DOMID_SELF, 0), (0, GNTST_BAD_DOMAIN), "map looks domains up by id");
    assert_eq!(map(&mut t, host, 0, 0), (0, GNTST_BAD_GNTREF), "domain 0 grants nothing");
    assert_eq!(map(&mut t, host, OWN, 512), (0, GNTST_BAD_GNTREF));
    assert_eq!(map(&mut t, host, OWN, 3), (0, GNTST_GENERAL_ERROR), "self-mapping is not supported");
    assert_eq!(op(&mut t, GNTTABOP_MAP_GRANT_REF, RAM_SIZE - 16, 1), EFAULT);
    for cmd in [GNTTABOP_UNMAP_GRANT_REF, GNTTABOP_UNMAP_AND_REPLACE] {
        for i in 0..3u64 {
            t.put(SCRATCH + 24 * i, &GnttabUnmapGrantRef { handle: i as u32, status: 99, ..Default::default() });
        }
        assert_eq!(op(&mut t, cmd, SCRATCH, 3), 0);
        for i in 0..3 {
            assert_eq!(t.get::<i16>(SCRATCH + 24 * i + 20), GNTST_BAD_HANDLE, "no handle was ever issued");
        }
        assert_eq!(op(&mut t, cmd, RAM_SIZE - 24, 2), EFAULT);
        assert_eq!(op(&mut t, cmd, SCRATCH, u64::from(MAX_BATCH) + 1), EINVAL);
    }
}

#[test]
fn swap_grant_ref() {
    let mut t = TestDomain::new();
    grant(&t, 2, GTF_PERMIT_ACCESS, 0, 0x20);
    grant(&t, 3, GTF_PERMIT_ACCESS | GTF_READONLY, 0, 0x30);
    let swap = |t: &mut TestDomain, pairs: &[(u32, u32)]| {
        for (i, &(ref_a, ref_b)) in pairs.iter().enumerate() {
            t.put(SCRATCH + 12 * i as u64, &GnttabSwapGrantRef { ref_a, ref_b, status: 99, pad: 0 });
        }
        let rc = op(t, GNTTABOP_SWAP_GRANT_REF, SCRATCH, pairs.len() as u64);
        (rc, (0..pairs.len()).map(|i| t.get::<i16>(SCRATCH + 12 * i as u64 + 8)).collect::<Vec<_>>())
    };
    assert_eq!(swap(&mut t, &[(2, 3), (4, 4), (2, 512), (512, 2)]).1, [0, 0, -3, -3]);
    assert_eq!(t.d.grant_entry(2).unwrap().frame, 0x30);
    assert_eq!(t.d.grant_entry(3), Some(GrantEntryV1 { flags: GTF_PERMIT_ACCESS, domid: 0, frame: 0x20 }));
    t.d.grant_map(3, GrantAccess::Write).unwrap();
    assert_eq!(swap(&mut t, &[(2, 3), (3, 2)]), (0, vec![GNTST_EAGAIN, GNTST_EAGAIN]), "in use by a backend");
    assert_eq!(op(&mut t, GNTTABOP_SWAP_GRANT_REF, RAM_SIZE - 4, 1), EFAULT);
}

#[test]
fn reserved_entries_are_seeded_for_the_backends() {
    let mut t = TestDomain::new();
    t.d.seed_reserved(Some(0xFEFFF), Some(0xFEFFC)).unwrap();
    let e = |gfn| Some(GrantEntryV1 { flags: GTF_PERMIT_ACCESS, domid: 0, frame: gfn });
    assert_eq!(t.d.grant_entry(GNTTAB_RESERVED_CONSOLE), e(0xFEFFF));
    assert_eq!(t.d.grant_entry(GNTTAB_RESERVED_XENSTORE), e(0xFEFFC));
    t.d.seed_reserved(None, Some(0xFEFFC)).unwrap();
    assert_eq!(t.d.grant_entry(GNTTAB_RESERVED_CONSOLE), Some(GrantEntryV1::default()));
    assert_eq!(t.d.seed_reserved(None, Some(1 << 32)), Err(GrantError::AddressTooBig));
}

#[test]
fn backend_check_validates_without_pinning() {
    let t = TestDomain::new();
    grant(&t, 8, GTF_PERMIT_ACCESS, 0, 0x20);
    grant(&t, 9, GTF_PERMIT_ACCESS | GTF_READONLY, 0, 0x21);
    grant(&t, 10, GTF_PERMIT_ACCESS, OWN, 0x22);
    grant(&t, 11, GTF_ACCEPT_TRANSFER, 0, 0x23);
    grant(&t, 12, GTF_PERMIT_ACCESS | GTF_SUB_PAGE, 0, 0x24);
    grant(&t, 13, GTF_PERMIT_ACCESS, 0, (RAM_SIZE >> 12) as u32);
    use GrantAccess::*;
    assert_eq!(t.d.grant_check(8, Write), Ok(0x20));
    assert_eq!(t.d.grant_check(9, Read), Ok(0x21));
    assert_eq!(t.d.grant_check(9, Write), Err(GrantError::GeneralError), "read-only grant");
    assert_eq!(t.d.grant_check(10, Read), Err(GrantError::GeneralError), "granted to another domain");
    assert_eq!(t.d.grant_check(11, Read), Err(GrantError::GeneralError));
    assert_eq!(t.d.grant_check(12, Read), Err(GrantError::GeneralError), "sub-page grants cannot be mapped");
    assert_eq!(t.d.grant_check(13, Read), Err(GrantError::BadPage));
    assert_eq!(t.d.grant_check(7, Read), Err(GrantError::GeneralError), "invalid entry");
    assert_eq!(t.d.grant_check(512, Read), Err(GrantError::BadGntref));
    assert_eq!(t.d.grant_check(u32::MAX, Read), Err(GrantError::BadGntref));
    assert_eq!(flags(&t, 8), GTF_PERMIT_ACCESS);
    assert_eq!(t.d.grant_entry(512), None);
}

#[test]
fn backend_map_sets_and_clears_in_use_flags() {
    let mut t = TestDomain::new();
    use GrantAccess::*;
    grant(&t, 8, GTF_PERMIT_ACCESS, 0, 0x20);
    assert_eq!(t.d.grant_map(8, Read), Ok(0x20));
    assert_eq!(t.d.grant_map(8, Read), Ok(0x20));
    assert_eq!(flags(&t, 8), GTF_PERMIT_ACCESS | GTF_READING);
    assert_eq!(t.d.grant_map(8, Write), Ok(0x20));
    assert_eq!(flags(&t, 8), GTF_PERMIT_ACCESS | GTF_READING | GTF_WRITING);
    assert_eq!(t.d.grant_unmap(8, Write), Ok(()));
    assert_eq!(flags(&t, 8), GTF_PERMIT_ACCESS | GTF_READING);
    assert_eq!(t.d.grant_unmap(8, Write), Err(GrantError::BadHandle));
    t.d.grant_unmap(8, Read).unwrap();
    assert_eq!(flags(&t, 8), GTF_PERMIT_ACCESS | GTF_READING, "one read pin left");
    t.d.grant_unmap(8, Read).unwrap();
    assert_eq!(flags(&t, 8), GTF_PERMIT_ACCESS);
    assert_eq!(t.d.grant_unmap(8, Read), Err(GrantError::BadHandle));
    assert_eq!(t.d.grant_unmap(600, Read), Err(GrantError::BadHandle));
    // Failures leave the entry as it was.
    grant(&t, 9, GTF_PERMIT_ACCESS | GTF_READONLY, 0, 0x21);
    assert_eq!(t.d.grant_map(9, Write), Err(GrantError::GeneralError));
    grant(&t, 10, GTF_PERMIT_ACCESS, 0, (RAM_SIZE >> 12) as u32);
    assert_eq!(t.d.grant_map(10, Read), Err(GrantError::BadPage));
    assert_eq!(t.d.grant_map(600, Read), Err(GrantError::BadGntref));
    assert_eq!((flags(&t, 9), flags(&t, 10)), (GTF_PERMIT_ACCESS | GTF_READONLY, GTF_PERMIT_ACCESS));
    assert!(!t.d.grant_table().in_use(9) && !t.d.grant_table().in_use(10));
}

#[test]
fn backend_pins_survive_guest_rewrites() {
    let mut t = TestDomain::new();
    use GrantAccess::*;
    grant(&t, 8, GTF_PERMIT_ACCESS, 0, 0x20);
    t.d.grant_map(8, Read).unwrap();
    // The guest points the entry elsewhere (keeping the in-use flag Xen set).
    grant(&t, 8, GTF_PERMIT_ACCESS | GTF_READING, 0, 0x30);
    assert_eq!(t.d.grant_map(8, Read), Ok(0x20), "later read pins use the snapshot");
    assert_eq!(t.d.grant_map(8, Write), Err(GrantError::GeneralError), "upgrade sees the frame changed");
    assert_eq!(flags(&t, 8), GTF_PERMIT_ACCESS | GTF_READING, "no writing flag left behind");
    t.d.grant_unmap(8, Read).unwrap();
    t.d.grant_unmap(8, Read).unwrap();
    assert_eq!(flags(&t, 8), GTF_PERMIT_ACCESS);
    assert_eq!(t.d.grant_map(8, Write), Ok(0x30), "unpinned: the new frame");
    t.d.grant_unmap(8, Write).unwrap();
}

#[test]
fn backend_copies() {
    let mut t = TestDomain::new();
    grant(&t, 8, GTF_PERMIT_ACCESS, 0, 0x20);
    grant(&t, 9, GTF_PERMIT_ACCESS | GTF_READONLY, 0, 0x21);
    t.put(0x21000 + 4000, b"from the guest");
    let mut buf = [0u8; 14];
    assert_eq!(t.d.grant_read(9, 4000, &mut buf), Ok(()));
    assert_eq!(&buf, b"from the guest");
    assert_eq!(t.d.grant_write(8, 4096 - 5, b"hello"), Ok(()));
    assert_eq!(&t.bytes(0x21000 - 5, 5), b"hello");
    assert_eq!(t.d.grant_write(9, 0, b"x"), Err(GrantError::GeneralError));
    assert_eq!(t.d.grant_write(8, 4092, b"hello"), Err(GrantError::BadCopyArg));
    assert_eq!(t.d.grant_read(8, usize::MAX, &mut buf), Err(GrantError::BadCopyArg));
    assert_eq!(t.d.grant_read(8, 0, &mut [0u8; 4097]), Err(GrantError::BadCopyArg));
    assert_eq!(t.d.grant_read(1 << 20, 0, &mut buf), Err(GrantError::BadGntref));
    assert_eq!((flags(&t, 8), flags(&t, 9)), (GTF_PERMIT_ACCESS, GTF_PERMIT_ACCESS | GTF_READONLY));
}

#[test]
fn grant_error_statuses() {
    use GrantError::*;
    let all = [BadGntref, GeneralError, BadPage, BadCopyArg, BadHandle, AddressTooBig];
    assert_eq!(all.map(GrantError::status), [-3, -1, -9, -10, -4, -11]);
}
