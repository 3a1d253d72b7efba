//! Building a VM from its configuration: memory, kernel, KVM objects, Xen state
//! and devices. Nothing runs yet.

use std::fs::File;
use std::io::Cursor;
use std::sync::{Arc, Mutex};

use vm_memory::GuestMemoryMmap;
use xenkvm_devices::bus::Sink;
use xenkvm_devices::serial::{SerialPort, COM1};
use xenkvm_devices::pci::{self, PciRoot};
use xenkvm_devices::xen_platform::{PlatformPorts, PlatformState, XenPlatform, FIXED_PORT_BASE, FIXED_PORT_COUNT};
use xenkvm_devices::ioapic::{Ioapic, IOAPIC_BASE, IOAPIC_SIZE};
use xenkvm_devices::{MmioBus, PioBus};
use xenkvm_boot::mptable::PciIrq;
use xenkvm_devices::acpi_pm::{PowerControl, ResetControl};

use crate::events::{Backends, IntxRoute, Signal, VmmUpcall};
use crate::irq::{GsiLine, IrqLines, KvmMsi, SharedLevels};
use crate::legacy::LegacyTimers;
use std::sync::atomic::AtomicBool;
use xenkvm_kvm::clock::{host_tsc, KvmClock};
use xenkvm_kvm::kick::VcpuKicker;
use xenkvm_kvm::xen::XenTimeAttrs;
use xenkvm_kvm::{KvmVcpu, KvmVm};
use xenkvm_xen_abi::cpuid::{XEN_CPUID_BASE, XEN_HYPERCALL_MSR};
use xenkvm_xen_abi::hvm::{HVM_PARAM_CONSOLE_EVTCHN, HVM_PARAM_STORE_EVTCHN};
use xenkvm_xen_core::cpuid::XenCpuidConfig;
use xenkvm_xen_core::domain::Ports;
use xenkvm_xen_core::page::SharedPage;
use xenkvm_xen_core::special::SpecialPage;
use xenkvm_xen_core::{Domain, DomainConfig};

use crate::console::HypervisorConsole;
use crate::vcpu::RunControl;
use crate::{HypercallPath, KernelSource, VmConfig, VmmError};

/// Port 0x80 (POST codes): a no-op device, also the bare exit of the benchmark.
const POST_PORT: u16 = 0x80;

/// Frames of the xenstore and console rings, just below the I/O APIC as in
/// QEMU's Xen emulation, reported reserved in the memory map.
pub const XENSTORE_GFN: u64 = 0xFEFF8;
pub const CONSOLE_GFN: u64 = 0xFEFF9;
const SPECIAL_AREA: [(u64, u64); 1] = [(XENSTORE_GFN << 12, 0x2000)];

/// Host pages shared with the guest for its xenstore and console rings, and
/// the backend ends of their event channels.
pub struct SpecialPages {
    pub xenstore: Arc<SharedPage>,
    pub console: Arc<SharedPage>,
    /// Backend ends of the channels.
    pub xenstore_port: u32,
    pub console_port: u32,
    /// Guest ends (HVM_PARAM_STORE_EVTCHN / CONSOLE_EVTCHN).
    pub xenstore_guest_port: u32,
    pub console_guest_port: u32,
}

/// What threads of one VM wake each other with.
#[derive(Default, Clone)]
pub struct Signals {
    /// vCPUs waiting in SCHEDOP_block/poll.
    pub waiters: Arc<Signal>,
    /// The Xen timer thread.
    pub timers: Arc<Signal>,
    /// Backend kicks from the guest.
    pub backends: Arc<Backends>,
    /// The callback GSI/INTx line is asserted (vCPU 0 re-checks it after exits).
    pub line_asserted: Arc<AtomicBool>,
    /// The asserted callback line must be polled (no EOI will come for it).
    pub line_polled: Arc<AtomicBool>,
    /// Counts the guest's soft resets (xenstored resets the guest's connection).
    pub soft_resets: Arc<std::sync::atomic::AtomicU64>,
    /// The 8259 pair, whose interrupts vCPU 0 injects before each run (`pic.rs`).
    pub pic: Option<Arc<Mutex<xenkvm_devices::pic::Pic>>>,
}

/// A VM ready to run.
pub struct BuiltVm {
    pub vcpus: Vec<KvmVcpu>,
    pub domain: Arc<Mutex<Domain>>,
    pub bus: PioBus,
    pub mmio: MmioBus,
    pub ioapic: Arc<Mutex<Ioapic>>,
    pub special: SpecialPages,
    pub signals: Signals,
    /// KVM's Xen time attributes, applied by each vCPU thread (kernel path only).
    pub time_attrs: Option<Arc<XenTimeAttrs>>,
    /// Interrupts a vCPU thread's KVM_RUN.
    pub kicker: Arc<VcpuKicker>,
    /// COM1, when it is connected to stdio (stdin feeds its receiver).
    pub serial: Option<Arc<Mutex<Com1>>>,
    /// PIT and RTC, whose interrupts a VMM thread raises.
    pub legacy: LegacyTimers,
    /// Guest RAM; kept here so it outlives the vCPUs that map it.
    pub ram: GuestMemoryMmap<()>,
    pub hypercall_msr: u32,
    /// How the run ends; devices (ACPI power-off, reset) report through it too.
    pub control: Arc<RunControl>,
    /// The virtio NICs' workers, started with the VM.
    pub virtio: Vec<crate::virtio::VirtioWorker>,
}

fn guest_ram(cfg: &VmConfig) -> Result<GuestMemoryMmap<()>, VmmError> {
    let ranges: Vec<_> =
        xenkvm_boot::ram_regions(cfg.memory_bytes).into_iter().map(|(a, s)| (a, s as usize)).collect();
    GuestMemoryMmap::from_ranges(&ranges).map_err(|e| VmmError::AllocateMemory(e.to_string()))
}

fn load_kernel(cfg: &VmConfig, ram: &GuestMemoryMmap<()>) -> Result<xenkvm_boot::BootSetup, VmmError> {
    let initrd = match &cfg.initrd {
        Some(p) => Some(std::fs::read(p).map_err(|e| VmmError::ReadFile(p.clone(), e))?),
        None => None,
    };
    let initrd = initrd.as_deref();
    match &cfg.kernel {
        KernelSource::Embedded(image) => {
            xenkvm_boot::load_with_reserved(ram, cfg.memory_bytes, &mut Cursor::new(*image), initrd, &cfg.cmdline, &SPECIAL_AREA)
        }
        KernelSource::File(path) => {
            let mut f = File::open(path).map_err(|e| VmmError::ReadFile(path.clone(), e))?;
            xenkvm_boot::load_with_reserved(ram, cfg.memory_bytes, &mut f, initrd, &cfg.cmdline, &SPECIAL_AREA)
        }
    }
    .map_err(VmmError::LoadKernel)
}

/// The guest's physical-address width, from the host's CPUID leaf 0x80000008.
fn max_gfn() -> u64 {
    let bits = std::arch::x86_64::__cpuid(0x8000_0008).eax & 0xFF;
    let bits = if (32..=52).contains(&bits) { bits } else { 36 };
    (1u64 << (bits - 12)) - 1
}

/// Creates everything `cfg` describes.
pub fn build(cfg: &VmConfig) -> Result<BuiltVm, VmmError> {
    let ram = guest_ram(cfg)?;
    let kvm = Arc::new(KvmVm::new()?);
    tracing::info!("host KVM: {}", kvm.caps);
    kvm.map_ram(&ram)?;
    let hypercall_msr = XEN_HYPERCALL_MSR;
    let (kernel_hypercalls, kernel_events) = setup_hypercalls(cfg, &kvm, hypercall_msr)?;
    let boot = load_kernel(cfg, &ram)?;

    let mut vcpus = Vec::new();
    for id in 0..cfg.vcpus {
        vcpus.push(KvmVcpu::new(&kvm, id)?);
    }
    let bsp = vcpus.first().ok_or(VmmError::NoVcpu)?;
    // Start the estimate a millisecond behind the vCPU's TSC, so the Xen time
    // base (anchored where the estimate stands now) precedes every TSC read.
    let khz = bsp.tsc_khz()?;
    let clock = KvmClock::new(bsp.guest_tsc()?.wrapping_sub(host_tsc()).wrapping_sub(u64::from(khz)), khz);
    let base = xenkvm_kvm::cpuid::base_cpuid(&kvm.kvm)?;
    let xen_cpuid = XenCpuidConfig {
        xen_version: cfg.accel.xen_version,
        base: XEN_CPUID_BASE,
        xen_vapic: cfg.cpu.xen_vapic,
        tsc_khz: clock.khz,
        ext_dest_id: kvm.ext_dest_id,
    };
    for v in &vcpus {
        v.set_cpuid(&xenkvm_kvm::cpuid::vcpu_cpuid(&base, &xen_cpuid, v.id)?)?;
    }
    bsp.set_boot_state(&boot.cpu)?;

    let dcfg = DomainConfig {
        xen_version: cfg.accel.xen_version,
        domid: cfg.domid,
        vcpus: cfg.vcpus,
        max_gfn: max_gfn(),
        handle: *b"xenkvm-domain-01",
        gnttab_max_frames: cfg.accel.gnttab_max_frames,
    };
    let ioapic = Arc::new(Mutex::new(Ioapic::new(Arc::new(KvmMsi(kvm.clone())))));
    if let Ok(mut io) = ioapic.lock() {
        io.set_route_sink(Arc::new(KvmMsi(kvm.clone())));
    }
    let levels: Arc<SharedLevels> = Arc::default();
    let mut signals = Signals::default();
    let upcall = VmmUpcall {
        msi: KvmMsi(kvm.clone()),
        ioapic: ioapic.clone(),
        intx: IntxRoute { slot: PLATFORM_SLOT, ioapic_pin: usize::from(PLATFORM_PIN) },
        waiters: signals.waiters.clone(),
        timers: signals.timers.clone(),
        line_asserted: signals.line_asserted.clone(),
        line_polled: signals.line_polled.clone(),
        levels: levels.clone(),
    };
    let ports = Ports {
        clock: Arc::new(clock),
        console: Arc::new(HypervisorConsole::new(cfg.domid)),
        physmap: kvm.clone(),
        upcall: Arc::new(upcall),
        backends: signals.backends.clone(),
    };
    let mut domain = Domain::new(dcfg, ram.clone(), ports).map_err(VmmError::CreateDomain)?;
    domain.set_ram_control(Arc::new(crate::balloon::HostRam::new(ram.clone())));
    domain.set_max_pirqs(cfg.accel.evtchn_max_pirq).map_err(|e| VmmError::Internal(format!("xen-evtchn-max-pirq: {e:?}")))?;
    // With the kernel's Xen support, KVM keeps the pvclock records and the clock.
    let kicker = Arc::new(VcpuKicker::new(vmm_sys_util::signal::SIGRTMIN(), cfg.vcpus));
    let pic = crate::pic::create(kicker.clone());
    levels.set_mirror(crate::pic::mirror(pic.clone()));
    signals.pic = Some(pic.clone());
    let time_attrs = kernel_hypercalls.then(|| Arc::new(XenTimeAttrs::new(kvm.clone(), kicker.clone())));
    if kernel_events {
        for v in &vcpus {
            kvm.set_xen_vcpu_id(v.id)?;
        }
    }
    if let Some(t) = &time_attrs {
        domain.set_kernel_time(t.clone());
        if kernel_events {
            domain.set_kernel_events(t.clone());
        }
    }
    let special = special_pages(&mut domain)?;
    // Every device line below goes through the domain's PIRQ routing first.
    domain.offer_hvm_pirqs();
    let domain = Arc::new(Mutex::new(domain));
    let lines = IrqLines { ioapic: ioapic.clone(), domain: Some(domain.clone()), levels };
    let mut mmio = MmioBus::new_mmio();
    mmio.insert(IOAPIC_BASE, IOAPIC_SIZE, ioapic.clone())?;
    let pci_irqs = crate::virtio::pci_irqs(cfg, PciIrq { slot: PLATFORM_SLOT, ioapic_pin: PLATFORM_PIN });
    xenkvm_boot::mptable::write_mptable(&ram, cfg.vcpus, &pci_irqs).map_err(VmmError::LoadKernel)?;
    crate::acpi::write_tables(&ram, cfg.vcpus, &pci_irqs)?;
    let control = Arc::new(RunControl::default());
    let msi = Arc::new(crate::irq::PirqMsi { apic: Arc::new(KvmMsi(kvm.clone())), domain: domain.clone() });
    let wiring = crate::virtio::Wiring { mmio: &mut mmio, msi, lines: &lines, ram: ram.clone() };
    let ((mut bus, serial, legacy), virtio) = devices(cfg, &lines, control.clone(), wiring)?;
    crate::pic::attach(&mut bus, &pic)?;
    Ok(BuiltVm { vcpus, domain, bus, mmio, ioapic, special, serial, legacy, signals, time_attrs, kicker, ram, hypercall_msr, control, virtio })
}

/// Maps the xenstore and console pages, grants them to the backends through the
/// reserved grant refs, and opens an unbound channel for each, as a toolstack does.
fn special_pages(domain: &mut Domain) -> Result<SpecialPages, VmmError> {
    let internal = |e: String| VmmError::Internal(e);
    let alloc = || SharedPage::new().map(Arc::new).map_err(|e| VmmError::AllocateMemory(e.to_string()));
    let (xenstore, console) = (alloc()?, alloc()?);
    domain.map_special_page(SpecialPage::Xenstore, XENSTORE_GFN, xenstore.clone()).map_err(|e| internal(e.to_string()))?;
    domain.map_special_page(SpecialPage::Console, CONSOLE_GFN, console.clone()).map_err(|e| internal(e.to_string()))?;
    domain.seed_reserved(Some(CONSOLE_GFN), Some(XENSTORE_GFN)).map_err(|e| internal(format!("{e:?}")))?;
    let mut channel = |param| -> Result<(u32, u32), VmmError> {
        let guest_port = domain.alloc_unbound_for_backend().map_err(|e| internal(e.to_string()))?;
        domain.set_param_host(param, u64::from(guest_port));
        let backend = domain.backend_bind_interdomain(guest_port).map_err(|e| internal(e.to_string()))?;
        Ok((backend, guest_port))
    };
    let (xenstore_port, xenstore_guest_port) = channel(HVM_PARAM_STORE_EVTCHN)?;
    let (console_port, console_guest_port) = channel(HVM_PARAM_CONSOLE_EVTCHN)?;
    Ok(SpecialPages { xenstore, console, xenstore_port, console_port, xenstore_guest_port, console_guest_port })
}

/// Picks the hypercall transport: the kernel's interception where the host has
/// it (it also installs the hypercall page), else trapped MSR writes and our
/// own port-I/O hypercall page. The second value: the kernel also delivers
/// event channels and runs the Xen timers.
fn setup_hypercalls(cfg: &VmConfig, kvm: &KvmVm, msr: u32) -> Result<(bool, bool), VmmError> {
    let kernel = match cfg.accel.hypercalls {
        HypercallPath::Auto => kvm.caps.kernel_xen_hypercalls(),
        HypercallPath::Kernel if !kvm.caps.kernel_xen_hypercalls() => {
            return Err(VmmError::Kvm(xenkvm_kvm::Error::MissingCapability("KVM_CAP_XEN_HVM with INTERCEPT_HCALL")))
        }
        HypercallPath::Kernel => true,
        HypercallPath::Userspace => false,
    };
    let events = kernel && kvm.caps.kernel_xen_events();
    if kernel {
        let how = if events { "; event channels, timers and polls in the kernel" } else { "" };
        tracing::info!("hypercalls: kernel-assisted (KVM_EXIT_XEN){how}");
        kvm.enable_xen_hypercalls(msr, events)?;
    } else {
        tracing::info!("hypercalls: userspace hypercall page (port I/O)");
        kvm.trap_msr_writes(msr)?;
    }
    Ok((kernel, events))
}

/// Where the platform device's BARs start out (Linux keeps firmware placements).
const PLATFORM_IO_BAR: u32 = 0xC000;
const PLATFORM_MMIO_BAR: u32 = 0xE000_0000;
/// PCI slot of the Xen platform device (QEMU's pc machine uses slot 2 or 3).
const PLATFORM_SLOT: u8 = 2;
/// I/O APIC pin of its INTA# (the first pin above the ISA range).
const PLATFORM_PIN: u8 = 16;
/// ISA IRQ of COM1.
const COM1_IRQ: usize = 4;

/// COM1 as wired here.
pub type Com1 = SerialPort<GsiLine, crate::chardev::SerialOut>;
/// The port-I/O bus, COM1 when it is on stdio, and the legacy timers.
type PioDevices = (PioBus, Option<Arc<Mutex<Com1>>>, LegacyTimers);

type Devices = (PioDevices, Vec<crate::virtio::VirtioWorker>);

fn devices(cfg: &VmConfig, lines: &IrqLines, power: Arc<dyn PowerControl>, virtio: crate::virtio::Wiring<'_>) -> Result<Devices, VmmError> {
    let mut bus = PioBus::new();
    let mut serial = None;
    let mut pci = PciRoot::new();
    pci.attach(0, Arc::new(Mutex::new(pci::host_bridge())))?;
    pci.attach(PLATFORM_SLOT, Arc::new(Mutex::new(XenPlatform::new(PLATFORM_IO_BAR, PLATFORM_MMIO_BAR))))?;
    let virtio = crate::virtio::attach_all(cfg, &mut pci, virtio)?;
    // Byte accesses to 0xCF9 are the reset control register, not PCI.
    let pci = ResetControl::new(pci, power.clone());
    bus.insert(pci::CONFIG_ADDRESS.into(), pci::CONFIG_PORTS.into(), Arc::new(Mutex::new(pci)))?;
    crate::acpi::attach_pm(&mut bus, lines, power)?;
    let platform = Arc::new(Mutex::new(PlatformState::default()));
    bus.insert(FIXED_PORT_BASE.into(), FIXED_PORT_COUNT.into(), Arc::new(Mutex::new(PlatformPorts::new(platform))))?;
    if let Some(out) = crate::chardev::serial_output(cfg) {
        let irq = lines.line(COM1_IRQ);
        let port = Arc::new(Mutex::new(SerialPort::with_irq(irq, out)));
        bus.insert(COM1.into(), 8, port.clone())?;
        serial = Some(port);
    }
    bus.insert(POST_PORT.into(), 1, Arc::new(Mutex::new(Sink)))?;
    let legacy = crate::legacy::attach(&mut bus, lines, cfg.memory_bytes)?;
    Ok(((bus, serial, legacy), virtio))
}
