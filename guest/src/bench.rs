//! `bench=hypercall`: the cost of a hypercall compared with a bare VM exit.
//!
//! (a) `out %al, $0x80`: an I/O exit that the VMM treats as a no-op;
//! (b) `xen_version(XENVER_version, NULL)` through the hypercall page.
//!
//! After 1000 warm-up iterations of each, the two loops are interleaved in 4
//! rounds of iters/4 (the last round takes the remainder) so that slow drifts
//! of the host affect both alike. Loops are timed with RDTSC and converted to
//! nanoseconds with the pvclock scale, so shared_info is mapped first.
//! Output is exactly one line:
//!
//! ```text
//! bench hypercall: iters=N bare_ns=<total ns> hcall_ns=<total ns> stub_no_exit_ns=<total ns> stub_exit_ns=<total ns>
//! ```
//!
//! (d) `stub_exit_ns` calls a stub of the hypercall stub's exact shape that
//! exits to the no-op port: (b) / (d) is the cost of Xen dispatch alone.
//! (c) `stub_no_exit_ns` times the stub's own instructions with no exit, to show
//! how much of (b) - (a) the host spends on guest instructions rather than on
//! the VMM.

use core::arch::asm;

use crate::abi::XENVER_VERSION;
use crate::hypercall::{map_shared_info, xen_version};
use crate::pvclock::{self, rdtsc};
use crate::print::println;
use crate::shared::{set_shared_info, SHARED_INFO_PAGE};

/// Iterations when the command line gives no `iters=`.
pub const DEFAULT_ITERS: u64 = 200_000;
const WARMUP: u64 = 1000;
const ROUNDS: u64 = 4;

/// The port the VMM ignores (the legacy POST/delay port).
const BARE_EXIT_PORT: u8 = 0x80;

fn bare_exit() {
    // SAFETY: a write to the POST port has no effect on guest state.
    unsafe { asm!("out {port}, al", port = const BARE_EXIT_PORT, in("al") 0u8, options(nomem, nostack, preserves_flags)) };
}

fn hypercall() {
    let _ = xen_version(XENVER_VERSION, 0);
}

/// The instructions a hypercall stub executes besides its exit (call, mov,
/// sign-extend, ret), without any exit: it shows what the host charges for
/// guest instructions themselves (on an emulating host this is not small).
#[inline(never)]
extern "C" fn stub_shape(nr: u64) -> i64 {
    let r: i64;
    // SAFETY: register-only instructions.
    unsafe { asm!("mov eax, {n:e}", "cdqe", n = in(reg) nr, out("rax") r, options(nomem, nostack)) };
    r
}

// The hypercall stub's exact shape, exiting to the VMM's no-op port instead of
// the hypercall port: what a hypercall costs before Xen dispatch.
core::arch::global_asm!(
    ".pushsection .text.bench_null_stub, \"ax\"",
    ".global bench_null_stub",
    "bench_null_stub:",
    "mov eax, 17",
    "out 0x80, eax",
    "ret",
    ".popsection",
);

extern "C" {
    fn bench_null_stub();
}

fn stub_exit() {
    // SAFETY: the stub only writes eax and does a no-op port write; the call
    // follows the same register contract as a hypercall.
    unsafe {
        asm!(
            "call {target}",
            target = in(reg) bench_null_stub as *const () as usize,
            inout("rdi") XENVER_VERSION => _,
            inout("rsi") 0u64 => _,
            inout("rdx") 0u64 => _,
            inout("r10") 0u64 => _,
            inout("r8") 0u64 => _,
            lateout("rax") _,
            lateout("rcx") _,
            lateout("r11") _,
        );
    }
}

fn no_exit() {
    core::hint::black_box(stub_shape(core::hint::black_box(XENVER_VERSION)));
}

/// TSC ticks taken by `n` calls of `f` (monomorphised: no indirect call).
fn time_loop(n: u64, f: impl Fn()) -> u64 {
    let start = rdtsc();
    for _ in 0..n {
        f();
    }
    rdtsc().wrapping_sub(start)
}

/// Runs the benchmark. Returns an error message if it could not run (the
/// hypercall page must already be installed).
pub fn run(iters: u64) -> Result<(), &'static str> {
    if map_shared_info(SHARED_INFO_PAGE.gfn()) != 0 {
        return Err("XENMEM_add_to_physmap of shared_info failed");
    }
    set_shared_info(SHARED_INFO_PAGE.addr());
    let clock = match pvclock::current() {
        Some(t) if t.is_valid() => t,
        _ => return Err("shared_info holds no valid pvclock"),
    };

    time_loop(WARMUP, bare_exit);
    time_loop(WARMUP, hypercall);

    let per_round = iters / ROUNDS;
    time_loop(WARMUP, no_exit);
    time_loop(WARMUP, stub_exit);
    let (mut bare, mut hcall, mut insns, mut stub) = (0u64, 0u64, 0u64, 0u64);
    for round in 0..ROUNDS {
        let n = if round == ROUNDS - 1 { iters - per_round * (ROUNDS - 1) } else { per_round };
        bare = bare.wrapping_add(time_loop(n, bare_exit));
        hcall = hcall.wrapping_add(time_loop(n, hypercall));
        insns = insns.wrapping_add(time_loop(n, no_exit));
        stub = stub.wrapping_add(time_loop(n, stub_exit));
    }

    println!(
        "bench hypercall: iters=", iters, " bare_ns=", clock.tsc_delta_to_ns(bare), " hcall_ns=",
        clock.tsc_delta_to_ns(hcall), " stub_no_exit_ns=", clock.tsc_delta_to_ns(insns),
        " stub_exit_ns=", clock.tsc_delta_to_ns(stub)
    );
    Ok(())
}
