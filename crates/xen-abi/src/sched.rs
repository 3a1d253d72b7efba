//! `xen/include/public/sched.h`: `HYPERVISOR_sched_op`.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

pub const SCHEDOP_YIELD: u64 = 0;
pub const SCHEDOP_BLOCK: u64 = 1;
pub const SCHEDOP_SHUTDOWN: u64 = 2;
pub const SCHEDOP_POLL: u64 = 3;
pub const SCHEDOP_REMOTE_SHUTDOWN: u64 = 4;
pub const SCHEDOP_SHUTDOWN_CODE: u64 = 5;
pub const SCHEDOP_WATCHDOG: u64 = 6;
pub const SCHEDOP_PIN_OVERRIDE: u64 = 7;

pub const SHUTDOWN_POWEROFF: u32 = 0;
pub const SHUTDOWN_REBOOT: u32 = 1;
pub const SHUTDOWN_SUSPEND: u32 = 2;
pub const SHUTDOWN_CRASH: u32 = 3;
pub const SHUTDOWN_WATCHDOG: u32 = 4;
pub const SHUTDOWN_SOFT_RESET: u32 = 5;

/// Most ports one `SCHEDOP_poll` may name (Xen's limit).
pub const SCHED_POLL_MAX_PORTS: u32 = 128;

/// `struct sched_shutdown` (4 bytes).
#[doc(alias = "sched_shutdown")]
#[derive(Debug, Default, Clone, Copy, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct SchedShutdown {
    pub reason: u32,
}

/// `struct sched_poll`, 64-bit ABI (24 bytes).
#[doc(alias = "sched_poll")]
#[derive(Debug, Default, Clone, Copy, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct SchedPoll {
    /// Guest handle of an array of `evtchn_port_t` (u32).
    pub ports: u64,
    pub nr_ports: u32,
    pub pad: u32,
    /// Absolute Xen system time in ns; 0 means no timeout.
    pub timeout: u64,
}

/// `struct sched_poll`, 32-bit ABI (16 bytes).
#[derive(Debug, Default, Clone, Copy, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C, packed(4))]
pub struct CompatSchedPoll {
    pub ports: u32,
    pub nr_ports: u32,
    pub timeout: u64,
}
