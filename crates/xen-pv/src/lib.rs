//! PV backends: the dom0 side of the devices a Xen guest's drivers talk to.
//! Each backend works on pages it shares with the guest and is driven by
//! event-channel kicks; nothing here knows about KVM.
#![forbid(unsafe_code)]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

pub mod blkback;
pub mod blkif;
pub mod consback;
pub mod console;
#[doc(hidden)]
pub mod fuzzing;
pub mod grants;
pub mod netback;
pub mod netif;
pub mod ring;
pub mod xenbus;
