//! The allow-lists: which syscalls (and which ioctl requests) each kind of
//! thread makes, found by tracing the embedded guest, the KVM tests and the
//! VMM tests (`docs/security.md` says how to find a missing one).

use std::collections::BTreeMap;

use seccompiler::{BackendError, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompRule};

/// A filter's rules: syscall number to conditions (empty: always allowed).
pub type Rules = BTreeMap<i64, Vec<SeccompRule>>;

/// Every thread: memory, locks, time, signals, thread start and exit,
/// writing its log lines to standard error and guest output to chardevs.
const BASE: &[i64] = &[
    libc::SYS_brk,
    libc::SYS_mmap,
    libc::SYS_munmap,
    libc::SYS_mremap,
    libc::SYS_mprotect,
    libc::SYS_madvise,
    libc::SYS_futex,
    libc::SYS_sched_yield,
    libc::SYS_sched_getaffinity,
    libc::SYS_gettid,
    libc::SYS_getpid,
    libc::SYS_set_robust_list,
    libc::SYS_rseq,
    libc::SYS_sigaltstack,
    libc::SYS_rt_sigprocmask,
    libc::SYS_rt_sigreturn,
    libc::SYS_restart_syscall,
    libc::SYS_exit,
    libc::SYS_exit_group,
    libc::SYS_getrandom,
    libc::SYS_clock_gettime,
    libc::SYS_clock_getres,
    libc::SYS_gettimeofday,
    libc::SYS_nanosleep,
    libc::SYS_clock_nanosleep,
    libc::SYS_close,
    libc::SYS_write,
    libc::SYS_writev,
    // A chardev socket client that stops reading is shut down by the writer.
    libc::SYS_shutdown,
];

/// Device backends: disk images (discard is `fallocate(PUNCH_HOLE)`, qcow2
/// growth `ftruncate`, closing an image drops its `flock`), taps, sockets and
/// terminals they read and write.
const WORKER: &[i64] = &[
    libc::SYS_read,
    libc::SYS_readv,
    libc::SYS_pread64,
    libc::SYS_pwrite64,
    libc::SYS_preadv,
    libc::SYS_pwritev,
    libc::SYS_preadv2,
    libc::SYS_pwritev2,
    libc::SYS_fsync,
    libc::SYS_fdatasync,
    libc::SYS_fallocate,
    libc::SYS_ftruncate,
    libc::SYS_flock,
    libc::SYS_lseek,
    libc::SYS_fstat,
    libc::SYS_newfstatat,
    libc::SYS_statx,
    libc::SYS_poll,
    libc::SYS_ppoll,
    libc::SYS_recvfrom,
    libc::SYS_sendto,
];

/// QMP, socket servers and hotplug: accept clients, open images and taps,
/// start backend threads.
const SERVICE: &[i64] = &[
    libc::SYS_accept4,
    libc::SYS_bind,
    libc::SYS_listen,
    libc::SYS_connect,
    libc::SYS_setsockopt,
    libc::SYS_getsockopt,
    libc::SYS_unlink,
    libc::SYS_openat,
    libc::SYS_fcntl,
    libc::SYS_dup,
    libc::SYS_fstatfs,
    libc::SYS_chmod,
    libc::SYS_clone,
    libc::SYS_clone3,
    // A virtio device's notification eventfd, made with the device.
    libc::SYS_eventfd2,
];

/// `ioctl`'s request argument and the other checked arguments.
fn arg(index: u8, op: SeccompCmpOp, value: u64) -> Result<SeccompCondition, BackendError> {
    SeccompCondition::new(index, SeccompCmpArgLen::Dword, op, value)
}

/// One rule per allowed value of argument `index` (none would read as
/// "any value": refused).
fn each_value(index: u8, values: &[u64]) -> Result<Vec<SeccompRule>, BackendError> {
    if values.is_empty() {
        return Err(BackendError::EmptyRule);
    }
    values.iter().map(|&v| SeccompRule::new(vec![arg(index, SeccompCmpOp::Eq, v)?])).collect()
}

/// One rule per allowed ioctl type (the request's bits 8 to 15).
fn each_type(types: &[u32]) -> Result<Vec<SeccompRule>, BackendError> {
    if types.is_empty() {
        return Err(BackendError::EmptyRule);
    }
    let rule = |t: u32| SeccompRule::new(vec![arg(1, SeccompCmpOp::MaskedEq(0xff00), u64::from(t) << 8)?]);
    types.iter().map(|&t| rule(t)).collect()
}

fn plain(rules: &mut Rules, calls: &[i64]) {
    for &nr in calls {
        rules.insert(nr, Vec::new());
    }
}

/// Adds `more` to `rules`: a syscall either allows unconditionally stays so.
pub fn merge(rules: &mut Rules, more: Rules) {
    for (nr, extra) in more {
        match rules.get_mut(&nr) {
            Some(have) if have.is_empty() => {}
            Some(_) if extra.is_empty() => {
                rules.insert(nr, Vec::new());
            }
            Some(have) => have.extend(extra),
            None => {
                rules.insert(nr, extra);
            }
        }
    }
}

/// `tgkill` to this process's own threads (the vCPU kick; `abort`).
fn own_signals(pid: u32) -> Result<Rules, BackendError> {
    Ok(Rules::from([(libc::SYS_tgkill, each_value(0, &[u64::from(pid)])?)]))
}

/// What a starting thread does under its parent's filter: set its name
/// (`PR_SET_NAME`) and install its own filter (`PR_SET_NO_NEW_PRIVS`, then
/// `seccomp(SECCOMP_SET_MODE_FILTER)`, which can only narrow what it may do).
fn thread_start() -> Result<Rules, BackendError> {
    let prctl = each_value(0, &[libc::PR_SET_NAME as u64, libc::PR_SET_NO_NEW_PRIVS as u64])?;
    let seccomp = each_value(0, &[u64::from(libc::SECCOMP_SET_MODE_FILTER)])?;
    Ok(Rules::from([(libc::SYS_prctl, prctl), (libc::SYS_seccomp, seccomp)]))
}

fn ioctls(requests: &[u64]) -> Result<Rules, BackendError> {
    Ok(Rules::from([(libc::SYS_ioctl, each_value(1, requests)?)]))
}

/// `fcntl(F_GETFD)`: debug builds of std check that an fd is open before
/// closing it.
fn fd_checks() -> Result<Rules, BackendError> {
    Ok(Rules::from([(libc::SYS_fcntl, each_value(1, &[libc::F_GETFD as u64])?)]))
}

/// The stdio chardev's handler for terminating signals, which may run on
/// any thread: restore the terminal (`TCSETS`), reset the signal's action,
/// raise it again (`tgkill`, in [`own_signals`]).
fn terminal_restore() -> Result<Rules, BackendError> {
    let mut rules = ioctls(&[libc::TCGETS, libc::TCSETS])?;
    plain(&mut rules, &[libc::SYS_rt_sigaction]);
    Ok(rules)
}

/// What every thread may do.
pub fn base(pid: u32) -> Result<Rules, BackendError> {
    let mut rules = own_signals(pid)?;
    merge(&mut rules, fd_checks()?);
    merge(&mut rules, terminal_restore()?);
    plain(&mut rules, BASE);
    Ok(rules)
}

/// A vCPU thread: run the guest, write the serial console.
pub fn vcpu(pid: u32) -> Result<Rules, BackendError> {
    // KVM_RUN first: the filter checks a syscall's rules in order.
    let mut requests = xenkvm_kvm::ioctls::vcpu();
    requests.extend(xenkvm_kvm::ioctls::runtime());
    let mut rules = ioctls(&requests)?;
    merge(&mut rules, base(pid)?);
    Ok(rules)
}

/// Socket and tap ioctls a backend makes.
const WORKER_IOCTLS: &[u64] = &[libc::FIONBIO, TUNSETOFFLOAD];

/// A tap's offloads, which a NIC backend sets when its frontend connects.
const TUNSETOFFLOAD: u64 = 0x4004_54d0;

/// A device backend or timer thread.
pub fn worker(pid: u32) -> Result<Rules, BackendError> {
    let mut rules = base(pid)?;
    plain(&mut rules, WORKER);
    let mut requests = xenkvm_kvm::ioctls::runtime();
    requests.extend_from_slice(WORKER_IOCTLS);
    merge(&mut rules, ioctls(&requests)?);
    Ok(rules)
}

/// The ioctl type of terminals, sockets' `FIONBIO` and taps (`TUNSETIFF`).
const TTY_AND_TUN: u32 = b'T' as u32;

/// A QMP, socket-server or hotplug thread: a superset of [`worker`], since
/// the backends it starts stack their filter on its own.
pub fn service(pid: u32) -> Result<Rules, BackendError> {
    let mut rules = worker(pid)?;
    plain(&mut rules, SERVICE);
    merge(&mut rules, thread_start()?);
    merge(&mut rules, Rules::from([(libc::SYS_socket, each_value(0, &[libc::AF_UNIX as u64])?)]));
    // Type 'T' covers the worker's FIONBIO, TUNSETOFFLOAD, TCGETS and TCSETS.
    let mut ioctl = each_type(&[TTY_AND_TUN])?;
    ioctl.extend(each_value(1, &xenkvm_kvm::ioctls::runtime())?);
    rules.insert(libc::SYS_ioctl, ioctl);
    Ok(rules)
}

/// The main thread: everything the others may do, since they stack their
/// filters on its own, plus every KVM request (building VMs). Nothing else:
/// the process's start-up (`prlimit64`, `execve`'s aftermath) is over by
/// the time it is installed.
pub fn main(pid: u32) -> Result<Rules, BackendError> {
    let mut rules = service(pid)?;
    merge(&mut rules, vcpu(pid)?);
    // Two types cover every request the other kinds name, KVM's first.
    rules.insert(libc::SYS_ioctl, each_type(&[xenkvm_kvm::ioctls::KVM_IOCTL_TYPE, TTY_AND_TUN])?);
    Ok(rules)
}
