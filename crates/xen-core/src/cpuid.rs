//! The Xen hypervisor CPUID leaves the guest sees (`arch-x86/cpuid.h`).

use xenkvm_xen_abi::cpuid::*;

/// One CPUID result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuidLeaf {
    pub function: u32,
    pub index: u32,
    pub eax: u32,
    pub ebx: u32,
    pub ecx: u32,
    pub edx: u32,
}

/// What decides the Xen leaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct XenCpuidConfig {
    /// `XENVER_version` form: major << 16 | minor.
    pub xen_version: u32,
    /// 0x40000000, or 0x40000100 when Hyper-V leaves occupy the first block.
    pub base: u32,
    /// `+xen-vapic`.
    pub xen_vapic: bool,
    /// TSC frequency for the time leaf.
    pub tsc_khz: u32,
    /// The VMM routes MSIs with the 15-bit extended destination ID, so the
    /// guest may address more than 255 APIC IDs without an IOMMU.
    pub ext_dest_id: bool,
}

/// Highest Xen leaf offset we define (base+4, the HVM leaf).
pub const XEN_LEAF_COUNT: u32 = 5;

fn version_at_least(v: u32, major: u32, minor: u32) -> bool {
    v >= (major << 16 | minor)
}

/// The Xen leaves for vCPU `vcpu_id`.
pub fn xen_leaves(cfg: &XenCpuidConfig, vcpu_id: u32) -> Vec<CpuidLeaf> {
    let b = cfg.base;
    let leaf = |function, eax, ebx, ecx, edx| CpuidLeaf { function, index: 0, eax, ebx, ecx, edx };
    let msr = if b == XEN_CPUID_BASE { XEN_HYPERCALL_MSR } else { XEN_HYPERCALL_MSR_WITH_HYPERV };
    let mut hvm_eax = 0;
    let mut hvm_ebx = 0;
    if version_at_least(cfg.xen_version, 4, 5) {
        hvm_eax |= XEN_HVM_CPUID_IOMMU_MAPPINGS;
        if cfg.xen_vapic {
            hvm_eax |= XEN_HVM_CPUID_APIC_ACCESS_VIRT | XEN_HVM_CPUID_X2APIC_VIRT;
        }
        if version_at_least(cfg.xen_version, 4, 6) {
            hvm_eax |= XEN_HVM_CPUID_VCPU_ID_PRESENT;
            hvm_ebx = vcpu_id;
        }
        if version_at_least(cfg.xen_version, 4, 17) {
            hvm_eax |= XEN_HVM_CPUID_UPCALL_VECTOR;
        }
        if cfg.ext_dest_id {
            hvm_eax |= XEN_HVM_CPUID_EXT_DEST_ID;
        }
    }
    vec![
        leaf(b, b + XEN_LEAF_COUNT - 1, XEN_CPUID_SIGNATURE_EBX, XEN_CPUID_SIGNATURE_ECX, XEN_CPUID_SIGNATURE_EDX),
        leaf(b + 1, cfg.xen_version, 0, 0, 0),
        // One hypercall page, installed through `msr`.
        leaf(b + 2, 1, msr, 0, 0),
        // Time leaf: TSC is reliable; native rdtsc (mode 0); guest TSC kHz in ecx.
        leaf(b + 3, XEN_CPUID_HOST_TSC_RELIABLE, 0, cfg.tsc_khz, 0),
        leaf(b + 4, hvm_eax, hvm_ebx, 0, 0),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(v: u32, vapic: bool) -> XenCpuidConfig {
        XenCpuidConfig { xen_version: v, base: XEN_CPUID_BASE, xen_vapic: vapic, tsc_khz: 2_000_000, ext_dest_id: false }
    }

    fn hvm(v: u32, vapic: bool, id: u32) -> (u32, u32) {
        let l = xen_leaves(&cfg(v, vapic), id);
        (l[4].eax, l[4].ebx)
    }

    #[test]
    fn signature_and_version() {
        let l = xen_leaves(&cfg(0x40011, false), 0);
        assert_eq!(l[0].eax, 0x4000_0004);
        let sig: Vec<u8> = [l[0].ebx, l[0].ecx, l[0].edx].iter().flat_map(|r| r.to_le_bytes()).collect();
        assert_eq!(&sig, b"XenVMMXenVMM");
        assert_eq!(l[1].eax, 0x40011);
        assert_eq!((l[2].eax, l[2].ebx), (1, XEN_HYPERCALL_MSR));
        assert_eq!(l[3].ecx, 2_000_000);
    }

    #[test]
    fn hvm_leaf_follows_version_rule() {
        assert_eq!(hvm(0x40004, true, 3), (0, 0), "before 4.5 the HVM leaf is empty");
        assert_eq!(hvm(0x40005, false, 3), (XEN_HVM_CPUID_IOMMU_MAPPINGS, 0));
        let (eax, ebx) = hvm(0x40006, false, 3);
        assert_eq!(eax, XEN_HVM_CPUID_IOMMU_MAPPINGS | XEN_HVM_CPUID_VCPU_ID_PRESENT);
        assert_eq!(ebx, 3);
        let (eax, _) = hvm(0x40010, false, 0);
        assert_eq!(eax & XEN_HVM_CPUID_UPCALL_VECTOR, 0, "4.16 has no upcall-vector flag");
        let (eax, _) = hvm(0x40011, false, 0);
        assert_ne!(eax & XEN_HVM_CPUID_UPCALL_VECTOR, 0);
        let (eax, _) = hvm(0x40011, true, 0);
        assert_ne!(eax & XEN_HVM_CPUID_APIC_ACCESS_VIRT, 0);
        assert_ne!(eax & XEN_HVM_CPUID_X2APIC_VIRT, 0);
        assert_eq!(eax & XEN_HVM_CPUID_EXT_DEST_ID, 0);
        let c = XenCpuidConfig { ext_dest_id: true, ..cfg(0x40011, false) };
        assert_ne!(xen_leaves(&c, 0)[4].eax & XEN_HVM_CPUID_EXT_DEST_ID, 0);
        let old = XenCpuidConfig { ext_dest_id: true, ..cfg(0x40004, false) };
        assert_eq!(xen_leaves(&old, 0)[4].eax, 0, "no HVM leaf flags before 4.5");
    }

    #[test]
    fn hyperv_base_moves_msr() {
        let c = XenCpuidConfig { base: XEN_CPUID_BASE_WITH_HYPERV, ..cfg(0x40011, false) };
        let l = xen_leaves(&c, 0);
        assert_eq!(l[0].function, 0x4000_0100);
        assert_eq!(l[0].eax, 0x4000_0104);
        assert_eq!(l[2].ebx, XEN_HYPERCALL_MSR_WITH_HYPERV);
    }
}
