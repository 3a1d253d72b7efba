//! The guest clock as KVM runs it: the guest TSC is the host TSC plus a fixed
//! offset that KVM chose when it created the vCPUs.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use xenkvm_xen_core::ports::Clock;

/// Guest TSC and frequency, measured against the host TSC. The offset is
/// corrected from exact reads at exits: on hosts with an unstable TSC, KVM holds
/// a vCPU's TSC back while the vCPU is out of the guest.
#[derive(Debug)]
pub struct KvmClock {
    /// guest TSC - host TSC.
    offset: AtomicU64,
    pub khz: u32,
}

impl KvmClock {
    pub fn new(offset: u64, khz: u32) -> Self {
        Self { offset: AtomicU64::new(offset), khz }
    }
}

/// Reads the host TSC.
pub fn host_tsc() -> u64 {
    // SAFETY: rdtsc has no memory effects; every x86-64 CPU implements it.
    unsafe { core::arch::x86_64::_rdtsc() }
}

impl Clock for KvmClock {
    fn guest_tsc(&self) -> u64 {
        host_tsc().wrapping_add(self.offset.load(Ordering::Relaxed))
    }

    fn observe_guest_tsc(&self, tsc: u64) {
        self.offset.store(tsc.wrapping_sub(host_tsc()), Ordering::Relaxed);
    }

    fn tsc_khz(&self) -> u32 {
        self.khz
    }

    fn wall_clock_ns(&self) -> u64 {
        SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0)
    }
}
