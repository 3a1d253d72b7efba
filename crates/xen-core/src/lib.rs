//! The Xen hypervisor personality of xenkvm, independent of KVM.
//!
//! A [`Domain`] holds all Xen state of one guest in plain data: the shared_info
//! page and its placement, HVM parameters, per-vCPU areas (vcpu_info, pvclock,
//! runstate), and the time base. Both hypercall transports (the kernel's
//! `KVM_EXIT_XEN` and the userspace hypercall page) decode the vCPU registers into
//! a [`HypercallRequest`] and call [`Domain::hypercall`], which dispatches to one
//! module per Xen subsystem, named after its public header.
//!
//! The core reaches its host only through the traits in [`ports`]; guest memory is
//! `vm-memory`, and pointer arguments are guest-virtual, translated through the
//! calling vCPU's page tables ([`paging`]).
#![forbid(unsafe_code)]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

pub mod cpuid;
pub mod domain;
pub mod evtchn;
#[doc(hidden)]
pub mod fuzzing;
pub mod gnttab;
pub mod guest;
pub mod hcall_page;
pub mod hvm;
pub mod hypercall;
mod kernel_events;
mod kernel_time;
pub mod memory;
pub mod page;
pub mod paging;
pub mod phys;
pub mod physdev;
pub mod ports;
pub mod reset;
pub mod sched;
pub mod shared_info;
pub mod special;
pub mod time;
pub mod timer;
pub mod vcpu;
pub mod version;
mod console;

pub use domain::{Domain, DomainConfig, DomainError};
pub use hypercall::{Abi, HypercallRequest, Outcome, ShutdownReason, Wait};
pub use paging::PagingState;

#[cfg(test)]
mod tests;
