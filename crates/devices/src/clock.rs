//! Time sources for the timer devices, and the interface a VMM thread uses to
//! raise their interrupts on time.
//!
//! Devices read time through [`Clock`] so tests can drive them with a
//! [`ManualClock`] instead of sleeping.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// A source of nanoseconds. Monotonic clocks count from an arbitrary origin;
/// wall clocks count from the Unix epoch.
pub trait Clock: Send {
    fn now_ns(&self) -> u64;
}

/// The host's monotonic clock, counted from when this value was made.
pub struct MonotonicClock(Instant);

impl MonotonicClock {
    pub fn new() -> Self {
        Self(Instant::now())
    }
}

impl Default for MonotonicClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for MonotonicClock {
    fn now_ns(&self) -> u64 {
        u64::try_from(self.0.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
}

/// The host's UTC wall clock, in nanoseconds since the Unix epoch.
#[derive(Default)]
pub struct WallClock;

impl Clock for WallClock {
    fn now_ns(&self) -> u64 {
        // A host clock set before 1970 reads as the epoch.
        let since = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        u64::try_from(since.as_nanos()).unwrap_or(u64::MAX)
    }
}

/// A clock that moves only when told to; clones share the same time.
#[derive(Clone, Default)]
pub struct ManualClock(Arc<AtomicU64>);

impl ManualClock {
    pub fn new(start_ns: u64) -> Self {
        Self(Arc::new(AtomicU64::new(start_ns)))
    }

    pub fn set(&self, ns: u64) {
        self.0.store(ns, Ordering::SeqCst);
    }

    pub fn advance(&self, ns: u64) {
        self.0.fetch_add(ns, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ns(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// An interrupt line for tests that counts its triggers; clones share the count.
#[cfg(test)]
#[derive(Clone, Default)]
pub(crate) struct CountIrq(pub Arc<std::sync::atomic::AtomicUsize>);

#[cfg(test)]
impl vm_superio::Trigger for CountIrq {
    type E = std::io::Error;
    fn trigger(&self) -> std::io::Result<()> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

/// Called by a device when the guest changed something that moves its next
/// interrupt, so the thread serving it re-plans its sleep.
pub type Waker = Box<dyn Fn() + Send>;

/// A device whose interrupts fall due with time, served by a VMM thread.
pub trait TimedIrq: Send {
    /// Raises the interrupts that are due now and returns how many
    /// nanoseconds until the next one (`None`: nothing is scheduled).
    fn service(&mut self) -> Option<u64>;

    /// Installs the callback for guest changes to the schedule.
    fn set_waker(&mut self, waker: Waker);
}
