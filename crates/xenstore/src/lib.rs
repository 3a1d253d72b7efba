//! An in-process xenstored: the store a Xen guest and its backends depend on.
//!
//! The crate is a library without threads in its core and without KVM. The
//! VMM creates a [`Xenstore`], makes the guest known and introduces it
//! ([`Xenstore::create_domain`], [`default_tree::create_domain_tree`],
//! [`Xenstore::introduce_domain`]), attaches a [`ring::XenstoreRing`] to the
//! guest's ring page through the [`ring::RingMemory`] trait, and calls
//! [`ring::XenstoreRing::kick`] whenever the guest signals the event channel
//! (and for every connection [`Xenstore::take_woken`] names). Host tools reach
//! the same store as dom0 through [`server`], a unix-socket server speaking the
//! same wire protocol (`XENSTORED_PATH`).
//!
//! Modules, one per concern:
//! * [`wire`]: `xsd_sockmsg`, message types, limits, streaming decoder, encoder;
//! * [`errno`]: the error names xenstored answers with;
//! * [`path`], [`perms`], [`node`], [`store`]: the tree and its permission model;
//! * [`transaction`]: transactions with per-node conflict detection;
//! * [`watch`]: watches and event delivery;
//! * [`quota`]: C xenstored's quotas;
//! * [`conn`], [`engine`], `ops`, `ops_domain`: connections, dispatch and the
//!   operations;
//! * [`ring`]: the `xenstore_domain_interface` transport;
//! * [`serialize`]: the whole state to bytes and back;
//! * [`default_tree`]: the nodes a toolstack creates for a domain.
//!
//! Every byte from a guest or a socket is untrusted: no panics, no indexing,
//! bounded buffers and queues.
#![forbid(unsafe_code)]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

pub mod conn;
pub mod default_tree;
pub mod engine;
pub mod errno;
#[doc(hidden)]
pub mod fuzzing;
pub mod node;
mod ops;
mod ops_domain;
pub mod path;
pub mod perms;
pub mod quota;
pub mod ring;
pub mod serialize;
pub mod server;
pub mod store;
pub mod transaction;
pub mod watch;
pub mod wire;

pub use conn::{ConnId, ConnKind, Connection, Domain};
pub use engine::Xenstore;
pub use errno::Errno;
pub use quota::Quotas;
pub use wire::{Decoder, Message, MsgType, ProtocolError};

#[cfg(test)]
mod tests;
