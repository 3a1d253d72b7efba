//! The CPUID a Xen guest sees: the host's supported features, KVM's own
//! hypervisor leaves removed, and the Xen leaves in their place.

use kvm_bindings::{kvm_cpuid_entry2, CpuId, KVM_MAX_CPUID_ENTRIES};
use kvm_ioctls::Kvm;
use xenkvm_xen_core::cpuid::{xen_leaves, XenCpuidConfig};

use crate::{Error, Result};

const HYPERVISOR_RANGE: std::ops::RangeInclusive<u32> = 0x4000_0000..=0x4FFF_FFFF;
const CPUID_1_ECX_HYPERVISOR: u32 = 1 << 31;
const CPUID_1_ECX_TSC_DEADLINE: u32 = 1 << 24;
const KVM_CPUID_FLAG_SIGNIFCANT_INDEX: u32 = 1;

/// Host-supported CPUID with KVM's identity hidden, ready for per-vCPU patching.
///
/// The TSC-deadline timer is added where KVM emulates it (it is not in
/// KVM_GET_SUPPORTED_CPUID; QEMU adds it the same way): the local APIC is
/// always KVM's. With it (and ARAT, which KVM reports) Linux needs no PIT
/// for its early clock events, as on current hardware.
pub fn base_cpuid(kvm: &Kvm) -> Result<Vec<kvm_cpuid_entry2>> {
    let cpuid = kvm.get_supported_cpuid(KVM_MAX_CPUID_ENTRIES).map_err(Error::GetCpuid)?;
    let deadline = kvm.check_extension(kvm_ioctls::Cap::TscDeadlineTimer);
    let mut entries: Vec<kvm_cpuid_entry2> =
        cpuid.as_slice().iter().copied().filter(|e| !HYPERVISOR_RANGE.contains(&e.function)).collect();
    for e in entries.iter_mut().filter(|e| e.function == 1 && deadline) {
        e.ecx |= CPUID_1_ECX_TSC_DEADLINE;
    }
    Ok(entries)
}

/// The CPUID table for vCPU `id`: APIC id in leaves 1, 0xB and 0x1F, the
/// hypervisor bit, and the Xen leaves.
pub fn vcpu_cpuid(base: &[kvm_cpuid_entry2], xen: &XenCpuidConfig, id: u32) -> Result<CpuId> {
    let mut entries: Vec<kvm_cpuid_entry2> = base.to_vec();
    for e in entries.iter_mut() {
        match e.function {
            1 => {
                e.ebx = (e.ebx & 0x00FF_FFFF) | (id << 24);
                e.ecx |= CPUID_1_ECX_HYPERVISOR;
            }
            0xB | 0x1F => e.edx = id,
            _ => {}
        }
    }
    for leaf in xen_leaves(xen, id) {
        entries.push(kvm_cpuid_entry2 {
            function: leaf.function,
            index: leaf.index,
            flags: if leaf.function == xen.base + 4 { KVM_CPUID_FLAG_SIGNIFCANT_INDEX } else { 0 },
            eax: leaf.eax,
            ebx: leaf.ebx,
            ecx: leaf.ecx,
            edx: leaf.edx,
            ..Default::default()
        });
    }
    CpuId::from_entries(&entries).map_err(|_| Error::SetCpuid(id, kvm_ioctls::Error::new(libc::E2BIG)))
}
