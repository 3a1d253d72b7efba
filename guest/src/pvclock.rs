//! Xen's pvclock (`struct vcpu_time_info`): reading it consistently and turning
//! TSC values into nanoseconds of Xen system time.
//!
//! The hypervisor makes `version` odd while it rewrites the record and even
//! again afterwards. A reader takes the version, reads the fields, reads the
//! version again and retries if it was odd or changed. On x86 loads are not
//! reordered with other loads, so compiler ordering (volatile accesses plus
//! acquire fences) is all the "rmb" needed.
//!
//! ns = system_time + scale(tsc - tsc_timestamp), where scale shifts the delta
//! left by `tsc_shift` (right if negative) and multiplies by the 32.32 fixed
//! point `tsc_to_system_mul`.

use core::arch::asm;
use core::sync::atomic::{fence, Ordering};

use crate::abi::{VCPU_INFO_TIME, XEN_PVCLOCK_TSC_STABLE_BIT};
use crate::print::{hex, print, Emit};
use crate::shared::{read32, read64, read8, vcpu_info};

/// Reads the time-stamp counter.
pub fn rdtsc() -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: RDTSC only reads the TSC (CR4.TSD is clear).
    unsafe { asm!("rdtsc", out("eax") lo, out("edx") hi, options(nomem, nostack, preserves_flags)) };
    (u64::from(hi) << 32) | u64::from(lo)
}

/// A consistent snapshot of a `vcpu_time_info`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TimeInfo {
    pub version: u32,
    pub tsc_timestamp: u64,
    pub system_time: u64,
    pub tsc_to_system_mul: u32,
    pub tsc_shift: i8,
    pub flags: u8,
}

/// How many times an update in progress is waited out before giving up.
const MAX_RETRIES: u32 = 1_000_000;

impl TimeInfo {
    /// Reads the record at guest address `addr` with the version protocol. If
    /// no consistent snapshot is seen within `MAX_RETRIES` tries, the last one
    /// is returned (its odd or torn version then fails `is_valid`).
    ///
    /// # Safety
    /// `addr` must point at 32 readable, 8-byte aligned bytes.
    pub unsafe fn read(addr: u64) -> Self {
        let mut snap = Self::default();
        for _ in 0..MAX_RETRIES {
            // SAFETY: forwarded to the caller; offsets are those of
            // vcpu_time_info (version 0, tsc_timestamp 8, system_time 16,
            // tsc_to_system_mul 24, tsc_shift 28, flags 29).
            unsafe {
                let v1 = read32(addr);
                fence(Ordering::Acquire);
                snap = Self {
                    version: v1,
                    tsc_timestamp: read64(addr + 8),
                    system_time: read64(addr + 16),
                    tsc_to_system_mul: read32(addr + 24),
                    tsc_shift: read8(addr + 28) as i8,
                    flags: read8(addr + 29),
                };
                fence(Ordering::Acquire);
                let v2 = read32(addr);
                if v1 & 1 == 0 && v1 == v2 {
                    return snap;
                }
                snap.version |= 1; // torn: make sure it reads as invalid
            }
            core::hint::spin_loop();
        }
        snap
    }

    /// A record the hypervisor has filled: even version and a non-zero
    /// multiplier. The TSC-stable flag is the host's to give: KVM leaves it
    /// clear where the host TSC is unstable (as in the nested harness).
    pub fn is_valid(&self) -> bool {
        self.version & 1 == 0 && self.tsc_to_system_mul != 0
    }

    /// Whether the hypervisor vouches that the TSC is stable across vCPUs.
    pub fn tsc_stable(&self) -> bool {
        self.flags & XEN_PVCLOCK_TSC_STABLE_BIT != 0
    }

    /// Converts a TSC delta to nanoseconds with this record's scale.
    pub fn tsc_delta_to_ns(&self, delta: u64) -> u64 {
        let shift = self.tsc_shift;
        let scaled = if shift >= 0 {
            delta << (shift as u32 & 63)
        } else {
            delta >> ((-(shift as i32)) as u32 & 63)
        };
        ((u128::from(scaled) * u128::from(self.tsc_to_system_mul)) >> 32) as u64
    }

    /// Xen system time (ns) at TSC value `tsc`.
    pub fn ns_at(&self, tsc: u64) -> u64 {
        self.system_time.wrapping_add(self.tsc_delta_to_ns(tsc.wrapping_sub(self.tsc_timestamp)))
    }
}

impl Emit for TimeInfo {
    fn emit(&self) {
        print!(
            "version=", self.version, " tsc_timestamp=", hex(self.tsc_timestamp), " system_time=", self.system_time,
            " mul=", hex(self.tsc_to_system_mul), " shift=", self.tsc_shift, " flags=", hex(self.flags)
        );
    }
}

/// The pvclock of vCPU 0 as currently published (registered vcpu_info, else
/// shared_info's slot), or `None` if shared_info is not mapped yet.
pub fn current() -> Option<TimeInfo> {
    let vi = vcpu_info()?;
    // SAFETY: vcpu_info() only returns addresses the hypervisor accepted for
    // shared_info or a vcpu_info; vcpu_info.time is 8-byte aligned inside it.
    Some(unsafe { TimeInfo::read(vi + VCPU_INFO_TIME as u64) })
}

/// Current Xen system time in ns, or `None` if there is no valid pvclock.
pub fn now_ns() -> Option<u64> {
    let t = current()?;
    if !t.is_valid() {
        return None;
    }
    Some(t.ns_at(rdtsc()))
}
