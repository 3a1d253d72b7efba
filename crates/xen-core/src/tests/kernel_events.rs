//! Event delivery handed to the host kernel (the `KernelEvents` port): what the
//! core tells the kernel, and what it then leaves to it.

use super::evtchn::{bind_ipi, bind_virq, close, send, unmask};
use super::*;
use crate::ports::KernelEvents;
use std::sync::atomic::AtomicBool;
use xenkvm_xen_abi::event_channel::VIRQ_TIMER;
use xenkvm_xen_abi::hvm::*;
use xenkvm_xen_abi::memory::*;
use xenkvm_xen_abi::xen::*;

const ARGS: u64 = SCRATCH + 0x800;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Asked {
    SharedInfo(Option<u64>, bool),
    UpcallVector(u32, u8),
    CallbackVector(Option<u8>),
    TimerPort(u32, Option<u32>),
    Send(u32, u32),
}

/// Records every request; `send` succeeds unless `refuse_send` is set.
#[derive(Default)]
struct RecordingKernel {
    asked: Mutex<Vec<Asked>>,
    refuse_send: AtomicBool,
}

impl RecordingKernel {
    fn take(&self) -> Vec<Asked> {
        std::mem::take(&mut *self.asked.lock().unwrap())
    }
    fn push(&self, a: Asked) -> bool {
        self.asked.lock().unwrap().push(a);
        true
    }
}

impl KernelEvents for RecordingKernel {
    fn shared_info_at(&self, gfn: Option<u64>, long_mode: bool) -> bool {
        self.push(Asked::SharedInfo(gfn, long_mode))
    }
    fn upcall_vector(&self, vcpu: u32, vector: u8) -> bool {
        self.push(Asked::UpcallVector(vcpu, vector))
    }
    fn callback_vector(&self, vector: Option<u8>) -> bool {
        self.push(Asked::CallbackVector(vector))
    }
    fn timer_port(&self, vcpu: u32, port: Option<u32>) -> bool {
        self.push(Asked::TimerPort(vcpu, port))
    }
    fn send(&self, port: u32, vcpu: u32) -> bool {
        self.push(Asked::Send(port, vcpu)) && !self.refuse_send.load(Ordering::SeqCst)
    }
}

fn with_kernel() -> (TestDomain, Arc<RecordingKernel>) {
    let mut t = TestDomain::new();
    let k = Arc::new(RecordingKernel::default());
    t.d.set_kernel_events(k.clone());
    assert_eq!(k.take(), [Asked::SharedInfo(None, true)], "the kernel learns the (absent) page at once");
    (t, k)
}

fn pending_bit(t: &TestDomain, port: u32) -> bool {
    let off = xenkvm_xen_abi::shared_info::SHARED_INFO_64.evtchn_pending as usize;
    t.d.shared_info.load_u64(off) & (1 << port) != 0
}

#[test]
fn shared_info_moves_and_layout_latches_reach_the_kernel() {
    let (mut t, k) = with_kernel();
    t.put(SCRATCH, &XenAddToPhysmap { domid: DOMID_SELF, size: 0, space: XENMAPSPACE_SHARED_INFO, idx: 0, gpfn: 5 });
    assert_eq!(t.call(HYPERVISOR_MEMORY_OP, &[XENMEM_ADD_TO_PHYSMAP, SCRATCH]), 0);
    assert_eq!(k.take(), [Asked::SharedInfo(Some(5), true)]);
    // A 32-bit guest's CALLBACK_IRQ latches the compat layout.
    t.compat = true;
    t.put(ARGS, &XenHvmParam { domid: DOMID_SELF, pad: 0, index: HVM_PARAM_CALLBACK_IRQ, value: (2 << 56) | 0xF3 });
    assert_eq!(t.call(HYPERVISOR_HVM_OP, &[HVMOP_SET_PARAM, ARGS]), 0);
    assert_eq!(k.take(), [Asked::SharedInfo(Some(5), false), Asked::CallbackVector(Some(0xF3))]);
}

#[test]
fn sends_go_through_the_kernel_and_fall_back_when_it_refuses() {
    let (mut t, k) = with_kernel();
    let port = bind_ipi(&mut t, 1).unwrap();
    assert_eq!(send(&mut t, port), 0);
    assert_eq!(k.take(), [Asked::Send(port, 1)]);
    assert!(!pending_bit(&t, port), "the kernel sets the bit, not the core");
    assert_eq!(t.upcall.take(), [], "nor does the core raise the upcall");

    k.refuse_send.store(true, Ordering::SeqCst);
    assert_eq!(send(&mut t, port), 0);
    assert_eq!(k.take(), [Asked::Send(port, 1)]);
    assert!(pending_bit(&t, port), "refused: the core delivers itself");
}

#[test]
fn unmask_of_a_pending_port_is_sent_again() {
    let (mut t, k) = with_kernel();
    let port = bind_ipi(&mut t, 0).unwrap();
    let sh = xenkvm_xen_abi::shared_info::SHARED_INFO_64;
    assert!(t.d.shared_info.write(sh.evtchn_pending as usize, &(1u64 << port).to_le_bytes()));
    assert!(t.d.shared_info.write(sh.evtchn_mask as usize, &(1u64 << port).to_le_bytes()));
    assert_eq!(unmask(&mut t, port), 0);
    assert_eq!(k.take(), [Asked::Send(port, 0)]);
    assert!(!pending_bit(&t, port), "the bit is handed back to the kernel's send");
    // Unmasking a port that is not pending sends nothing.
    assert_eq!(unmask(&mut t, port), 0);
    assert_eq!(k.take(), []);
}

#[test]
fn virq_timer_binding_and_upcall_vectors_reach_the_kernel() {
    let (mut t, k) = with_kernel();
    let port = bind_virq(&mut t, VIRQ_TIMER, 1).unwrap();
    assert_eq!(k.take(), [Asked::TimerPort(1, Some(port))]);
    assert_eq!(close(&mut t, port), 0);
    assert_eq!(k.take(), [Asked::TimerPort(1, None)]);

    t.put(ARGS, &XenHvmEvtchnUpcallVector { vcpu: 1, vector: 0xF3, pad: [0; 3] });
    assert_eq!(t.call(HYPERVISOR_HVM_OP, &[HVMOP_SET_EVTCHN_UPCALL_VECTOR, ARGS]), 0);
    assert_eq!(k.take(), [Asked::UpcallVector(1, 0xF3)]);
}

#[test]
fn the_global_vector_is_left_to_the_kernel_with_a_kick() {
    let (mut t, k) = with_kernel();
    t.put(ARGS, &XenHvmParam { domid: DOMID_SELF, pad: 0, index: HVM_PARAM_CALLBACK_IRQ, value: (2 << 56) | 0xF3 });
    assert_eq!(t.call(HYPERVISOR_HVM_OP, &[HVMOP_SET_PARAM, ARGS]), 0);
    assert_eq!(k.take(), [Asked::CallbackVector(Some(0xF3))]);
    t.upcall.take();
    // vCPU 0's upcall flag is set: the kernel injects. The core leaves it
    // alone until it stayed set for a while, then only kicks.
    assert!(t.d.shared_info.write(0, &[1]));
    for _ in 1..crate::evtchn::KERNEL_RESCUE_PASSES {
        t.d.reassert_upcalls();
    }
    assert_eq!(t.upcall.take(), []);
    t.d.reassert_upcalls();
    assert_eq!(t.upcall.take(), [UpcallEvent::Kick(0)]);
    // A GSI route hands the vector back.
    t.put(ARGS, &XenHvmParam { domid: DOMID_SELF, pad: 0, index: HVM_PARAM_CALLBACK_IRQ, value: 9 });
    assert_eq!(t.call(HYPERVISOR_HVM_OP, &[HVMOP_SET_PARAM, ARGS]), 0);
    assert_eq!(k.take(), [Asked::CallbackVector(None)]);
}
