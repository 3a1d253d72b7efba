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
    /// A vCPU's TSC as read exactly at an exit, to correct the estimate behind
    /// [`Clock::guest_tsc`] (hosts may hold a vCPU's TSC back while it is out).
    fn observe_guest_tsc(&self, _tsc: u64) {}
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
    /// Removes the overlay at `gfn`, restoring the RAM (if any) under it.
    fn remove_overlay(&self, _gfn: u64) -> Result<(), PhysmapError> {
        Ok(())
    }
}

/// How an event-channel upcall reaches a vCPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpcallVia {
    /// `HVM_PARAM_CALLBACK_IRQ` type 2 (`HVM_PARAM_CALLBACK_TYPE_VECTOR`): Xen
    /// injects the vector itself, not through the LAPIC (no EOI), and keeps
    /// injecting it on every entry while the vCPU's `evtchn_upcall_pending` is set
    /// and it accepts interrupts (KVM's `KVM_XEN_ATTR_TYPE_UPCALL_VECTOR`).
    CallbackVector(u8),
    /// `HVMOP_set_evtchn_upcall_vector`: a fixed, edge-triggered interrupt sent
    /// to this vCPU's LAPIC (the guest EOIs it). A disabled LAPIC drops it.
    LapicVector(u8),
}

/// The interrupt line of a `HVM_PARAM_CALLBACK_IRQ` of type 0 or 1. Its level
/// follows vCPU 0's `evtchn_upcall_pending`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallbackLine {
    /// Type 0: a GSI of the I/O APIC (and the PIC below 16). Xen keeps 8 bits.
    Gsi(u8),
    /// Type 1: INTx pin `pin` (0 = INTA#) of PCI device `dev` on bus 0.
    PciIntx { dev: u8, pin: u8 },
}

/// Delivery of events into the guest and the wake-ups the core asks for. The
/// core calls these with the domain lock held: implementations must not take it;
/// they record, signal or inject, and return.
pub trait Upcall: Send + Sync {
    /// `vcpu`'s `evtchn_upcall_pending` went from 0 to 1 (or the route changed
    /// while it was set): deliver the upcall through `via`, waking the vCPU if it
    /// is halted or waiting.
    fn raise(&self, vcpu: u32, via: UpcallVia);
    /// Drives the callback line (GSI or PCI INTx) to `asserted`. The core asserts
    /// it when vCPU 0's upcall becomes pending; the guest clears the flag itself,
    /// so the VMM calls [`crate::Domain::sync_callback_line`] after vCPU 0 exits
    /// while the line is asserted (as Xen does on VM entry).
    fn set_line(&self, line: CallbackLine, asserted: bool);
    /// `vcpu` is waiting in `SCHEDOP_poll` or `SCHEDOP_block` and one of the
    /// things it waits for happened: wake it so it re-checks
    /// [`crate::Domain::wait_done`].
    fn kick(&self, vcpu: u32);
    /// `vcpu`'s earliest Xen timer deadline changed (`None`: no timer armed). The
    /// VMM's timer thread re-plans and calls [`crate::Domain::fire_timers`] when
    /// [`crate::Domain::next_timer_deadline`] passes.
    fn timer_changed(&self, vcpu: u32, deadline_ns: Option<u64>);
}

/// The VMM's PV backends, which play domain 0 for the guest's interdomain event
/// channels. Called with the domain lock held: record or signal, and return.
pub trait BackendNotify: Send + Sync {
    /// The guest sent an event on the channel whose backend end is `backend_port`
    /// (an `EVTCHNOP_send` that Xen would set pending in domain 0).
    fn notify(&self, backend_port: u32);
}

/// Event-channel delivery the host kernel can take over (KVM's EVTCHN_SEND):
/// it then sets pending bits and injects upcalls itself, runs each vCPU's Xen
/// timer and answers SCHEDOP_poll without leaving the kernel. Each method
/// returns whether the kernel took the job; on `false` the core does it.
pub trait KernelEvents: Send + Sync {
    /// shared_info moved to `gfn` (`None`: gone), in the 64-bit (`long_mode`) layout or not.
    fn shared_info_at(&self, gfn: Option<u64>, long_mode: bool) -> bool;
    /// `vcpu`'s per-vCPU upcall vector (HVMOP_set_evtchn_upcall_vector; 0: none).
    fn upcall_vector(&self, vcpu: u32, vector: u8) -> bool;
    /// The global callback vector (`HVM_PARAM_CALLBACK_IRQ` type 2; `None`: another route).
    fn callback_vector(&self, vector: Option<u8>) -> bool;
    /// `vcpu`'s VIRQ_TIMER is bound to `port` (`None`: unbound).
    fn timer_port(&self, vcpu: u32, port: Option<u32>) -> bool;
    /// Xen's 2-level `evtchn_set_pending` of `port`, notifying `vcpu`.
    fn send(&self, port: u32, vcpu: u32) -> bool;
}

/// Time keeping the host kernel can take over (KVM's Xen support): it then
/// maintains the pvclock records itself, refreshing them whenever the vCPU's
/// TSC is adjusted, and Xen system time is the kernel's clock.
pub trait KernelTime: Send + Sync {
    /// Xen system time in ns (the clock the kernel's pvclock records follow).
    fn now_ns(&self) -> u64;
    /// The kernel should keep `vcpu`'s vcpu_info pvclock at guest-physical
    /// `gpa` (the vcpu_info's start). Returns whether it will.
    fn vcpu_info_at(&self, vcpu: u32, gpa: u64) -> bool;
    /// The same for the extra time area (`None`: unregister).
    fn time_area_at(&self, vcpu: u32, gpa: Option<u64>) -> bool;
    /// The kernel should keep `vcpu`'s (native layout) runstate record at
    /// guest-physical `gpa`, accounting running and runnable (preempted) time
    /// itself (`None`: stop). Returns whether it will.
    fn runstate_area_at(&self, _vcpu: u32, _gpa: Option<u64>) -> bool {
        false
    }
    /// `vcpu` enters runstate `state` for a reason only the VMM sees (it blocks
    /// in, or returns from, a wait the VMM serves). Called on `vcpu`'s thread.
    fn runstate_now(&self, _vcpu: u32, _state: i32) {}
    /// The guest turned the `runstate_update_flag` vm_assist on or off.
    fn runstate_update_flag(&self, _on: bool) {}
    /// A soft reset: the kernel forgets `vcpu`'s vcpu_info, time and runstate areas.
    fn forget_vcpu(&self, _vcpu: u32) {}
}

/// Giving guest RAM back to the host (the balloon). Without it the core
/// still keeps the accounts, but the host memory stays allocated.
pub trait RamControl: Send + Sync {
    /// Frees the host memory behind guest frames `gfn .. gfn + count`; the
    /// guest reads zeros there if it touches them again.
    fn release(&self, gfn: u64, count: u64) -> Result<(), RamError>;
}

/// Host memory that could not be given back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot release guest frames {gfn:#x}+{count}: {reason}")]
pub struct RamError {
    pub gfn: u64,
    pub count: u64,
    pub reason: String,
}
