//! Connections and domains.
//!
//! A connection is one client: a guest's ring (an unprivileged domain, domid N)
//! or a unix-socket client or in-process user of the VMM (dom0, privileged).
//! Each has its watches, its open transactions and an outbox of messages
//! waiting for its transport. A domain is what xenstored knows about a domid:
//! when it became known (for stale permission entries), whether it has been
//! introduced, its features and its quotas.

use std::collections::{BTreeMap, HashMap, VecDeque};

use crate::quota::Quotas;
use crate::transaction::Transaction;
use crate::watch::Watch;
use crate::wire::Message;

/// The privileged domain: the VMM, its backends and the socket clients.
pub const PRIV_DOMID: u32 = 0;

/// Watch events queued for a privileged connection before newer ones are
/// dropped (unprivileged ones have the `watch-events` quota).
pub const PRIV_EVENT_QUEUE_MAX: u32 = 65536;

/// Base of relative paths of socket connections, as in C xenstored.
pub const SOCKET_IMPLICIT_PATH: &str = "/local/domain/65535";

/// Server features offered on guest rings (`XENSTORE_SERVER_FEATURE_*`):
/// reconnection 1, error indicator 2, watch depth 4, `DOMID_ANY` 8.
pub const FEATURE_RECONNECTION: u32 = 1;
pub const FEATURE_ERROR: u32 = 2;
pub const FEATURE_WATCHDEPTH: u32 = 4;
pub const FEATURE_DOMID_ANY: u32 = 8;
/// Every feature this implementation supports.
pub const SUPPORTED_FEATURES: u32 = FEATURE_RECONNECTION | FEATURE_ERROR | FEATURE_WATCHDEPTH | FEATURE_DOMID_ANY;

/// Identifies a connection; never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u64);

/// What kind of client a connection serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnKind {
    /// A unix-socket client or in-process user: dom0, privileged.
    Socket,
    /// A domain's ring.
    Domain(u32),
}

/// A message waiting for the transport.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    pub msg: Message,
    /// A reply (counts against the `outstanding` quota) rather than a watch event.
    pub is_reply: bool,
}

/// One client connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    pub(crate) id: ConnId,
    pub(crate) kind: ConnKind,
    pub(crate) watches: Vec<Watch>,
    pub(crate) transactions: BTreeMap<u32, Transaction>,
    pub(crate) next_tx_id: u32,
    pub(crate) outbox: VecDeque<Outgoing>,
    /// Replies in the outbox.
    pub(crate) outstanding: u32,
    /// Watch events in the outbox.
    pub(crate) queued_events: u32,
    /// Payloads of the queued watch events, to merge identical ones.
    pub(crate) pending_events: HashMap<Vec<u8>, u32>,
    /// Watch events dropped because the queue was full.
    pub(crate) dropped_events: u64,
    /// Domain this one acts for (`SET_TARGET`).
    pub(crate) target: Option<u32>,
    /// Bumped whenever the connection is reset (re-`INTRODUCE`, ring reconnect),
    /// so that its transport drops partial packets and resets the ring.
    pub(crate) epoch: u64,
}

impl Connection {
    pub(crate) fn new(id: ConnId, kind: ConnKind) -> Connection {
        Connection {
            id,
            kind,
            watches: Vec::new(),
            transactions: BTreeMap::new(),
            next_tx_id: 1,
            outbox: VecDeque::new(),
            outstanding: 0,
            queued_events: 0,
            pending_events: HashMap::new(),
            dropped_events: 0,
            target: None,
            epoch: 0,
        }
    }

    pub fn id(&self) -> ConnId {
        self.id
    }

    pub fn kind(&self) -> ConnKind {
        self.kind
    }

    /// The domain this connection speaks for.
    pub fn domid(&self) -> u32 {
        match self.kind {
            ConnKind::Socket => PRIV_DOMID,
            ConnKind::Domain(d) => d,
        }
    }

    /// Whether quotas and permission checks are waived.
    pub fn privileged(&self) -> bool {
        self.domid() == PRIV_DOMID
    }

    /// Base of relative paths.
    pub fn implicit_path(&self) -> String {
        match self.kind {
            ConnKind::Socket => SOCKET_IMPLICIT_PATH.to_string(),
            ConnKind::Domain(d) => crate::path::domain_path(d),
        }
    }

    pub fn watches(&self) -> &[Watch] {
        &self.watches
    }

    /// Ids of the open transactions.
    pub fn transaction_ids(&self) -> Vec<u32> {
        self.transactions.keys().copied().collect()
    }

    pub fn outstanding(&self) -> u32 {
        self.outstanding
    }

    pub fn dropped_events(&self) -> u64 {
        self.dropped_events
    }

    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Watch events in the outbox (the `watch-events` quota counts these).
    pub fn queued_events(&self) -> u32 {
        self.queued_events
    }

    pub fn outbox_len(&self) -> usize {
        self.outbox.len()
    }

    /// Drops watches, transactions and queued output.
    pub(crate) fn reset(&mut self) {
        self.watches.clear();
        self.transactions.clear();
        self.outbox.clear();
        self.outstanding = 0;
        self.queued_events = 0;
        self.pending_events.clear();
        self.epoch += 1;
    }

    pub(crate) fn push(&mut self, msg: Message, is_reply: bool) {
        if is_reply {
            self.outstanding += 1;
        } else {
            self.queued_events += 1;
            *self.pending_events.entry(msg.payload.clone()).or_insert(0) += 1;
        }
        self.outbox.push_back(Outgoing { msg, is_reply });
    }

    pub(crate) fn pop(&mut self) -> Option<Outgoing> {
        let o = self.outbox.pop_front()?;
        if o.is_reply {
            self.outstanding = self.outstanding.saturating_sub(1);
        } else {
            self.queued_events = self.queued_events.saturating_sub(1);
            if let Some(n) = self.pending_events.get_mut(&o.msg.payload) {
                *n -= 1;
                if *n == 0 {
                    self.pending_events.remove(&o.msg.payload);
                }
            }
        }
        Some(o)
    }
}

/// What the store knows about a domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Domain {
    pub domid: u32,
    /// Store generation when the domain became known: permission entries of
    /// nodes last written before it are stale and ignored.
    pub generation: u64,
    /// `INTRODUCE`d and not released.
    pub introduced: bool,
    /// Shut down; `@releaseDomain` has fired (`RESUME` clears it).
    pub shutdown: bool,
    /// The ring connection once introduced.
    pub conn: Option<ConnId>,
    /// Features offered on the ring (`SET_FEATURE` before introduction).
    pub features: u32,
    /// This domain's quotas.
    pub quotas: Quotas,
    /// Ring page frame and event channel given by `INTRODUCE`.
    pub ring_gfn: u64,
    pub port: u32,
}

impl Domain {
    pub(crate) fn new(domid: u32, generation: u64, quotas: Quotas) -> Domain {
        Domain {
            domid,
            generation,
            introduced: false,
            shutdown: false,
            conn: None,
            features: SUPPORTED_FEATURES,
            quotas,
            ring_gfn: 0,
            port: 0,
        }
    }
}
