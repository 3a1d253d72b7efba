//! Lines and MSIs with the domain's PIRQ routing in front of the I/O APIC,
//! driven as Linux sets them up: map the GSI, bind an event channel.

use std::sync::atomic::{AtomicUsize, Ordering};

use vm_memory::{Bytes, GuestAddress};
use xenkvm_xen_abi::event_channel::{EvtchnBindPirq, EVTCHNOP_BIND_PIRQ};
use xenkvm_xen_abi::physdev::{PhysdevGetFreePirq, PhysdevMapPirq, MAP_PIRQ_TYPE_GSI, MAP_PIRQ_TYPE_MSI, PHYSDEVOP_GET_FREE_PIRQ, PHYSDEVOP_MAP_PIRQ};
use xenkvm_xen_abi::xen::{DOMID_SELF, HYPERVISOR_EVENT_CHANNEL_OP, HYPERVISOR_PHYSDEV_OP};
use xenkvm_xen_core::{Abi, HypercallRequest, Outcome, PagingState};
use zerocopy::{FromBytes, IntoBytes};

use super::*;
use crate::test_support::TestVm;

/// Guest-physical scratch space for hypercall arguments.
const ARG: u64 = 0x1000;

#[derive(Default)]
struct CountMsi(AtomicUsize);
impl MsiSink for CountMsi {
    fn send_msi(&self, _: u64, _: u32) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

fn call<T: IntoBytes + FromBytes + zerocopy::Immutable>(vm: &TestVm, nr: u64, cmd: u64, arg: &T) -> (i64, T) {
    vm.ram.write_slice(arg.as_bytes(), GuestAddress(ARG)).unwrap();
    let req = HypercallRequest {
        vcpu: 0,
        nr,
        args: [cmd, ARG, 0, 0, 0, 0],
        abi: Abi::Native64,
        cpl: 0,
        vm86: false,
        paging: PagingState::default(),
        guest_tsc: None,
    };
    let Outcome::Return(rc) = vm.ctx.domain.lock().unwrap().hypercall(&req) else { panic!("hypercall blocked") };
    let mut out = T::new_zeroed();
    vm.ram.read_slice(out.as_mut_bytes(), GuestAddress(ARG)).unwrap();
    (rc, out)
}

fn bind(vm: &TestVm, pirq: u32) -> u32 {
    let (rc, b) = call(vm, HYPERVISOR_EVENT_CHANNEL_OP, EVTCHNOP_BIND_PIRQ.into(), &EvtchnBindPirq { pirq, flags: 0, port: 0 });
    assert_eq!(rc, 0);
    b.port
}

fn ioapic_with_pin_unmasked(pin: u8, sink: Arc<CountMsi>, level: bool) -> Arc<Mutex<Ioapic>> {
    let ioapic = Arc::new(Mutex::new(Ioapic::new(sink)));
    {
        use xenkvm_devices::bus::BusDevice;
        let mut io = ioapic.lock().unwrap();
        // Redirection entry low word: vector 0x30, edge or level, unmasked.
        io.write(0x00, &u32::from(0x10 + 2 * pin).to_le_bytes());
        io.write(0x10, &(0x30u32 | if level { 1 << 15 } else { 0 }).to_le_bytes());
    }
    ioapic
}

#[test]
fn a_mapped_gsi_goes_to_its_event_channel_not_the_ioapic() {
    let vm = TestVm::new();
    let sink = Arc::new(CountMsi::default());
    let lines = IrqLines { ioapic: ioapic_with_pin_unmasked(4, sink.clone(), false), domain: Some(vm.ctx.domain.clone()), levels: Arc::default() };
    let com1 = lines.line(4);
    com1.trigger().unwrap();
    assert_eq!(sink.0.load(Ordering::SeqCst), 1, "not routed: the I/O APIC's pin");

    let map = PhysdevMapPirq { domid: DOMID_SELF, type_: MAP_PIRQ_TYPE_GSI, index: 4, pirq: -1, ..Default::default() };
    let (rc, map) = call(&vm, HYPERVISOR_PHYSDEV_OP, PHYSDEVOP_MAP_PIRQ, &map);
    assert_eq!(rc, 0);
    let port = bind(&vm, map.pirq as u32);
    com1.trigger().unwrap();
    assert_eq!(sink.0.load(Ordering::SeqCst), 1, "routed: the I/O APIC sees nothing");
    assert!(vm.ctx.domain.lock().unwrap().port_pending(port));
}

#[test]
fn a_pirq_msi_raises_its_port_and_an_ordinary_one_goes_to_the_apic() {
    let vm = TestVm::new();
    let apic = Arc::new(CountMsi::default());
    let msi = PirqMsi { apic: apic.clone(), domain: vm.ctx.domain.clone() };
    let free = PhysdevGetFreePirq { type_: MAP_PIRQ_TYPE_MSI, pirq: 0 };
    let (rc, free) = call(&vm, HYPERVISOR_PHYSDEV_OP, PHYSDEVOP_GET_FREE_PIRQ, &free);
    assert_eq!(rc, 0);
    // As Linux's xen_msi_compose_msg builds it: vector 0, PIRQ in the address.
    let address = 0xFEE0_0000 | (u64::from(free.pirq & 0xFF) << 12) | (u64::from(free.pirq & !0xFF) << 32);
    msi.send_msi(address, 0x4300);
    assert_eq!(apic.0.load(Ordering::SeqCst), 0, "a PIRQ message never reaches the APIC, bound or not");
    let port = bind(&vm, free.pirq);
    assert!(!vm.ctx.domain.lock().unwrap().port_pending(port));
    msi.send_msi(address, 0x4300);
    assert!(vm.ctx.domain.lock().unwrap().port_pending(port));
    msi.send_msi(0xFEE0_0000, 0x4031);
    assert_eq!(apic.0.load(Ordering::SeqCst), 1, "vector 0x31: an ordinary MSI");
    // Linux never unmasks a PIRQ's MSI-X entry: such messages pass the mask.
    assert!(msi.bypasses_mask(address, 0x4300));
    assert!(!msi.bypasses_mask(0xFEE0_0000, 0x4031));
}

#[test]
fn sources_sharing_a_line_do_not_lower_each_other() {
    let sink = Arc::new(CountMsi::default());
    let ioapic = ioapic_with_pin_unmasked(17, sink.clone(), true);
    let lines = IrqLines { ioapic: ioapic.clone(), domain: None, levels: Arc::default() };
    let (a, b) = (lines.line(17), lines.line(17));
    a.set_level(true);
    assert_eq!(sink.0.load(Ordering::SeqCst), 1);
    b.set_level(true);
    a.set_level(false);
    // b still holds the line: the EOI of the first interrupt fires it again.
    ioapic.lock().unwrap().end_of_interrupt(0x30);
    assert_eq!(sink.0.load(Ordering::SeqCst), 2, "the line stayed high for b");
    b.set_level(false);
    ioapic.lock().unwrap().end_of_interrupt(0x30);
    assert_eq!(sink.0.load(Ordering::SeqCst), 2, "both low: nothing more");
    // The callback's bit is its own as well.
    assert!(lines.levels.set(17, CALLBACK_SOURCE, true));
    assert!(!lines.levels.set(17, CALLBACK_SOURCE, false));
    assert!(lines.levels.set(99, CALLBACK_SOURCE, true), "no such pin: the level as given");
}
