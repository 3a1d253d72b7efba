//! The composition root: turns a [`VmConfig`] into a running Xen guest on KVM.

pub mod config;

pub use config::*;
