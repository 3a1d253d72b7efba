//! The composition root: turns a [`VmConfig`] into a running Xen guest on KVM.

pub mod config;

pub use config::*;

/// How a guest run ended, as the binary reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunOutcome {
    /// The process exit status to use (see docs/exit-status in the README).
    pub exit_code: i32,
    /// One line saying why the guest stopped.
    pub message: String,
}

/// A failure of the VMM itself (not of the guest).
#[derive(Debug, thiserror::Error)]
pub enum VmmError {
    #[error("Invalid configuration: {0}")]
    Config(#[from] ConfigError),
    #[error("Not implemented yet")]
    NotImplemented,
}

/// Builds the VM described by `cfg` and runs it until the guest shuts down.
pub fn run(cfg: VmConfig) -> Result<RunOutcome, VmmError> {
    cfg.validate()?;
    Err(VmmError::NotImplemented)
}
