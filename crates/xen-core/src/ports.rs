//! The small interfaces the Xen core needs from its host. The KVM adapter and the
//! VMM implement them; unit tests fake them. Nothing here knows about KVM.

/// The guest's time source. Xen system time is derived from the guest TSC alone,
/// so the pvclock records the core writes stay valid without periodic refresh.
pub trait Clock: Send + Sync {
    /// The guest's current TSC value (as `rdtsc` in the guest would read it now).
    fn guest_tsc(&self) -> u64;
    /// The guest TSC frequency in kHz.
    fn tsc_khz(&self) -> u32;
    /// Host wall-clock time, nanoseconds since the Unix epoch.
    fn wall_clock_ns(&self) -> u64;
}

/// Where `console_io` output goes (the hypervisor console, `xl dmesg` on Xen).
pub trait ConsoleSink: Send + Sync {
    fn write(&self, bytes: &[u8]);
}

/// Failure to change the guest-physical map.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PhysmapError {
    #[error("Cannot map an overlay page at guest frame {gfn:#x}: {reason}")]
    MapOverlay { gfn: u64, reason: String },
}

/// Changes to the guest-physical address space that only the accelerator can make:
/// placing a host page (shared_info) over a guest frame, whether or not RAM is there.
pub trait Physmap: Send + Sync {
    /// Makes guest frame `gfn` show `page` (an anonymous host mapping, 4 KiB).
    /// A previous overlay at `old_gfn` (if any) is removed and RAM under it restored.
    fn move_overlay(&self, old_gfn: Option<u64>, gfn: u64, page: &crate::page::SharedPage) -> Result<(), PhysmapError>;
}
