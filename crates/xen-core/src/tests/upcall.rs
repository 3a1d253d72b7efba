//! 2-level delivery (pending, mask, selector and upcall bits in both layouts,
//! shared_info slot and registered vcpu_info), unmask re-delivery, upcall
//! routing by HVM_PARAM_CALLBACK_IRQ and per-vCPU vector, and wake-ups.

use super::evtchn::{bind_ipi, send, unmask};
use super::*;
use crate::Wait;
use xenkvm_xen_abi::hvm::*;
use xenkvm_xen_abi::sched::*;
use xenkvm_xen_abi::vcpu::*;
use xenkvm_xen_abi::xen::*;
use UpcallEvent::*;

const ARGS: u64 = SCRATCH + 0x800;

fn set_callback(t: &mut TestDomain, value: u64) -> i64 {
    t.put(ARGS, &XenHvmParam { domid: DOMID_SELF, pad: 0, index: HVM_PARAM_CALLBACK_IRQ, value });
    t.call(HYPERVISOR_HVM_OP, &[HVMOP_SET_PARAM, ARGS])
}

fn set_vector(t: &mut TestDomain, vcpu: u32, vector: u8) -> i64 {
    t.put(ARGS, &XenHvmEvtchnUpcallVector { vcpu, vector, pad: [0; 3] });
    t.call(HYPERVISOR_HVM_OP, &[HVMOP_SET_EVTCHN_UPCALL_VECTOR, ARGS])
}

fn word64(t: &TestDomain, off: u64) -> u64 {
    t.d.shared_info.load_u64(off as usize)
}

fn word32(t: &TestDomain, off: u64) -> u32 {
    t.d.shared_info.load_u32(off as usize)
}

fn set_bit(t: &TestDomain, off: u64, bit: u32) {
    let old = word64(t, off);
    assert!(t.d.shared_info.write(off as usize, &(old | 1 << bit).to_le_bytes()));
}

fn slot_flag(t: &TestDomain, vcpu: u64) -> u8 {
    t.d.shared_info.load_u8((vcpu * 64) as usize)
}

/// The guest acknowledges vCPU `vcpu`'s upcall: clears the flag and selector.
fn ack_slot(t: &TestDomain, vcpu: u64) {
    assert!(t.d.shared_info.write((vcpu * 64) as usize, &[0; 16]));
}

fn ipis(t: &mut TestDomain, vcpu: u32, n: usize) -> Vec<u32> {
    (0..n).map(|_| bind_ipi(t, vcpu).unwrap()).collect()
}

#[test]
fn delivery_sets_pending_selector_and_upcall() {
    let mut t = TestDomain::new();
    assert_eq!(set_callback(&mut t, 2 << 56 | 0xF3), 0);
    assert!(t.upcall.take().is_empty(), "nothing was pending");
    let ports = ipis(&mut t, 1, 70);
    let (p, q) = (ports[0], ports[69]);
    assert_eq!((p, q), (1, 70));
    assert_eq!(send(&mut t, p), 0);
    assert_eq!(word64(&t, 0x800), 1 << 1);
    assert_eq!(word64(&t, 64 + 8), 1, "selector bit 0 of vCPU 1");
    assert_eq!(slot_flag(&t, 1), 1);
    assert_eq!(slot_flag(&t, 0), 0);
    assert_eq!(t.upcall.take(), vec![Raise(1, UpcallVia::CallbackVector(0xF3))]);
    assert!(t.d.upcall_pending(1));
    // Already pending: nothing more.
    assert_eq!(send(&mut t, p), 0);
    assert!(t.upcall.take().is_empty());
    // The selector word is still set: a new port in it raises nothing.
    assert_eq!(send(&mut t, ports[5]), 0);
    assert!(t.upcall.take().is_empty());
    // A port in word 1 sets selector bit 1, still no new upcall.
    assert_eq!(send(&mut t, q), 0);
    assert_eq!(word64(&t, 0x808), 1 << (70 - 64));
    assert_eq!(word64(&t, 64 + 8), 0b11);
    assert!(t.upcall.take().is_empty());
    // The guest handles everything; the next event raises again.
    assert!(t.d.shared_info.write(0x800, &[0; 16]));
    ack_slot(&t, 1);
    assert_eq!(send(&mut t, q), 0);
    assert_eq!(word64(&t, 64 + 8), 0b10);
    assert_eq!(t.upcall.take(), vec![Raise(1, UpcallVia::CallbackVector(0xF3))]);
}

#[test]
fn masked_ports_wait_for_unmask() {
    let mut t = TestDomain::new();
    assert_eq!(set_callback(&mut t, 2 << 56 | 0xF3), 0);
    let p = bind_ipi(&mut t, 0).unwrap();
    set_bit(&t, 0xA00, p);
    assert_eq!(send(&mut t, p), 0);
    assert!(t.d.port_pending(p));
    assert_eq!((word64(&t, 8), slot_flag(&t, 0)), (0, 0), "masked: no selector, no upcall");
    assert!(t.upcall.take().is_empty());
    assert_eq!(unmask(&mut t, p), 0);
    assert_eq!(word64(&t, 0xA00), 0);
    assert_eq!((word64(&t, 8), slot_flag(&t, 0)), (1, 1));
    assert_eq!(t.upcall.take(), vec![Raise(0, UpcallVia::CallbackVector(0xF3))]);
    // Unmasking an unmasked port, or a masked one with nothing pending, raises nothing.
    ack_slot(&t, 0);
    assert_eq!(unmask(&mut t, p), 0);
    let q = bind_ipi(&mut t, 0).unwrap();
    set_bit(&t, 0xA00, q);
    assert_eq!(unmask(&mut t, q), 0);
    assert_eq!(word64(&t, 0xA00), 0);
    assert!(t.upcall.take().is_empty());
    assert_eq!(slot_flag(&t, 0), 0);
}

fn register_vcpu_info(t: &mut TestDomain, vcpu: u64, gfn: u64, offset: u32) {
    t.put(ARGS, &VcpuRegisterVcpuInfo { mfn: gfn, offset, rsvd: 0 });
    assert_eq!(t.call(HYPERVISOR_VCPU_OP, &[VCPUOP_REGISTER_VCPU_INFO, vcpu, ARGS]), 0);
}

#[test]
fn registered_vcpu_info_receives_the_bits() {
    let mut t = TestDomain::new();
    register_vcpu_info(&mut t, 1, 0x20, 128);
    let area = 0x20_000 + 128;
    t.put(area, &[0u8; 16]);
    assert!(!t.d.upcall_pending(1));
    let p = bind_ipi(&mut t, 1).unwrap();
    assert_eq!(send(&mut t, p), 0);
    assert_eq!(t.get::<u8>(area), 1);
    assert_eq!(t.get::<u64>(area + 8), 1);
    assert_eq!((slot_flag(&t, 1), word64(&t, 64 + 8)), (0, 0), "the legacy slot is left alone");
    assert!(t.d.upcall_pending(1));
}

#[test]
fn compat_layout_uses_32_bit_words() {
    let mut t = TestDomain::new();
    t.compat = true;
    assert_eq!(set_callback(&mut t, 2 << 56 | 0xF3), 0, "latches the compat layout");
    assert_eq!(t.d.max_ports(), 1024);
    let ports = ipis(&mut t, 0, 40);
    let p = ports[39];
    assert_eq!(p, 40);
    set_bit(&t, 0x880, ports[0]);
    assert_eq!(send(&mut t, ports[0]), 0);
    assert_eq!(word32(&t, 0x800), 1 << 1);
    assert_eq!(word32(&t, 4), 0, "masked in the compat mask bitmap");
    assert_eq!(send(&mut t, p), 0);
    assert_eq!(word32(&t, 0x804), 1 << (40 - 32));
    assert_eq!(word32(&t, 4), 1 << 1, "selector is a u32 at offset 4");
    assert_eq!(slot_flag(&t, 0), 1);
    assert_eq!(t.upcall.take(), vec![Raise(0, UpcallVia::CallbackVector(0xF3))]);
    // A registered vcpu_info at a 4-byte-aligned offset works the same way.
    register_vcpu_info(&mut t, 1, 0x21, 132);
    let area = 0x21_000 + 132;
    t.put(area, &[0u8; 8]);
    let q = bind_ipi(&mut t, 1).unwrap();
    assert_eq!(send(&mut t, q), 0);
    assert_eq!(t.get::<u32>(area + 4), 1 << (q / 32));
    assert_eq!(t.get::<u8>(area), 1);
}

#[test]
fn vcpus_beyond_the_legacy_slots_need_a_vcpu_info() {
    let mut t = TestDomain::with_vcpus(33);
    assert_eq!(set_callback(&mut t, 2 << 56 | 0xF3), 0);
    let p = bind_ipi(&mut t, 32).unwrap();
    assert_eq!(send(&mut t, p), 0);
    assert!(t.d.port_pending(p));
    assert!(t.upcall.take().is_empty(), "no vcpu_info to flag");
    register_vcpu_info(&mut t, 32, 0x22, 0);
    let v = UpcallVia::CallbackVector(0xF3);
    assert_eq!(t.upcall.take(), vec![Raise(32, v)], "registration marks everything pending");
    assert_eq!(t.get::<u64>(0x22_008), u64::MAX);
    t.put(0x22_000, &[0u8; 16]);
    assert!(t.d.shared_info.write(0x800, &[0; 8]));
    assert_eq!(send(&mut t, p), 0);
    assert_eq!(t.get::<u8>(0x22_000), 1);
    assert_eq!(t.upcall.take(), vec![Raise(32, v)]);
}

#[test]
fn callback_line_follows_vcpu0() {
    let mut t = TestDomain::new();
    let p0 = bind_ipi(&mut t, 0).unwrap();
    let p1 = bind_ipi(&mut t, 1).unwrap();
    assert_eq!(send(&mut t, p0), 0);
    assert!(t.upcall.take().is_empty(), "no callback configured");
    assert_eq!(t.d.upcall_via(0), None);
    // Setting a GSI while vCPU 0's upcall is pending asserts it at once.
    assert_eq!(set_callback(&mut t, 9), 0);
    let gsi9 = CallbackLine::Gsi(9);
    assert_eq!(t.upcall.take(), vec![Line(gsi9, true)]);
    assert!(t.d.callback_line_asserted());
    assert_eq!(t.d.upcall_via(0), None, "a line is no vector");
    t.d.sync_callback_line();
    assert!(t.upcall.take().is_empty(), "still pending: stays asserted");
    ack_slot(&t, 0);
    t.d.sync_callback_line();
    assert_eq!(t.upcall.take(), vec![Line(gsi9, false)]);
    assert!(!t.d.callback_line_asserted());
    // Only vCPU 0 drives the line.
    assert_eq!(send(&mut t, p1), 0);
    assert!(t.upcall.take().is_empty());
    assert!(t.d.shared_info.write(0x800, &[0; 8]));
    assert_eq!(send(&mut t, p0), 0);
    assert_eq!(t.upcall.take(), vec![Line(gsi9, true)]);
    // Moving to PCI INTx (device 3, INTB#) moves the asserted line.
    assert_eq!(set_callback(&mut t, 1 << 56 | (3 << 3) << 8 | 1), 0);
    let intx = CallbackLine::PciIntx { dev: 3, pin: 1 };
    assert_eq!(t.upcall.take(), vec![Line(gsi9, false), Line(intx, true)]);
    // Moving to a vector drops the line and raises both pending vCPUs.
    assert_eq!(set_callback(&mut t, 2 << 56 | 0xF3), 0);
    let v = UpcallVia::CallbackVector(0xF3);
    assert_eq!(t.upcall.take(), vec![Line(intx, false), Raise(0, v), Raise(1, v)]);
    assert_eq!(t.d.upcall_via(1), Some(v));
    // GSI 0 (a non-zero value of type 0 with a zero low byte) disables.
    assert_eq!(set_callback(&mut t, 0x100), 0);
    t.d.sync_callback_line();
    assert!(t.upcall.take().is_empty());
    assert_eq!(set_callback(&mut t, 0), 0);
    assert_eq!(set_callback(&mut t, 3 << 56 | 5), 0, "unknown types disable too");
    assert!(t.upcall.take().is_empty());
}

#[test]
fn per_vcpu_vector() {
    let mut t = TestDomain::new();
    assert_eq!(set_vector(&mut t, 0, 0x0F), EINVAL);
    assert_eq!(set_vector(&mut t, 9, 0x05), EINVAL, "the vector is checked first");
    assert_eq!(set_vector(&mut t, 2, 0xF3), ENOENT);
    assert_eq!(t.call(HYPERVISOR_HVM_OP, &[HVMOP_SET_EVTCHN_UPCALL_VECTOR, RAM_SIZE]), EFAULT);
    // Linux's order: the vector on each vCPU, then CALLBACK_IRQ = GSI 1.
    assert_eq!(set_vector(&mut t, 0, 0xF3), 0);
    assert_eq!(set_vector(&mut t, 1, 0xF3), 0);
    assert!(t.upcall.take().is_empty(), "nothing pending, nothing raised");
    assert_eq!(set_callback(&mut t, 1), 0);
    let lapic = UpcallVia::LapicVector(0xF3);
    assert_eq!(t.d.upcall_via(0), Some(lapic));
    let p0 = bind_ipi(&mut t, 0).unwrap();
    let p1 = bind_ipi(&mut t, 1).unwrap();
    assert_eq!(send(&mut t, p0), 0);
    assert_eq!(send(&mut t, p1), 0);
    assert_eq!(t.upcall.take(), vec![Raise(0, lapic), Raise(1, lapic)], "never the GSI");
    t.d.sync_callback_line();
    assert!(t.upcall.take().is_empty());
    // The per-vCPU vector wins over a global callback vector.
    assert_eq!(set_callback(&mut t, 2 << 56 | 0xF0), 0);
    assert_eq!(t.upcall.take(), vec![Raise(0, lapic), Raise(1, lapic)]);
    // Setting a vector while an upcall is pending delivers it at once.
    assert_eq!(set_vector(&mut t, 1, 0xE0), 0);
    assert_eq!(t.upcall.take(), vec![Raise(1, UpcallVia::LapicVector(0xE0))]);
}

fn poll(t: &mut TestDomain, vcpu: u32, ports: &[u32]) -> Outcome {
    let at = SCRATCH + 0x400;
    for (i, p) in ports.iter().enumerate() {
        t.put(at + 4 * i as u64, p);
    }
    t.put(ARGS, &SchedPoll { ports: at, nr_ports: ports.len() as u32, pad: 0, timeout: 0 });
    let req = t.request(vcpu, HYPERVISOR_SCHED_OP, &[SCHEDOP_POLL, ARGS]);
    t.d.hypercall(&req)
}

fn send_from(t: &mut TestDomain, vcpu: u32, port: u32) {
    t.put(ARGS, &port);
    let req = t.request(vcpu, HYPERVISOR_EVENT_CHANNEL_OP, &[4, ARGS]);
    assert_eq!(t.d.hypercall(&req), Outcome::Return(0));
}

#[test]
fn pollers_and_blocked_vcpus_are_kicked() {
    let mut t = TestDomain::new();
    // PV spinlock style: poll a masked IPI port; the kick arrives as a send.
    let p = bind_ipi(&mut t, 0).unwrap();
    let other = bind_ipi(&mut t, 0).unwrap();
    set_bit(&t, 0xA00, p);
    let wait = Wait { deadline_ns: None, ports: vec![p] };
    assert_eq!(poll(&mut t, 0, &[p]), Outcome::Wait(wait.clone()));
    send_from(&mut t, 1, other);
    assert!(!t.upcall.take().contains(&Kick(0)), "not a polled port");
    send_from(&mut t, 1, p);
    assert_eq!(t.upcall.take(), vec![Kick(0)]);
    assert!(t.d.wait_done(0, &wait));
    assert_eq!(t.d.end_wait(0, t.paging), 0);
    send_from(&mut t, 1, p);
    assert!(t.upcall.take().is_empty(), "no longer polling");
    // SCHEDOP_block ends with any upcall, even without a callback route.
    ack_slot(&t, 0);
    assert!(t.d.shared_info.write(0x800, &[0; 8]));
    assert!(t.d.shared_info.write(0xA00, &[0; 8]));
    let req = t.request(0, HYPERVISOR_SCHED_OP, &[SCHEDOP_BLOCK]);
    let block = Wait { deadline_ns: None, ports: vec![] };
    assert_eq!(t.d.hypercall(&req), Outcome::Wait(block.clone()));
    assert!(!t.d.wait_done(0, &block));
    send_from(&mut t, 1, other);
    assert_eq!(t.upcall.take(), vec![Kick(0)]);
    assert!(t.d.wait_done(0, &block));
    t.d.end_wait(0, t.paging);
}

#[test]
fn reassert_upcalls_retries_only_pending_vcpus() {
    use xenkvm_xen_abi::hvm::*;
    let mut t = TestDomain::new();
    t.put(SCRATCH, &XenHvmParam { domid: xenkvm_xen_abi::xen::DOMID_SELF, pad: 0, index: HVM_PARAM_CALLBACK_IRQ, value: (2 << 56) | 0xF3 });
    assert_eq!(t.call(xenkvm_xen_abi::xen::HYPERVISOR_HVM_OP, &[HVMOP_SET_PARAM, SCRATCH]), 0);
    t.upcall.take();
    t.d.reassert_upcalls();
    assert_eq!(t.upcall.take(), vec![], "nothing pending: nothing raised");
    assert!(t.d.shared_info.write(0, &[1]));
    t.d.reassert_upcalls();
    t.d.reassert_upcalls();
    let raised = super::UpcallEvent::Raise(0, xenkvm_xen_core_via());
    assert_eq!(t.upcall.take(), vec![raised.clone(), raised], "vCPU 0 pending: raised each time");
}

fn xenkvm_xen_core_via() -> crate::ports::UpcallVia {
    crate::ports::UpcallVia::CallbackVector(0xF3)
}
