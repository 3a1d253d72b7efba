//! Unit tests of the Xen core on plain memory with recording fakes: no KVM, no
//! threads. Arrange a `TestDomain`, issue hypercalls as a vCPU would, and check
//! both the return value and the guest memory the call wrote.

mod args;
mod evtchn;
mod gnttab;
mod hypercalls;
mod kernel_events;
mod kernel_runstate;
mod memory;
mod reset;
mod paging;
mod physdev;
mod timer;
mod upcall;
mod vcpu_sched;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};
use zerocopy::{FromBytes, Immutable, IntoBytes};

use crate::hypercall::{CpuMode, HypercallRegs};
use crate::page::SharedPage;
use crate::ports::{BackendNotify, CallbackLine, Clock, ConsoleSink, Physmap, PhysmapError, Upcall, UpcallVia};
use crate::{Domain, DomainConfig, HypercallRequest, Outcome, PagingState};

pub const RAM_SIZE: u64 = 16 << 20;
/// Scratch area the tests pass pointers into.
pub const SCRATCH: u64 = 0x10_0000;

#[derive(Default)]
pub struct FakeClock {
    pub tsc: AtomicU64,
}

impl Clock for FakeClock {
    fn guest_tsc(&self) -> u64 {
        self.tsc.load(Ordering::SeqCst)
    }
    fn tsc_khz(&self) -> u32 {
        1_000_000 // 1 tick = 1 ns
    }
    fn wall_clock_ns(&self) -> u64 {
        1_700_000_000_123_456_789
    }
}

#[derive(Default)]
pub struct RecordingConsole(pub Mutex<Vec<u8>>);

impl ConsoleSink for RecordingConsole {
    fn write(&self, bytes: &[u8]) {
        self.0.lock().unwrap().extend_from_slice(bytes);
    }
}

#[derive(Default)]
pub struct RecordingPhysmap {
    pub moves: Mutex<Vec<(Option<u64>, u64)>>,
    pub fail: std::sync::atomic::AtomicBool,
}

impl Physmap for RecordingPhysmap {
    fn move_overlay(&self, old: Option<u64>, gfn: u64, _page: &SharedPage) -> Result<(), PhysmapError> {
        if self.fail.load(Ordering::SeqCst) {
            return Err(PhysmapError::MapOverlay { gfn, reason: "refused by test".into() });
        }
        self.moves.lock().unwrap().push((old, gfn));
        Ok(())
    }
}

/// What the core asked of the `Upcall` port, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpcallEvent {
    Raise(u32, UpcallVia),
    Line(CallbackLine, bool),
    Kick(u32),
    Timer(u32, Option<u64>),
}

#[derive(Default)]
pub struct RecordingUpcall(pub Mutex<Vec<UpcallEvent>>);

impl RecordingUpcall {
    /// Returns and forgets what was recorded.
    pub fn take(&self) -> Vec<UpcallEvent> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

impl Upcall for RecordingUpcall {
    fn raise(&self, vcpu: u32, via: UpcallVia) {
        self.0.lock().unwrap().push(UpcallEvent::Raise(vcpu, via));
    }
    fn set_line(&self, line: CallbackLine, asserted: bool) {
        self.0.lock().unwrap().push(UpcallEvent::Line(line, asserted));
    }
    fn kick(&self, vcpu: u32) {
        self.0.lock().unwrap().push(UpcallEvent::Kick(vcpu));
    }
    fn timer_changed(&self, vcpu: u32, deadline_ns: Option<u64>) {
        self.0.lock().unwrap().push(UpcallEvent::Timer(vcpu, deadline_ns));
    }
}

/// Backend ports the guest notified, in order.
#[derive(Default)]
pub struct RecordingBackends(pub Mutex<Vec<u32>>);

impl BackendNotify for RecordingBackends {
    fn notify(&self, backend_port: u32) {
        self.0.lock().unwrap().push(backend_port);
    }
}

pub struct TestDomain {
    pub d: Domain,
    pub clock: Arc<FakeClock>,
    pub console: Arc<RecordingConsole>,
    pub physmap: Arc<RecordingPhysmap>,
    pub upcall: Arc<RecordingUpcall>,
    pub backends: Arc<RecordingBackends>,
    pub paging: PagingState,
    pub compat: bool,
}

impl TestDomain {
    pub fn new() -> Self {
        Self::with_vcpus(2)
    }

    pub fn with_vcpus(vcpus: u32) -> Self {
        let ram = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), RAM_SIZE as usize)]).unwrap();
        let clock = Arc::new(FakeClock::default());
        clock.tsc.store(5_000, Ordering::SeqCst);
        let console = Arc::new(RecordingConsole::default());
        let physmap = Arc::new(RecordingPhysmap::default());
        let cfg = DomainConfig { xen_version: 0x40011, domid: 1, vcpus, max_gfn: (1 << 40) - 1, handle: [7; 16], gnttab_max_frames: 64 };
        let upcall = Arc::new(RecordingUpcall::default());
        let backends = Arc::new(RecordingBackends::default());
        let ports = crate::domain::Ports {
            clock: clock.clone(),
            console: console.clone(),
            physmap: physmap.clone(),
            upcall: upcall.clone(),
            backends: backends.clone(),
        };
        let d = Domain::new(cfg, ram, ports).unwrap();
        Self { d, clock, console, physmap, upcall, backends, paging: PagingState::flat(), compat: false }
    }

    pub fn advance_ns(&self, ns: u64) {
        self.clock.tsc.fetch_add(ns, Ordering::SeqCst);
    }

    pub fn request(&self, vcpu: u32, nr: u64, args: &[u64]) -> HypercallRequest {
        let mut regs = HypercallRegs { rax: nr, ..Default::default() };
        let a = |i: usize| args.get(i).copied().unwrap_or(0);
        let mode = if self.compat {
            (regs.rbx, regs.rcx, regs.rdx, regs.rsi, regs.rdi) = (a(0), a(1), a(2), a(3), a(4));
            CpuMode::Protected32
        } else {
            (regs.rdi, regs.rsi, regs.rdx, regs.r10, regs.r8) = (a(0), a(1), a(2), a(3), a(4));
            CpuMode::Long64
        };
        HypercallRequest::from_regs(vcpu, &regs, mode, 0, self.paging)
    }

    pub fn outcome(&mut self, nr: u64, args: &[u64]) -> Outcome {
        let req = self.request(0, nr, args);
        self.d.hypercall(&req)
    }

    /// Runs a hypercall on vCPU 0 that must return (not block or stop).
    pub fn call(&mut self, nr: u64, args: &[u64]) -> i64 {
        match self.outcome(nr, args) {
            Outcome::Return(v) => v,
            other => panic!("hypercall {nr} did not return: {other:?}"),
        }
    }

    pub fn put<T: IntoBytes + Immutable>(&self, gpa: u64, val: &T) {
        self.d.phys().ram().write_slice(val.as_bytes(), GuestAddress(gpa)).unwrap();
    }

    pub fn get<T: FromBytes + IntoBytes>(&self, gpa: u64) -> T {
        let mut v = T::new_zeroed();
        self.d.phys().read_in_page(gpa, v.as_mut_bytes()).unwrap();
        v
    }

    pub fn bytes(&self, gpa: u64, len: usize) -> Vec<u8> {
        let mut v = vec![0u8; len];
        self.d.phys().ram().read_slice(&mut v, GuestAddress(gpa)).unwrap();
        v
    }
}

pub const EPERM: i64 = -1;
pub const ENOENT: i64 = -2;
pub const ESRCH: i64 = -3;
pub const ENXIO: i64 = -6;
pub const EFAULT: i64 = -14;
pub const EBUSY: i64 = -16;
pub const EEXIST: i64 = -17;
pub const EINVAL: i64 = -22;
pub const ENOSPC: i64 = -28;
pub const ENOSYS: i64 = -38;
pub const ETIME: i64 = -62;
