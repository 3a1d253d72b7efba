//! The PV network backend (netback's role): one virtual interface (`vif`)
//! of the guest, its tx and rx rings, and a [`NetDevice`] (a tap in the VMM)
//! on the other side.
//!
//! Driven like the block backend from one thread, never holding the store
//! lock and the domain lock at once:
//!
//! 1. [`NetBackend::create`] writes the toolstack's nodes (`mac`, `handle`,
//!    ...), publishes the features and goes to InitWait;
//! 2. [`NetBackend::xenbus`] runs the handshake: the frontend's ring
//!    references, event channel and features are read under the store lock,
//!    the rings mapped and the channel bound under the domain lock;
//! 3. [`NetBackend::process_tx`] sends the guest's packets to the device;
//!    [`NetBackend::receive`] copies a frame from the device into the guest.
//!
//! Offered: `feature-rx-copy` (rx-flip is not), `feature-sg`,
//! `feature-gso-tcpv4`/`-tcpv6`, `feature-ipv6-csum-offload`, and up to
//! [`MAX_QUEUES`] queues (`multi-queue-max-queues`), each a tx and an rx ring
//! with one event channel for both; the frontend must set `request-rx-copy`
//! and `feature-rx-notify`. Every queue's tx ring is served; a received frame
//! goes to the queue its IPv4 flow hashes to, so one flow stays in order.

mod offload;
mod rx;
mod tx;

pub use offload::{complete, fold, l4_checksum_ok, parse_l4, setup_partial, sum_words, Gso, GsoKind, Offload, PartialCsum, L4};
pub use rx::{Delivery, RxCaps};
pub use tx::{take_packet, Take, TxPacket};

use std::io;

use xenkvm_xen_core::gnttab::GrantAccess;
use xenkvm_xenstore::Xenstore;

use crate::grants::{DomainGrants, Mapped};
use crate::netif::{self, RSP_ERROR, RSP_OKAY, RX_ENTRY_SIZE, TX_ENTRY_SIZE};
use crate::ring::BackRing;
use crate::xenbus::{
    create_device, run_handshake, DevicePaths, Handshake, HandshakeDevice, Step, StoreClient, StoreError, StoreStep, XenbusState,
};

/// The network on the host side of a vif.
pub trait NetDevice: Send {
    /// Sends one guest frame with its offload metadata.
    fn send(&mut self, frame: &[u8], offload: &Offload) -> io::Result<()>;
    /// The frontend connected and takes these offloads on receive: what the
    /// device may hand over from now on (a tap's `TUNSETOFFLOAD`).
    fn set_offloads(&mut self, caps: &RxCaps) -> io::Result<()>;
}

/// What the toolstack knows about the vif.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VifOptions {
    /// The device id (`handle`): 0 for the first NIC.
    pub devid: u32,
    pub mac: [u8; 6],
    /// The host interface, for the `bridge`-like description nodes.
    pub ifname: String,
}

/// Queues offered to the frontend (`multi-queue-max-queues`).
pub const MAX_QUEUES: u32 = 4;

/// One queue's rings and event channel as the frontend published them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueRefs {
    pub tx_ring_ref: u32,
    pub rx_ring_ref: u32,
    pub event_channel: u32,
}

/// What the frontend published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrontendParams {
    /// At least one, at most [`MAX_QUEUES`].
    pub queues: Vec<QueueRefs>,
    pub caps: RxCaps,
}

/// A frontend whose parameters cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectError {
    #[error("missing or invalid frontend node {0}")]
    Node(String),
    #[error("frontend does not request rx-copy; rx-flip is not supported")]
    RxFlip,
    #[error("feature-rx-notify is mandatory")]
    RxNotify,
    #[error("{0} queues requested; 1 to {MAX_QUEUES} are supported")]
    Queues(u32),
    #[error("split event channels were not offered")]
    SplitEventChannels,
    #[error("ring pages: {0}")]
    MapRing(crate::grants::MapGrantError),
    #[error("event channel {0}: {1:?}")]
    BindEventChannel(u32, xenkvm_xen_abi::errno::XenErrno),
}

/// Counters of what the backend did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    pub tx_packets: u64,
    pub tx_bytes: u64,
    /// Packets answered with an error (bad slots, bad grants).
    pub tx_errors: u64,
    /// Packets answered OKAY but not sent (bad offload headers, device errors).
    pub tx_dropped: u64,
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub rx_dropped: u64,
    /// Frames with a slot whose grant could not be written.
    pub rx_errors: u64,
    /// Times the frontend was disabled for a fatal protocol error.
    pub fatal: u64,
}

/// What one [`NetBackend::process_tx`] call did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Packets taken off the tx rings.
    pub handled: usize,
    /// The frontend should get an event (on the queues of `notify_queues`).
    pub notify: bool,
    /// Bit n: queue n's event channel should fire.
    pub notify_queues: u32,
    /// Packets are left (the budget ran out).
    pub more: bool,
}

struct Queue {
    tx: BackRing,
    rx: BackRing,
    port: u32,
}

struct Connection {
    queues: Vec<Queue>,
    ring_pages: Vec<Mapped>,
    caps: RxCaps,
    /// A fatal protocol error disabled the interface until reconnection.
    disabled: bool,
}

/// One virtual network interface.
pub struct NetBackend {
    handshake: Handshake,
    client: StoreClient,
    opts: VifOptions,
    dev: Box<dyn NetDevice>,
    grants: DomainGrants,
    conn: Option<Connection>,
    stats: Stats,
    frame: Vec<u8>,
    logged: u64,
}

impl NetBackend {
    /// Creates the vif's nodes as the toolstack does and publishes the
    /// backend's features (state InitWait). `domid` is the guest's.
    pub fn create(
        xs: &mut Xenstore,
        domid: u32,
        opts: VifOptions,
        dev: Box<dyn NetDevice>,
        grants: DomainGrants,
    ) -> Result<Self, StoreError> {
        let client = StoreClient::connect(xs);
        let paths = DevicePaths::new("vif", domid, opts.devid);
        let mac = netif::format_mac(&opts.mac);
        let backend_nodes = [
            ("handle", opts.devid.to_string()),
            ("mac", mac.clone()),
            ("type", "vif".to_string()),
            ("bridge", opts.ifname.clone()),
            ("script", "no".into()),
            ("hotplug-status", "connected".into()),
        ];
        let frontend_nodes = [("handle", opts.devid.to_string()), ("mac", mac)];
        create_device(xs, &client, &paths, &backend_nodes, &frontend_nodes)?;
        let mut backend = Self {
            handshake: Handshake::new(paths),
            client,
            opts,
            dev,
            grants,
            conn: None,
            stats: Stats::default(),
            frame: Vec::new(),
            logged: 0,
        };
        backend.handshake.init_wait(xs, &client, &Self::features())?;
        Ok(backend)
    }

    /// The nodes the backend publishes before the frontend connects.
    fn features() -> Vec<(&'static str, String)> {
        [
            "feature-rx-copy",
            "feature-sg",
            "feature-gso-tcpv4",
            "feature-gso-tcpv6",
            "feature-ipv6-csum-offload",
        ]
        .into_iter()
        .map(|k| (k, "1".to_string()))
        .chain([("feature-rx-flip", "0".to_string()), ("multi-queue-max-queues", MAX_QUEUES.to_string())])
        .collect()
    }

    pub fn paths(&self) -> &DevicePaths {
        &self.handshake.paths
    }

    pub fn options(&self) -> &VifOptions {
        &self.opts
    }

    pub fn state(&self) -> XenbusState {
        self.handshake.state()
    }

    /// The backend end of the first queue's event channel, while connected.
    pub fn port(&self) -> Option<u32> {
        self.conn.as_ref().and_then(|c| c.queues.first()).map(|q| q.port)
    }

    /// The backend ends of every queue's event channel, in queue order.
    pub fn ports(&self) -> Vec<u32> {
        self.conn.as_ref().map(|c| c.queues.iter().map(|q| q.port).collect()).unwrap_or_default()
    }

    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// What the connected frontend takes on receive.
    pub fn caps(&self) -> Option<RxCaps> {
        self.conn.as_ref().map(|c| c.caps)
    }

    /// Whether a fatal protocol error disabled the interface.
    pub fn disabled(&self) -> bool {
        self.conn.as_ref().is_some_and(|c| c.disabled)
    }

    /// The tx ring's size and private indices `(size, req_cons,
    /// rsp_prod_pvt)` while connected (for the fuzz harness).
    #[doc(hidden)]
    pub fn tx_ring_indices(&self) -> Option<(u32, u32, u32)> {
        self.conn.as_ref().and_then(|c| c.queues.first()).map(|q| {
            let (cons, prod) = q.tx.indices();
            (q.tx.size(), cons, prod)
        })
    }

    /// Whether frames can go to the guest (connected and not disabled).
    pub fn carrier(&self) -> bool {
        self.conn.as_ref().is_some_and(|c| !c.disabled)
    }

    /// Runs the handshake one step; `with_store` runs a closure with the
    /// store locked. Returns whether the connection changed.
    pub fn xenbus<F>(&mut self, with_store: F) -> Result<bool, StoreError>
    where
        F: FnMut(&mut StoreStep<'_>) -> Result<Option<Step>, StoreError>,
    {
        run_handshake(self, with_store)
    }

    /// Maps every queue's rings, binds their event channels and tells the
    /// device the offloads the frontend takes. All or nothing.
    pub fn connect(&mut self, p: &FrontendParams) -> Result<(), ConnectError> {
        self.disconnect();
        let n = u32::try_from(p.queues.len()).unwrap_or(u32::MAX);
        if !(1..=MAX_QUEUES).contains(&n) {
            return Err(ConnectError::Queues(n));
        }
        let refs: Vec<_> =
            p.queues.iter().flat_map(|q| [(q.tx_ring_ref, GrantAccess::Write), (q.rx_ring_ref, GrantAccess::Write)]).collect();
        let ring_pages = self.grants.map(&refs).map_err(ConnectError::MapRing)?;
        let ports = match self.bind_all(&p.queues) {
            Ok(ports) => ports,
            Err(e) => {
                self.grants.unmap(&ring_pages);
                return Err(e);
            }
        };
        let ram = self.grants.ram().clone();
        let gfn = |i: usize| ring_pages.get(i).map(|m| m.gfn).into_iter().collect::<Vec<_>>();
        let queues = ports
            .iter()
            .enumerate()
            .map(|(i, &port)| Queue {
                tx: BackRing::attach(ram.clone(), gfn(2 * i), TX_ENTRY_SIZE),
                rx: BackRing::attach(ram.clone(), gfn(2 * i + 1), RX_ENTRY_SIZE),
                port,
            })
            .collect();
        if let Err(e) = self.dev.set_offloads(&p.caps) {
            tracing::warn!("{}: cannot set the device's offloads: {e}", self.handshake.paths.backend);
        }
        tracing::info!(
            "{}: connected ({}), {n} queue(s), event channels {:?}, {:?}",
            self.handshake.paths.backend,
            netif::format_mac(&self.opts.mac),
            p.queues.iter().map(|q| q.event_channel).collect::<Vec<_>>(),
            p.caps
        );
        self.conn = Some(Connection { queues, ring_pages, caps: p.caps, disabled: false });
        Ok(())
    }

    /// Binds every queue's channel, or none (those bound are closed again).
    fn bind_all(&self, queues: &[QueueRefs]) -> Result<Vec<u32>, ConnectError> {
        let mut d = self.grants.domain().lock().map_err(|_| ConnectError::Node("domain".into()))?;
        let mut ports = Vec::with_capacity(queues.len());
        for q in queues {
            match d.backend_bind_interdomain(q.event_channel) {
                Ok(port) => ports.push(port),
                Err(e) => {
                    for port in ports {
                        let _ = d.backend_close(port);
                    }
                    return Err(ConnectError::BindEventChannel(q.event_channel, e));
                }
            }
        }
        Ok(ports)
    }

    /// Unpins the rings and closes the event channels (idempotent).
    pub fn disconnect(&mut self) {
        if let Some(c) = self.conn.take() {
            self.grants.unmap(&c.ring_pages);
            if let Ok(mut d) = self.grants.domain().lock() {
                for q in &c.queues {
                    let _ = d.backend_close(q.port);
                }
            }
            tracing::info!("{}: disconnected", self.handshake.paths.backend);
        }
    }

    fn note(&mut self, what: &dyn std::fmt::Display) {
        self.logged += 1;
        if self.logged <= 8 || self.logged.is_power_of_two() {
            tracing::warn!("{}: {what} ({} so far)", self.handshake.paths.backend, self.logged);
        }
    }

    /// Sends up to `budget` of the guest's packets to the device, taken
    /// from every queue in turn.
    pub fn process_tx(&mut self, budget: usize) -> Progress {
        let mut progress = Progress::default();
        let queues = self.conn.as_ref().map_or(0, |c| c.queues.len());
        for index in 0..queues {
            let left = budget.saturating_sub(progress.handled);
            let q = self.process_tx_queue(index, left);
            progress.handled += q.handled;
            progress.more |= q.more;
            if q.notify {
                progress.notify = true;
                progress.notify_queues |= 1 << index;
            }
        }
        progress
    }

    /// [`NetBackend::process_tx`] for queue `index` alone.
    fn process_tx_queue(&mut self, index: usize, budget: usize) -> Progress {
        let mut progress = Progress::default();
        while let Some(conn) = self.conn.as_mut().filter(|c| !c.disabled) {
            let Some(q) = conn.queues.get_mut(index) else { break };
            if progress.handled >= budget {
                progress.more = true;
                break;
            }
            let packet = match take_packet(&mut q.tx) {
                Take::Packet(p) => p,
                Take::Empty => {
                    if q.tx.final_check_for_requests() {
                        continue;
                    }
                    break;
                }
                Take::Fatal(why) => {
                    conn.disabled = true;
                    self.stats.fatal += 1;
                    tracing::error!("{}: fatal error, disabling the interface: {why}", self.handshake.paths.backend);
                    break;
                }
            };
            progress.handled += 1;
            let status = self.transmit(&packet);
            let Some(q) = self.conn.as_mut().and_then(|c| c.queues.get_mut(index)) else { break };
            for rsp in packet.responses(status) {
                q.tx.put_response(&rsp);
            }
            if progress.handled % 32 == 0 {
                progress.notify |= q.tx.push_responses();
            }
        }
        if let Some(q) = self.conn.as_mut().and_then(|c| c.queues.get_mut(index)) {
            progress.notify |= q.tx.push_responses();
        }
        progress
    }

    /// Copies one packet out of the guest and hands it to the device;
    /// returns the status its slots get.
    fn transmit(&mut self, packet: &TxPacket) -> i16 {
        if let Some(why) = packet.drop {
            self.stats.tx_errors += 1;
            self.note(&format_args!("tx packet dropped: {why}"));
            return RSP_ERROR;
        }
        if packet.mcast {
            return RSP_OKAY;
        }
        let mut frame = std::mem::take(&mut self.frame);
        frame.clear();
        let copied = self.grants.domain().lock().map_err(|_| "domain lock").and_then(|mut d| {
            for s in &packet.slots {
                let start = frame.len();
                frame.resize(start + usize::from(s.size), 0);
                let dst = frame.get_mut(start..).ok_or("frame")?;
                d.grant_read(s.gref, usize::from(s.offset), dst).map_err(|_| "unreadable grant")?;
            }
            Ok(())
        });
        let status = match copied {
            Err(why) => {
                self.stats.tx_errors += 1;
                self.note(&format_args!("tx packet dropped: {why}"));
                RSP_ERROR
            }
            Ok(()) => {
                match tx::offload(packet, &mut frame) {
                    Ok(off) => match self.dev.send(&frame, &off) {
                        Ok(()) => {
                            self.stats.tx_packets += 1;
                            self.stats.tx_bytes += frame.len() as u64;
                        }
                        Err(e) => {
                            self.stats.tx_dropped += 1;
                            self.note(&format_args!("device send failed: {e}"));
                        }
                    },
                    Err(why) => {
                        self.stats.tx_dropped += 1;
                        self.note(&format_args!("tx packet dropped: {why}"));
                    }
                }
                RSP_OKAY
            }
        };
        self.frame = frame;
        status
    }

    /// Offers one frame from the device to the guest. The responses become
    /// visible with [`NetBackend::finish_rx`].
    pub fn receive(&mut self, frame: &[u8], off: &Offload) -> Delivery {
        let Some(conn) = self.conn.as_mut() else { return Delivery::Dropped("not connected") };
        if conn.disabled {
            return Delivery::Dropped("interface disabled");
        }
        let mut buf = std::mem::take(&mut self.frame);
        buf.clear();
        buf.extend_from_slice(frame);
        let index = rx_queue(frame, conn.queues.len());
        let Some(q) = conn.queues.get_mut(index) else { return Delivery::Dropped("no queue") };
        let result = match rx::prepare(&mut buf, off, &conn.caps) {
            Err(why) => Delivery::Dropped(why),
            Ok(p) => match rx::copy_to_guest(&mut q.rx, self.grants.domain(), &buf, &p) {
                None => Delivery::NoRoom,
                Some(c) if c.failed_slots > 0 => {
                    self.stats.rx_errors += 1;
                    Delivery::Delivered
                }
                Some(_) => {
                    self.stats.rx_packets += 1;
                    self.stats.rx_bytes += frame.len() as u64;
                    Delivery::Delivered
                }
            },
        };
        self.frame = buf;
        if let Delivery::Dropped(why) = result {
            self.stats.rx_dropped += 1;
            if self.carrier() {
                self.note(&format_args!("rx frame of {} bytes dropped: {why}", frame.len()));
            }
        }
        result
    }

    /// Publishes the rx responses queued so far; bit n: queue n's frontend
    /// wants an event.
    pub fn finish_rx(&mut self) -> u32 {
        let Some(c) = self.conn.as_mut() else { return 0 };
        c.queues.iter_mut().enumerate().fold(0, |mask, (i, q)| if q.rx.push_responses() { mask | 1 << i } else { mask })
    }
}

impl HandshakeDevice for NetBackend {
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

impl Drop for NetBackend {
    fn drop(&mut self) {
        self.disconnect();
    }
}

fn read_params(hs: &Handshake, xs: &mut Xenstore, client: &StoreClient) -> Result<FrontendParams, ConnectError> {
    let mut read = |name: &str| hs.frontend_node(xs, client, name);
    let number = |v: Option<String>, name: &str| -> Result<u32, ConnectError> {
        v.and_then(|s| s.trim().parse().ok()).ok_or_else(|| ConnectError::Node(name.to_owned()))
    };
    let flag = |v: Option<String>| v.and_then(|s| s.trim().parse::<u32>().ok()).is_some_and(|n| n != 0);
    let queues = match read("multi-queue-num-queues") {
        None => 1,
        Some(q) => match number(Some(q), "multi-queue-num-queues")? {
            n @ 1..=MAX_QUEUES => n,
            n => return Err(ConnectError::Queues(n)),
        },
    };
    let mut refs = Vec::new();
    for i in 0..queues {
        // One queue may publish its nodes at the top level or under queue-0.
        let mut node = |name: &str| {
            let nested = read(&format!("queue-{i}/{name}"));
            if queues == 1 { nested.or_else(|| read(name)) } else { nested }
        };
        let name = |n: &str| if queues == 1 { n.to_string() } else { format!("queue-{i}/{n}") };
        let tx_ring_ref = number(node("tx-ring-ref"), &name("tx-ring-ref"))?;
        let rx_ring_ref = number(node("rx-ring-ref"), &name("rx-ring-ref"))?;
        let event_channel = match node("event-channel") {
            Some(v) => number(Some(v), &name("event-channel"))?,
            None if node("event-channel-tx").is_some() => return Err(ConnectError::SplitEventChannels),
            None => return Err(ConnectError::Node(name("event-channel"))),
        };
        refs.push(QueueRefs { tx_ring_ref, rx_ring_ref, event_channel });
    }
    if !flag(read("request-rx-copy")) {
        return Err(ConnectError::RxFlip);
    }
    if !flag(read("feature-rx-notify")) {
        return Err(ConnectError::RxNotify);
    }
    let sg = flag(read("feature-sg"));
    let csum_v4 = !flag(read("feature-no-csum-offload"));
    let csum_v6 = flag(read("feature-ipv6-csum-offload"));
    let caps = RxCaps {
        sg,
        csum_v4,
        csum_v6,
        gso_v4: sg && csum_v4 && flag(read("feature-gso-tcpv4")),
        gso_v6: sg && csum_v6 && flag(read("feature-gso-tcpv6")),
    };
    Ok(FrontendParams { queues: refs, caps })
}

/// The queue a received frame goes to: an IPv4 frame by a hash of its
/// addresses and (TCP/UDP) ports, so one flow keeps its order; anything
/// else to queue 0.
fn rx_queue(frame: &[u8], queues: usize) -> usize {
    if queues <= 1 || frame.get(12..14) != Some(&[0x08, 0x00]) {
        return 0;
    }
    let ihl = frame.get(14).map_or(20, |b| usize::from(b & 0x0F) * 4);
    let proto = frame.get(23).copied().unwrap_or(0);
    let addrs = frame.get(26..34).unwrap_or(&[]);
    let ports = if proto == 6 || proto == 17 { frame.get(14 + ihl..14 + ihl + 4).unwrap_or(&[]) } else { &[] };
    // FNV-1a: cheap and spreads small differences.
    let hash = addrs.iter().chain(ports).fold(0x811C_9DC5u32, |h, b| (h ^ u32::from(*b)).wrapping_mul(0x0100_0193));
    hash as usize % queues
}

