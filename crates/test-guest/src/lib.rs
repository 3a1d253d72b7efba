//! The xenkvm test guest, embedded as an ELF image.
//!
//! [`IMAGE`] is a static, freestanding x86-64 ELF built by `build.rs` from
//! `guest/` at the workspace root. It is a PVH kernel: linked at physical
//! 1 MiB, with a `XEN_ELFNOTE_PHYS32_ENTRY` note (name "Xen", type 18) in its
//! single `PT_NOTE` segment giving the 32-bit entry point. Load it like any PVH
//! kernel (e.g. linux-loader's ELF loader) and start it with `ebx` pointing at
//! an `hvm_start_info`.
//!
//! # What it does
//!
//! It finds Xen through CPUID, installs the hypercall page and exercises the
//! hypercall interface (xen_version, console_io, memory_op, hvm_op, vcpu_op,
//! vm_assist, sched_op), printing on the 16550 UART at port 0x3f8 one line per
//! check:
//!
//! ```text
//! ok <n> - <area>: <what>
//! FAIL <n> - <area>: <what>: <details>
//! ```
//!
//! interleaved with informational `# ...` lines, and ends with
//! `guest selftest: N passed, M failed` followed by `SCHEDOP_shutdown`
//! (poweroff if nothing failed, crash otherwise). A panic prints a line
//! starting with `PANIC` and shuts down with reason crash. Without a usable
//! hypercall page the guest stops with `hlt` (interrupts off).
//!
//! With `bench=hypercall` on the command line (optionally `iters=N`, default
//! 200000) it instead prints exactly one line,
//! `bench hypercall: iters=N bare_ns=<total ns> hcall_ns=<total ns>`, and
//! powers off.
//!
//! With `pvtest=blk` it is a hostile PV block frontend (`guest/src/pvblk.rs`):
//! it connects to the VMM's block backend for xvda over the xenstore ring by
//! polling, sends requests with a bad grant, sectors past the end, too many
//! segments, bad sector ranges and an unknown operation next to a good read
//! (the disk must start with `XENKVM-PVTEST`), storms the event channel,
//! makes the ring producer jump, and checks the answers and that the VMM
//! still serves hypercalls; the report has the same form as the self-test's.

//!
//! # What the VMM must provide
//!
//! - PVH entry state (32-bit protected mode, paging off, `ebx` = physical
//!   address of `hvm_start_info`); boot data (start info, command line, memory
//!   map) outside the image's range, `[0x100000, kernel_end)`, since the guest
//!   zeroes its `.bss` there. A few MiB of RAM are enough.
//! - A 16550 at 0x3f8 whose LSR (0x3fd) reports bit 5 (THR empty), and port
//!   0x80 as a no-op (benchmark).
//! - Xen CPUID leaves at 0x40000000 (base+2: eax = 1 page, ebx = MSR), the
//!   hypercall MSR write trapped to userspace, and stubs that preserve every
//!   register but rax, rcx, r11 and the argument registers.
//! - A frame outside RAM, gpfn 0xF0000 (0xF000_0000), that can hold shared_info.
//! - No injected interrupts or exceptions (the guest has no IDT), and HLT with
//!   interrupts off treated as a stop (the guest only halts when it has no
//!   hypercall page, or if SCHEDOP_shutdown returns).
//!
//! The guest contains no x87/SSE code on any path it executes (see
//! `build.rs`): the build hosts' KVM emulates this guest and cannot run it.

/// The test guest ELF image.
pub static IMAGE: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/xenkvm-test-guest.elf"));
