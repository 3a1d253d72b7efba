//! Transcriptions of the Xen public headers (`xen/include/public/`) that xenkvm needs.
//!
//! Every structure is `#[repr(C)]` with explicit padding so that it can be read from
//! and written to guest memory with `zerocopy`, without `unsafe`. Each module names
//! the header it follows. Constants keep Xen's spelling so they grep against the
//! headers. Where the 32-bit (compat) layout differs, a `Compat*` twin exists; layout
//! tests in `tests/layout.rs` pin sizes and offsets of both.
#![forbid(unsafe_code)]

pub mod cpuid;
pub mod errno;
pub mod event_channel;
pub mod grant_table;
pub mod hvm;
pub mod memory;
pub mod physdev;
pub mod sched;
pub mod shared_info;
pub mod start_info;
pub mod vcpu;
pub mod version;
pub mod xen;

pub use zerocopy;
