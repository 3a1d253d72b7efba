//! SHUTDOWN_soft_reset: the domain's Xen state is that of a new domain
//! afterwards, except the toolstack's kept channels.

use xenkvm_xen_abi::event_channel::*;
use xenkvm_xen_abi::hvm::HVM_PARAM_CALLBACK_IRQ;
use xenkvm_xen_abi::memory::*;
use xenkvm_xen_abi::xen::*;

use super::evtchn::{alloc_unbound, bind_ipi, bind_virq, op};
use super::*;

#[test]
fn soft_reset_clears_xen_state_but_the_kept_channels() {
    let mut t = TestDomain::new();
    // The toolstack's store channel, bound by "xenstored"; a PV backend's.
    let store = t.d.alloc_unbound_for_backend().unwrap();
    let store_b = t.d.backend_bind_interdomain(store).unwrap();
    let disk = t.d.alloc_unbound_for_backend().unwrap();
    let disk_b = t.d.backend_bind_interdomain(disk).unwrap();
    // The guest's own state: shared_info, a VIRQ, an IPI, an unbound port, the callback.
    t.put(SCRATCH, &XenAddToPhysmap { domid: DOMID_SELF, size: 0, space: XENMAPSPACE_SHARED_INFO, idx: 0, gpfn: 0x80 });
    assert_eq!(t.call(HYPERVISOR_MEMORY_OP, &[XENMEM_ADD_TO_PHYSMAP, SCRATCH]), 0);
    let virq = bind_virq(&mut t, VIRQ_TIMER, 0).unwrap();
    let ipi = bind_ipi(&mut t, 1).unwrap();
    let unbound = alloc_unbound(&mut t, DOMID_SELF, 0).unwrap();
    t.d.set_param_host(HVM_PARAM_CALLBACK_IRQ, 2 << 56 | 0xf3);

    t.d.soft_reset(&[store_b]).unwrap();

    assert_eq!(t.d.shared_info_gfn(), None, "shared_info is RAM again");
    assert_eq!(t.d.param(HVM_PARAM_CALLBACK_IRQ), Some(0));
    assert_eq!(t.d.backend_peer(store_b), Some(store), "the store channel stays bound");
    assert_eq!(t.d.backend_peer(disk_b), None, "the disk's guest end closed");
    assert_eq!(t.d.backend_send(disk_b), Ok(()), "its backend may still send: the event is dropped");
    // Every guest port but the store's is free: status says so.
    for port in [disk, virq, ipi, unbound] {
        let rc = op(&mut t, EVTCHNOP_STATUS, &EvtchnStatus { dom: DOMID_SELF, port, ..Default::default() });
        assert_eq!(rc, 0);
        assert_eq!(t.get::<EvtchnStatus>(SCRATCH).status, EVTCHNSTAT_CLOSED, "port {port}");
    }
    let rc = op(&mut t, EVTCHNOP_STATUS, &EvtchnStatus { dom: DOMID_SELF, port: store, ..Default::default() });
    assert_eq!(rc, 0);
    assert_eq!(t.get::<EvtchnStatus>(SCRATCH).status, EVTCHNSTAT_INTERDOMAIN);
    // The new kernel can bind the timer VIRQ again.
    assert!(bind_virq(&mut t, VIRQ_TIMER, 0).is_ok());
    // And the store channel still delivers.
    t.d.backend_send(store_b).unwrap();
    assert!(t.d.port_pending(store));
}
