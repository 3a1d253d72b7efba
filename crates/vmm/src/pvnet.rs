//! PV NICs: each vif has a tap, a reader thread that moves frames from the
//! tap into a bounded queue, and a backend thread that runs the XenBus
//! handshake, sends the guest's packets to the tap on kicks of the vif's
//! event channel, and copies queued frames into the guest's rx buffers.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use xenkvm_xen_core::Domain;
use xenkvm_xen_pv::grants::DomainGrants;
use xenkvm_xen_pv::xenbus::run_handshake_on;
use xenkvm_xen_pv::netback::{Delivery, NetBackend, Offload, VifOptions};
use xenkvm_xen_pv::netif::format_mac;
use xenkvm_xenstore::server::Shared;

use crate::events::{Backends, StoreRecheck};
use crate::hotplug::{DeviceLife, Unplugging};
use crate::tap::{Tap, MAX_READ};
use crate::vcpu::RunControl;
use crate::{VmConfig, VmmError};

/// Longest sleep without a kick or a frame.
const POLL: Duration = Duration::from_millis(20);
/// Tx packets sent per pass before the thread looks at rx and the store.
const BUDGET: usize = 256;
/// Frames read from the tap and not yet in the guest; the tap (and the
/// host's queue behind it) holds the rest.
const QUEUE: usize = 256;

/// The opened taps of a VM, before the store exists.
pub struct OpenNics(Vec<(VifOptions, Tap)>);

/// Opens every NIC's tap; fails before anything runs.
pub fn open_nics(cfg: &VmConfig) -> Result<OpenNics, VmmError> {
    let mut out = Vec::new();
    for (devid, nic) in (0u32..).zip(&cfg.nics) {
        let tap = Tap::open(&nic.ifname).map_err(|e| VmmError::OpenTap(Box::new(e)))?;
        tracing::info!("NIC {devid}: xen-net-device {} on tap {}", format_mac(&nic.mac), nic.ifname);
        out.push((VifOptions { devid, mac: nic.mac, ifname: nic.ifname.clone() }, tap));
    }
    Ok(OpenNics(out))
}

/// What every NIC thread shares: the same as a disk's.
pub use crate::pvblock::Context;

/// Frames from the tap waiting for the guest.
#[derive(Default)]
struct Inbox {
    frames: Mutex<VecDeque<(Offload, Vec<u8>)>>,
    room: Condvar,
}

/// Creates each vif's store nodes and starts its two threads.
pub fn start(nics: OpenNics, ctx: &Context) -> Result<Vec<JoinHandle<()>>, VmmError> {
    let mut threads = Vec::new();
    for (opts, tap) in nics.0 {
        threads.extend(spawn_nic(opts, tap, ctx, None)?);
    }
    Ok(threads)
}

/// Creates one vif's store nodes and starts its tap reader and its worker;
/// `life` is set for a hotplugged NIC, which QMP may unplug.
pub fn spawn_nic(opts: VifOptions, tap: Tap, ctx: &Context, life: Option<Arc<DeviceLife>>) -> Result<Vec<JoinHandle<()>>, VmmError> {
    let reader_tap = tap.try_clone().map_err(|e| VmmError::Internal(format!("tap {}: {e}", opts.ifname)))?;
    let name = format!("net-{}", opts.devid);
    let grants = DomainGrants::new(ctx.domain.clone());
    let backend = ctx
        .shared
        .with(|xs| NetBackend::create(xs, ctx.domid, opts, Box::new(tap), grants))
        .map_err(|e| VmmError::Internal(format!("NIC xenstore set-up: {e}")))?;
    let inbox = Arc::new(Inbox::default());
    let reader = Reader {
        tap: reader_tap,
        inbox: inbox.clone(),
        backends: ctx.backends.clone(),
        control: ctx.control.clone(),
        life: life.clone(),
    };
    let worker = Worker {
        backend,
        inbox,
        shared: ctx.shared.clone(),
        recheck: StoreRecheck::new(ctx.changes.clone()),
        domain: ctx.domain.clone(),
        backends: ctx.backends.clone(),
        control: ctx.control.clone(),
        life,
    };
    let spawn = |n: String, f: Box<dyn FnOnce() + Send>| {
        let body = move || {
            crate::seccomp::enter(crate::seccomp::ThreadKind::Worker);
            f()
        };
        std::thread::Builder::new().name(n).spawn(body).map_err(VmmError::SpawnThread)
    };
    Ok(vec![spawn(format!("{name}-tap"), Box::new(move || reader.run()))?, spawn(name, Box::new(move || worker.run()))?])
}

struct Reader {
    tap: Tap,
    inbox: Arc<Inbox>,
    backends: Arc<Backends>,
    control: Arc<RunControl>,
    life: Option<Arc<DeviceLife>>,
}

impl Reader {
    fn run(mut self) {
        let mut buf = vec![0u8; MAX_READ];
        let mut errors = 0u64;
        while !self.control.stopping() && !self.life.as_ref().is_some_and(|l| l.removed()) {
            // Wait for room, so a guest that takes nothing stalls only its tap.
            {
                let Ok(q) = self.inbox.frames.lock() else { return };
                if q.len() >= QUEUE {
                    let _ = self.inbox.room.wait_timeout(q, POLL);
                    continue;
                }
            }
            if !self.tap.wait_readable(POLL) {
                continue;
            }
            let mut got = false;
            loop {
                match self.tap.read_frame(&mut buf) {
                    Ok(Some((off, len))) => {
                        let frame = buf.get(crate::tap::VNET_HDR_LEN..crate::tap::VNET_HDR_LEN + len).map(<[u8]>::to_vec);
                        let Ok(mut q) = self.inbox.frames.lock() else { return };
                        if let Some(frame) = frame {
                            q.push_back((off, frame));
                            got = true;
                        }
                        if q.len() >= QUEUE {
                            break;
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        errors += 1;
                        if errors <= 4 || errors.is_power_of_two() {
                            tracing::warn!("tap {}: read failed: {e}", self.tap.ifname());
                        }
                        std::thread::sleep(POLL);
                        break;
                    }
                }
            }
            if got {
                self.backends.signal.notify();
            }
        }
    }
}

struct Worker {
    backend: NetBackend,
    inbox: Arc<Inbox>,
    shared: Arc<Shared>,
    recheck: StoreRecheck,
    domain: Arc<Mutex<Domain>>,
    backends: Arc<Backends>,
    control: Arc<RunControl>,
    life: Option<Arc<DeviceLife>>,
}

impl Worker {
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
            let ports = self.backend.ports();
            if ports.is_empty() {
                self.drop_queued();
                self.backends.signal.wait(seen, POLL);
                continue;
            }
            for &port in &ports {
                self.backends.take(port);
            }
            let tx = self.backend.process_tx(BUDGET);
            let rx_more = self.deliver();
            let mask = self.backend.finish_rx() | tx.notify_queues;
            self.notify(&ports, mask);
            if !tx.more && !rx_more {
                self.backends.signal.wait(seen, POLL);
            }
        }
        let s = self.backend.stats();
        tracing::info!(
            "{}: tx {} packets ({} bytes, {} errors, {} dropped), rx {} packets ({} bytes, {} dropped, {} errors), {} fatal",
            self.backend.paths().backend,
            s.tx_packets,
            s.tx_bytes,
            s.tx_errors,
            s.tx_dropped,
            s.rx_packets,
            s.rx_bytes,
            s.rx_dropped,
            s.rx_errors,
            s.fatal
        );
    }

    /// Moves queued frames into the guest until it runs out of buffers;
    /// returns whether a batch limit (not the guest) stopped it.
    fn deliver(&mut self) -> bool {
        let mut done = 0;
        let more = loop {
            if done >= BUDGET {
                break true;
            }
            let next = self.inbox.frames.lock().ok().and_then(|mut q| q.pop_front());
            let Some((off, frame)) = next else { break false };
            match self.backend.receive(&frame, &off) {
                Delivery::Delivered | Delivery::Dropped(_) => done += 1,
                Delivery::NoRoom => {
                    if let Ok(mut q) = self.inbox.frames.lock() {
                        q.push_front((off, frame));
                    }
                    break false;
                }
            }
        };
        if done > 0 {
            self.inbox.room.notify_all();
        }
        more
    }

    /// Fires the event channel of each queue whose bit is set in `mask`.
    fn notify(&self, ports: &[u32], mask: u32) {
        if mask == 0 {
            return;
        }
        if let Ok(mut d) = self.domain.lock() {
            for (i, &port) in ports.iter().enumerate() {
                if mask & (1 << i) != 0 {
                    let _ = d.backend_send(port);
                }
            }
        }
    }

    /// Without a connected frontend the link is down: frames are lost.
    fn drop_queued(&mut self) {
        let dropped = self.inbox.frames.lock().map(|mut q| std::mem::take(&mut *q).len()).unwrap_or(0);
        if dropped > 0 {
            self.inbox.room.notify_all();
        }
    }
}
