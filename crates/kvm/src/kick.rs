//! Kicking a vCPU thread out of `KVM_RUN` with a signal, so it can act on
//! something another thread queued for it (a vCPU ioctl from another thread
//! would wait until that vCPU leaves the guest by itself, which an AP waiting
//! for its start-up IPI never does).
//!
//! A signal that lands while its vCPU is between two `KVM_RUN`s would be
//! lost (the next `KVM_RUN` could sleep in `hlt` with work queued), so the
//! handler calls [`signal_arrived`], which sets `immediate_exit` in the
//! thread's `kvm_run`: the next `KVM_RUN` then returns `EINTR` at once.

use std::cell::Cell;
use std::sync::Mutex;

thread_local! {
    /// The `kvm_run` of the vCPU this thread runs (null: none).
    static RUN: Cell<*mut kvm_bindings::kvm_run> = const { Cell::new(std::ptr::null_mut()) };
}

/// Records `run` as the calling thread's `kvm_run` (before each `KVM_RUN`).
pub(crate) fn arm(run: *mut kvm_bindings::kvm_run) {
    RUN.with(|r| r.set(run));
}

/// Forgets `run` if it is the calling thread's (before it is unmapped).
pub(crate) fn disarm(run: *mut kvm_bindings::kvm_run) {
    RUN.with(|r| {
        if r.get() == run {
            r.set(std::ptr::null_mut());
        }
    });
}

/// For the kick signal's handler: makes this thread's next `KVM_RUN` return
/// at once. Async-signal-safe (a thread-local load and one store).
pub fn signal_arrived() {
    let run = RUN.with(Cell::get);
    if !run.is_null() {
        // SAFETY: `run` is the live kvm_run mapping of the vCPU this thread
        // runs: `KvmVcpu` disarms it on this thread before unmapping it.
        // KVM only polls the byte when KVM_RUN starts.
        unsafe { std::ptr::addr_of_mut!((*run).immediate_exit).write_volatile(1) };
    }
}

/// The threads running each vCPU, by vCPU id.
pub struct VcpuKicker {
    signal: libc::c_int,
    threads: Mutex<Vec<Option<libc::pthread_t>>>,
}

impl VcpuKicker {
    /// `signal` must have a (no-op) handler installed, so it only interrupts
    /// `KVM_RUN` with `EINTR`.
    pub fn new(signal: libc::c_int, vcpus: u32) -> Self {
        Self { signal, threads: Mutex::new(vec![None; vcpus as usize]) }
    }

    /// Records the calling thread as vCPU `id`'s.
    pub fn register_current(&self, id: u32) {
        // SAFETY: pthread_self has no preconditions.
        let me = unsafe { libc::pthread_self() };
        if let Ok(mut t) = self.threads.lock() {
            if let Some(slot) = t.get_mut(id as usize) {
                *slot = Some(me);
            }
        }
    }

    /// Forgets vCPU `id`'s thread (it is about to exit).
    pub fn unregister(&self, id: u32) {
        if let Ok(mut t) = self.threads.lock() {
            if let Some(slot) = t.get_mut(id as usize) {
                *slot = None;
            }
        }
    }

    /// Whether the calling thread runs vCPU `id` (so that vCPU is not in KVM_RUN).
    pub fn is_current(&self, id: u32) -> bool {
        // SAFETY: pthread_self has no preconditions; pthread_equal compares ids.
        let me = unsafe { libc::pthread_self() };
        let Ok(t) = self.threads.lock() else { return false };
        // SAFETY: both are thread ids obtained from pthread_self.
        matches!(t.get(id as usize), Some(Some(th)) if unsafe { libc::pthread_equal(*th, me) } != 0)
    }

    /// Interrupts vCPU `id`'s thread; a no-op before it registered.
    pub fn kick(&self, id: u32) {
        let Ok(t) = self.threads.lock() else { return };
        if let Some(Some(thread)) = t.get(id as usize) {
            // SAFETY: `thread` is a live thread: it unregisters (under this
            // lock) before it returns, and the signal has a handler.
            unsafe { libc::pthread_kill(*thread, self.signal) };
        }
    }
}
