//! PHYSDEVOP and EVTCHNOP_bind_pirq: PIRQ allocation with its bounds (a PIRQ
//! equal to the maximum is refused: QEMU's CVE-2026-0665), bindings, and
//! delivery of a raised PIRQ to its port; MSI decoding.

use xenkvm_xen_abi::event_channel::*;
use xenkvm_xen_abi::physdev::*;
use xenkvm_xen_abi::xen::*;

use super::evtchn::op;
use super::*;
use crate::physdev::msi_pirq;

fn map(t: &mut TestDomain, type_: i32, index: i32, pirq: i32) -> Result<i32, i64> {
    t.put(SCRATCH, &PhysdevMapPirq { domid: DOMID_SELF, type_, index, pirq, ..Default::default() });
    match t.call(HYPERVISOR_PHYSDEV_OP, &[PHYSDEVOP_MAP_PIRQ, SCRATCH]) {
        0 => Ok(t.get::<PhysdevMapPirq>(SCRATCH).pirq),
        e => Err(e),
    }
}

fn unmap(t: &mut TestDomain, pirq: i32) -> i64 {
    t.put(SCRATCH, &PhysdevUnmapPirq { domid: DOMID_SELF, _pad: 0, pirq });
    t.call(HYPERVISOR_PHYSDEV_OP, &[PHYSDEVOP_UNMAP_PIRQ, SCRATCH])
}

fn bind(t: &mut TestDomain, pirq: u32) -> Result<u32, i64> {
    match op(t, EVTCHNOP_BIND_PIRQ, &EvtchnBindPirq { pirq, flags: 0, port: 0 }) {
        0 => Ok(t.get::<EvtchnBindPirq>(SCRATCH).port),
        e => Err(e),
    }
}

fn get_free(t: &mut TestDomain, type_: i32) -> Result<u32, i64> {
    t.put(SCRATCH, &PhysdevGetFreePirq { type_, pirq: 0 });
    match t.call(HYPERVISOR_PHYSDEV_OP, &[PHYSDEVOP_GET_FREE_PIRQ, SCRATCH]) {
        0 => Ok(t.get::<PhysdevGetFreePirq>(SCRATCH).pirq),
        e => Err(e),
    }
}

fn eoi(t: &mut TestDomain, irq: u32) -> i64 {
    t.put(SCRATCH, &PhysdevEoi { irq });
    t.call(HYPERVISOR_PHYSDEV_OP, &[PHYSDEVOP_EOI, SCRATCH])
}

fn status_flags(t: &mut TestDomain, irq: u32) -> Result<u32, i64> {
    t.put(SCRATCH, &PhysdevIrqStatusQuery { irq, flags: 0 });
    match t.call(HYPERVISOR_PHYSDEV_OP, &[PHYSDEVOP_IRQ_STATUS_QUERY, SCRATCH]) {
        0 => Ok(t.get::<PhysdevIrqStatusQuery>(SCRATCH).flags),
        e => Err(e),
    }
}

#[test]
fn pirq_numbers_stay_below_the_maximum() {
    let mut t = TestDomain::new();
    t.d.set_max_pirqs(64).unwrap();
    assert_eq!(map(&mut t, MAP_PIRQ_TYPE_MSI, -1, 64), Err(EINVAL), "pirq == max (CVE-2026-0665)");
    assert_eq!(map(&mut t, MAP_PIRQ_TYPE_MSI, -1, 65), Err(EINVAL));
    assert_eq!(map(&mut t, MAP_PIRQ_TYPE_MSI, -1, 63), Ok(63));
    assert_eq!(map(&mut t, MAP_PIRQ_TYPE_MSI, -1, 63), Err(EEXIST));
    assert_eq!(unmap(&mut t, 64), EINVAL);
    assert_eq!(unmap(&mut t, -1), EINVAL);
    assert_eq!(unmap(&mut t, 40), ENOENT, "not in use");
    // The rest of the MSI range (24..63) fills up top-down, then ENOSPC.
    assert_eq!(get_free(&mut t, MAP_PIRQ_TYPE_MSI), Ok(62));
    for _ in 24..62 {
        assert!(map(&mut t, MAP_PIRQ_TYPE_MSI, -1, -1).is_ok());
    }
    assert_eq!(map(&mut t, MAP_PIRQ_TYPE_MSI, -1, -1), Err(ENOSPC));
    assert_eq!(get_free(&mut t, MAP_PIRQ_TYPE_MSI), Err(ENOSPC));
    assert_eq!(t.d.set_max_pirqs(0), Err(xenkvm_xen_abi::errno::XenErrno::Einval));
    assert_eq!(t.d.set_max_pirqs(1025), Err(xenkvm_xen_abi::errno::XenErrno::Einval));
}

#[test]
fn allocation_follows_xens_order() {
    let mut t = TestDomain::new();
    assert_eq!(map(&mut t, MAP_PIRQ_TYPE_GSI, 9, -1), Ok(16), "GSIs count up from 16");
    assert_eq!(map(&mut t, MAP_PIRQ_TYPE_GSI, 9, -1), Ok(16), "mapping a GSI again gives its PIRQ");
    assert_eq!(map(&mut t, MAP_PIRQ_TYPE_GSI, 4, -1), Ok(17));
    assert_eq!(get_free(&mut t, MAP_PIRQ_TYPE_MSI), Ok(255), "MSIs count down from the top");
    assert_eq!(get_free(&mut t, MAP_PIRQ_TYPE_MSI), Ok(254), "get_free_pirq reserves the number");
    assert_eq!(map(&mut t, MAP_PIRQ_TYPE_GSI, 24, -1), Err(EINVAL), "beyond the I/O APIC");
    assert_eq!(map(&mut t, MAP_PIRQ_TYPE_GSI, -3, -1), Err(EINVAL));
    assert_eq!(map(&mut t, MAP_PIRQ_TYPE_UNKNOWN, 1, -1), Err(EINVAL));
    // A reserved, unbound number may be mapped to a GSI; a GSI's may not be taken.
    assert_eq!(map(&mut t, MAP_PIRQ_TYPE_GSI, 5, 254), Ok(254));
    assert_eq!(map(&mut t, MAP_PIRQ_TYPE_GSI, 6, 16), Err(EEXIST));
    t.put(SCRATCH, &PhysdevMapPirq { domid: 0, type_: MAP_PIRQ_TYPE_GSI, index: 1, pirq: -1, ..Default::default() });
    assert_eq!(t.call(HYPERVISOR_PHYSDEV_OP, &[PHYSDEVOP_MAP_PIRQ, SCRATCH]), EPERM);
    assert_eq!(status_flags(&mut t, 16), Ok(XENIRQSTAT_NEEDS_EOI));
    assert_eq!(status_flags(&mut t, 255), Ok(0), "an MSI needs no EOI");
    assert_eq!(status_flags(&mut t, 100), Err(ENOENT));
    assert_eq!(eoi(&mut t, 16), 0);
    assert_eq!(eoi(&mut t, 255), EINVAL, "EOI is for GSIs");
    assert_eq!(eoi(&mut t, 100), ENOENT);
    assert_eq!(eoi(&mut t, 256), EINVAL);
    assert_eq!(t.call(HYPERVISOR_PHYSDEV_OP, &[99, SCRATCH]), ENOSYS);
}

#[test]
fn a_bound_pirq_delivers_to_its_port_and_close_unbinds_it() {
    let mut t = TestDomain::new();
    assert_eq!(bind(&mut t, 30), Err(EINVAL), "not mapped");
    let pirq = get_free(&mut t, MAP_PIRQ_TYPE_MSI).unwrap();
    let port = bind(&mut t, pirq).unwrap();
    assert_eq!(bind(&mut t, pirq), Err(EBUSY));
    assert_eq!(unmap(&mut t, pirq as i32), EBUSY, "a bound PIRQ stays mapped");
    assert!(t.d.raise_pirq(pirq));
    assert!(t.d.port_pending(port));
    let st = EvtchnStatus { dom: DOMID_SELF, port, ..Default::default() };
    assert_eq!(op(&mut t, EVTCHNOP_STATUS, &st), 0);
    assert_eq!(t.get::<EvtchnStatus>(SCRATCH).status, EVTCHNSTAT_PIRQ);
    assert_eq!(op(&mut t, EVTCHNOP_CLOSE, &EvtchnClose { port }), 0);
    assert!(!t.d.raise_pirq(pirq), "closed: nothing takes it");
    assert_eq!(unmap(&mut t, pirq as i32), 0);
    assert!(!t.d.raise_pirq(9999));
}

fn clear(t: &mut TestDomain, port: u32) {
    t.d.clear_port_pending(port);
    assert!(!t.d.port_pending(port));
}

#[test]
fn a_routed_gsi_bypasses_the_ioapic_and_a_held_level_fires_again_at_eoi() {
    let mut t = TestDomain::new();
    assert!(!t.d.set_gsi(17, true), "unmapped GSI: the I/O APIC's");
    t.d.set_gsi(17, false);
    let pirq = map(&mut t, MAP_PIRQ_TYPE_GSI, 17, -1).unwrap() as u32;
    assert!(t.d.set_gsi(17, true), "mapped: taken even before a port is bound");
    // Bound while the line is high: delivered at once.
    let port = bind(&mut t, pirq).unwrap();
    assert!(t.d.port_pending(port));
    clear(&mut t, port);
    // Still high at EOI: pending again; low: nothing.
    assert_eq!(eoi(&mut t, pirq), 0);
    assert!(t.d.port_pending(port));
    clear(&mut t, port);
    assert!(t.d.set_gsi(17, false));
    assert_eq!(eoi(&mut t, pirq), 0);
    assert!(!t.d.port_pending(port));
    // An edge (a pulse) delivers once.
    assert!(t.d.set_gsi(17, true) && t.d.set_gsi(17, false));
    assert!(t.d.port_pending(port));
    assert!(!t.d.set_gsi(99, true), "no such GSI");
}

#[test]
fn msis_name_their_pirq_in_the_address() {
    // Linux: address_lo = 0xfee00000 | (pirq & 0xff) << 12, address_hi = pirq & ~0xff, data vector 0.
    let addr = |pirq: u32| (u64::from(pirq & !0xFF) << 32) | 0xFEE0_0000 | u64::from(pirq & 0xFF) << 12;
    assert_eq!(msi_pirq(addr(40), 0x0300), Some(40));
    assert_eq!(msi_pirq(addr(0x1_2345), 0x0300), Some(0x1_2345));
    assert_eq!(msi_pirq(addr(40), 0x4031), None, "a real vector is an ordinary MSI");
    assert_eq!(msi_pirq(0xFEE0_0000, 0), None, "PIRQ 0 is not one");
}
