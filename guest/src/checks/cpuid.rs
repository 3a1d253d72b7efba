//! Section 1: the hypervisor CPUID leaves show Xen, and only Xen.

use super::{note, Report};
use crate::hypercall::{cpuid, find_kvm_signature, find_xen, XenCpuid, CPUID_BASE_FIRST, CPUID_BASE_LAST};
use crate::print::{hex, print};

/// Runs the CPUID checks. Returns Xen's leaves if hypercalls can be set up
/// from them (signature found, at least one page, an MSR).
pub fn run(r: &mut Report) -> Option<XenCpuid> {
    r.section("cpuid");
    let xen = find_xen();
    r.check("cpuid: Xen signature found", xen.is_some(), || {
        print!("no \"XenVMMXenVMM\" with eax >= base+2 in ", hex(CPUID_BASE_FIRST), "..=", hex(CPUID_BASE_LAST))
    });

    let kvm = find_kvm_signature();
    r.check("cpuid: no KVM signature visible", kvm.is_none(), || {
        print!("\"KVMKVMKVM\" at leaf ", kvm.map(hex))
    });

    let Some(xen) = xen else {
        let leaf = cpuid(CPUID_BASE_FIRST);
        note!(
            "leaf ", hex(CPUID_BASE_FIRST), ": eax=", hex(leaf.eax), " ebx=", hex(leaf.ebx),
            " ecx=", hex(leaf.ecx), " edx=", hex(leaf.edx)
        );
        return None;
    };
    note!(
        "Xen base ", hex(xen.base), ", max leaf ", hex(xen.max_leaf), ", version ", xen.version >> 16, ".",
        xen.version & 0xffff, ", ", xen.nr_pages, " hypercall page(s), MSR ", hex(xen.msr)
    );

    r.check("cpuid: Xen leaves at 0x40000000", xen.base == CPUID_BASE_FIRST, || {
        print!("found at ", hex(xen.base))
    });
    r.check("cpuid: max leaf >= base+4", xen.max_leaf.wrapping_sub(xen.base) >= 4, || {
        print!("max leaf ", hex(xen.max_leaf), " for base ", hex(xen.base))
    });
    r.check("cpuid: base+2 announces 1 hypercall page", xen.nr_pages == 1, || print!("eax = ", xen.nr_pages));
    let msr_ok = r.check("cpuid: base+2 names the hypercall MSR", xen.msr != 0, || print!("ebx = ", hex(xen.msr)));

    (xen.nr_pages >= 1 && msr_ok).then_some(xen)
}
