//! The xenkvm test guest: a freestanding PVH kernel that checks the Xen
//! hypercall interface of the VMM it runs on.
//!
//! Built by `crates/test-guest/build.rs` with the stable toolchain for
//! `x86_64-unknown-linux-gnu` as a static ELF linked at 1 MiB (see `link.ld`).
//! It is not a Cargo package: it has no dependencies besides `core`.
//!
//! Flow: `entry.rs` switches to long mode and calls [`guest_main`], which reads
//! the command line, finds Xen through CPUID, installs the hypercall page, and
//! then either runs the self-test (`checks/`) or, with `bench=hypercall`, the
//! benchmark (`bench.rs`), or with `pvtest=blk` a hostile PV block frontend
//! (`pvblk.rs`). It ends with SCHEDOP_shutdown: poweroff if all
//! went well, crash otherwise.
//!
//! Constraints of the host: the guest must never take an exception or an
//! interrupt (there is no IDT), never execute `vmcall`/`vmmcall` itself, and
//! never enable interrupts. Without a hypercall page it stops with `hlt`,
//! which the VMM treats as a stop while interrupts are off.

#![no_std]
#![no_main]
#![deny(unsafe_op_in_unsafe_fn)]

mod abi;
mod bench;
mod checks;
mod entry;
mod hypercall;
mod mem;
mod print;
mod pvblk;
mod pvclock;
mod serial;
mod shared;
mod start_info;

use core::arch::asm;
use core::panic::PanicInfo;
use core::sync::atomic::{AtomicBool, Ordering};

use abi::{SHUTDOWN_CRASH, SHUTDOWN_POWEROFF};
use checks::Report;
use hypercall::{install_hypercall_page, page_ready, shutdown};
use print::{hex, print, println, CStr};
use shared::HYPERCALL_PAGE;
use start_info::{parse_u64, StartInfo};

/// Called by the entry code with the physical address of `hvm_start_info`.
#[no_mangle]
pub extern "C" fn guest_main(start_info_paddr: u64) -> ! {
    // SAFETY: the address comes from ebx at the PVH entry.
    let info = unsafe { StartInfo::read(start_info_paddr) };
    let cmdline = &info.cmdline;

    if cmdline.value(b"bench") == Some(b"hypercall") {
        let iters = match cmdline.value(b"iters") {
            None => bench::DEFAULT_ITERS,
            Some(v) => parse_u64(v).unwrap_or(bench::DEFAULT_ITERS),
        };
        let result = match hypercall::find_xen() {
            Some(xen) if xen.nr_pages >= 1 && xen.msr != 0 => {
                // SAFETY: the MSR is the one Xen's CPUID leaves name.
                unsafe { install_hypercall_page(xen.msr) };
                bench::run(iters)
            }
            _ => Err("no Xen hypercall interface in CPUID"),
        };
        if let Err(e) = result {
            println!("bench hypercall: FAIL: ", e);
            finish(false);
        }
        finish(true);
    }

    if cmdline.value(b"pvtest") == Some(b"blk") {
        println!("xenkvm test guest: hostile PV block frontend");
        let mut r = Report::new();
        match hypercall::find_xen() {
            Some(xen) if xen.nr_pages >= 1 && xen.msr != 0 => {
                // SAFETY: the MSR is the one Xen's CPUID leaves name.
                unsafe { install_hypercall_page(xen.msr) };
                pvblk::run(&mut r);
            }
            _ => r.fail("pv blk: Xen hypercall interface", || print!("not in CPUID")),
        }
        r.summary();
        finish(r.failed() == 0);
    }

    println!("xenkvm test guest: selftest");
    let mut r = Report::new();
    println!("# cmdline \"", CStr(cmdline.as_bytes()), "\"");
    r.check("boot: hvm_start_info magic", info.magic_ok, || {
        print!("start_info at ", hex(start_info_paddr), " has magic ", hex(info.magic))
    });

    if let Some(xen) = checks::run_cpuid(&mut r) {
        // SAFETY: the MSR is the one Xen's CPUID leaves name.
        unsafe { install_hypercall_page(xen.msr) };
        let filled = (0..4096u64).any(|i| {
            // SAFETY: our page.
            unsafe { shared::read8(HYPERCALL_PAGE.addr() + i) != 0 }
        });
        let ok = r.check("hypercall page: filled by the MSR write", filled, || {
            print!("page at ", hex(HYPERCALL_PAGE.addr()), " is still all zero")
        });
        if ok {
            checks::run_with_hypercalls(&mut r, &xen);
        }
    }

    r.summary();
    finish(r.failed() == 0)
}

/// Shuts the VM down (poweroff on success, crash otherwise) through the
/// hypercall page if there is one; else, or if that returns, halts for good.
fn finish(success: bool) -> ! {
    if page_ready() {
        let reason = if success { SHUTDOWN_POWEROFF } else { SHUTDOWN_CRASH };
        let rc = shutdown(reason);
        println!("SCHEDOP_shutdown(", reason, ") returned ", rc);
    }
    halt()
}

/// `hlt` forever with interrupts off.
fn halt() -> ! {
    loop {
        // SAFETY: halting has no memory effects; interrupts stay disabled.
        unsafe { asm!("cli", "hlt", options(nomem, nostack)) };
    }
}

/// The unwinding personality routine that the precompiled `core` references
/// from its unwind tables. With `panic=abort` nothing ever unwinds, so it is
/// never called; it only satisfies the linker.
#[no_mangle]
extern "C" fn rust_eh_personality() {
    halt()
}

/// Stops the guest after an internal error: prints `PANIC: <what><value>`
/// and shuts down with reason crash (or halts without a hypercall page).
pub fn fatal(what: &str, value: u64) -> ! {
    println!("PANIC: ", what, value);
    crash()
}

/// SCHEDOP_shutdown(crash) if possible, then halt.
fn crash() -> ! {
    if page_ready() {
        let _ = shutdown(SHUTDOWN_CRASH);
    }
    halt()
}

/// Set on the first panic, so that a panic while panicking just halts.
static PANICKING: AtomicBool = AtomicBool::new(false);

/// Prints `PANIC at <file>:<line>: <message>` (the message only if it is a
/// plain string: formatting arguments would need `core::fmt`, see print.rs)
/// and shuts down with reason crash.
#[panic_handler]
fn panic(info: &PanicInfo<'_>) -> ! {
    if PANICKING.swap(true, Ordering::Relaxed) {
        halt();
    }
    print!("PANIC");
    if let Some(loc) = info.location() {
        print!(" at ", loc.file(), ":", loc.line());
    }
    println!(": ", info.message().as_str().unwrap_or("(formatted message)"));
    crash()
}
