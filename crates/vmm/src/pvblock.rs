//! PV disks: one backend thread per disk. The thread runs the XenBus
//! handshake when the store changed, serves the blkif ring when the guest
//! kicks the disk's event channel (and every few milliseconds, in case a kick
//! was missed), and sends the guest an event when it asked for one.

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use xenkvm_xen_core::Domain;
use xenkvm_xen_pv::xenbus::run_handshake_on;
use xenkvm_xen_pv::blkback::{BlockBackend, BlockDevice, DiskOptions};
use xenkvm_xen_pv::grants::DomainGrants;
use xenkvm_xenstore::server::Shared;

use crate::events::{Backends, StoreRecheck};
use crate::hotplug::{DeviceLife, Unplugging};
use crate::vcpu::RunControl;
use crate::{disk, VmConfig, VmmError};

/// Longest sleep without a kick.
const POLL: Duration = Duration::from_millis(20);
/// Requests answered before the thread looks at the store and its wake-ups again.
const BUDGET: usize = 256;

/// The opened images of a VM, before the store exists.
pub struct OpenDisks(Vec<(DiskOptions, Box<dyn BlockDevice>)>);

/// Opens (and locks) every image; fails before anything runs.
pub fn open_disks(cfg: &VmConfig) -> Result<OpenDisks, VmmError> {
    let names = cfg.disk_vdevs()?;
    let mut out = Vec::new();
    for (d, (vdev, devid)) in cfg.disks.iter().zip(names) {
        let device = disk::open(d).map_err(|e| VmmError::OpenDisk(Box::new(e)))?;
        let opts = DiskOptions {
            vdev,
            devid,
            params: d.path.display().to_string(),
            readonly: d.readonly || d.cdrom,
            cdrom: d.cdrom,
            persistent: true,
        };
        tracing::info!("disk {} ({:?}, {} bytes{}) as {}", opts.params, d.format, device.size(), if opts.readonly { ", read-only" } else { "" }, opts.vdev);
        out.push((opts, device));
    }
    Ok(OpenDisks(out))
}

/// What every backend thread shares.
#[derive(Clone)]
pub struct Context {
    /// The guest's domain id.
    pub domid: u32,
    pub domain: Arc<Mutex<Domain>>,
    pub shared: Arc<Shared>,
    pub changes: Arc<AtomicU64>,
    pub backends: Arc<Backends>,
    pub control: Arc<RunControl>,
}

/// Creates each disk's store nodes and starts its thread.
pub fn start(disks: OpenDisks, ctx: &Context) -> Result<Vec<JoinHandle<()>>, VmmError> {
    disks.0.into_iter().map(|(opts, device)| spawn_disk(opts, device, ctx, None)).collect()
}

/// Creates one disk's store nodes and starts its thread; `life` is set for a
/// hotplugged disk, which QMP may unplug.
pub fn spawn_disk(
    opts: DiskOptions,
    device: Box<dyn BlockDevice>,
    ctx: &Context,
    life: Option<Arc<DeviceLife>>,
) -> Result<JoinHandle<()>, VmmError> {
    let grants = DomainGrants::new(ctx.domain.clone());
    let name = format!("blk-{}", opts.vdev);
    let backend = ctx
        .shared
        .with(|xs| BlockBackend::create(xs, ctx.domid, opts, device, grants))
        .map_err(|e| VmmError::Internal(format!("disk xenstore set-up: {e}")))?;
    let worker = Worker {
        backend,
        shared: ctx.shared.clone(),
        recheck: StoreRecheck::new(ctx.changes.clone()),
        domain: ctx.domain.clone(),
        backends: ctx.backends.clone(),
        control: ctx.control.clone(),
        life,
    };
    std::thread::Builder::new().name(name).spawn(move || {
        crate::seccomp::enter(crate::seccomp::ThreadKind::Worker);
        worker.run()
    }).map_err(VmmError::SpawnThread)
}

struct Worker {
    backend: BlockBackend,
    shared: Arc<Shared>,
    recheck: StoreRecheck,
    domain: Arc<Mutex<Domain>>,
    backends: Arc<Backends>,
    control: Arc<RunControl>,
    life: Option<Arc<DeviceLife>>,
}

impl Worker {
    /// One pass over every ring (one per queue); whether any has more work.
    fn serve_rings(&mut self) -> bool {
        let mut more = false;
        for (index, port) in self.backend.ports().into_iter().enumerate() {
            self.backends.take(port);
            let progress = self.backend.process_queue(index, BUDGET);
            if progress.notify {
                if let Ok(mut d) = self.domain.lock() {
                    let _ = d.backend_send(port);
                }
            }
            more |= progress.more;
        }
        more
    }

    fn run(mut self) {
        let mut unplug = Unplugging::default();
        while !self.control.stopping() {
            let seen = self.backends.signal.current();
            if unplug.step(&self.life, &mut self.backend, &self.shared) {
                break;
            }
            if self.recheck.due() && !unplug.started() {
                if let Err(e) = run_handshake_on(&mut self.backend, &self.shared) {
                    tracing::warn!("{}: {e}", self.backend.paths().backend);
                }
            }
            if !self.serve_rings() {
                self.backends.signal.wait(seen, POLL);
            }
        }
        let s = self.backend.stats();
        tracing::info!(
            "{}: {} reads ({} bytes), {} writes ({} bytes), {} flushes, {} discards, {} errors",
            self.backend.paths().backend,
            s.reads,
            s.bytes_read,
            s.writes,
            s.bytes_written,
            s.flushes,
            s.discards,
            s.errors
        );
    }
}
