//! Finding Xen, installing the hypercall page, and making hypercalls.
//!
//! Xen announces itself in the hypervisor CPUID range: at some base
//! 0x40000000 + k * 0x100 the leaf returns "XenVMMXenVMM" in ebx:ecx:edx and
//! the highest leaf of its range in eax. base+1 gives the version, base+2 the
//! number of hypercall pages and the MSR that installs them. Writing a page's
//! guest-physical address to that MSR makes the hypervisor fill it with 32-byte
//! stubs; hypercall N is a `call` to page + 32 * N with the 64-bit ABI (rdi,
//! rsi, rdx, r10, r8 = arguments 1..5; rax = result).
//!
//! The guest itself never executes `vmcall`/`vmmcall`: only the stubs that the
//! hypervisor wrote do whatever traps to it.

use core::arch::asm;
use core::sync::atomic::{AtomicBool, Ordering};

use crate::abi::*;
use crate::shared::HYPERCALL_PAGE;

/// The four registers a CPUID leaf returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cpuid {
    pub eax: u32,
    pub ebx: u32,
    pub ecx: u32,
    pub edx: u32,
}

impl Cpuid {
    /// Whether ebx:ecx:edx spell the given signature.
    pub fn has_signature(&self, ebx: u32, ecx: u32, edx: u32) -> bool {
        self.ebx == ebx && self.ecx == ecx && self.edx == edx
    }
}

/// Executes CPUID for `leaf` (sub-leaf 0).
pub fn cpuid(leaf: u32) -> Cpuid {
    let (eax, ebx, ecx, edx): (u32, u64, u32, u32);
    // SAFETY: CPUID has no side effects beyond a VM exit. rbx is reserved by
    // LLVM, so it is saved in a scratch register and swapped back.
    unsafe {
        asm!(
            "mov {rbx_save}, rbx",
            "cpuid",
            "xchg {rbx_save}, rbx",
            rbx_save = out(reg) ebx,
            inout("eax") leaf => eax,
            inout("ecx") 0u32 => ecx,
            out("edx") edx,
            options(nomem, nostack, preserves_flags)
        );
    }
    Cpuid { eax, ebx: ebx as u32, ecx, edx }
}

/// Writes a model-specific register.
///
/// # Safety
/// The MSR must exist (an unknown MSR raises #GP, which kills this guest) and
/// the write must not break the guest's execution environment.
pub unsafe fn wrmsr(msr: u32, value: u64) {
    // SAFETY: forwarded to the caller.
    unsafe {
        asm!(
            "wrmsr",
            in("ecx") msr,
            in("eax") value as u32,
            in("edx") (value >> 32) as u32,
            options(nostack, preserves_flags)
        );
    }
}

/// First and last base scanned for hypervisor signatures.
pub const CPUID_BASE_FIRST: u32 = 0x4000_0000;
pub const CPUID_BASE_LAST: u32 = 0x4000_FF00;
pub const CPUID_BASE_STEP: u32 = 0x100;

/// What the Xen CPUID leaves say.
#[derive(Debug, Clone, Copy)]
pub struct XenCpuid {
    /// The base leaf (0x40000000 unless something else sits there).
    pub base: u32,
    /// eax of the base leaf: the highest Xen leaf.
    pub max_leaf: u32,
    /// base+1 eax: major << 16 | minor.
    pub version: u32,
    /// base+2 eax: number of hypercall pages.
    pub nr_pages: u32,
    /// base+2 ebx: the MSR that installs the hypercall page.
    pub msr: u32,
}

/// Scans the hypervisor CPUID range for Xen's signature.
pub fn find_xen() -> Option<XenCpuid> {
    let mut base = CPUID_BASE_FIRST;
    loop {
        let leaf = cpuid(base);
        if leaf.has_signature(XEN_CPUID_SIGNATURE_EBX, XEN_CPUID_SIGNATURE_ECX, XEN_CPUID_SIGNATURE_EDX)
            && leaf.eax.wrapping_sub(base) >= 2
            && leaf.eax.wrapping_sub(base) < CPUID_BASE_STEP
        {
            let pages = cpuid(base + 2);
            return Some(XenCpuid {
                base,
                max_leaf: leaf.eax,
                version: cpuid(base + 1).eax,
                nr_pages: pages.eax,
                msr: pages.ebx,
            });
        }
        if base == CPUID_BASE_LAST {
            return None;
        }
        base += CPUID_BASE_STEP;
    }
}

/// The first base at which KVM's "KVMKVMKVM\0\0\0" signature is visible, if any.
pub fn find_kvm_signature() -> Option<u32> {
    let mut base = CPUID_BASE_FIRST;
    loop {
        if cpuid(base).has_signature(KVM_CPUID_SIGNATURE_EBX, KVM_CPUID_SIGNATURE_ECX, KVM_CPUID_SIGNATURE_EDX) {
            return Some(base);
        }
        if base == CPUID_BASE_LAST {
            return None;
        }
        base += CPUID_BASE_STEP;
    }
}

/// Set once the hypercall page has been installed.
static PAGE_READY: AtomicBool = AtomicBool::new(false);

/// Asks the hypervisor to fill `HYPERCALL_PAGE`, through the MSR from CPUID.
///
/// # Safety
/// `msr` must be the hypercall MSR announced by Xen's CPUID leaves.
pub unsafe fn install_hypercall_page(msr: u32) {
    // The low 12 bits select which hypercall page (0: the only one).
    // SAFETY: forwarded to the caller; the page is ours and 4 KiB aligned.
    unsafe { wrmsr(msr, HYPERCALL_PAGE.addr()) };
    PAGE_READY.store(true, Ordering::Relaxed);
}

/// Whether hypercalls can be made.
pub fn page_ready() -> bool {
    PAGE_READY.load(Ordering::Relaxed)
}

/// Number of 32-byte stubs in the hypercall page.
pub const HYPERCALL_PAGE_ENTRIES: u32 = 128;

/// Makes hypercall `nr` with five arguments through the hypercall page.
///
/// Pointer arguments are guest-virtual addresses. The hypervisor may read and
/// write any guest memory they point to; the asm block is not `nomem`, so the
/// compiler treats memory as read and written by the call.
pub fn hypercall5(nr: u32, a1: u64, a2: u64, a3: u64, a4: u64, a5: u64) -> i64 {
    if nr >= HYPERCALL_PAGE_ENTRIES || !page_ready() {
        crate::fatal("hypercall without a hypercall page entry: ", u64::from(nr));
    }
    let target = HYPERCALL_PAGE.addr() + 32 * u64::from(nr);
    let ret: i64;
    // SAFETY: the hypervisor filled the page with stubs that take arguments in
    // rdi, rsi, rdx, r10, r8, return in rax and clobber at most rcx and r11
    // (the argument registers are treated as clobbered too). The asm is not
    // `nostack`, so the stack is aligned and usable for the `call`.
    unsafe {
        asm!(
            "call {target}",
            target = in(reg) target,
            inout("rdi") a1 => _,
            inout("rsi") a2 => _,
            inout("rdx") a3 => _,
            inout("r10") a4 => _,
            inout("r8") a5 => _,
            lateout("rax") ret,
            lateout("rcx") _,
            lateout("r11") _,
        );
    }
    ret
}

/// Guest-virtual address of a hypercall argument record.
pub fn va<T>(r: &mut T) -> u64 {
    r as *mut T as u64
}

pub fn xen_version(cmd: u64, arg: u64) -> i64 {
    hypercall5(HYPERVISOR_XEN_VERSION, cmd, arg, 0, 0, 0)
}

pub fn console_io(cmd: u64, count: u64, buffer: u64) -> i64 {
    hypercall5(HYPERVISOR_CONSOLE_IO, cmd, count, buffer, 0, 0)
}

pub fn memory_op(cmd: u64, arg: u64) -> i64 {
    hypercall5(HYPERVISOR_MEMORY_OP, cmd, arg, 0, 0, 0)
}

pub fn hvm_op(cmd: u64, arg: u64) -> i64 {
    hypercall5(HYPERVISOR_HVM_OP, cmd, arg, 0, 0, 0)
}

pub fn vcpu_op(cmd: u64, vcpu: u64, arg: u64) -> i64 {
    hypercall5(HYPERVISOR_VCPU_OP, cmd, vcpu, arg, 0, 0)
}

pub fn vm_assist(cmd: u64, kind: u64) -> i64 {
    hypercall5(HYPERVISOR_VM_ASSIST, cmd, kind, 0, 0, 0)
}

pub fn sched_op(cmd: u64, arg: u64) -> i64 {
    hypercall5(HYPERVISOR_SCHED_OP, cmd, arg, 0, 0, 0)
}

/// SCHEDOP_shutdown with `reason`; returns only if the hypervisor refuses.
pub fn shutdown(reason: u32) -> i64 {
    let mut arg = SchedShutdown { reason };
    sched_op(SCHEDOP_SHUTDOWN, va(&mut arg))
}

/// Maps shared_info at guest frame `gpfn` (XENMEM_add_to_physmap).
pub fn map_shared_info(gpfn: u64) -> i64 {
    let mut xatp = XenAddToPhysmap {
        domid: DOMID_SELF,
        size: 0,
        space: XENMAPSPACE_SHARED_INFO,
        idx: 0,
        gpfn,
    };
    memory_op(XENMEM_ADD_TO_PHYSMAP, va(&mut xatp))
}
