//! The PV block backend (blkback's role): one virtual disk (`vbd`) of the
//! guest, served over a blkif ring.
//!
//! The VMM drives it from one thread, in three kinds of calls that never hold
//! the store lock and the domain lock at once:
//!
//! 1. [`BlockBackend::create`] (store locked) writes the toolstack's nodes,
//!    publishes the features and goes to InitWait;
//! 2. [`BlockBackend::xenbus`] runs the handshake when the store may have
//!    changed: it reads the frontend's parameters under the store lock,
//!    connects or disconnects (grant maps, event channel) under the domain
//!    lock, and writes the outcome under the store lock again;
//! 3. [`BlockBackend::process`] serves the ring: bounded work per call, and
//!    says whether the frontend wants an event.
//!
//! Offered: `feature-flush-cache` and `feature-barrier` (both answered after
//! [`BlockDevice::flush`]), `feature-discard` when the disk can,
//! `feature-persistent`, `feature-max-indirect-segments` (256) and
//! `max-ring-page-order` (4: up to 16 pages, 512 requests). Not offered:
//! multiple queues.

mod io;

pub use io::{BlockDevice, PersistentGrants, Stats, MAX_PERSISTENT_GRANTS};


use xenkvm_xen_core::gnttab::GrantAccess;
use xenkvm_xenstore::Xenstore;

use crate::blkif::{self, Abi, VDISK_CDROM, VDISK_READONLY, VDISK_REMOVABLE};
use crate::grants::{DomainGrants, Mapped};
use crate::ring::{BackRing, Next};
use crate::xenbus::{
    create_device, run_handshake, DevicePaths, Handshake, HandshakeDevice, Step, StoreClient, StoreError, StoreStep, XenbusState,
};

/// Largest ring we accept: 2^4 = 16 pages.
pub const MAX_RING_PAGE_ORDER: u32 = 4;
/// Most rings (`multi-queue-max-queues`): Linux's blkfront opens one per vCPU up to this.
pub const MAX_QUEUES: u32 = 4;
/// Segments per indirect request we accept (Linux blkback's maximum).
pub const MAX_INDIRECT_SEGMENTS: usize = 256;

/// What the toolstack knows about the disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskOptions {
    /// `xvda` etc.; its device id names the directories.
    pub vdev: String,
    pub devid: u32,
    /// The image path, for the `params` node.
    pub params: String,
    pub readonly: bool,
    pub cdrom: bool,
    /// Offer persistent grants.
    pub persistent: bool,
}

/// One ring the frontend published: its pages and event channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueParams {
    pub ring_refs: Vec<u32>,
    pub event_channel: u32,
}

/// What the frontend published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrontendParams {
    /// One ring, or `multi-queue-num-queues` of them (`queue-N/...`).
    pub queues: Vec<QueueParams>,
    pub abi: Abi,
    pub persistent: bool,
}

impl FrontendParams {
    /// A single-ring frontend.
    pub fn single(ring_refs: Vec<u32>, event_channel: u32, abi: Abi, persistent: bool) -> Self {
        Self { queues: vec![QueueParams { ring_refs, event_channel }], abi, persistent }
    }
}

/// A frontend whose parameters cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectError {
    #[error("missing or invalid frontend node {0}")]
    Node(String),
    #[error("ring-page-order {0} is above max-ring-page-order {MAX_RING_PAGE_ORDER}")]
    RingOrder(u32),
    #[error("{0} queues requested; 1 to {MAX_QUEUES} are supported")]
    Queues(u32),
    #[error(transparent)]
    Protocol(#[from] blkif::ProtocolError),
    #[error("ring pages: {0}")]
    MapRing(crate::grants::MapGrantError),
    #[error("event channel {0}: {1:?}")]
    BindEventChannel(u32, xenkvm_xen_abi::errno::XenErrno),
}

/// One ring of a live connection.
struct Queue {
    ring: BackRing,
    ring_pages: Vec<Mapped>,
    port: u32,
}

/// A live connection to the frontend.
struct Connection {
    queues: Vec<Queue>,
    abi: Abi,
}

/// What one [`BlockBackend::process`] call did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Requests answered.
    pub handled: usize,
    /// The frontend should get an event on [`BlockBackend::port`].
    pub notify: bool,
    /// Requests are left (the budget ran out): call again soon.
    pub more: bool,
}

/// One virtual block device.
pub struct BlockBackend {
    handshake: Handshake,
    client: StoreClient,
    opts: DiskOptions,
    exec: io::Executor,
    conn: Option<Connection>,
}

impl BlockBackend {
    /// Creates the device's nodes as the toolstack does and publishes the
    /// backend's features (state InitWait). `domid` is the guest's.
    pub fn create(
        xs: &mut Xenstore,
        domid: u32,
        opts: DiskOptions,
        disk: Box<dyn BlockDevice>,
        grants: DomainGrants,
    ) -> Result<Self, StoreError> {
        let client = StoreClient::connect(xs);
        let paths = DevicePaths::new("vbd", domid, opts.devid);
        let device_type = if opts.cdrom { "cdrom" } else { "disk" };
        let mode = if opts.readonly { "r" } else { "w" };
        let backend_nodes = [
            ("dev", opts.vdev.clone()),
            ("type", "qdisk".to_string()),
            ("params", opts.params.clone()),
            ("mode", mode.into()),
            ("device-type", device_type.into()),
            ("removable", u8::from(opts.cdrom).to_string()),
            ("bootable", "1".into()),
            ("discard-enable", "1".into()),
        ];
        let frontend_nodes = [("virtual-device", opts.devid.to_string()), ("device-type", device_type.into())];
        create_device(xs, &client, &paths, &backend_nodes, &frontend_nodes)?;
        let readonly = opts.readonly;
        let mut backend =
            Self { handshake: Handshake::new(paths), client, opts, exec: io::Executor::new(disk, readonly, grants), conn: None };
        let features = backend.features();
        backend.handshake.init_wait(xs, &client, &features)?;
        Ok(backend)
    }

    /// The nodes the backend publishes before the frontend connects.
    fn features(&self) -> Vec<(&'static str, String)> {
        let mut info = 0;
        if self.opts.readonly {
            info |= VDISK_READONLY;
        }
        if self.opts.cdrom {
            info |= VDISK_CDROM | VDISK_REMOVABLE;
        }
        let mut nodes = vec![
            ("feature-flush-cache", "1".to_string()),
            ("feature-barrier", "1".into()),
            ("feature-max-indirect-segments", MAX_INDIRECT_SEGMENTS.to_string()),
            ("max-ring-page-order", MAX_RING_PAGE_ORDER.to_string()),
            ("multi-queue-max-queues", MAX_QUEUES.to_string()),
            ("feature-persistent", u8::from(self.opts.persistent).to_string()),
            ("sector-size", blkif::SECTOR.to_string()),
            ("physical-sector-size", blkif::SECTOR.to_string()),
            ("sectors", self.exec.sectors().to_string()),
            ("info", info.to_string()),
        ];
        if self.exec.disk.can_discard() && !self.opts.readonly {
            nodes.extend([
                ("feature-discard", "1".to_string()),
                ("discard-granularity", "4096".into()),
                ("discard-alignment", "0".into()),
                ("discard-secure", "0".into()),
            ]);
        }
        nodes
    }

    pub fn paths(&self) -> &DevicePaths {
        &self.handshake.paths
    }

    /// Our state in the handshake.
    pub fn state(&self) -> XenbusState {
        self.handshake.state()
    }

    /// The backend end of the (first ring's) event channel, while connected.
    pub fn port(&self) -> Option<u32> {
        self.conn.as_ref().and_then(|c| c.queues.first()).map(|q| q.port)
    }

    /// The backend ends of every ring's event channel, in ring order.
    pub fn ports(&self) -> Vec<u32> {
        self.conn.as_ref().map(|c| c.queues.iter().map(|q| q.port).collect()).unwrap_or_default()
    }

    /// What the backend did so far.
    pub fn stats(&self) -> Stats {
        self.exec.stats
    }

    /// Grants pinned persistently now.
    pub fn persistent_grants(&self) -> usize {
        self.exec.persistent.as_ref().map_or(0, PersistentGrants::len)
    }

    /// Runs the handshake one step. `with_store` runs a closure with the
    /// store locked (e.g. `Shared::with`). Returns whether the connection changed.
    pub fn xenbus<F>(&mut self, with_store: F) -> Result<bool, StoreError>
    where
        F: FnMut(&mut StoreStep<'_>) -> Result<Option<Step>, StoreError>,
    {
        run_handshake(self, with_store)
    }

    /// Maps the rings, binds their event channels and starts serving.
    pub fn connect(&mut self, p: &FrontendParams) -> Result<(), ConnectError> {
        self.disconnect();
        let mut queues = Vec::with_capacity(p.queues.len());
        for q in &p.queues {
            match self.connect_queue(q, p.abi) {
                Ok(queue) => queues.push(queue),
                Err(e) => {
                    for queue in &queues {
                        self.drop_queue(queue);
                    }
                    return Err(e);
                }
            }
        }
        tracing::info!(
            "{}: connected, {} ring(s) of {} pages ({} requests), event channel(s) {:?}, {:?}, persistent grants {}",
            self.handshake.paths.backend,
            queues.len(),
            p.queues.first().map_or(0, |q| q.ring_refs.len()),
            queues.first().map_or(0, |q| q.ring.size()),
            p.queues.iter().map(|q| q.event_channel).collect::<Vec<_>>(),
            p.abi,
            p.persistent && self.opts.persistent
        );
        self.exec.persistent = (p.persistent && self.opts.persistent).then(PersistentGrants::default);
        self.conn = Some(Connection { queues, abi: p.abi });
        Ok(())
    }

    fn connect_queue(&self, q: &QueueParams, abi: Abi) -> Result<Queue, ConnectError> {
        let grants = self.exec.grants.clone();
        let refs: Vec<(u32, GrantAccess)> = q.ring_refs.iter().map(|&r| (r, GrantAccess::Write)).collect();
        let ring_pages = grants.map(&refs).map_err(ConnectError::MapRing)?;
        let bound = grants.domain().lock().map_err(|_| ConnectError::Node("domain".into())).and_then(|mut d| {
            d.backend_bind_interdomain(q.event_channel).map_err(|e| ConnectError::BindEventChannel(q.event_channel, e))
        });
        let port = match bound {
            Ok(port) => port,
            Err(e) => {
                grants.unmap(&ring_pages);
                return Err(e);
            }
        };
        let gfns = ring_pages.iter().map(|m| m.gfn).collect();
        let ring = BackRing::attach(grants.ram().clone(), gfns, abi.entry_size());
        Ok(Queue { ring, ring_pages, port })
    }

    fn drop_queue(&self, q: &Queue) {
        let grants = &self.exec.grants;
        grants.unmap(&q.ring_pages);
        if let Ok(mut d) = grants.domain().lock() {
            let _ = d.backend_close(q.port);
        }
    }

    /// Unpins everything and closes the event channels (idempotent).
    pub fn disconnect(&mut self) {
        let grants = self.exec.grants.clone();
        if let Some(mut p) = self.exec.persistent.take() {
            p.release(&grants);
        }
        if let Some(c) = self.conn.take() {
            for q in &c.queues {
                self.drop_queue(q);
            }
            tracing::info!("{}: disconnected", self.handshake.paths.backend);
        }
    }

    /// Answers up to `budget` requests of the first ring.
    pub fn process(&mut self, budget: usize) -> Progress {
        self.process_queue(0, budget)
    }

    /// Answers up to `budget` requests of ring `index`.
    pub fn process_queue(&mut self, index: usize, budget: usize) -> Progress {
        let mut progress = Progress::default();
        let Some(conn) = self.conn.as_mut() else { return progress };
        let abi = conn.abi;
        let Some(q) = conn.queues.get_mut(index) else { return progress };
        loop {
            if progress.handled >= budget {
                progress.more = true;
                break;
            }
            let entry = match q.ring.next_request() {
                Next::Request(entry) => entry,
                Next::Broken => break,
                Next::Empty => {
                    if q.ring.final_check_for_requests() {
                        continue;
                    }
                    break;
                }
            };
            let (id, op, status) = match blkif::parse_request(abi, &entry, MAX_INDIRECT_SEGMENTS) {
                Ok(req) => (req.id(), req.op(), self.exec.execute(&req)),
                Err(rej) => {
                    self.exec.note_failure(rej.id, &rej.why);
                    (rej.id, rej.op, blkif::RSP_ERROR)
                }
            };
            q.ring.put_response(&blkif::encode_response(abi, id, op, status));
            progress.handled += 1;
            // Publish in batches so the frontend can complete early requests.
            if progress.handled % 16 == 0 {
                progress.notify |= q.ring.push_responses();
            }
        }
        progress.notify |= q.ring.push_responses();
        progress
    }

    /// The ring's size and private indices `(size, req_cons, rsp_prod_pvt)`
    /// while connected (for the fuzz harness).
    #[doc(hidden)]
    pub fn ring_indices(&self) -> Option<(u32, u32, u32)> {
        self.conn.as_ref().and_then(|c| c.queues.first()).map(|q| {
            let (cons, prod) = q.ring.indices();
            (q.ring.size(), cons, prod)
        })
    }

    /// Whether the ring was stopped because of impossible indices.
    pub fn ring_broken(&self) -> bool {
        self.conn.as_ref().is_some_and(|c| c.queues.iter().any(|q| q.ring.broken()))
    }
}

impl HandshakeDevice for BlockBackend {
    type Params = FrontendParams;
    type Error = ConnectError;
    fn handshake(&mut self) -> (&mut Handshake, StoreClient) {
        (&mut self.handshake, self.client)
    }
    fn read_params(hs: &Handshake, xs: &mut Xenstore, client: &StoreClient) -> Result<FrontendParams, ConnectError> {
        read_params(hs, xs, client)
    }
    fn no_params() -> ConnectError {
        ConnectError::Node("state".into())
    }
    fn connect_frontend(&mut self, p: FrontendParams) -> Result<(), ConnectError> {
        self.connect(&p)
    }
    fn disconnect_frontend(&mut self) {
        self.disconnect();
    }
}

impl Drop for BlockBackend {
    fn drop(&mut self) {
        self.disconnect();
    }
}

fn read_params(hs: &Handshake, xs: &mut Xenstore, client: &StoreClient) -> Result<FrontendParams, ConnectError> {
    let mut read = |name: &str| hs.frontend_node(xs, client, name);
    let queues = match read("multi-queue-num-queues") {
        Some(q) => number(Some(q), "multi-queue-num-queues")?,
        None => 1,
    };
    if !(1..=MAX_QUEUES).contains(&queues) {
        return Err(ConnectError::Queues(queues));
    }
    let order = match read("ring-page-order") {
        Some(v) => number(Some(v), "ring-page-order")?,
        None => 0,
    };
    if order > MAX_RING_PAGE_ORDER {
        return Err(ConnectError::RingOrder(order));
    }
    let mut params = Vec::new();
    for q in 0..queues {
        // One ring keeps the flat layout; several live under queue-N/.
        let dir = if queues == 1 { String::new() } else { format!("queue-{q}/") };
        params.push(read_queue(&mut read, &dir, order)?);
    }
    let abi = Abi::from_protocol(read("protocol").as_deref())?;
    let persistent = read("feature-persistent").is_some_and(|v| v.trim() == "1");
    Ok(FrontendParams { queues: params, abi, persistent })
}

fn number(v: Option<String>, name: &str) -> Result<u32, ConnectError> {
    v.and_then(|s| s.trim().parse().ok()).ok_or_else(|| ConnectError::Node(name.to_owned()))
}

fn read_queue(read: &mut impl FnMut(&str) -> Option<String>, dir: &str, order: u32) -> Result<QueueParams, ConnectError> {
    let mut ring_refs = Vec::new();
    if order == 0 {
        let single = read(&format!("{dir}ring-ref")).or_else(|| read(&format!("{dir}ring-ref0")));
        ring_refs.push(number(single, &format!("{dir}ring-ref"))?);
    } else {
        for i in 0..(1u32 << order) {
            let name = format!("{dir}ring-ref{i}");
            ring_refs.push(number(read(&name), &name)?);
        }
    }
    let name = format!("{dir}event-channel");
    let event_channel = number(read(&name), &name)?;
    Ok(QueueParams { ring_refs, event_channel })
}
