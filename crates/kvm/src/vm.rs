//! The VM: creation, the split irqchip, user-space MSR exits for the hypercall
//! MSR, and memory slots (guest RAM plus overlay pages such as shared_info).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use kvm_bindings::{kvm_enable_cap, kvm_userspace_memory_region, KVM_CAP_SPLIT_IRQCHIP, KVM_CAP_X86_USER_SPACE_MSR, KVM_MSR_EXIT_REASON_FILTER};
use kvm_ioctls::{Kvm, MsrFilterDefaultAction, MsrFilterRange, MsrFilterRangeFlags, VmFd};
use vm_memory::{GuestMemoryBackend, GuestMemoryMmap, GuestMemoryRegion, MemoryRegionAddress};
use xenkvm_xen_core::page::SharedPage;
use xenkvm_xen_core::ports::{Physmap, PhysmapError};

use crate::caps::HostCaps;
use crate::{Error, Result};

/// Pins routed by the userspace IOAPIC of the split irqchip.
pub const IOAPIC_PINS: u64 = 24;

/// One contiguous guest-physical range backed by host memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Segment {
    gpa: u64,
    size: u64,
    host: u64,
}

/// Memory slots as KVM currently has them, and the layout they come from.
#[derive(Debug, Default)]
struct Slots {
    ram: Vec<Segment>,
    overlays: BTreeMap<u64, u64>,
    /// slot id → segment
    active: BTreeMap<u32, Segment>,
}

/// 32-bit APIC IDs in MSI routes (and no x2APIC broadcast quirk), as QEMU
/// enables them: the precondition of the extended destination ID. Must come
/// before the vCPUs exist; whether it took.
fn enable_x2apic_api(fd: &VmFd) -> bool {
    let mut cap = kvm_enable_cap { cap: kvm_bindings::KVM_CAP_X2APIC_API, ..Default::default() };
    cap.args[0] = u64::from(kvm_bindings::KVM_X2APIC_API_USE_32BIT_IDS | kvm_bindings::KVM_X2APIC_API_DISABLE_BROADCAST_QUIRK);
    match fd.enable_cap(&cap) {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!("KVM_CAP_X2APIC_API not enabled ({e}): no extended destination IDs");
            false
        }
    }
}

/// The message as KVM takes it: with the extended ID on, destination bits
/// 8-14 move from address bits 5-11 to `address_hi` bits 8-14.
pub fn kvm_msi_of(address: u64, data: u32, ext_dest_id: bool) -> kvm_bindings::kvm_msi {
    let mut lo = address as u32;
    let mut hi = (address >> 32) as u32;
    let ext = lo & 0xFE0;
    if ext_dest_id && ext != 0 {
        hi |= ext << 3;
        lo &= !0xFE0;
    }
    kvm_bindings::kvm_msi { address_lo: lo, address_hi: hi, data, ..Default::default() }
}

/// A KVM VM.
pub struct KvmVm {
    pub kvm: Kvm,
    pub fd: Arc<VmFd>,
    pub caps: HostCaps,
    /// MSIs may carry destination bits 8-14 in address bits 5-11 (the
    /// 15-bit extended destination ID; KVM takes them in `address_hi`).
    pub ext_dest_id: bool,
    slots: Mutex<Slots>,
    /// Duplicates of the vCPU fds, by vCPU id, for Xen attribute ioctls.
    pub(crate) vcpu_fds: Mutex<Vec<std::fs::File>>,
}

impl KvmVm {
    /// Opens /dev/kvm, probes it and creates a VM with a split irqchip.
    pub fn new() -> Result<Self> {
        let kvm = Kvm::new().map_err(Error::OpenKvm)?;
        let api = kvm.get_api_version();
        if api != 12 {
            return Err(Error::ApiVersion(api));
        }
        let caps = HostCaps::probe(&kvm);
        caps.require_basics()?;
        let fd = kvm.create_vm().map_err(Error::CreateVm)?;
        let mut cap = kvm_enable_cap { cap: KVM_CAP_SPLIT_IRQCHIP, ..Default::default() };
        cap.args[0] = IOAPIC_PINS;
        fd.enable_cap(&cap).map_err(Error::SplitIrqchip)?;
        let ext_dest_id = caps.x2apic_api && enable_x2apic_api(&fd);
        Ok(Self { kvm, fd: Arc::new(fd), caps, ext_dest_id, slots: Mutex::new(Slots::default()), vcpu_fds: Mutex::new(Vec::new()) })
    }

    /// Makes guest writes of MSR `index` exit to userspace (the hypercall MSR).
    pub fn trap_msr_writes(&self, index: u32) -> Result<()> {
        self.caps.require_userspace_path()?;
        let mut cap = kvm_enable_cap { cap: KVM_CAP_X86_USER_SPACE_MSR, ..Default::default() };
        cap.args[0] = u64::from(KVM_MSR_EXIT_REASON_FILTER);
        self.fd.enable_cap(&cap).map_err(Error::MsrFilter)?;
        // A 0 bit denies the access, and a denied access exits to userspace.
        let bitmap = [0u8; 1];
        let range = MsrFilterRange { flags: MsrFilterRangeFlags::WRITE, base: index, msr_count: 1, bitmap: &bitmap };
        self.fd.set_msr_filter(MsrFilterDefaultAction::ALLOW, &[range]).map_err(Error::MsrFilter)
    }

    /// Sends a message-signalled interrupt to the local APICs.
    pub fn signal_msi(&self, address: u64, data: u32) -> Result<()> {
        self.fd.signal_msi(kvm_msi_of(address, data, self.ext_dest_id)).map(|_| ()).map_err(Error::SignalMsi)
    }

    /// Tells KVM the I/O APIC's redirection entries as MSI routes on GSIs
    /// 0-23 (`(gsi, address, data)`). Delivery still goes through
    /// [`KvmVm::signal_msi`]; KVM needs the routes to know which vectors are
    /// level-triggered, and only for those does it exit on the guest's EOI
    /// (`KVM_EXIT_IOAPIC_EOI`) so the I/O APIC can clear remote IRR.
    pub fn set_ioapic_routes(&self, routes: &[(u32, u64, u32)]) -> Result<()> {
        let mut table = kvm_bindings::KvmIrqRouting::new(0).map_err(|_| Error::SetGsiRouting(kvm_ioctls::Error::new(libc::ENOMEM)))?;
        for &(gsi, address, data) in routes {
            let m = kvm_msi_of(address, data, self.ext_dest_id);
            let msi = kvm_bindings::kvm_irq_routing_msi {
                address_lo: m.address_lo,
                address_hi: m.address_hi,
                data: m.data,
                ..Default::default()
            };
            let entry = kvm_bindings::kvm_irq_routing_entry {
                gsi,
                type_: kvm_bindings::KVM_IRQ_ROUTING_MSI,
                u: kvm_bindings::kvm_irq_routing_entry__bindgen_ty_1 { msi },
                ..Default::default()
            };
            table.push(entry).map_err(|_| Error::SetGsiRouting(kvm_ioctls::Error::new(libc::E2BIG)))?;
        }
        self.fd.set_gsi_routing(&table).map_err(Error::SetGsiRouting)
    }

    /// Registers all of `mem` as guest RAM.
    pub fn map_ram(&self, mem: &GuestMemoryMmap<()>) -> Result<()> {
        let mut ram = Vec::new();
        for region in mem.iter() {
            let host = region.get_host_address(MemoryRegionAddress(0)).map_err(|_| Error::GuestMemory)?;
            ram.push(Segment { gpa: region.start_addr().0, size: region.len(), host: host as u64 });
        }
        let mut slots = self.slots.lock().map_err(|_| Error::GuestMemory)?;
        slots.ram = ram;
        self.apply(&mut slots)
    }

    /// Recomputes the segments (RAM split around overlays, plus the overlays)
    /// and changes only the KVM slots that differ.
    fn apply(&self, slots: &mut Slots) -> Result<()> {
        let wanted = layout(&slots.ram, &slots.overlays);
        let stale: Vec<(u32, Segment)> =
            slots.active.iter().filter(|(_, s)| !wanted.contains(s)).map(|(id, s)| (*id, *s)).collect();
        for (id, seg) in stale {
            self.set_slot(id, Segment { size: 0, ..seg })?;
            slots.active.remove(&id);
        }
        for seg in wanted {
            if slots.active.values().any(|s| *s == seg) {
                continue;
            }
            let id = (0u32..).find(|id| !slots.active.contains_key(id)).ok_or(Error::NoFreeSlot)?;
            self.set_slot(id, seg)?;
            slots.active.insert(id, seg);
        }
        Ok(())
    }

    fn set_slot(&self, slot: u32, seg: Segment) -> Result<()> {
        let region = kvm_userspace_memory_region {
            slot,
            flags: 0,
            guest_phys_addr: seg.gpa,
            memory_size: seg.size,
            userspace_addr: seg.host,
        };
        // SAFETY: `seg.host` points into a mapping that outlives the VM: guest RAM
        // (owned by the VMM for the VM's lifetime) or a SharedPage held by the Xen
        // domain, which keeps every page it ever mapped until the VM is dropped.
        unsafe { self.fd.set_user_memory_region(region) }
            .map_err(|source| Error::SetMemorySlot { slot, gpa: seg.gpa, size: seg.size, source })
    }
}

/// RAM segments with overlay pages cut out, followed by the overlay pages.
fn layout(ram: &[Segment], overlays: &BTreeMap<u64, u64>) -> Vec<Segment> {
    let mut out = Vec::new();
    for r in ram {
        let mut start = r.gpa;
        let end = r.gpa + r.size;
        for &gfn in overlays.keys() {
            let page = gfn << 12;
            if page < start || page >= end {
                continue;
            }
            if page > start {
                out.push(Segment { gpa: start, size: page - start, host: r.host + (start - r.gpa) });
            }
            start = page + 4096;
        }
        if start < end {
            out.push(Segment { gpa: start, size: end - start, host: r.host + (start - r.gpa) });
        }
    }
    out.extend(overlays.iter().map(|(gfn, host)| Segment { gpa: gfn << 12, size: 4096, host: *host }));
    out
}

impl Physmap for KvmVm {
    fn move_overlay(&self, old: Option<u64>, gfn: u64, page: &SharedPage) -> std::result::Result<(), PhysmapError> {
        let err = |reason: String| PhysmapError::MapOverlay { gfn, reason };
        let mut slots = self.slots.lock().map_err(|_| err("slot table poisoned".into()))?;
        let before = slots.overlays.clone();
        if let Some(old) = old {
            slots.overlays.remove(&old);
        }
        slots.overlays.insert(gfn, page.host_addr());
        if let Err(e) = self.apply(&mut slots) {
            // Put the previous layout back so the guest keeps working memory.
            slots.overlays = before;
            let _ = self.apply(&mut slots);
            return Err(err(e.to_string()));
        }
        Ok(())
    }

    fn remove_overlay(&self, gfn: u64) -> std::result::Result<(), PhysmapError> {
        let err = |reason: String| PhysmapError::MapOverlay { gfn, reason };
        let mut slots = self.slots.lock().map_err(|_| err("slot table poisoned".into()))?;
        if slots.overlays.remove(&gfn).is_some() {
            self.apply(&mut slots).map_err(|e| err(e.to_string()))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extended_destination_bits_move_to_address_hi() {
        // Destination 0x1234 in the extended form: 0x34 in bits 12-19, 0x12 in bits 5-11.
        let m = kvm_msi_of(0xFEE3_4000 | (0x12 << 5), 0x4041, true);
        assert_eq!((m.address_lo, m.address_hi, m.data), (0xFEE3_4000, 0x1200, 0x4041));
        let plain = kvm_msi_of(0xFEE3_4000 | (0x12 << 5), 0x4041, false);
        assert_eq!((plain.address_lo, plain.address_hi), (0xFEE3_4240, 0), "left alone without the x2APIC API");
        let hi = kvm_msi_of(0x1_FEE0_1000, 0x30, true);
        assert_eq!((hi.address_lo, hi.address_hi), (0xFEE0_1000, 1));
    }

    #[test]
    fn ioapic_routes_reach_kvm() {
        let vm = match KvmVm::new() {
            Ok(vm) => vm,
            Err(e) => return eprintln!("SKIPPED: no usable /dev/kvm ({e})"),
        };
        // A level-triggered SCI and an edge timer, then none at all.
        vm.set_ioapic_routes(&[(9, 0xFEE0_0000, 0xC031), (2, 0xFEE0_0000, 0x4030)]).unwrap();
        vm.set_ioapic_routes(&[]).unwrap();
        // A GSI beyond the routing table's range is refused, not a crash.
        assert!(vm.set_ioapic_routes(&[(u32::MAX, 0xFEE0_0000, 0x30)]).is_err());
    }

    #[test]
    fn overlays_split_ram() {
        let ram = [Segment { gpa: 0, size: 0x10_000, host: 0x7000_0000 }];
        let mut ov = BTreeMap::new();
        ov.insert(0x5, 0xAAAA_0000);
        ov.insert(0x100, 0xBBBB_0000);
        let l = layout(&ram, &ov);
        assert_eq!(
            l,
            vec![
                Segment { gpa: 0, size: 0x5000, host: 0x7000_0000 },
                Segment { gpa: 0x6000, size: 0xA000, host: 0x7000_6000 },
                Segment { gpa: 0x5000, size: 0x1000, host: 0xAAAA_0000 },
                Segment { gpa: 0x10_0000, size: 0x1000, host: 0xBBBB_0000 },
            ]
        );
    }

    #[test]
    fn overlay_at_region_edges() {
        let ram = [Segment { gpa: 0, size: 0x3000, host: 0x1000_0000 }];
        let mut ov = BTreeMap::new();
        ov.insert(0, 1);
        ov.insert(2, 2);
        let l = layout(&ram, &ov);
        assert_eq!(l[0], Segment { gpa: 0x1000, size: 0x1000, host: 0x1000_1000 });
        assert_eq!(l.len(), 3);
    }
}
