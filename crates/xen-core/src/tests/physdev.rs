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
    // The rest of the MSI range fills up, then ENOSPC.
    for _ in 24..63 {
        assert!(map(&mut t, MAP_PIRQ_TYPE_MSI, -1, -1).is_ok());
    }
    assert_eq!(map(&mut t, MAP_PIRQ_TYPE_MSI, -1, -1), Err(ENOSPC));
    assert_eq!(t.d.set_max_pirqs(0), Err(xenkvm_xen_abi::errno::XenErrno::Einval));
    assert_eq!(t.d.set_max_pirqs(1025), Err(xenkvm_xen_abi::errno::XenErrno::Einval));
}

#[test]
fn gsis_map_to_their_own_number_once() {
    let mut t = TestDomain::new();
    assert_eq!(map(&mut t, MAP_PIRQ_TYPE_GSI, 9, -1), Ok(9));
    assert_eq!(map(&mut t, MAP_PIRQ_TYPE_GSI, 9, -1), Ok(9), "mapping a GSI again gives its PIRQ");
    assert_eq!(map(&mut t, MAP_PIRQ_TYPE_GSI, 24, -1), Err(EINVAL), "beyond the I/O APIC");
    assert_eq!(map(&mut t, MAP_PIRQ_TYPE_GSI, -3, -1), Err(EINVAL));
    assert_eq!(map(&mut t, MAP_PIRQ_TYPE_UNKNOWN, 1, -1), Err(EINVAL));
    assert_eq!(map(&mut t, MAP_PIRQ_TYPE_MSI, -1, -1), Ok(24), "MSIs start above the GSIs");
    t.put(SCRATCH, &PhysdevMapPirq { domid: 0, type_: MAP_PIRQ_TYPE_GSI, index: 1, pirq: -1, ..Default::default() });
    assert_eq!(t.call(HYPERVISOR_PHYSDEV_OP, &[PHYSDEVOP_MAP_PIRQ, SCRATCH]), EPERM);
    t.put(SCRATCH, &PhysdevGetFreePirq { type_: MAP_PIRQ_TYPE_MSI, pirq: 0 });
    assert_eq!(t.call(HYPERVISOR_PHYSDEV_OP, &[PHYSDEVOP_GET_FREE_PIRQ, SCRATCH]), 0);
    assert_eq!(t.get::<PhysdevGetFreePirq>(SCRATCH).pirq, 25);
    t.put(SCRATCH, &PhysdevIrqStatusQuery { irq: 9, flags: 0 });
    assert_eq!(t.call(HYPERVISOR_PHYSDEV_OP, &[PHYSDEVOP_IRQ_STATUS_QUERY, SCRATCH]), 0);
    assert_eq!(t.get::<PhysdevIrqStatusQuery>(SCRATCH).flags, XENIRQSTAT_NEEDS_EOI);
    t.put(SCRATCH, &PhysdevEoi { irq: 9 });
    assert_eq!(t.call(HYPERVISOR_PHYSDEV_OP, &[PHYSDEVOP_EOI, SCRATCH]), 0);
    t.put(SCRATCH, &PhysdevEoi { irq: 256 });
    assert_eq!(t.call(HYPERVISOR_PHYSDEV_OP, &[PHYSDEVOP_EOI, SCRATCH]), EINVAL);
    assert_eq!(t.call(HYPERVISOR_PHYSDEV_OP, &[99, SCRATCH]), ENOSYS);
}

#[test]
fn a_bound_pirq_delivers_to_its_port_and_close_unbinds_it() {
    let mut t = TestDomain::new();
    assert_eq!(bind(&mut t, 30), Err(EINVAL), "not mapped");
    let pirq = map(&mut t, MAP_PIRQ_TYPE_MSI, -1, -1).unwrap() as u32;
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

#[test]
fn msis_name_their_pirq_in_the_address() {
    // Linux: address_lo = 0xfee00000 | (pirq & 0xff) << 12, address_hi = pirq & ~0xff, data vector 0.
    let addr = |pirq: u32| (u64::from(pirq & !0xFF) << 32) | 0xFEE0_0000 | u64::from(pirq & 0xFF) << 12;
    assert_eq!(msi_pirq(addr(40), 0x0300), Some(40));
    assert_eq!(msi_pirq(addr(0x1_2345), 0x0300), Some(0x1_2345));
    assert_eq!(msi_pirq(addr(40), 0x4031), None, "a real vector is an ordinary MSI");
    assert_eq!(msi_pirq(0xFEE0_0000, 0), None, "PIRQ 0 is not one");
}
