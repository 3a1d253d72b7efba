//! Seccomp sandboxing: one allow-list filter per kind of thread.
//!
//! [`install`] builds the filters and puts the [`ThreadKind::Main`] one on the
//! calling (main) thread before anything else runs; every thread the VMM
//! starts calls [`enter`] first thing, which adds its own kind's filter.
//! Filters stack (a thread runs its parent's filters and its own, and a
//! syscall must pass all of them), so each kind's list is a superset of the
//! kinds its threads start: Main ⊇ Service ⊇ Worker, and Main ⊇ Vcpu. A
//! thread's effective list is then exactly its own kind's.
//!
//! Threads started by library code (the xenstore socket server's) cannot call
//! [`enter`]; [`spawn_under`] runs the code that starts them on a short-lived
//! thread under a given kind's filter, which they inherit.
//!
//! A forbidden syscall kills the whole process with SIGSYS
//! (`SECCOMP_RET_KILL_PROCESS`), or with [`SeccompMode::Log`] goes through
//! and is logged by the kernel (`dmesg`, the audit log).

mod lists;
#[cfg(test)]
mod tests;

use std::sync::OnceLock;

use seccompiler::{BpfProgram, SeccompAction, SeccompFilter, TargetArch};

use crate::SeccompMode;

/// The kinds of VMM thread, each with its own filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThreadKind {
    /// The main thread: builds the VM, waits for the guest, tears down.
    Main,
    /// A vCPU (`vcpu{N}`): `KVM_RUN` and the serial console.
    Vcpu,
    /// A device backend, timer or console reader: reads and writes its fds.
    Worker,
    /// QMP, socket servers, hotplug and the in-VMM xenstored.
    Service,
}

impl ThreadKind {
    /// Every kind, for listings.
    pub const ALL: [ThreadKind; 4] = [ThreadKind::Main, ThreadKind::Vcpu, ThreadKind::Worker, ThreadKind::Service];

    /// The kind's name in logs and docs.
    pub fn name(self) -> &'static str {
        match self {
            ThreadKind::Main => "main",
            ThreadKind::Vcpu => "vcpu",
            ThreadKind::Worker => "worker",
            ThreadKind::Service => "service",
        }
    }
}

/// A filter that could not be built or installed.
#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    #[error("cannot build the {0} seccomp filter")]
    Build(&'static str, #[source] seccompiler::BackendError),
    #[error("cannot install the {0} seccomp filter")]
    Install(&'static str, #[source] seccompiler::Error),
}

/// The allow-list of `kind`, for this process (`tgkill` names its pid).
pub fn rules(kind: ThreadKind, pid: u32) -> Result<lists::Rules, SeccompError> {
    let rules = match kind {
        ThreadKind::Main => lists::main(pid),
        ThreadKind::Vcpu => lists::vcpu(pid),
        ThreadKind::Worker => lists::worker(pid),
        ThreadKind::Service => lists::service(pid),
    };
    rules.map_err(|e| SeccompError::Build(kind.name(), e))
}

/// The compiled filter of `kind`: syscalls off its list get `mode`'s action.
pub fn program(kind: ThreadKind, mode: SeccompMode, pid: u32) -> Result<BpfProgram, SeccompError> {
    let denied = match mode {
        SeccompMode::Log => SeccompAction::Log,
        SeccompMode::On | SeccompMode::Off => SeccompAction::KillProcess,
    };
    program_with(kind, denied, pid)
}

/// The compiled filter of `kind` with `denied` for syscalls off its list.
fn program_with(kind: ThreadKind, denied: SeccompAction, pid: u32) -> Result<BpfProgram, SeccompError> {
    let build = |e| SeccompError::Build(kind.name(), e);
    let filter = SeccompFilter::new(rules(kind, pid)?, denied, SeccompAction::Allow, TargetArch::x86_64).map_err(build)?;
    filter.try_into().map_err(build)
}

/// The filters of the threads the VMM starts, once [`install`]ed.
struct Filters {
    vcpu: BpfProgram,
    worker: BpfProgram,
    service: BpfProgram,
    /// Test hook: the kind whose first thread makes a forbidden syscall.
    selftest: Option<ThreadKind>,
}

static FILTERS: OnceLock<Filters> = OnceLock::new();

/// Hidden test hook: `XENKVM_SECCOMP_SELFTEST=main|vcpu|worker|service` makes the
/// first thread of that kind call `ptrace` (allowed to no thread) right after
/// it enters its filter.
const SELFTEST_VAR: &str = "XENKVM_SECCOMP_SELFTEST";

fn selftest_kind() -> Option<ThreadKind> {
    let wanted = std::env::var(SELFTEST_VAR).ok()?;
    ThreadKind::ALL.into_iter().find(|k| k.name() == wanted)
}

/// Builds every filter and installs the main one on the calling thread,
/// unless `mode` is off. Call it once, on the main thread, before any other
/// VMM thread starts.
pub fn install(mode: SeccompMode) -> Result<(), SeccompError> {
    if mode == SeccompMode::Off {
        tracing::info!("seccomp: off");
        return Ok(());
    }
    let pid = std::process::id();
    let main = program(ThreadKind::Main, mode, pid)?;
    let filters = Filters {
        vcpu: program(ThreadKind::Vcpu, mode, pid)?,
        worker: program(ThreadKind::Worker, mode, pid)?,
        service: program(ThreadKind::Service, mode, pid)?,
        selftest: selftest_kind(),
    };
    let _ = FILTERS.set(filters);
    apply(ThreadKind::Main, &main)?;
    tracing::info!("seccomp: {mode:?}, a filter per thread kind");
    if selftest_kind() == Some(ThreadKind::Main) {
        forbidden_syscall();
    }
    Ok(())
}

fn apply(kind: ThreadKind, program: &BpfProgram) -> Result<(), SeccompError> {
    seccompiler::apply_filter(program).map_err(|e| SeccompError::Install(kind.name(), e))
}

/// Puts `kind`'s filter on the calling thread, if [`install`] ran with
/// seccomp on. A thread that cannot be confined takes the process down
/// rather than run unconfined.
pub fn enter(kind: ThreadKind) {
    let Some(filters) = FILTERS.get() else { return };
    let program = match kind {
        ThreadKind::Main => return,
        ThreadKind::Vcpu => &filters.vcpu,
        ThreadKind::Worker => &filters.worker,
        ThreadKind::Service => &filters.service,
    };
    if let Err(e) = apply(kind, program) {
        eprintln!("xenkvm: {e}: {}", std::error::Error::source(&e).map(ToString::to_string).unwrap_or_default());
        std::process::abort();
    }
    if filters.selftest == Some(kind) {
        static FIRED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
        if !FIRED.swap(true, std::sync::atomic::Ordering::SeqCst) {
            forbidden_syscall();
        }
    }
}

/// The self-test's forbidden syscall: `ptrace` with an invalid request
/// (harmless if a log-mode filter lets it through).
fn forbidden_syscall() {
    tracing::warn!("seccomp self-test: calling ptrace, which no filter allows");
    // SAFETY: an invalid ptrace request touches no memory; it fails with EIO
    // when it is let through.
    let _ = unsafe { libc::syscall(libc::SYS_ptrace, -1i64, 0i64, 0i64, 0i64) };
}

/// Runs `f` on a new thread under `kind`'s filter and returns its result:
/// threads `f` starts inherit that filter.
pub fn spawn_under<T: Send>(kind: ThreadKind, f: impl FnOnce() -> T + Send) -> std::io::Result<T> {
    std::thread::scope(|s| {
        let handle = std::thread::Builder::new().name(format!("{}-spawner", kind.name())).spawn_scoped(s, move || {
            enter(kind);
            f()
        })?;
        Ok(handle.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
    })
}
