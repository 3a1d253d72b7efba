//! One guest's Xen state.

use std::collections::HashSet;
use std::sync::Arc;

use vm_memory::GuestMemoryMmap;
use xenkvm_xen_abi::hvm::HVM_NR_PARAMS;

use crate::evtchn::EventState;
use crate::gnttab::GrantTable;
use crate::page::{AllocPageError, SharedPage};
use crate::phys::PhysMem;
use crate::ports::{BackendNotify, Clock, ConsoleSink, Physmap, Upcall};
use crate::time::TimeBase;
use crate::vcpu::VcpuState;

/// Fixed properties of a domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainConfig {
    /// `XENVER_version` form.
    pub xen_version: u32,
    /// Our domain id (QEMU's default for an emulated guest is 1).
    pub domid: u16,
    pub vcpus: u32,
    /// Highest guest frame number the accelerator can map (from MAXPHYADDR).
    pub max_gfn: u64,
    /// `XENVER_guest_handle`: the domain's UUID.
    pub handle: [u8; 16],
    /// Most grant-table frames the guest may use (`xen-gnttab-max-frames`).
    pub gnttab_max_frames: u32,
}

/// Failure to create a domain.
#[derive(Debug, thiserror::Error)]
pub enum DomainError {
    #[error("Cannot allocate the shared_info page")]
    AllocSharedInfo(#[source] AllocPageError),
    #[error("Cannot allocate the first grant-table frame")]
    AllocGrantFrame(#[source] AllocPageError),
}

/// Host services the domain uses.
#[derive(Clone)]
pub struct Ports {
    pub clock: Arc<dyn Clock>,
    pub console: Arc<dyn ConsoleSink>,
    pub physmap: Arc<dyn Physmap>,
    /// Event upcalls into the guest, wake-ups and timer re-planning.
    pub upcall: Arc<dyn Upcall>,
    /// The VMM's backends (domain 0 of the guest's interdomain channels).
    pub backends: Arc<dyn BackendNotify>,
}

/// All Xen state of one guest.
pub struct Domain {
    pub(crate) cfg: DomainConfig,
    pub(crate) mem: PhysMem,
    pub(crate) shared_info: Arc<SharedPage>,
    /// Guest frame where shared_info is mapped, once the guest asked.
    pub(crate) shared_info_gfn: Option<u64>,
    /// Latched 32-bit shared_info layout (Xen's `has_32bit_shinfo`).
    pub(crate) shared_info_compat: bool,
    pub(crate) params: [u64; HVM_NR_PARAMS as usize],
    pub(crate) vm_assist: u64,
    pub(crate) vcpus: Vec<VcpuState>,
    pub(crate) time: TimeBase,
    /// The grant table (version 1).
    pub(crate) gnttab: GrantTable,
    pub(crate) ports: Ports,
    /// The host kernel's time keeping, where it offers it.
    pub(crate) kernel_time: Option<std::sync::Arc<dyn crate::ports::KernelTime>>,
    /// Event delivery the host kernel does for us, when it can.
    pub(crate) kernel_events: Option<std::sync::Arc<dyn crate::ports::KernelEvents>>,
    /// The kernel injects the global callback vector itself.
    pub(crate) kernel_callback_vector: bool,
    /// (hypercall, sub-op) pairs already reported as unknown: log once each.
    reported: HashSet<(u64, u64)>,
    /// Event channels, VIRQ bindings, upcall routing and Xen timers.
    pub(crate) events: EventState,
    /// RAM frames the guest gave back (balloon), not populated again.
    pub(crate) released: std::collections::BTreeSet<u64>,
    /// Frees the host memory of released frames, where the host offers it.
    pub(crate) ram_control: Option<Arc<dyn crate::ports::RamControl>>,
    /// Physical IRQs (GSIs and MSIs routed to event channels).
    pub(crate) pirqs: crate::physdev::PirqTable,
}

impl Domain {
    /// Creates the Xen state for a guest whose RAM is `ram`.
    pub fn new(cfg: DomainConfig, ram: GuestMemoryMmap<()>, ports: Ports) -> Result<Self, DomainError> {
        let shared_info = Arc::new(SharedPage::new().map_err(DomainError::AllocSharedInfo)?);
        let gnttab = GrantTable::new(cfg.gnttab_max_frames).map_err(DomainError::AllocGrantFrame)?;
        let clock = &ports.clock;
        let time = TimeBase::new(clock.guest_tsc(), clock.tsc_khz(), clock.wall_clock_ns());
        let vcpus = (0..cfg.vcpus).map(|_| VcpuState::default()).collect();
        let cfg_vcpus = cfg.vcpus;
        let domain = Self {
            cfg,
            mem: PhysMem::new(ram),
            shared_info,
            shared_info_gfn: None,
            shared_info_compat: false,
            params: [0; HVM_NR_PARAMS as usize],
            vm_assist: 0,
            vcpus,
            time,
            gnttab,
            ports,
            kernel_time: None,
            kernel_events: None,
            kernel_callback_vector: false,
            reported: HashSet::new(),
            events: EventState::new(cfg_vcpus),
            released: std::collections::BTreeSet::new(),
            ram_control: None,
            pirqs: crate::physdev::PirqTable::default(),
        };
        domain.init_shared_info();
        Ok(domain)
    }

    /// Lets the balloon give host memory back.
    pub fn set_ram_control(&mut self, rc: Arc<dyn crate::ports::RamControl>) {
        self.ram_control = Some(rc);
    }

    pub fn config(&self) -> &DomainConfig {
        &self.cfg
    }

    /// Sets an HVM parameter from the toolstack side (store/console pfn, evtchn).
    pub fn set_param_host(&mut self, index: u32, value: u64) -> bool {
        match self.params.get_mut(index as usize) {
            Some(slot) => {
                *slot = value;
                true
            }
            None => false,
        }
    }

    /// Reads an HVM parameter from the toolstack side.
    pub fn param(&self, index: u32) -> Option<u64> {
        self.params.get(index as usize).copied()
    }

    /// Current Xen system time in nanoseconds.
    /// The physical address space the core sees (RAM plus overlays).
    pub fn phys(&self) -> &PhysMem {
        &self.mem
    }

    /// Logs an unknown hypercall or sub-op the first time it is seen.
    pub(crate) fn report_unknown(&mut self, nr: u64, op: u64, what: &str) {
        if self.reported.len() < 256 && self.reported.insert((nr, op)) {
            tracing::warn!("guest used unsupported {what} (hypercall {nr}, op {op}): -ENOSYS");
        }
    }
}
