//! `xen/include/public/event_channel.h` (and the VIRQ list of `xen.h`):
//! `HYPERVISOR_event_channel_op` and its argument records.
//!
//! Every record here has the same layout in the 64-bit and the 32-bit (compat)
//! ABI: all fields are 16- or 32-bit, except `control_gfn`, `array_gfn` and the
//! union of `evtchn_status`, which sit at offsets that are already 8-aligned or
//! hold only 32-bit members. `tests/layout.rs` pins the sizes and offsets.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// `EVTCHNOP_*` sub-operations.
pub const EVTCHNOP_BIND_INTERDOMAIN: u32 = 0;
pub const EVTCHNOP_BIND_VIRQ: u32 = 1;
pub const EVTCHNOP_BIND_PIRQ: u32 = 2;
pub const EVTCHNOP_CLOSE: u32 = 3;
pub const EVTCHNOP_SEND: u32 = 4;
pub const EVTCHNOP_STATUS: u32 = 5;
pub const EVTCHNOP_ALLOC_UNBOUND: u32 = 6;
pub const EVTCHNOP_BIND_IPI: u32 = 7;
pub const EVTCHNOP_BIND_VCPU: u32 = 8;
pub const EVTCHNOP_UNMASK: u32 = 9;
pub const EVTCHNOP_RESET: u32 = 10;
pub const EVTCHNOP_INIT_CONTROL: u32 = 11;
pub const EVTCHNOP_EXPAND_ARRAY: u32 = 12;
pub const EVTCHNOP_SET_PRIORITY: u32 = 13;
/// Xen-internal continuation of `EVTCHNOP_reset` (`#ifdef __XEN__`).
pub const EVTCHNOP_RESET_CONT: u32 = 14;

/// `EVTCHNSTAT_*`: what `EVTCHNOP_status` reports.
pub const EVTCHNSTAT_CLOSED: u32 = 0;
pub const EVTCHNSTAT_UNBOUND: u32 = 1;
pub const EVTCHNSTAT_INTERDOMAIN: u32 = 2;
pub const EVTCHNSTAT_PIRQ: u32 = 3;
pub const EVTCHNSTAT_VIRQ: u32 = 4;
pub const EVTCHNSTAT_IPI: u32 = 5;

/// `BIND_PIRQ__WILL_SHARE`.
pub const BIND_PIRQ_WILL_SHARE: u32 = 1;

/// Ports the 2-level ABI addresses: `xen_ulong_t` bits squared.
pub const EVTCHN_2L_NR_CHANNELS: u32 = 64 * 64;
/// The same for a guest whose shared_info is latched in 32-bit mode.
pub const COMPAT_EVTCHN_2L_NR_CHANNELS: u32 = 32 * 32;

/// `VIRQ_*` (`xen.h`). (V) per-vCPU, (G) global, (D) per-domain.
pub const VIRQ_TIMER: u32 = 0; // V
pub const VIRQ_DEBUG: u32 = 1; // V
pub const VIRQ_CONSOLE: u32 = 2; // G
pub const VIRQ_DOM_EXC: u32 = 3; // G
pub const VIRQ_TBUF: u32 = 4; // G
pub const VIRQ_DEBUGGER: u32 = 6; // G
pub const VIRQ_XENOPROF: u32 = 7; // V
pub const VIRQ_CON_RING: u32 = 8; // G
pub const VIRQ_PCPU_STATE: u32 = 9; // G
pub const VIRQ_MEM_EVENT: u32 = 10; // G
pub const VIRQ_ARGO: u32 = 11; // D
pub const VIRQ_ENOMEM: u32 = 12; // G
pub const VIRQ_XENPMU: u32 = 13; // V
pub const VIRQ_ARCH_0: u32 = 16;
pub const VIRQ_ARCH_7: u32 = 23;
pub const NR_VIRQS: u32 = 24;

/// `struct evtchn_alloc_unbound` (8 bytes).
#[doc(alias = "evtchn_alloc_unbound")]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct EvtchnAllocUnbound {
    pub dom: u16,
    pub remote_dom: u16,
    /// OUT.
    pub port: u32,
}

/// `struct evtchn_bind_interdomain` (12 bytes).
#[doc(alias = "evtchn_bind_interdomain")]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct EvtchnBindInterdomain {
    pub remote_dom: u16,
    pub pad: u16,
    pub remote_port: u32,
    /// OUT.
    pub local_port: u32,
}

/// `struct evtchn_bind_virq` (12 bytes).
#[doc(alias = "evtchn_bind_virq")]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct EvtchnBindVirq {
    pub virq: u32,
    pub vcpu: u32,
    /// OUT.
    pub port: u32,
}

/// `struct evtchn_bind_pirq` (12 bytes).
#[doc(alias = "evtchn_bind_pirq")]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct EvtchnBindPirq {
    pub pirq: u32,
    pub flags: u32,
    /// OUT.
    pub port: u32,
}

/// `struct evtchn_bind_ipi` (8 bytes).
#[doc(alias = "evtchn_bind_ipi")]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct EvtchnBindIpi {
    pub vcpu: u32,
    /// OUT.
    pub port: u32,
}

/// `struct evtchn_close`, `struct evtchn_send` and `struct evtchn_unmask`:
/// one port (4 bytes).
#[doc(alias = "evtchn_close", alias = "evtchn_send", alias = "evtchn_unmask")]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct EvtchnPort {
    pub port: u32,
}

pub type EvtchnClose = EvtchnPort;
pub type EvtchnSend = EvtchnPort;
pub type EvtchnUnmask = EvtchnPort;

/// `struct evtchn_status` (24 bytes).
///
/// The OUT union `u` is kept as two words: `unbound.dom` is the low half of
/// `u[0]`, `interdomain` is `{ dom: low half of u[0], port: u[1] }`, and `pirq` and
/// `virq` are `u[0]`. Xen writes only the member that applies and copies the rest
/// of the record back as the guest passed it; the setters do the same.
#[doc(alias = "evtchn_status")]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct EvtchnStatus {
    pub dom: u16,
    pub pad: u16,
    pub port: u32,
    /// OUT: `EVTCHNSTAT_*`.
    pub status: u32,
    /// OUT: the vCPU the port notifies.
    pub vcpu: u32,
    /// OUT: the union (see above).
    pub u: [u32; 2],
}

impl EvtchnStatus {
    /// Sets `u.unbound.dom` (or `u.interdomain.dom`), leaving the other bytes.
    pub fn set_u_dom(&mut self, dom: u16) {
        self.u[0] = (self.u[0] & 0xFFFF_0000) | u32::from(dom);
    }

    /// Sets `u.interdomain`.
    pub fn set_u_interdomain(&mut self, dom: u16, port: u32) {
        self.set_u_dom(dom);
        self.u[1] = port;
    }

    /// `u.unbound.dom` / `u.interdomain.dom`.
    pub fn u_dom(&self) -> u16 {
        self.u[0] as u16
    }
}

/// `struct evtchn_bind_vcpu` (8 bytes).
#[doc(alias = "evtchn_bind_vcpu")]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct EvtchnBindVcpu {
    pub port: u32,
    pub vcpu: u32,
}

/// `struct evtchn_reset` (2 bytes).
#[doc(alias = "evtchn_reset")]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct EvtchnReset {
    pub dom: u16,
}

/// `struct evtchn_init_control` (24 bytes; the FIFO ABI's control block).
#[doc(alias = "evtchn_init_control")]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct EvtchnInitControl {
    pub control_gfn: u64,
    pub offset: u32,
    pub vcpu: u32,
    /// OUT.
    pub link_bits: u8,
    pub pad: [u8; 7],
}

/// `struct evtchn_expand_array` (8 bytes).
#[doc(alias = "evtchn_expand_array")]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct EvtchnExpandArray {
    pub array_gfn: u64,
}

/// `struct evtchn_set_priority` (8 bytes).
#[doc(alias = "evtchn_set_priority")]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct EvtchnSetPriority {
    pub port: u32,
    pub priority: u32,
}
