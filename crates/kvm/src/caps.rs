//! What the host KVM offers, probed once at start; nothing is assumed.

use kvm_ioctls::{Cap, Kvm};

/// Host capabilities relevant to a Xen guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostCaps {
    /// `KVM_CAP_XEN_HVM` flags (0: no in-kernel Xen support).
    pub xen_hvm: u32,
    /// `KVM_CAP_SYNC_REGS`: register sets mirrored in `kvm_run` on each exit.
    pub sync_regs: u32,
    pub split_irqchip: bool,
    pub user_space_msr: bool,
    pub msr_filter: bool,
    pub tsc_khz: bool,
    /// `KVM_CAP_X2APIC_API` with 32-bit APIC IDs in MSIs: the guest may
    /// use the 15-bit extended destination ID.
    pub x2apic_api: bool,
}

/// `KVM_XEN_HVM_CONFIG_INTERCEPT_HCALL`: the kernel can hand hypercalls to us.
pub const XEN_HVM_CONFIG_INTERCEPT_HCALL: u32 = 1 << 1;
/// `KVM_SYNC_X86_REGS | KVM_SYNC_X86_SREGS`.
pub const SYNC_REGS_NEEDED: u32 = 0x3;

impl HostCaps {
    pub fn probe(kvm: &Kvm) -> Self {
        let int = |c| u32::try_from(kvm.check_extension_int(c)).unwrap_or(0);
        Self {
            xen_hvm: int(Cap::XenHvm),
            sync_regs: int(Cap::SyncRegs),
            split_irqchip: kvm.check_extension(Cap::SplitIrqchip),
            user_space_msr: kvm.check_extension(Cap::X86UserSpaceMsr),
            msr_filter: kvm.check_extension(Cap::X86MsrFilter),
            tsc_khz: kvm.check_extension(Cap::GetTscKhz),
            x2apic_api: int(Cap::X2ApicApi) & kvm_bindings::KVM_X2APIC_API_USE_32BIT_IDS != 0,
        }
    }

    /// Whether the kernel can intercept `vmcall`/`vmmcall` for a Xen guest.
    /// The kernel can deliver event channels itself (`KVM_XEN_HVM_EVTCHN_SEND`,
    /// the per-vCPU upcall vector and timer attributes, in-kernel SCHEDOP_poll).
    pub fn kernel_xen_events(&self) -> bool {
        let needed = kvm_bindings::KVM_XEN_HVM_CONFIG_SHARED_INFO
            | kvm_bindings::KVM_XEN_HVM_CONFIG_EVTCHN_2LEVEL
            | kvm_bindings::KVM_XEN_HVM_CONFIG_EVTCHN_SEND;
        self.kernel_xen_hypercalls() && self.xen_hvm & needed == needed
    }

    pub fn kernel_xen_hypercalls(&self) -> bool {
        self.xen_hvm & XEN_HVM_CONFIG_INTERCEPT_HCALL != 0
    }

    /// Checks what every VM needs: synced registers and the split irqchip.
    pub fn require_basics(&self) -> crate::Result<()> {
        if self.sync_regs & SYNC_REGS_NEEDED != SYNC_REGS_NEEDED {
            return Err(crate::Error::MissingCapability("KVM_CAP_SYNC_REGS (regs and sregs)"));
        }
        if !self.split_irqchip {
            return Err(crate::Error::MissingCapability("KVM_CAP_SPLIT_IRQCHIP"));
        }
        Ok(())
    }

    /// Checks what the userspace hypercall path needs beyond the basics.
    pub fn require_userspace_path(&self) -> crate::Result<()> {
        if !self.user_space_msr || !self.msr_filter {
            return Err(crate::Error::MissingCapability("KVM_CAP_X86_USER_SPACE_MSR and KVM_CAP_X86_MSR_FILTER"));
        }
        Ok(())
    }
}

impl std::fmt::Display for HostCaps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "xen_hvm={:#x} sync_regs={:#x} split_irqchip={} user_space_msr={} msr_filter={} tsc_khz={} x2apic_api={}",
            self.xen_hvm, self.sync_regs, self.split_irqchip, self.user_space_msr, self.msr_filter, self.tsc_khz, self.x2apic_api
        )
    }
}
