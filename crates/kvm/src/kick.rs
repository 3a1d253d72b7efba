//! Kicking a vCPU thread out of `KVM_RUN` with a signal, so it can act on
//! something another thread queued for it (a vCPU ioctl from another thread
//! would wait until that vCPU leaves the guest by itself, which an AP waiting
//! for its start-up IPI never does).

use std::sync::Mutex;

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
