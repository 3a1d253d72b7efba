//! Xen system time and the pvclock (`vcpu_time_info`) records derived from it.
//!
//! System time is a pure function of the guest TSC: nanoseconds since the VM was
//! created, scaled with the same multiplier and shift the guest uses. Every
//! pvclock record the core writes therefore extrapolates to the same clock, on
//! every vCPU, with no periodic refresh (the TSC is stable on the hosts we run on).

use xenkvm_xen_abi::shared_info::{VcpuTimeInfo, XEN_PVCLOCK_TSC_STABLE_BIT};

/// Scaling from TSC ticks to nanoseconds in pvclock form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TscScale {
    pub mul: u32,
    pub shift: i8,
}

impl TscScale {
    /// Computes `mul` and `shift` so that `ns = ((ticks << shift) * mul) >> 32`
    /// (a negative shift shifts right) for a TSC running at `khz`.
    pub fn for_khz(khz: u32) -> Self {
        const NS_PER_SEC: u64 = 1_000_000_000;
        let mut tps = u64::from(khz.max(1)) * 1000;
        let mut shift: i8 = 0;
        while tps > 2 * NS_PER_SEC {
            tps >>= 1;
            shift -= 1;
        }
        while tps <= NS_PER_SEC {
            tps <<= 1;
            shift += 1;
        }
        // tps is in (1e9, 2e9], so the quotient is in [2^31, 2^32).
        let mul = ((u128::from(NS_PER_SEC) << 32) / u128::from(tps)) as u32;
        Self { mul, shift }
    }

    /// Converts a TSC delta to nanoseconds exactly as a pvclock reader does.
    pub fn ticks_to_ns(&self, ticks: u64) -> u64 {
        let shifted = if self.shift >= 0 {
            ticks << self.shift
        } else {
            ticks >> self.shift.unsigned_abs()
        };
        ((u128::from(shifted) * u128::from(self.mul)) >> 32) as u64
    }
}

/// The domain's time base.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeBase {
    /// Guest TSC at system time zero.
    pub tsc0: u64,
    pub scale: TscScale,
    pub tsc_khz: u32,
    /// Host wall-clock nanoseconds at system time zero.
    pub wall_at_zero_ns: u64,
}

impl TimeBase {
    /// A time base starting at guest TSC `tsc_now`, which must not be ahead of
    /// any TSC value a vCPU will read.
    pub fn new(tsc_now: u64, tsc_khz: u32, wall_now_ns: u64) -> Self {
        Self { tsc0: tsc_now, scale: TscScale::for_khz(tsc_khz), tsc_khz, wall_at_zero_ns: wall_now_ns }
    }

    /// Xen system time (ns) at guest TSC `tsc`.
    pub fn system_ns(&self, tsc: u64) -> u64 {
        self.scale.ticks_to_ns(tsc.wrapping_sub(self.tsc0))
    }

    /// The pvclock record. Every record is anchored at system time zero: any
    /// point of the line works for the guest's extrapolation, and this one is
    /// behind every TSC value a vCPU can read. A recent anchor taken from a TSC
    /// estimate could be ahead of a vCPU whose TSC the host held back (KVM does
    /// that on hosts with an unstable TSC), and `tsc - tsc_timestamp` would
    /// underflow in the guest.
    pub fn pvclock(&self) -> VcpuTimeInfo {
        VcpuTimeInfo {
            version: 0,
            pad0: 0,
            tsc_timestamp: self.tsc0,
            system_time: 0,
            tsc_to_system_mul: self.scale.mul,
            tsc_shift: self.scale.shift,
            flags: XEN_PVCLOCK_TSC_STABLE_BIT,
            pad1: [0; 2],
        }
    }

    /// Wall-clock seconds and nanoseconds at system time zero (`wc_sec`, `wc_nsec`).
    pub fn wallclock(&self) -> (u64, u32) {
        (self.wall_at_zero_ns / 1_000_000_000, (self.wall_at_zero_ns % 1_000_000_000) as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scale_matches_frequency() {
        for khz in [1_000_000u32, 2_100_000, 2_999_999, 3_700_000, 500_000, 100_000, 5_000_000] {
            let s = TscScale::for_khz(khz);
            let one_second_ticks = u64::from(khz) * 1000;
            let ns = s.ticks_to_ns(one_second_ticks);
            assert!((999_999_000..=1_000_000_001).contains(&ns), "khz {khz}: {ns} ns, {s:?}");
            assert!(s.mul >= 1 << 31, "mul uses full precision");
        }
    }

    #[test]
    fn pvclock_extrapolates_to_system_time() {
        let tb = TimeBase::new(1_000_000_000, 2_500_000, 1_700_000_000_000_000_000);
        let rec = tb.pvclock();
        assert_eq!((rec.tsc_timestamp, rec.system_time), (1_000_000_000, 0), "anchored at system time zero");
        let later = 9_000_000_000u64;
        let guest_ns = rec.system_time + tb.scale.ticks_to_ns(later - rec.tsc_timestamp);
        let diff = guest_ns.abs_diff(tb.system_ns(later));
        assert!(diff <= 1, "pvclock and system time disagree by {diff} ns");
    }
}
