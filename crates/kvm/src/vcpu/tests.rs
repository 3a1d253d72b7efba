//! ExtINT injection and kicks against the host's KVM (skipped without
//! /dev/kvm). No guest code runs: every KVM_RUN here exits at once through
//! `immediate_exit`, which is also what makes KVM refresh
//! `ready_for_interrupt_injection`.

use super::*;
use crate::KvmVm;

fn bsp() -> Option<KvmVcpu> {
    match KvmVm::new() {
        Ok(vm) => Some(KvmVcpu::new(&vm, 0).expect("vCPU 0")),
        Err(e) => {
            eprintln!("SKIPPED: no usable /dev/kvm ({e})");
            None
        }
    }
}

struct NoExits;
impl ExitHandler for NoExits {
    fn pio_read(&mut self, _: u16, _: &mut [u8]) {}
    fn pio_write(&mut self, _: u16, _: &[u8]) {}
    fn mmio_read(&mut self, _: u64, _: &mut [u8]) {}
    fn mmio_write(&mut self, _: u64, _: &[u8]) {}
    fn hypercall(&mut self, _: &HypercallRequest) -> Option<i64> {
        None
    }
    fn wrmsr(&mut self, _: u32, _: u64, _: bool) -> bool {
        false
    }
    fn ioapic_eoi(&mut self, _: u8) {}
}

/// A kick that lands between two runs: the next run returns at once.
fn kicked_run(v: &mut KvmVcpu) -> VcpuEvent {
    crate::kick::arm(v.fd.get_kvm_run());
    crate::kick::signal_arrived();
    let event = v.run_once(&mut NoExits).expect("KVM_RUN");
    assert_eq!(v.fd.get_kvm_run().immediate_exit, 0, "cleared after the run");
    event
}

fn set_if(v: &KvmVcpu, on: bool) {
    let mut regs = v.fd.get_regs().unwrap();
    regs.rflags = if on { 0x202 } else { 0x2 };
    v.fd.set_regs(&regs).unwrap();
}

#[test]
fn a_kick_between_runs_is_not_lost() {
    let Some(mut v) = bsp() else { return };
    assert_eq!(kicked_run(&mut v), VcpuEvent::Interrupted);
}

#[test]
fn extint_injection_follows_the_guest_if_and_the_queue() {
    let Some(mut v) = bsp() else { return };
    assert!(!v.ready_for_interrupt(), "nothing known before the first run");
    kicked_run(&mut v);
    assert!(!v.ready_for_interrupt(), "IF is clear at reset");
    set_if(&v, true);
    kicked_run(&mut v);
    // KVM resets the BSP's LINT0 to ExtINT, unmasked (virtual wire).
    assert!(v.ready_for_interrupt(), "IF set, LINT0 takes ExtINT");
    v.inject_external(0x30).expect("KVM_INTERRUPT with a split irqchip");
    let again = v.inject_external(0x31).expect_err("one vector at a time");
    assert!(matches!(again, Error::Interrupt(0, ref e) if e.errno() == libc::EEXIST), "{again:?}");
    kicked_run(&mut v);
    assert!(!v.ready_for_interrupt(), "the queued vector is not taken yet");
    v.set_interrupt_window_request(true);
    assert_eq!(v.fd.get_kvm_run().request_interrupt_window, 1);
    v.set_interrupt_window_request(false);
    assert_eq!(v.fd.get_kvm_run().request_interrupt_window, 0);
}
