//! The composition root: turns a [`VmConfig`] into a running Xen guest on KVM.
//!
//! [`run`] builds the VM ([`builder`]), starts one thread per vCPU ([`vcpu`]),
//! waits for the guest to stop, and maps how it stopped to an exit status.

mod acpi;
mod balloon;
mod builder;
mod chardev;
pub mod config;
mod console;
mod disk;
mod events;
pub mod hotplug;
mod irq;
mod legacy;
mod pic;
mod pvblock;
mod pvconsole;
mod pvnet;
pub mod qmp;
pub mod seccomp;
mod stdin;
mod tap;
#[cfg(test)]
mod test_support;
mod vcpu;
mod virtio;
mod xenconsole;
mod xenstored;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use config::*;
use vcpu::{GuestEnd, Handler};
use vmm_sys_util::signal::{register_signal_handler, Killable, SIGRTMIN};
use xenkvm_xen_core::ShutdownReason;

/// How a guest run ended, as the binary reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunOutcome {
    /// The process exit status to use (documented in the README).
    pub exit_code: i32,
    /// One line saying why the guest stopped.
    pub message: String,
}

/// A failure of the VMM itself (not of the guest).
#[derive(Debug, thiserror::Error)]
pub enum VmmError {
    #[error("Invalid configuration")]
    Config(#[from] ConfigError),
    #[error("Cannot allocate guest memory: {0}")]
    AllocateMemory(String),
    #[error("Cannot read {0}")]
    ReadFile(PathBuf, #[source] std::io::Error),
    #[error("Cannot load the kernel")]
    LoadKernel(#[source] xenkvm_boot::Error),
    #[error("KVM")]
    Kvm(#[from] xenkvm_kvm::Error),
    #[error("Cannot create the Xen domain")]
    CreateDomain(#[source] xenkvm_xen_core::DomainError),
    #[error("Cannot write the ACPI tables")]
    WriteAcpiTables(#[source] xenkvm_boot::Error),
    #[error("Cannot attach a device")]
    AttachDevice(#[from] xenkvm_devices::bus::InsertError),
    #[error("Cannot attach a PCI device")]
    AttachPci(#[from] xenkvm_devices::pci::SlotError),
    #[error("The VM has no vCPU")]
    NoVcpu,
    #[error("Cannot start a VMM thread")]
    SpawnThread(#[source] std::io::Error),
    #[error("Cannot install the vCPU kick signal handler")]
    KickSignal(#[source] vmm_sys_util::errno::Error),
    #[error("Internal error: {0}")]
    Internal(String),
    #[error("Cannot open a disk")]
    OpenDisk(#[source] Box<disk::OpenDiskError>),
    #[error("Cannot open a NIC's tap")]
    OpenTap(#[source] Box<tap::OpenTapError>),
    #[error("Cannot open a character device")]
    OpenChardev(#[source] Box<chardev::OpenChardevError>),
    #[error("Cannot set up the seccomp sandbox")]
    Seccomp(#[from] seccomp::SeccompError),
    #[error("Cannot open a QMP socket")]
    OpenQmp(#[source] Box<qmp::server::OpenQmpError>),
}

/// Exit statuses, one per way a guest can end.
pub mod exit_code {
    pub const POWEROFF: i32 = 0;
    pub const CRASH: i32 = 2;
    pub const WATCHDOG: i32 = 3;
    pub const UNSUPPORTED_SHUTDOWN: i32 = 4;
    pub const TRIPLE_FAULT: i32 = 5;
    pub const HALTED: i32 = 6;
    pub const TIMEOUT: i32 = 124;
}

/// The kick signal: the next KVM_RUN of this thread's vCPU returns at once.
extern "C" fn kick(_: libc::c_int, _: *mut libc::siginfo_t, _: *mut libc::c_void) {
    xenkvm_kvm::kick::signal_arrived();
}

/// Builds the VM described by `cfg` and runs it until the guest shuts down
/// (restarting it on reboot unless `no_reboot`).
pub fn run(cfg: VmConfig) -> Result<RunOutcome, VmmError> {
    cfg.validate()?;
    seccomp::install(cfg.seccomp)?;
    register_signal_handler(SIGRTMIN(), kick).map_err(VmmError::KickSignal)?;
    chardev::open(&cfg).map_err(|e| VmmError::OpenChardev(Box::new(e)))?;
    let machine = qmp::machine::VmHandle::new(&cfg);
    let _qmp = qmp::server::start(&cfg.qmp, &machine).map_err(|e| VmmError::OpenQmp(Box::new(e)))?;
    let deadline = cfg.timeout.map(|t| Instant::now() + t);
    let end = run_guest(&cfg, &machine, deadline);
    machine.settle(Duration::from_secs(1));
    outcome(end?, cfg.timeout)
}

/// Runs the guest, restarting it on reboot, until it ends for good.
fn run_guest(cfg: &VmConfig, machine: &qmp::machine::VmHandle, deadline: Option<Instant>) -> Result<GuestEnd, VmmError> {
    loop {
        let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        let end = run_once(cfg, machine, left)?;
        machine.report_end(&end);
        if restarts(&end) && !cfg.no_reboot {
            tracing::info!("guest reset ({end:?}): restarting it");
            continue;
        }
        if cfg.no_shutdown && stays_after(&end) {
            tracing::info!("guest stopped ({end:?}); -no-shutdown: waiting for a QMP quit or system_reset");
            match machine.after_shutdown(deadline) {
                Some(qmp::machine::HostAction::Reset) => continue,
                Some(qmp::machine::HostAction::Quit) => return Ok(GuestEnd::HostQuit),
                None => return Ok(GuestEnd::Timeout),
            }
        }
        return Ok(end);
    }
}

/// Whether the guest comes back after `end` (unless `-no-reboot`).
fn restarts(end: &GuestEnd) -> bool {
    matches!(end, GuestEnd::Shutdown(ShutdownReason::Reboot) | GuestEnd::TripleFault | GuestEnd::HostReset)
}

/// Whether `-no-shutdown` keeps xenkvm alive after `end`.
fn stays_after(end: &GuestEnd) -> bool {
    matches!(end, GuestEnd::Shutdown(ShutdownReason::Poweroff | ShutdownReason::Crash) | GuestEnd::HaltedForever(_))
}

fn outcome(end: GuestEnd, timeout: Option<Duration>) -> Result<RunOutcome, VmmError> {
    use exit_code::*;
    let (exit_code, message) = match end {
        GuestEnd::Shutdown(ShutdownReason::Poweroff) => (POWEROFF, "guest powered off".to_string()),
        GuestEnd::Shutdown(ShutdownReason::Reboot) => (POWEROFF, "guest rebooted; exiting (-no-reboot)".into()),
        GuestEnd::Shutdown(ShutdownReason::Crash) => (CRASH, "guest crashed".into()),
        GuestEnd::Shutdown(ShutdownReason::Watchdog) => (WATCHDOG, "guest watchdog fired".into()),
        // Served in place by the vCPU (vcpu::Handler::soft_reset); not an end.
        GuestEnd::Shutdown(ShutdownReason::SoftReset) => (UNSUPPORTED_SHUTDOWN, "guest soft reset ended the run".into()),
        GuestEnd::Shutdown(ShutdownReason::Other(code)) => {
            (UNSUPPORTED_SHUTDOWN, format!("guest shut down with unknown reason code {code}"))
        }
        GuestEnd::TripleFault => (TRIPLE_FAULT, "guest triple-faulted; exiting (-no-reboot)".into()),
        GuestEnd::HostQuit => (POWEROFF, "stopped by a QMP quit".into()),
        GuestEnd::HostReset => (POWEROFF, "reset by QMP system_reset; exiting (-no-reboot)".into()),
        GuestEnd::HaltedForever(id) => {
            (HALTED, format!("vCPU {id} halted with interrupts disabled; the guest cannot continue"))
        }
        GuestEnd::Timeout => {
            let secs = timeout.map(|t| t.as_secs_f64()).unwrap_or(0.0);
            (TIMEOUT, format!("wall-clock limit of {secs} s reached; guest stopped"))
        }
        GuestEnd::Fatal(msg) => return Err(VmmError::Internal(msg)),
    };
    Ok(RunOutcome { exit_code, message })
}

/// Builds and runs the VM once, until the guest ends or `limit` passes.
fn run_once(cfg: &VmConfig, machine: &qmp::machine::VmHandle, limit: Option<Duration>) -> Result<GuestEnd, VmmError> {
    let disks = pvblock::open_disks(cfg)?;
    let nics = pvnet::open_nics(cfg)?;
    let vm = builder::build(cfg)?;
    let control = vm.control.clone();
    let mut threads = Vec::new();
    for vcpu in vm.vcpus {
        let handler = Handler {
            bus: vm.bus.clone(),
            mmio: vm.mmio.clone(),
            ioapic: vm.ioapic.clone(),
            domain: vm.domain.clone(),
            control: control.clone(),
            hypercall_msr: vm.hypercall_msr,
            signals: vm.signals.clone(),
            time_attrs: vm.time_attrs.clone(),
            kicker: vm.kicker.clone(),
            keep_ports: [vm.special.xenstore_port, vm.special.console_port],
        };
        let t = std::thread::Builder::new()
            .name(format!("vcpu{}", vcpu.id))
            .spawn(move || {
                seccomp::enter(seccomp::ThreadKind::Vcpu);
                vcpu::run_vcpu(vcpu, handler)
            })
            .map_err(VmmError::SpawnThread)?;
        threads.push(t);
    }
    let console_input = Arc::new(pvconsole::ConsoleInput::new(vm.signals.backends.clone()));
    let hvc = chardev::console_chardev(cfg, 0).unwrap_or_else(|| chardev::Chardev::stdio("hvc0"));
    xenconsole::route_primary(cfg, vm.serial.clone(), &hvc, console_input.clone());
    let console = pvconsole::Console {
        page: vm.special.console.clone(),
        port: vm.special.console_port,
        domain: vm.domain.clone(),
        backends: vm.signals.backends.clone(),
        control: control.clone(),
        input: console_input,
        out: hvc,
    };
    let console_thread = std::thread::Builder::new()
        .name("pvconsole".into())
        .spawn(move || {
            seccomp::enter(seccomp::ThreadKind::Worker);
            console.run()
        })
        .map_err(VmmError::SpawnThread)?;
    let store = xenstored::Xenstored::new(cfg, &vm.special, vm.signals.backends.clone(), vm.signals.soft_resets.clone())?;
    let disk_context = pvblock::Context {
        domid: u32::from(cfg.domid),
        domain: vm.domain.clone(),
        shared: store.shared(),
        changes: store.changes(),
        backends: vm.signals.backends.clone(),
        control: control.clone(),
    };
    let (store_domain, store_backends, store_control) = (vm.domain.clone(), vm.signals.backends.clone(), control.clone());
    let store_thread = std::thread::Builder::new()
        .name("xenstored".into())
        .spawn(move || {
            // Service: dropping the store's socket server wakes its accept thread.
            seccomp::enter(seccomp::ThreadKind::Service);
            store.run(store_domain, store_backends, store_control)
        })
        .map_err(VmmError::SpawnThread)?;
    machine.attach(qmp::machine::Running {
        store: disk_context.shared.clone(),
        control: control.clone(),
        domain: vm.domain.clone(),
    });
    let mut disk_threads = pvblock::start(disks, &disk_context)?;
    disk_threads.extend(pvnet::start(nics, &disk_context)?);
    machine.hotplug().attach(&disk_context);
    disk_threads.extend(xenconsole::start(cfg, &disk_context)?);
    let (domain, timers, timer_control) = (vm.domain.clone(), vm.signals.timers.clone(), control.clone());
    let timer_thread = std::thread::Builder::new()
        .name("xen-timers".into())
        .spawn(move || {
            seccomp::enter(seccomp::ThreadKind::Worker);
            events::run_timers(domain, timers, timer_control)
        })
        .map_err(VmmError::SpawnThread)?;
    let virtio_threads = virtio::start(vm.virtio, &control)?;
    let (legacy_signal, legacy_control) = (vm.legacy.signal(), control.clone());
    let legacy = vm.legacy;
    let legacy_thread = std::thread::Builder::new()
        .name("legacy-timers".into())
        .spawn(move || {
            seccomp::enter(seccomp::ThreadKind::Worker);
            legacy.run(&legacy_control)
        })
        .map_err(VmmError::SpawnThread)?;
    let end = control.wait(limit);
    control.finish(end.clone());
    machine.detach();
    vm.signals.timers.notify();
    vm.signals.backends.signal.notify();
    legacy_signal.notify();
    let _ = console_thread.join();
    let _ = timer_thread.join();
    let _ = legacy_thread.join();
    let _ = store_thread.join();
    for t in disk_threads {
        let _ = t.join();
    }
    virtio_threads.join();
    machine.hotplug().detach();
    if !stop_threads(threads) {
        // A vCPU may still be inside the guest: keep its memory mapped.
        std::mem::forget(vm.ram);
    }
    Ok(end)
}

/// Kicks every vCPU thread out of KVM_RUN until it exits; a thread stuck in the
/// kernel past the grace period is left behind rather than hanging the VMM.
fn stop_threads(threads: Vec<std::thread::JoinHandle<()>>) -> bool {
    let mut all = true;
    let grace = Instant::now() + Duration::from_secs(2);
    for t in threads {
        while !t.is_finished() && Instant::now() < grace {
            let _ = t.kill(SIGRTMIN());
            std::thread::sleep(Duration::from_millis(5));
        }
        if t.is_finished() {
            let _ = t.join();
        } else {
            tracing::warn!("a vCPU thread did not leave KVM_RUN; abandoning it");
            all = false;
        }
    }
    all
}
