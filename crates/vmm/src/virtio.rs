//! virtio-net-pci NICs: each is a modern virtio PCI function (slot 3 up)
//! whose 64-bit BAR sits in the 32-bit MMIO hole (from 0xE100_0000, above
//! the Xen platform device's window), on a tap with 12-byte vnet headers,
//! served by one worker thread. MSIs and the INTA# line are parameters, so
//! the VMM routes them through the domain's PIRQs when the guest maps them.

use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use vm_memory::GuestMemoryMmap;
use xenkvm_boot::mptable::PciIrq;
use xenkvm_devices::acpi_pm::IrqLevel;
use xenkvm_devices::ioapic::MsiSink;
use xenkvm_devices::pci::{BarWindow, PciRoot};
use xenkvm_devices::MmioBus;
use xenkvm_virtio::{NetDevice, NetWorker, Shared, VirtioPci, BAR_INDEX, BAR_SIZE, VNET_HDR_LEN};
use xenkvm_xen_pv::netif::format_mac;

use crate::irq::IrqLines;
use crate::tap::Tap;
use crate::vcpu::RunControl;
use crate::{VirtioNicConfig, VmConfig, VmmError};

/// PCI slot of the first virtio NIC (the host bridge is 0, the Xen platform device 2).
pub const FIRST_SLOT: u8 = 3;
/// BAR of the first virtio NIC; each next one is [`BAR_SIZE`] above.
pub const FIRST_BAR: u64 = 0xE100_0000;

/// The slot of the `index`th virtio NIC.
pub fn slot(index: usize) -> u8 {
    FIRST_SLOT.saturating_add(u8::try_from(index).unwrap_or(u8::MAX))
}

/// The BAR address of the `index`th virtio NIC.
pub fn bar_base(index: usize) -> u64 {
    FIRST_BAR + BAR_SIZE * index as u64
}

/// The GSI of `slot`'s INTA#, as the DSDT's _PRT routes it.
fn intx_gsi(slot: u8) -> u32 {
    xenkvm_boot::acpi::pci_intx_gsi(slot, 0)
}

/// `base` (the platform device's wiring) and every virtio NIC's INTA#, for
/// the MP table and the ACPI tables.
pub fn pci_irqs(cfg: &VmConfig, base: PciIrq) -> Vec<PciIrq> {
    let virtio = (0..cfg.virtio_nics.len()).map(|i| PciIrq { slot: slot(i), ioapic_pin: intx_gsi(slot(i)) as u8 });
    std::iter::once(base).chain(virtio).collect()
}

/// One NIC's worker, ready to be started with the VM.
pub struct VirtioWorker {
    name: String,
    worker: NetWorker<Tap>,
    shared: Arc<Shared>,
}

/// Opens `nic`'s tap, puts a virtio-net-pci function for it at `slot` with
/// its BAR at `bar_base` (and on the MMIO bus there), interrupts to `msi`
/// (MSI-X) and `intx` (INTA#), and returns its worker, not started.
#[allow(clippy::too_many_arguments)]
pub fn attach_virtio_net(
    pci: &mut PciRoot,
    mmio: &mut MmioBus,
    slot: u8,
    bar_base: u64,
    nic: &VirtioNicConfig,
    msi: Arc<dyn MsiSink>,
    intx: Box<dyn IrqLevel>,
    ram: GuestMemoryMmap<()>,
) -> Result<VirtioWorker, VmmError> {
    let tap = Tap::open(&nic.ifname).map_err(|e| VmmError::OpenTap(Box::new(e)))?;
    tap.set_vnet_hdr_size(VNET_HDR_LEN).map_err(|e| VmmError::Internal(format!("tap {}: TUNSETVNETHDRSZ: {e}", nic.ifname)))?;
    let function = VirtioPci::new(Box::new(NetDevice::new(nic.mac)), bar_base, msi, intx)
        .map_err(|e| VmmError::Internal(format!("virtio-net-pci: {e}")))?;
    let shared = function.shared();
    let function = Arc::new(Mutex::new(function));
    pci.attach(slot, function.clone())?;
    mmio.insert(bar_base, BAR_SIZE, Arc::new(Mutex::new(BarWindow::new(function, BAR_INDEX))))?;
    tracing::info!("virtio-net-pci {} at 00:{slot:02x}.0 (BAR {bar_base:#x}) on tap {}", format_mac(&nic.mac), nic.ifname);
    let worker = NetWorker::new(shared.clone(), ram, tap);
    Ok(VirtioWorker { name: format!("virtio-net-{slot}"), worker, shared })
}

/// What the builder hands over to attach every virtio NIC of a VM.
pub struct Wiring<'a> {
    pub mmio: &'a mut MmioBus,
    pub msi: Arc<dyn MsiSink>,
    pub lines: &'a IrqLines,
    pub ram: GuestMemoryMmap<()>,
}

/// Attaches `cfg`'s virtio NICs in order: slots 3, 4, …, BARs from [`FIRST_BAR`].
pub fn attach_all(cfg: &VmConfig, pci: &mut PciRoot, w: Wiring<'_>) -> Result<Vec<VirtioWorker>, VmmError> {
    let mut workers = Vec::new();
    for (i, nic) in cfg.virtio_nics.iter().enumerate() {
        let slot = slot(i);
        let line = w.lines.line(intx_gsi(slot) as usize);
        let worker = attach_virtio_net(pci, w.mmio, slot, bar_base(i), nic, w.msi.clone(), Box::new(line), w.ram.clone())?;
        workers.push(worker);
    }
    Ok(workers)
}

/// The running workers.
pub struct VirtioThreads(Vec<(JoinHandle<()>, Arc<Shared>)>);

/// Starts each worker on its own thread under the worker seccomp filter;
/// they end when `control` stops.
pub fn start(workers: Vec<VirtioWorker>, control: &Arc<RunControl>) -> Result<VirtioThreads, VmmError> {
    let mut threads = Vec::new();
    for VirtioWorker { name, worker, shared } in workers {
        let control = control.clone();
        let label = name.clone();
        let body = move || {
            crate::seccomp::enter(crate::seccomp::ThreadKind::Worker);
            let s = worker.run(|| control.stopping());
            tracing::info!(
                "{label}: tx {} packets ({} bytes, {} errors), rx {} packets ({} bytes, {} dropped, {} errors), {} broken rings",
                s.tx_packets,
                s.tx_bytes,
                s.tx_errors,
                s.rx_packets,
                s.rx_bytes,
                s.rx_dropped,
                s.rx_errors,
                s.broken
            );
        };
        let handle = std::thread::Builder::new().name(name).spawn(body).map_err(VmmError::SpawnThread)?;
        threads.push((handle, shared));
    }
    Ok(VirtioThreads(threads))
}

impl VirtioThreads {
    /// Wakes every worker (the run is stopping) and waits for it.
    pub fn join(self) {
        for (handle, shared) in self.0 {
            shared.kick.notify();
            let _ = handle.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_bars_and_lines_follow_the_acpi_routing() {
        let mut cfg = VmConfig::embedded(&[]);
        let nic = |i: u8| VirtioNicConfig { ifname: format!("t{i}"), mac: [0x52, 0x54, 0, 0, 0, i] };
        cfg.virtio_nics = vec![nic(0), nic(1)];
        let base = PciIrq { slot: 2, ioapic_pin: 16 };
        assert_eq!(pci_irqs(&cfg, base), vec![base, PciIrq { slot: 3, ioapic_pin: 17 }, PciIrq { slot: 4, ioapic_pin: 18 }]);
        assert_eq!((slot(0), bar_base(0), bar_base(1)), (3, 0xE100_0000, 0xE100_4000));
        // Every BAR stays below the I/O APIC, in the DSDT's root-bridge window.
        let last = bar_base(crate::config::MAX_VIRTIO_NICS - 1) + BAR_SIZE;
        assert!(last <= 0xFEBF_FFFF && slot(crate::config::MAX_VIRTIO_NICS - 1) <= 31);
    }

    #[test]
    fn a_bad_tap_name_fails_the_attach() {
        let mut pci = PciRoot::new();
        let mut mmio = MmioBus::new_mmio();
        let ram = GuestMemoryMmap::<()>::from_ranges(&[(vm_memory::GuestAddress(0), 1 << 20)]).unwrap();
        let nic = VirtioNicConfig { ifname: String::new(), mac: [0; 6] };
        let r = attach_virtio_net(&mut pci, &mut mmio, 3, FIRST_BAR, &nic, Arc::new(NoMsi), Box::new(NoLine), ram);
        assert!(matches!(r, Err(VmmError::OpenTap(_))));
    }

    /// The worker thread's syscalls (eventfd waits, the tap's reads, writes,
    /// polls and offloads) pass the worker seccomp filter, where a syscall
    /// off the list fails with EPERM here.
    #[test]
    fn the_worker_filter_allows_a_virtio_worker_on_a_real_tap() {
        use seccompiler::{BpfProgram, SeccompAction, SeccompFilter, TargetArch};
        use xenkvm_virtio::NetBackend;
        let name = format!("xkv{}", std::process::id() % 100_000);
        let mut tap = match Tap::open(&name) {
            Ok(t) => t,
            Err(e) => return eprintln!("skipped: {e}"),
        };
        tap.set_vnet_hdr_size(VNET_HDR_LEN).unwrap();
        let rules = crate::seccomp::rules(crate::seccomp::ThreadKind::Worker, std::process::id()).unwrap();
        let filter = SeccompFilter::new(rules, SeccompAction::Errno(libc::EPERM as u32), SeccompAction::Allow, TargetArch::x86_64).unwrap();
        let bpf: BpfProgram = filter.try_into().unwrap();
        let function = VirtioPci::new(Box::new(NetDevice::new([0x52, 0x54, 0, 0, 0, 1])), FIRST_BAR, Arc::new(NoMsi), Box::new(NoLine)).unwrap();
        let shared = function.shared();
        let ram = GuestMemoryMmap::<()>::from_ranges(&[(vm_memory::GuestAddress(0), 1 << 20)]).unwrap();
        std::thread::scope(|s| {
            s.spawn(move || {
                seccompiler::apply_filter(&bpf).unwrap();
                tap.set_offloads(xenkvm_virtio::RxOffloads { csum: true, tso4: true, tso6: true, ecn: true }).unwrap();
                let mut buf = vec![0u8; xenkvm_virtio::net::MAX_FRAME];
                assert!(NetBackend::read_frame(&mut tap, &mut buf).is_ok(), "read (EAGAIN while the tap is down)");
                shared.kick.notify();
                assert!(NetBackend::wait_readable(&tap, &shared.kick, std::time::Duration::from_millis(10)) || shared.kick.take());
                let frame = [0u8; VNET_HDR_LEN + 60];
                // A down tap refuses frames with EIO, not EPERM.
                if let Err(e) = tap.write_frame(&[&frame[..VNET_HDR_LEN], &frame[VNET_HDR_LEN..]]) {
                    assert_ne!(e.raw_os_error(), Some(libc::EPERM), "{e}");
                }
                let stop = std::sync::atomic::AtomicUsize::new(0);
                let w = NetWorker::new(shared.clone(), ram, tap);
                w.run(|| stop.fetch_add(1, std::sync::atomic::Ordering::SeqCst) > 2);
            })
            .join()
            .unwrap()
        });
    }

    struct NoMsi;
    impl MsiSink for NoMsi {
        fn send_msi(&self, _: u64, _: u32) {}
    }
    struct NoLine;
    impl IrqLevel for NoLine {
        fn set_level(&self, _: bool) {}
    }
}
