//! xen_version, console_io, hvm_op, memory_op and dispatch-level rules.

use super::*;
use xenkvm_xen_abi::hvm::*;
use xenkvm_xen_abi::memory::*;
use xenkvm_xen_abi::shared_info::*;
use xenkvm_xen_abi::version::*;
use xenkvm_xen_abi::xen::*;

#[test]
fn calls_from_user_mode_get_eperm() {
    let t = TestDomain::new();
    let mut d = t.d;
    let mut req = t_req(0, HYPERVISOR_XEN_VERSION);
    req.cpl = 3;
    assert_eq!(d.hypercall(&req), Outcome::Return(EPERM));
    req.cpl = 0;
    req.vm86 = true;
    assert_eq!(d.hypercall(&req), Outcome::Return(EPERM));
}

fn t_req(vcpu: u32, nr: u64) -> HypercallRequest {
    let regs = HypercallRegs { rax: nr, ..Default::default() };
    HypercallRequest::from_regs(vcpu, &regs, CpuMode::Long64, 0, PagingState::flat())
}

#[test]
fn unknown_hypercalls_get_enosys_and_one_log_entry() {
    let mut t = TestDomain::new();
    for nr in [HYPERVISOR_SET_TRAP_TABLE, 60, 1 << 40, u64::MAX] {
        assert_eq!(t.call(nr, &[]), ENOSYS, "hypercall {nr}");
        assert_eq!(t.call(nr, &[]), ENOSYS);
    }
}

#[test]
fn unknown_vcpu_is_rejected() {
    let mut t = TestDomain::new();
    let req = t.request(9, HYPERVISOR_XEN_VERSION, &[XENVER_VERSION]);
    assert_eq!(t.d.hypercall(&req), Outcome::Return(EINVAL));
}

#[test]
fn xen_version_strings_and_numbers() {
    let mut t = TestDomain::new();
    assert_eq!(t.call(HYPERVISOR_XEN_VERSION, &[XENVER_VERSION, 0]), 0x40011);
    assert_eq!(t.call(HYPERVISOR_XEN_VERSION, &[XENVER_PAGESIZE, 0]), 4096);
    assert_eq!(t.call(HYPERVISOR_XEN_VERSION, &[XENVER_EXTRAVERSION, SCRATCH]), 0);
    assert_eq!(&t.bytes(SCRATCH, 10), b".0-xenkvm\0");
    assert_eq!(t.call(HYPERVISOR_XEN_VERSION, &[XENVER_CAPABILITIES, SCRATCH]), 0);
    assert!(String::from_utf8_lossy(&t.bytes(SCRATCH, 64)).contains("hvm-3.0-x86_64"));
    assert_eq!(t.call(HYPERVISOR_XEN_VERSION, &[XENVER_COMPILE_INFO, SCRATCH]), 0);
    let ci: XenCompileInfo = t.get(SCRATCH);
    assert_eq!(&ci.compiler[..6], b"rustc\0");
    assert_eq!(t.call(HYPERVISOR_XEN_VERSION, &[XENVER_CHANGESET, SCRATCH]), 0);
    assert_eq!(&t.bytes(SCRATCH, 7), b"xenkvm ");
    assert_eq!(t.call(HYPERVISOR_XEN_VERSION, &[XENVER_GUEST_HANDLE, SCRATCH]), 0);
    assert_eq!(t.bytes(SCRATCH, 16), vec![7u8; 16]);
    t.put(SCRATCH, &[0xAAu8; 16]);
    assert_eq!(t.call(HYPERVISOR_XEN_VERSION, &[XENVER_PLATFORM_PARAMETERS, SCRATCH]), 0);
    assert_eq!(t.bytes(SCRATCH, 9), [0, 0, 0, 0, 0, 0, 0, 0, 0xAA]);
}

#[test]
fn xen_version_compat_platform_parameters_is_four_bytes() {
    let mut t = TestDomain::new();
    t.compat = true;
    t.put(SCRATCH, &[0xAAu8; 8]);
    assert_eq!(t.call(HYPERVISOR_XEN_VERSION, &[XENVER_PLATFORM_PARAMETERS, SCRATCH]), 0);
    assert_eq!(t.bytes(SCRATCH, 5), [0, 0, 0, 0, 0xAA]);
}

#[test]
fn xen_version_features() {
    let mut t = TestDomain::new();
    t.put(SCRATCH, &XenFeatureInfo { submap_idx: 0, submap: 0 });
    assert_eq!(t.call(HYPERVISOR_XEN_VERSION, &[XENVER_GET_FEATURES, SCRATCH]), 0);
    let fi: XenFeatureInfo = t.get(SCRATCH);
    for bit in [XENFEAT_AUTO_TRANSLATED_PHYSMAP, XENFEAT_HVM_CALLBACK_VECTOR, XENFEAT_HVM_SAFE_PVCLOCK] {
        assert_ne!(fi.submap & (1 << bit), 0, "feature {bit}");
    }
    assert_eq!(fi.submap & (1 << XENFEAT_DOM0), 0);
    assert_eq!(fi.submap & (1 << XENFEAT_HVM_PIRQS), 0, "not offered until the VMM routes lines");
    t.d.offer_hvm_pirqs();
    t.put(SCRATCH, &XenFeatureInfo { submap_idx: 0, submap: 0 });
    assert_eq!(t.call(HYPERVISOR_XEN_VERSION, &[XENVER_GET_FEATURES, SCRATCH]), 0);
    assert_ne!(t.get::<XenFeatureInfo>(SCRATCH).submap & (1 << XENFEAT_HVM_PIRQS), 0);
    t.put(SCRATCH, &XenFeatureInfo { submap_idx: 1, submap: 0 });
    assert_eq!(t.call(HYPERVISOR_XEN_VERSION, &[XENVER_GET_FEATURES, SCRATCH]), EINVAL);
    t.put(SCRATCH, &XenFeatureInfo { submap_idx: u32::MAX, submap: 0 });
    assert_eq!(t.call(HYPERVISOR_XEN_VERSION, &[XENVER_GET_FEATURES, SCRATCH]), EINVAL);
}

#[test]
fn xen_version_errors() {
    let mut t = TestDomain::new();
    assert_eq!(t.call(HYPERVISOR_XEN_VERSION, &[XENVER_COMMANDLINE, SCRATCH]), EPERM);
    assert_eq!(t.call(HYPERVISOR_XEN_VERSION, &[XENVER_BUILD_ID, SCRATCH]), EPERM);
    assert_eq!(t.call(HYPERVISOR_XEN_VERSION, &[11, SCRATCH]), ENOSYS);
    assert_eq!(t.call(HYPERVISOR_XEN_VERSION, &[u64::MAX, SCRATCH]), ENOSYS);
    // Outside RAM, crossing the end of RAM, at the top of the address space.
    assert_eq!(t.call(HYPERVISOR_XEN_VERSION, &[XENVER_EXTRAVERSION, RAM_SIZE + 0x1000]), EFAULT);
    assert_eq!(t.call(HYPERVISOR_XEN_VERSION, &[XENVER_EXTRAVERSION, RAM_SIZE - 8]), EFAULT);
    assert_eq!(t.call(HYPERVISOR_XEN_VERSION, &[XENVER_CAPABILITIES, RAM_SIZE - 1000]), EFAULT);
    assert_eq!(t.call(HYPERVISOR_XEN_VERSION, &[XENVER_GET_FEATURES, u64::MAX - 3]), EFAULT);
    // A failed copy writes nothing beyond RAM, and RAM before the end is intact.
    let tail = t.bytes(RAM_SIZE - 8, 8);
    assert_eq!(tail, vec![0u8; 8]);
}

#[test]
fn console_io_writes_sanitized_bytes() {
    let mut t = TestDomain::new();
    t.put(SCRATCH, b"hello \x1b[2J world\n");
    assert_eq!(t.call(HYPERVISOR_CONSOLE_IO, &[CONSOLEIO_WRITE, 17, SCRATCH]), 0);
    assert_eq!(t.console.0.lock().unwrap().as_slice(), b"hello .[2J world\n");
    assert_eq!(t.call(HYPERVISOR_CONSOLE_IO, &[CONSOLEIO_WRITE, 0, 0]), 0);
}

#[test]
fn console_io_errors() {
    let mut t = TestDomain::new();
    assert_eq!(t.call(HYPERVISOR_CONSOLE_IO, &[CONSOLEIO_WRITE, 16, RAM_SIZE]), EFAULT);
    // A huge count runs off the end of RAM: -EFAULT, quickly, with bounded memory.
    assert_eq!(t.call(HYPERVISOR_CONSOLE_IO, &[CONSOLEIO_WRITE, u64::from(u32::MAX), RAM_SIZE - 4096]), EFAULT);
    assert_eq!(t.console.0.lock().unwrap().len(), 4096, "bytes before the fault were written");
    assert_eq!(t.call(HYPERVISOR_CONSOLE_IO, &[CONSOLEIO_READ, 16, SCRATCH]), EPERM);
    assert_eq!(t.call(HYPERVISOR_CONSOLE_IO, &[7, 16, SCRATCH]), ENOSYS);
}

#[test]
fn hvm_params() {
    let mut t = TestDomain::new();
    let set = |t: &mut TestDomain, domid, index, value| {
        t.put(SCRATCH, &XenHvmParam { domid, pad: 0, index, value });
        t.call(HYPERVISOR_HVM_OP, &[HVMOP_SET_PARAM, SCRATCH])
    };
    let get = |t: &mut TestDomain, domid, index| {
        t.put(SCRATCH, &XenHvmParam { domid, pad: 0, index, value: 0 });
        let rc = t.call(HYPERVISOR_HVM_OP, &[HVMOP_GET_PARAM, SCRATCH]);
        (rc, t.get::<XenHvmParam>(SCRATCH).value)
    };
    assert_eq!(set(&mut t, DOMID_SELF, HVM_PARAM_CALLBACK_IRQ, 0x0200_0000_0000_00F3), 0);
    assert_eq!(get(&mut t, DOMID_SELF, HVM_PARAM_CALLBACK_IRQ), (0, 0x0200_0000_0000_00F3));
    assert_eq!(get(&mut t, 1, HVM_PARAM_CALLBACK_IRQ), (0, 0x0200_0000_0000_00F3), "own domid works");
    t.d.set_param_host(HVM_PARAM_STORE_PFN, 0xFEFFF);
    assert_eq!(get(&mut t, DOMID_SELF, HVM_PARAM_STORE_PFN), (0, 0xFEFFF));
    assert_eq!(set(&mut t, DOMID_SELF, HVM_PARAM_STORE_PFN, 5), EPERM);
    assert_eq!(get(&mut t, DOMID_SELF, HVM_PARAM_IDENT_PT).0, EPERM);
    assert_eq!(get(&mut t, DOMID_SELF, HVM_NR_PARAMS).0, EINVAL);
    assert_eq!(set(&mut t, DOMID_SELF, u32::MAX, 0), EINVAL);
    assert_eq!(set(&mut t, 5, HVM_PARAM_CALLBACK_IRQ, 0), ESRCH);
    assert_eq!(get(&mut t, 0, HVM_PARAM_CALLBACK_IRQ).0, ESRCH);
    assert_eq!(t.call(HYPERVISOR_HVM_OP, &[HVMOP_GET_PARAM, RAM_SIZE]), EFAULT);
    assert_eq!(t.call(HYPERVISOR_HVM_OP, &[HVMOP_PAGETABLE_DYING, SCRATCH]), ENOSYS);
    assert_eq!(t.call(HYPERVISOR_HVM_OP, &[99, SCRATCH]), ENOSYS);
}

#[test]
fn hvm_get_time_is_system_time() {
    let mut t = TestDomain::new();
    t.advance_ns(123_456);
    assert_eq!(t.call(HYPERVISOR_HVM_OP, &[HVMOP_GET_TIME, SCRATCH]), 0);
    assert_eq!(t.get::<u64>(SCRATCH), 123_456);
}

fn map_shared_info(t: &mut TestDomain, domid: u16, space: u32, idx: u64, gpfn: u64) -> i64 {
    t.put(SCRATCH, &XenAddToPhysmap { domid, size: 0, space, idx, gpfn });
    t.call(HYPERVISOR_MEMORY_OP, &[XENMEM_ADD_TO_PHYSMAP, SCRATCH])
}

#[test]
fn shared_info_overlays_ram_and_moves() {
    let mut t = TestDomain::new();
    t.put(0x5000, &[0x5Au8; 16]);
    assert_eq!(map_shared_info(&mut t, DOMID_SELF, XENMAPSPACE_SHARED_INFO, 0, 5), 0);
    let pv: VcpuTimeInfo = t.get(0x5000 + VCPU_INFO_TIME);
    assert_eq!(pv.version % 2, 0);
    assert_ne!(pv.tsc_to_system_mul, 0);
    assert_eq!(pv.flags & XEN_PVCLOCK_TSC_STABLE_BIT, XEN_PVCLOCK_TSC_STABLE_BIT);
    let wc_sec: u32 = t.get(0x5000 + SHARED_INFO_64.wc_sec);
    assert_eq!(u64::from(wc_sec), 1_700_000_000);
    // Move it outside RAM: the old frame shows RAM again.
    let outside = (RAM_SIZE >> 12) + 100;
    assert_eq!(map_shared_info(&mut t, DOMID_SELF, XENMAPSPACE_SHARED_INFO, 0, outside), 0);
    assert_eq!(t.get::<[u8; 16]>(0x5000), [0x5A; 16]);
    let moved: VcpuTimeInfo = t.get((outside << 12) + VCPU_INFO_TIME);
    assert_eq!(moved.tsc_to_system_mul, pv.tsc_to_system_mul);
    assert_eq!(*t.physmap.moves.lock().unwrap(), vec![(None, 5), (Some(5), outside)]);
    assert_eq!(t.d.shared_info_gfn(), Some(outside));
}

#[test]
fn shared_info_errors() {
    let mut t = TestDomain::new();
    assert_eq!(map_shared_info(&mut t, DOMID_SELF, XENMAPSPACE_SHARED_INFO, 1, 5), EINVAL);
    assert_eq!(map_shared_info(&mut t, DOMID_SELF, 99, 0, 5), EINVAL);
    assert_eq!(map_shared_info(&mut t, DOMID_SELF, XENMAPSPACE_GMFN_FOREIGN, 0, 5), EINVAL);
    assert_eq!(map_shared_info(&mut t, 5, XENMAPSPACE_SHARED_INFO, 0, 5), ESRCH);
    assert_eq!(map_shared_info(&mut t, DOMID_SELF, XENMAPSPACE_SHARED_INFO, 0, 1 << 40), EINVAL);
    assert_eq!(map_shared_info(&mut t, DOMID_SELF, XENMAPSPACE_SHARED_INFO, 0, u64::MAX), EINVAL);
    t.physmap.fail.store(true, Ordering::SeqCst);
    assert_eq!(map_shared_info(&mut t, DOMID_SELF, XENMAPSPACE_SHARED_INFO, 0, 5), EINVAL);
    assert_eq!(t.d.shared_info_gfn(), None, "a refused mapping changes nothing");
    assert_eq!(t.call(HYPERVISOR_MEMORY_OP, &[XENMEM_ADD_TO_PHYSMAP, RAM_SIZE]), EFAULT);
    assert_eq!(t.call(HYPERVISOR_MEMORY_OP, &[99, SCRATCH]), ENOSYS);
}

#[test]
fn shared_info_compat_layout() {
    let mut t = TestDomain::new();
    t.compat = true;
    t.put(SCRATCH, &CompatXenAddToPhysmap { domid: DOMID_SELF, size: 0, space: 0, idx: 0, gpfn: 6 });
    assert_eq!(t.call(HYPERVISOR_MEMORY_OP, &[XENMEM_ADD_TO_PHYSMAP, SCRATCH]), 0);
    // Latch the 32-bit layout the way a 32-bit guest does.
    t.put(SCRATCH, &XenHvmParam { domid: DOMID_SELF, pad: 0, index: HVM_PARAM_CALLBACK_IRQ, value: 1 });
    assert_eq!(t.call(HYPERVISOR_HVM_OP, &[HVMOP_SET_PARAM, SCRATCH]), 0);
    let wc_sec: u32 = t.get(0x6000 + SHARED_INFO_COMPAT.wc_sec);
    assert_eq!(wc_sec, 1_700_000_000);
    assert_eq!(t.d.max_ports(), 1024);
}

#[test]
fn hypercall_page_write() {
    let mut t = TestDomain::new();
    t.d.write_hypercall_page(0x7000, false).unwrap();
    let page = t.bytes(0x7000, 4096);
    assert_eq!(&page[17 * 32..17 * 32 + 8], &[0xB8, 17, 0, 0, 0, 0xE7, 0xE2, 0xC3]);
    assert!(t.d.write_hypercall_page(0x7001, false).is_err(), "page index 1 does not exist");
    assert!(t.d.write_hypercall_page(RAM_SIZE, false).is_err(), "outside RAM");
}

#[test]
fn special_pages_are_overlaid_and_published() {
    use crate::special::SpecialPage;
    let mut t = TestDomain::new();
    let page = std::sync::Arc::new(crate::page::SharedPage::new().unwrap());
    assert!(page.write(0, b"ring"));
    let gfn = (RAM_SIZE >> 12) + 7;
    t.d.map_special_page(SpecialPage::Xenstore, gfn, page).unwrap();
    assert_eq!(t.get::<[u8; 4]>(gfn << 12), *b"ring");
    assert_eq!(t.d.param(HVM_PARAM_STORE_PFN), Some(gfn));
    assert_eq!(t.physmap.moves.lock().unwrap().last(), Some(&(None, gfn)));
}
