//! PV disks and NICs plugged and unplugged while the guest runs (QMP
//! `device_add` / `device_del`).
//!
//! A hotplugged device is made of a backend defined at start (`-drive
//! if=none,id=..` or `-netdev tap,id=..` that no `-device` took) or by QMP
//! (`blockdev-add`, `netdev_add`). Plugging writes the device's store nodes
//! as the toolstack does, which the guest's xenbus watch picks up; its
//! backend threads are the same as a cold-plugged device's. Unplugging is
//! the toolstack's protocol run by the device's own worker
//! ([`xenbus::unplug_step`]); when both directories are gone the worker
//! stops and a `DEVICE_DELETED` event goes out. Hotplugged devices stay
//! across guest reboots (they are plugged again at each start), as in QEMU.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::thread::JoinHandle;
use std::time::Instant;

use xenkvm_xen_pv::blkback::DiskOptions;
use xenkvm_xen_pv::netback::VifOptions;
use xenkvm_xen_pv::xenbus::{disk_name, parse_vdev, unplug_step, HandshakeDevice, UnplugProgress};
use xenkvm_xenstore::server::Shared;

use crate::pvblock::{spawn_disk, Context};
use crate::pvnet::spawn_nic;
use crate::{disk, tap, DiskConfig, NicConfig, VmConfig, MAX_DISKS, MAX_NICS};

/// A hotplug request that cannot be done; the text goes to the QMP client.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HotplugError {
    #[error("Duplicate device ID '{0}'")]
    DuplicateId(String),
    #[error("Device '{0}' not found (only hotplugged devices can be removed)")]
    NoDevice(String),
    #[error("Device '{0}' is already being removed")]
    Removing(String),
    #[error("drive '{0}' not found (define it with -drive if=none,id=.. or blockdev-add)")]
    NoDrive(String),
    #[error("netdev '{0}' not found (define it with -netdev tap,id=.. or netdev_add)")]
    NoNetdev(String),
    #[error("'{0}' is already in use by device '{1}'")]
    InUse(String, String),
    #[error("Duplicate backend ID '{0}'")]
    DuplicateBackend(String),
    #[error("chardev '{0}' not found (define it with -chardev)")]
    NoChardev(String),
    #[error("vdev {0}: {1}")]
    Vdev(String, String),
    #[error("vdev {0} is already in use")]
    VdevInUse(String),
    #[error("no room for another {0} (at most {1})")]
    Full(&'static str, usize),
    #[error("the guest is not running")]
    NotRunning,
    #[error("{0}")]
    Open(String),
}

/// What `device_add` plugs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceRequest {
    Disk { id: String, drive: String, vdev: Option<String>, cdrom: bool },
    Nic { id: String, netdev: String, mac: Option<[u8; 6]> },
    Console { id: String, chardev: String },
}

/// A plugged device, as it is plugged again after a guest reboot.
#[derive(Debug, Clone)]
enum Spec {
    Disk { drive: String, vdev: String, devid: u32, cdrom: bool },
    Nic { netdev: String, devid: u32, mac: [u8; 6] },
    Console { chardev: String, devid: u32 },
}

impl Spec {
    fn backing(&self) -> &str {
        match self {
            Spec::Disk { drive, .. } => drive,
            Spec::Nic { netdev, .. } => netdev,
            Spec::Console { chardev, .. } => chardev,
        }
    }
}

struct Plugged {
    id: String,
    spec: Spec,
    life: Arc<DeviceLife>,
}

/// One hotplugged device's unplug state, shared with its backend threads.
pub struct DeviceLife {
    id: String,
    requested: AtomicBool,
    removed: AtomicBool,
    owner: Weak<Hotplug>,
}

impl DeviceLife {
    /// Whether the device is gone (its threads stop).
    pub fn removed(&self) -> bool {
        self.removed.load(Ordering::Acquire)
    }

    fn finish(&self) {
        self.removed.store(true, Ordering::Release);
        if let Some(owner) = self.owner.upgrade() {
            owner.forget(&self.id);
        }
    }
}

/// A worker's side of an unplug.
#[derive(Default)]
pub struct Unplugging {
    since: Option<Instant>,
}

impl Unplugging {
    /// Whether the unplug began (the normal handshake then stays off).
    pub fn started(&self) -> bool {
        self.since.is_some()
    }

    /// Moves an asked-for unplug on; true when the device is gone and the
    /// worker must stop.
    pub fn step<D: HandshakeDevice>(&mut self, life: &Option<Arc<DeviceLife>>, dev: &mut D, shared: &Shared) -> bool {
        let Some(life) = life else { return false };
        if !life.requested.load(Ordering::Acquire) {
            return false;
        }
        match unplug_step(dev, shared, &mut self.since) {
            Ok(UnplugProgress::Waiting) => false,
            Ok(UnplugProgress::Done) => {
                life.finish();
                true
            }
            Err(e) => {
                tracing::warn!("unplug of {}: {e}; dropping the device", life.id);
                life.finish();
                true
            }
        }
    }
}

struct State {
    ctx: Option<Context>,
    drives: Vec<(String, DiskConfig)>,
    netdevs: Vec<(String, String)>,
    devices: Vec<Plugged>,
    threads: Vec<JoinHandle<()>>,
}

/// The hotplug registry of a VM; it outlives guest runs.
pub struct Hotplug {
    /// vbd device ids and vif MACs of the cold-plugged devices.
    cold_devids: Vec<u32>,
    /// Chardevs the serial port and the cold-plugged consoles use, and how
    /// many consoles there are (hvc0 included).
    cold_chardevs: Vec<String>,
    cold_consoles: usize,
    cold_nics: usize,
    cold_macs: Vec<[u8; 6]>,
    state: Mutex<State>,
    deleted: Box<dyn Fn(&str) + Send + Sync>,
    me: Weak<Hotplug>,
}

impl Hotplug {
    /// `deleted` is told each removed device's id.
    pub fn new(cfg: &VmConfig, deleted: Box<dyn Fn(&str) + Send + Sync>) -> Arc<Self> {
        let cold_devids = cfg.disk_vdevs().map(|v| v.into_iter().map(|(_, id)| id).collect()).unwrap_or_default();
        let state = State {
            ctx: None,
            drives: cfg.spare_drives.clone(),
            netdevs: cfg.spare_netdevs.clone(),
            devices: Vec::new(),
            threads: Vec::new(),
        };
        let mut cold_chardevs = cfg.consoles.clone();
        if let crate::SerialConfig::Chardev(id) = &cfg.serial {
            cold_chardevs.push(id.clone());
        }
        Arc::new_cyclic(|me| Self {
            cold_devids,
            cold_chardevs,
            cold_consoles: cfg.consoles.len().max(1),
            cold_nics: cfg.nics.len(),
            cold_macs: cfg.nics.iter().map(|n| n.mac).collect(),
            state: Mutex::new(state),
            deleted,
            me: me.clone(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A guest run started: plug every hotplugged device into it again.
    pub fn attach(&self, ctx: &Context) {
        let mut s = self.lock();
        s.ctx = Some(ctx.clone());
        let specs: Vec<(String, Spec)> = s.devices.iter().map(|d| (d.id.clone(), d.spec.clone())).collect();
        s.devices.clear();
        for (id, spec) in specs {
            if let Err(e) = self.plug(&mut s, id.clone(), spec) {
                tracing::warn!("cannot plug {id} again: {e}");
            }
        }
    }

    /// The guest run ended: waits for the device threads (they stop with it).
    pub fn detach(&self) {
        let threads = {
            let mut s = self.lock();
            s.ctx = None;
            std::mem::take(&mut s.threads)
        };
        for t in threads {
            let _ = t.join();
        }
    }

    /// `blockdev-add` / `drive_add`: a backend for a later `device_add`.
    pub fn add_drive(&self, id: String, disk: DiskConfig) -> Result<(), HotplugError> {
        let mut s = self.lock();
        if s.drives.iter().any(|(d, _)| *d == id) {
            return Err(HotplugError::DuplicateBackend(id));
        }
        s.drives.push((id, disk));
        Ok(())
    }

    /// `netdev_add`: a tap for a later `device_add`.
    pub fn add_netdev(&self, id: String, ifname: String) -> Result<(), HotplugError> {
        let mut s = self.lock();
        if s.netdevs.iter().any(|(d, _)| *d == id) {
            return Err(HotplugError::DuplicateBackend(id));
        }
        s.netdevs.push((id, ifname));
        Ok(())
    }

    /// `device_add`.
    pub fn add(&self, req: DeviceRequest) -> Result<(), HotplugError> {
        let mut s = self.lock();
        if s.ctx.is_none() {
            return Err(HotplugError::NotRunning);
        }
        let (id, spec) = self.resolve(&s, req)?;
        self.plug(&mut s, id, spec)
    }

    /// `device_del`: starts the unplug; `deleted` is called when it is done.
    pub fn remove(&self, id: &str) -> Result<(), HotplugError> {
        let s = self.lock();
        let Some(d) = s.devices.iter().find(|d| d.id == id) else {
            return Err(HotplugError::NoDevice(id.to_owned()));
        };
        if d.life.requested.swap(true, Ordering::AcqRel) {
            return Err(HotplugError::Removing(id.to_owned()));
        }
        if let Some(ctx) = &s.ctx {
            ctx.backends.signal.notify();
        }
        Ok(())
    }

    /// The ids of the hotplugged devices, in plug order.
    pub fn ids(&self) -> Vec<String> {
        self.lock().devices.iter().map(|d| d.id.clone()).collect()
    }

    fn forget(&self, id: &str) {
        self.lock().devices.retain(|d| d.id != id);
        tracing::info!("device {id} unplugged");
        (self.deleted)(id);
    }

    /// Checks a request and picks the vdev or vif id and MAC.
    fn resolve(&self, s: &State, req: DeviceRequest) -> Result<(String, Spec), HotplugError> {
        let id = match &req {
            DeviceRequest::Disk { id, .. } | DeviceRequest::Nic { id, .. } | DeviceRequest::Console { id, .. } => id.clone(),
        };
        if s.devices.iter().any(|d| d.id == id) {
            return Err(HotplugError::DuplicateId(id));
        }
        let spec = match req {
            DeviceRequest::Disk { drive, vdev, cdrom, .. } => self.disk_spec(s, drive, vdev, cdrom)?,
            DeviceRequest::Nic { netdev, mac, .. } => self.nic_spec(s, netdev, mac)?,
            DeviceRequest::Console { chardev, .. } => self.console_spec(s, chardev)?,
        };
        if let Some(user) = s.devices.iter().find(|d| d.spec.backing() == spec.backing()) {
            return Err(HotplugError::InUse(spec.backing().to_owned(), user.id.clone()));
        }
        Ok((id, spec))
    }

    fn disk_spec(&self, s: &State, drive: String, vdev: Option<String>, cdrom: bool) -> Result<Spec, HotplugError> {
        if !s.drives.iter().any(|(d, _)| *d == drive) {
            return Err(HotplugError::NoDrive(drive));
        }
        let used: Vec<u32> = self
            .cold_devids
            .iter()
            .copied()
            .chain(s.devices.iter().filter_map(|d| match d.spec {
                Spec::Disk { devid, .. } => Some(devid),
                _ => None,
            }))
            .collect();
        if used.len() >= MAX_DISKS {
            return Err(HotplugError::Full("disk", MAX_DISKS));
        }
        let (vdev, devid) = match vdev {
            Some(v) => {
                let devid = parse_vdev(&v).map_err(|e| HotplugError::Vdev(v.clone(), e.to_string()))?;
                if used.contains(&devid) {
                    return Err(HotplugError::VdevInUse(v));
                }
                (v, devid)
            }
            None => (0..)
                .map(disk_name)
                .find_map(|n| parse_vdev(&n).ok().filter(|id| !used.contains(id)).map(|id| (n, id)))
                .ok_or(HotplugError::Full("disk", MAX_DISKS))?,
        };
        Ok(Spec::Disk { drive, vdev, devid, cdrom })
    }

    fn nic_spec(&self, s: &State, netdev: String, mac: Option<[u8; 6]>) -> Result<Spec, HotplugError> {
        if !s.netdevs.iter().any(|(d, _)| *d == netdev) {
            return Err(HotplugError::NoNetdev(netdev));
        }
        let hot: Vec<(u32, [u8; 6])> = s
            .devices
            .iter()
            .filter_map(|d| match d.spec {
                Spec::Nic { devid, mac, .. } => Some((devid, mac)),
                _ => None,
            })
            .collect();
        if self.cold_nics + hot.len() >= MAX_NICS {
            return Err(HotplugError::Full("NIC", MAX_NICS));
        }
        let taken = |id: u32| (id as usize) < self.cold_nics || hot.iter().any(|(d, _)| *d == id);
        let devid = (0..).find(|id| !taken(*id)).unwrap_or(0);
        let macs: Vec<[u8; 6]> = self.cold_macs.iter().copied().chain(hot.iter().map(|(_, m)| *m)).collect();
        let mac = match mac {
            Some(m) if macs.contains(&m) => return Err(HotplugError::InUse(crate::format_mac(&m), "another NIC".into())),
            Some(m) => m,
            None => (devid as usize..).map(NicConfig::default_mac).find(|m| !macs.contains(m)).unwrap_or([0x52, 0x54, 0, 0, 0, 0]),
        };
        Ok(Spec::Nic { netdev, devid, mac })
    }

    fn console_spec(&self, s: &State, chardev: String) -> Result<Spec, HotplugError> {
        if crate::chardev::get(&chardev).is_none() {
            return Err(HotplugError::NoChardev(chardev));
        }
        if self.cold_chardevs.contains(&chardev) {
            return Err(HotplugError::InUse(chardev, "a device given at start".into()));
        }
        let hot: Vec<u32> = s
            .devices
            .iter()
            .filter_map(|d| match d.spec {
                Spec::Console { devid, .. } => Some(devid),
                _ => None,
            })
            .collect();
        if self.cold_consoles + hot.len() >= crate::MAX_CONSOLES {
            return Err(HotplugError::Full("console", crate::MAX_CONSOLES));
        }
        let first = u32::try_from(self.cold_consoles).unwrap_or(u32::MAX);
        let devid = (first..).find(|d| !hot.contains(d)).ok_or(HotplugError::Full("console", crate::MAX_CONSOLES))?;
        Ok(Spec::Console { chardev, devid })
    }

    /// Opens the backing file or tap and starts the backend threads.
    fn plug(&self, s: &mut State, id: String, spec: Spec) -> Result<(), HotplugError> {
        let ctx = s.ctx.clone().ok_or(HotplugError::NotRunning)?;
        let life = Arc::new(DeviceLife {
            id: id.clone(),
            requested: AtomicBool::new(false),
            removed: AtomicBool::new(false),
            owner: self.me.clone(),
        });
        let threads = match &spec {
            Spec::Disk { drive, vdev, devid, cdrom } => {
                let cfg = s.drives.iter().find(|(d, _)| d == drive).map(|(_, c)| c.clone()).ok_or_else(|| HotplugError::NoDrive(drive.clone()))?;
                let device = disk::open(&cfg).map_err(|e| HotplugError::Open(error_chain(&e)))?;
                let opts = DiskOptions {
                    vdev: vdev.clone(),
                    devid: *devid,
                    params: cfg.path.display().to_string(),
                    readonly: cfg.readonly || *cdrom,
                    cdrom: *cdrom,
                    persistent: true,
                };
                tracing::info!("hotplug {id}: disk {} as {vdev}", opts.params);
                vec![spawn_disk(opts, device, &ctx, Some(life.clone())).map_err(|e| HotplugError::Open(error_chain(&e)))?]
            }
            Spec::Nic { netdev, devid, mac } => {
                let ifname = s.netdevs.iter().find(|(d, _)| d == netdev).map(|(_, i)| i.clone()).ok_or_else(|| HotplugError::NoNetdev(netdev.clone()))?;
                let tap = tap::Tap::open(&ifname).map_err(|e| HotplugError::Open(error_chain(&e)))?;
                tracing::info!("hotplug {id}: NIC {devid} {} on tap {ifname}", crate::format_mac(mac));
                let opts = VifOptions { devid: *devid, mac: *mac, ifname };
                spawn_nic(opts, tap, &ctx, Some(life.clone())).map_err(|e| HotplugError::Open(error_chain(&e)))?
            }
            Spec::Console { chardev, devid } => {
                let out = crate::chardev::get(chardev).ok_or_else(|| HotplugError::NoChardev(chardev.clone()))?;
                tracing::info!("hotplug {id}: xenbus console {devid} on chardev {chardev}");
                let t = crate::xenconsole::spawn_console(*devid, out, true, &ctx, Some(life.clone()));
                vec![t.map_err(|e| HotplugError::Open(error_chain(&e)))?]
            }
        };
        s.threads.extend(threads);
        s.devices.push(Plugged { id, spec, life });
        Ok(())
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(&format!(": {s}"));
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests;
