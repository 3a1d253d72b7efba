//! Command-line errors. Every message names the option (in QEMU's spelling) and
//! the offending value, so that a user can find it in a long QEMU command line.

use std::error::Error;
use std::path::PathBuf;

use xenkvm_vmm::ConfigError;

/// Why the command line cannot be turned into a runnable [`xenkvm_vmm::VmConfig`].
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Syntax errors found by clap (unknown option, missing value), and `--help`/`--version`.
    #[error(transparent)]
    Clap(#[from] clap::Error),
    #[error("invalid {option} value \"{value}\": expected {expected}")]
    InvalidValue {
        option: &'static str,
        value: String,
        expected: &'static str,
    },
    #[error("{option}: unknown parameter \"{key}\" (supported: {supported})")]
    UnknownKey {
        option: &'static str,
        key: String,
        supported: &'static str,
    },
    /// The setting as written, e.g. `-accel tcg` or `-machine accel=tcg`.
    #[error("{0}: only the kvm accelerator is supported")]
    Accelerator(String),
    /// The setting as written, e.g. `-accel kvm,kernel-irqchip=on`.
    #[error("{0}: Xen guests need kernel-irqchip=split")]
    IrqChip(String),
    #[error("-accel {0}: xen-version=... is required: xenkvm only runs Xen guests")]
    XenVersionRequired(String),
    #[error("-machine {0}: the {0} machine is not supported yet")]
    MachineNotSupported(String),
    #[error("-machine {0}: unknown machine type (supported: pc)")]
    UnknownMachine(String),
    #[error("-cpu {0}: only the host CPU model is supported (max is treated as host)")]
    CpuModel(String),
    #[error("-cpu: unknown CPU flag \"{0}\" (supported: xen-vapic)")]
    CpuFlag(String),
    #[error("-m {0}=...: memory hotplug is not supported yet")]
    MemoryHotplug(String),
    #[error("-smp maxcpus={maxcpus}: CPU hotplug is not supported yet (cpus={cpus})")]
    CpuHotplug { cpus: u64, maxcpus: u64 },
    #[error("-smp {value}: sockets*cores*threads = {product}, expected {maxcpus}")]
    Topology {
        value: String,
        product: u64,
        maxcpus: u64,
    },
    #[error("{option} {}: {reason}", path.display())]
    File {
        option: &'static str,
        path: PathBuf,
        reason: String,
    },
    #[error("-initrd {0}: multiple -initrd modules are not supported yet")]
    MultipleInitrd(String),
    #[error("-initrd is only allowed with -kernel")]
    InitrdWithoutKernel,
    #[error("-serial {0}: supported are stdio, mon:stdio, none, null and chardev:ID")]
    Serial(String),
    #[error("{option} chardev={id}: no -chardev ...,id={id}")]
    NoSuchChardev { option: &'static str, id: String },
    #[error("{option} {id}: {why}")]
    ChardevConflict { option: &'static str, id: String, why: &'static str },
    #[error("{option} {value}: only {option} none is supported")]
    Display { option: &'static str, value: String },
    /// A QEMU option xenkvm recognises but does not implement, e.g. `-drive`.
    #[error("option {0} is not supported yet")]
    Unsupported(String),
    #[error("-drive if={0}: only if=xen (a PV disk) and if=none (with -device xen-disk) are supported")]
    DriveInterface(String),
    #[error("-device ...,drive={0}: no -drive ...,if=none,id={0}")]
    NoSuchDrive(String),
    #[error("-device ...,drive={0}: that drive is already used by another disk")]
    DriveInUse(String),
    #[error("-device {driver},netdev={netdev}: no -netdev tap,id={netdev}")]
    NoSuchNetdev { driver: &'static str, netdev: String },
    #[error("-device {driver},netdev={netdev}: that netdev is already used by another NIC")]
    NetdevInUse { driver: &'static str, netdev: String },
    #[error("{nics} -net nic and {taps} -net tap options: each -net nic needs its own -net tap")]
    NetPairs { nics: usize, taps: usize },
    #[error("-xen-attach needs a real Xen host; xenkvm emulates Xen on KVM")]
    XenAttach,
    /// [`xenkvm_vmm::VmConfig::validate`] rejected the value of `option`.
    #[error("{option}: {source}")]
    Config {
        option: &'static str,
        source: ConfigError,
    },
}

impl CliError {
    /// Shorthand for [`CliError::InvalidValue`].
    pub fn invalid(option: &'static str, value: &str, expected: &'static str) -> Self {
        Self::InvalidValue {
            option,
            value: value.to_owned(),
            expected,
        }
    }
}

/// `err` and its sources joined by ": ", skipping a source whose text its
/// wrapper already includes (thiserror wrappers usually print their source).
pub fn error_chain(err: &dyn Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let part = cause.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn chain_appends_sources() {
        let err = Outer(std::io::Error::other("inner"));
        assert_eq!(error_chain(&err), "outer: inner");
    }

    #[test]
    fn chain_skips_sources_already_printed() {
        let err = CliError::Config {
            option: "-smp",
            source: ConfigError::VcpuCount(0),
        };
        let text = error_chain(&err);
        assert_eq!(text, err.to_string());
        assert!(text.starts_with("-smp: vCPU count 0"));
    }
}
