//! The VM description the VMM consumes. Front ends (the CLI today) build it and
//! call [`VmConfig::validate`]; the VMM never sees command-line syntax.

use std::path::PathBuf;
use std::time::Duration;

pub use xenkvm_xen_pv::netif::{format_mac, parse_mac};
pub use xenkvm_xen_pv::xenbus::{disk_name, parse_vdev};

mod chardev;
pub use chardev::{ChardevBackend, ChardevConfig};

/// Xen version in `XENVER_version` form (major << 16 | minor).
pub const DEFAULT_XEN_VERSION: u32 = 0x40011;
/// Default grant-table frames (`xen-gnttab-max-frames`).
pub const DEFAULT_GNTTAB_MAX_FRAMES: u32 = 64;
/// Default PIRQ count (`xen-evtchn-max-pirq`).
pub const DEFAULT_EVTCHN_MAX_PIRQ: u32 = 256;
/// The guest's domain id unless `-xen-domid` says otherwise.
pub const DEFAULT_DOMID: u16 = 1;
/// Highest domain id a guest may have (Xen's `DOMID_FIRST_RESERVED` - 1).
pub const MAX_DOMID: u16 = 0x7FEF;

/// How the guest's interrupt controller is split between KVM and the VMM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IrqChip {
    /// LAPIC in the kernel, IOAPIC and PIC in the VMM (mandatory for Xen guests).
    Split,
}

/// Which transport carries the guest's hypercalls to the VMM.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HypercallPath {
    /// The kernel's Xen support where the host has it, else the userspace page.
    #[default]
    Auto,
    /// `KVM_CAP_XEN_HVM` with hypercall interception; fail without it.
    Kernel,
    /// The userspace hypercall page (port-I/O stubs), even where the kernel could help.
    Userspace,
}

/// The `-accel kvm,...` settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccelConfig {
    pub xen_version: u32,
    pub irqchip: IrqChip,
    pub gnttab_max_frames: u32,
    pub evtchn_max_pirq: u32,
    pub hypercalls: HypercallPath,
}

impl Default for AccelConfig {
    fn default() -> Self {
        Self {
            xen_version: DEFAULT_XEN_VERSION,
            irqchip: IrqChip::Split,
            gnttab_max_frames: DEFAULT_GNTTAB_MAX_FRAMES,
            evtchn_max_pirq: DEFAULT_EVTCHN_MAX_PIRQ,
            hypercalls: HypercallPath::Auto,
        }
    }
}

/// The `-cpu host,...` settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CpuConfig {
    /// `+xen-vapic`: advertise APIC-access and x2APIC virtualisation in the Xen HVM leaf.
    pub xen_vapic: bool,
}

/// What the guest boots from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KernelSource {
    /// The test guest built into the binary.
    Embedded(&'static [u8]),
    /// A file: a PVH ELF (with `XEN_ELFNOTE_PHYS32_ENTRY`) or a Linux bzImage.
    File(PathBuf),
}

/// Where the 16550 at 0x3f8 goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SerialConfig {
    Stdio,
    None,
    /// The character device with this id (`-serial chardev:ID`).
    Chardev(String),
}

/// How a disk image is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DiskFormat {
    #[default]
    Raw,
    Qcow2,
}

/// One PV disk (`-drive ...,if=xen` or `-device xen-disk,...`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskConfig {
    pub path: PathBuf,
    pub format: DiskFormat,
    pub readonly: bool,
    /// `file.locking`: take an flock on the image (default on).
    pub locking: bool,
    /// `xvda`, `xvdb`, ...; `None`: the first name no other disk uses.
    pub vdev: Option<String>,
    /// A CD-ROM (`xen-cdrom`): device-type cdrom, read-only.
    pub cdrom: bool,
}

impl DiskConfig {
    /// A writable raw image with locking.
    pub fn raw(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into(), format: DiskFormat::Raw, readonly: false, locking: true, vdev: None, cdrom: false }
    }
}

/// One PV NIC (`xen-net-device`) on a host tap interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NicConfig {
    /// The tap (`ifname=`), created if it does not exist.
    pub ifname: String,
    pub mac: [u8; 6],
}

impl NicConfig {
    /// QEMU's default MAC of the `index`th NIC: 52:54:00:12:34:56, then :57, ...
    pub fn default_mac(index: usize) -> [u8; 6] {
        [0x52, 0x54, 0x00, 0x12, 0x34, 0x56u8.wrapping_add(index as u8)]
    }
}

/// One virtio-net-pci NIC on a host tap interface (PCI slot 3 up, in order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VirtioNicConfig {
    /// The tap (`ifname=`), created if it does not exist.
    pub ifname: String,
    pub mac: [u8; 6],
}

/// A whole VM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmConfig {
    pub accel: AccelConfig,
    pub cpu: CpuConfig,
    /// Guest RAM in bytes.
    pub memory_bytes: u64,
    pub vcpus: u32,
    pub kernel: KernelSource,
    pub initrd: Option<PathBuf>,
    pub cmdline: String,
    pub serial: SerialConfig,
    /// `-no-reboot`: a guest reboot ends the VMM instead of restarting the guest.
    pub no_reboot: bool,
    /// Wall-clock limit for the whole run (tests and benchmarks always set one).
    pub timeout: Option<Duration>,
    /// Unix socket where Xen's tools reach the guest's xenstore as dom0
    /// (`None`: a per-process path in the runtime directory).
    pub xenstore_socket: Option<PathBuf>,
    /// PV disks, in command-line order.
    pub disks: Vec<DiskConfig>,
    /// PV NICs, in command-line order (vif 0, 1, ...).
    pub nics: Vec<NicConfig>,
    /// virtio-net-pci NICs, in command-line order (PCI slots 3, 4, ...).
    pub virtio_nics: Vec<VirtioNicConfig>,
    /// Character devices (`-chardev`), in command-line order.
    pub chardevs: Vec<ChardevConfig>,
    /// The chardev id of each `-device xen-console`, in order: the first is
    /// the primary console (hvc0), the others xenbus consoles 1, 2, ...
    /// Empty: the primary console writes to standard output.
    pub consoles: Vec<String>,
    /// QMP control sockets (`-qmp`, or `-mon mode=control` on a socket chardev).
    pub qmp: Vec<QmpConfig>,
    /// `-no-shutdown`: when the guest powers off, keep xenkvm (and its QMP
    /// sockets) alive until a client sends `quit` or `system_reset`.
    pub no_shutdown: bool,
    /// `-name`: the guest's name in the store and in QMP.
    pub name: Option<String>,
    /// `-xen-domid`: the guest's domain id (default 1, as QEMU's Xen emulation).
    pub domid: u16,
    /// `-drive if=none,id=ID` images no `-device` uses: QMP `device_add` may plug them.
    pub spare_drives: Vec<(String, DiskConfig)>,
    /// `-netdev` taps (id, ifname) no `-device` uses: QMP `device_add` may plug them.
    pub spare_netdevs: Vec<(String, String)>,
    /// `--seccomp`: the syscall filters of the VMM's threads (`seccomp.rs`).
    pub seccomp: SeccompMode,
}

/// What a thread's seccomp filter does with a syscall outside its list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SeccompMode {
    /// Kill the whole process (SIGSYS): the default.
    #[default]
    On,
    /// No filters at all.
    Off,
    /// Allow it but have the kernel log it (to find a missing syscall).
    Log,
}

/// One QMP control socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QmpConfig {
    pub path: PathBuf,
    /// Start the guest only once a first client connected.
    pub wait: bool,
}

/// A `VmConfig` that cannot be run.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("Memory size {0} bytes is out of range (16 MiB to 1 TiB, whole MiB)")]
    MemorySize(u64),
    #[error("vCPU count {0} is out of range (1 to {max})", max = MAX_VCPUS)]
    VcpuCount(u32),
    #[error("Xen version {0:#x} is not supported (4.0 to 4.255)")]
    XenVersion(u32),
    #[error("xen-gnttab-max-frames={0} is out of range (1 to 4096)")]
    GnttabFrames(u32),
    #[error("xen-evtchn-max-pirq={0} is out of range (1 to 1024)")]
    MaxPirq(u32),
    #[error(transparent)]
    Vdev(#[from] xenkvm_xen_pv::xenbus::ParseVdevError),
    #[error("two disks use vdev {0}")]
    DuplicateVdev(String),
    #[error("more than {MAX_DISKS} disks")]
    TooManyDisks,
    #[error("more than {MAX_NICS} NICs")]
    TooManyNics,
    #[error("more than {MAX_VIRTIO_NICS} virtio-net-pci NICs")]
    TooManyVirtioNics,
    #[error("two NICs use tap {0}")]
    DuplicateTap(String),
    #[error("two NICs use MAC address {0}")]
    DuplicateMac(String),
    #[error("no chardev with id {0}")]
    NoSuchChardev(String),
    #[error("more than {MAX_CONSOLES} consoles")]
    TooManyConsoles,
    #[error("domain id {0} is out of range (1 to {MAX_DOMID}; 0 is dom0, which xenkvm plays itself)")]
    Domid(u16),
}

/// Most PV consoles a VM may have (hvc0 and 15 xenbus consoles).
pub const MAX_CONSOLES: usize = 16;

/// Most PV NICs a VM may have.
pub const MAX_NICS: usize = 16;

/// Most virtio-net-pci NICs a VM may have (PCI slots 3 up).
pub const MAX_VIRTIO_NICS: usize = 8;

/// Most PV disks a VM may have.
pub const MAX_DISKS: usize = 64;

/// Most vCPUs a VM may have.
pub const MAX_VCPUS: u32 = 288;

impl VmConfig {
    /// The xenstore socket path: the configured one, else
    /// `$XDG_RUNTIME_DIR/xenkvm-<pid>.xenstored` (or under the temp directory).
    pub fn xenstore_socket_path(&self) -> PathBuf {
        self.xenstore_socket.clone().unwrap_or_else(|| {
            let dir = std::env::var_os("XDG_RUNTIME_DIR").map_or_else(std::env::temp_dir, PathBuf::from);
            dir.join(format!("xenkvm-{}.xenstored", std::process::id()))
        })
    }

    /// The configuration `xenkvm` runs with no arguments: the embedded test guest.
    pub fn embedded(image: &'static [u8]) -> Self {
        Self {
            accel: AccelConfig::default(),
            cpu: CpuConfig::default(),
            memory_bytes: 128 << 20,
            vcpus: 1,
            kernel: KernelSource::Embedded(image),
            initrd: None,
            cmdline: String::new(),
            serial: SerialConfig::Stdio,
            no_reboot: true,
            timeout: None,
            xenstore_socket: None,
            disks: Vec::new(),
            nics: Vec::new(),
            virtio_nics: Vec::new(),
            chardevs: Vec::new(),
            consoles: Vec::new(),
            qmp: Vec::new(),
            no_shutdown: false,
            name: None,
            domid: DEFAULT_DOMID,
            spare_drives: Vec::new(),
            spare_netdevs: Vec::new(),
            seccomp: SeccompMode::On,
        }
    }

    /// Checks every value against what the VMM can run.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.domid == 0 || self.domid > MAX_DOMID {
            return Err(ConfigError::Domid(self.domid));
        }
        let mib = 1u64 << 20;
        if self.memory_bytes < 16 * mib || self.memory_bytes > (1 << 40) || !self.memory_bytes.is_multiple_of(mib) {
            return Err(ConfigError::MemorySize(self.memory_bytes));
        }
        if self.vcpus == 0 || self.vcpus > MAX_VCPUS {
            return Err(ConfigError::VcpuCount(self.vcpus));
        }
        let major = self.accel.xen_version >> 16;
        if major != 4 {
            return Err(ConfigError::XenVersion(self.accel.xen_version));
        }
        if !(1..=4096).contains(&self.accel.gnttab_max_frames) {
            return Err(ConfigError::GnttabFrames(self.accel.gnttab_max_frames));
        }
        if !(1..=1024).contains(&self.accel.evtchn_max_pirq) {
            return Err(ConfigError::MaxPirq(self.accel.evtchn_max_pirq));
        }
        self.disk_vdevs()?;
        self.check_nics()?;
        self.check_chardevs()
    }

    fn check_chardevs(&self) -> Result<(), ConfigError> {
        if self.consoles.len() > MAX_CONSOLES {
            return Err(ConfigError::TooManyConsoles);
        }
        let serial = match &self.serial {
            SerialConfig::Chardev(id) => Some(id),
            _ => None,
        };
        match self.consoles.iter().chain(serial).find(|id| !self.chardevs.iter().any(|c| &c.id == *id)) {
            Some(id) => Err(ConfigError::NoSuchChardev(id.clone())),
            None => Ok(()),
        }
    }

    fn check_nics(&self) -> Result<(), ConfigError> {
        if self.nics.len() > MAX_NICS {
            return Err(ConfigError::TooManyNics);
        }
        if self.virtio_nics.len() > MAX_VIRTIO_NICS {
            return Err(ConfigError::TooManyVirtioNics);
        }
        let all: Vec<(&String, &[u8; 6])> = self
            .nics
            .iter()
            .map(|n| (&n.ifname, &n.mac))
            .chain(self.virtio_nics.iter().map(|n| (&n.ifname, &n.mac)))
            .collect();
        for (i, a) in all.iter().enumerate() {
            for b in all.iter().skip(i + 1) {
                if a.0 == b.0 {
                    return Err(ConfigError::DuplicateTap(a.0.clone()));
                }
                if a.1 == b.1 {
                    return Err(ConfigError::DuplicateMac(xenkvm_xen_pv::netif::format_mac(a.1)));
                }
            }
        }
        Ok(())
    }

    /// Each disk's virtual device name and id: the given ones, and for the
    /// others the first free `xvdX` in order (as QEMU assigns them).
    pub fn disk_vdevs(&self) -> Result<Vec<(String, u32)>, ConfigError> {
        use xenkvm_xen_pv::xenbus::{disk_name, parse_vdev};
        if self.disks.len() > MAX_DISKS {
            return Err(ConfigError::TooManyDisks);
        }
        let mut taken = Vec::new();
        for d in &self.disks {
            if let Some(v) = &d.vdev {
                let id = parse_vdev(v)?;
                if taken.contains(&id) {
                    return Err(ConfigError::DuplicateVdev(v.clone()));
                }
                taken.push(id);
            }
        }
        let mut next = 0;
        let mut out = Vec::new();
        for d in &self.disks {
            let (name, id) = match &d.vdev {
                Some(v) => (v.clone(), parse_vdev(v)?),
                None => loop {
                    let name = disk_name(next);
                    next += 1;
                    let id = parse_vdev(&name)?;
                    if !taken.contains(&id) {
                        taken.push(id);
                        break (name, id);
                    }
                },
            };
            out.push((name, id));
        }
        Ok(out)
    }
}
