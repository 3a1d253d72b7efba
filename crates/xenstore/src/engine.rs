//! The engine: connections, domains, the dispatcher and the outboxes.
//!
//! [`Xenstore::handle`] processes one request of one connection. The reply and
//! any watch events go to the outboxes of the connections concerned; `handle`
//! returns the caller's own outbox, and [`Xenstore::take_woken`] names the other
//! connections that got output (their transports should send it and, for a
//! ring, notify the guest). Everything is single-threaded and deterministic; a
//! threaded server wraps the engine in a mutex.

use std::collections::{BTreeMap, BTreeSet};

use crate::conn::{ConnId, ConnKind, Connection, Domain, PRIV_DOMID};
use crate::errno::Errno;
use crate::perms::{Access, Perms, Subject, DOMID_ANY};
use crate::quota::Quotas;
use crate::store::Store;
use crate::transaction::{Transaction, View};
use crate::wire::{Message, MsgType, XENSTORE_PAYLOAD_MAX};

/// The in-process xenstored.
#[derive(Debug, Clone)]
pub struct Xenstore {
    pub(crate) store: Store,
    pub(crate) conns: BTreeMap<ConnId, Connection>,
    pub(crate) domains: BTreeMap<u32, Domain>,
    /// Global quotas: the defaults for domains that become known.
    pub(crate) quotas: Quotas,
    pub(crate) next_conn: u64,
    pub(crate) woken: BTreeSet<ConnId>,
}

/// Per-request state handed to the operations.
pub(crate) struct OpCtx {
    pub conn: ConnId,
    pub subject: Subject,
    pub implicit: String,
    /// The caller's quotas; `None` for privileged callers.
    pub quotas: Option<Quotas>,
    pub tx: Option<Transaction>,
    /// Messages for the caller to queue after the reply (a watch's first event).
    pub after_reply: Vec<Message>,
}

impl OpCtx {
    pub fn path_max(&self) -> Option<usize> {
        self.quotas.and_then(|q| (q.path_max != 0).then_some(q.path_max as usize))
    }
}

impl Default for Xenstore {
    fn default() -> Xenstore {
        Xenstore::new(Quotas::default())
    }
}

impl Xenstore {
    /// An engine with xenstored's initial tree and the given global quotas.
    pub fn new(quotas: Quotas) -> Xenstore {
        let mut xs = Xenstore {
            store: Store::new(),
            conns: BTreeMap::new(),
            domains: BTreeMap::new(),
            quotas,
            next_conn: 1,
            woken: BTreeSet::new(),
        };
        xs.domains.insert(PRIV_DOMID, Domain::new(PRIV_DOMID, 0, quotas));
        xs
    }

    /// The committed tree.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The global quotas.
    pub fn quotas(&self) -> Quotas {
        self.quotas
    }

    pub fn connection(&self, conn: ConnId) -> Option<&Connection> {
        self.conns.get(&conn)
    }

    pub fn connections(&self) -> impl Iterator<Item = &Connection> {
        self.conns.values()
    }

    pub fn domain(&self, domid: u32) -> Option<&Domain> {
        self.domains.get(&domid)
    }

    /// The ring connection of an introduced domain.
    pub fn domain_conn(&self, domid: u32) -> Option<ConnId> {
        self.domains.get(&domid).and_then(|d| d.conn)
    }

    pub(crate) fn add_conn(&mut self, kind: ConnKind) -> ConnId {
        let id = ConnId(self.next_conn);
        self.next_conn += 1;
        self.conns.insert(id, Connection::new(id, kind));
        id
    }

    /// A privileged (dom0) connection: a unix-socket client or an in-process
    /// backend of the VMM.
    pub fn connect_privileged(&mut self) -> ConnId {
        self.add_conn(ConnKind::Socket)
    }

    /// Closes a socket connection: its watches and transactions go with it.
    /// A domain's ring connection ends with [`Xenstore::release_domain`].
    pub fn disconnect(&mut self, conn: ConnId) {
        if let Some(c) = self.conns.get(&conn) {
            if let ConnKind::Domain(domid) = c.kind {
                if let Some(d) = self.domains.get_mut(&domid) {
                    d.conn = None;
                }
            }
        }
        self.conns.remove(&conn);
        self.woken.remove(&conn);
    }

    /// Drops a connection's watches, transactions and queued output (a ring
    /// reconnect or a protocol error). Returns its new epoch.
    pub fn reset_connection(&mut self, conn: ConnId) -> Option<u64> {
        let c = self.conns.get_mut(&conn)?;
        c.reset();
        self.woken.remove(&conn);
        Some(c.epoch)
    }

    /// Makes a domain known (as the hypervisor would report it) without
    /// introducing it, so that permission entries naming it take effect. The
    /// toolstack does this before writing the domain's tree.
    pub fn create_domain(&mut self, domid: u32) {
        self.known_domain(domid);
    }

    pub(crate) fn known_domain(&mut self, domid: u32) -> &mut Domain {
        let generation = self.store.generation();
        let quotas = self.quotas;
        self.domains.entry(domid).or_insert_with(|| Domain::new(domid, generation, quotas))
    }

    /// Processes one request and returns everything queued for `conn` (the
    /// reply, and watch events, in order). Output for other connections stays
    /// in their outboxes; see [`Xenstore::take_woken`].
    pub fn handle(&mut self, conn: ConnId, msg: &Message) -> Vec<Message> {
        self.process(conn, msg);
        self.woken.remove(&conn);
        self.drain(conn)
    }

    /// Processes one request, leaving all output in the outboxes.
    pub fn process(&mut self, conn: ConnId, msg: &Message) {
        let Some(c) = self.conns.get(&conn) else { return };
        let subject = Subject { domid: c.domid(), privileged: c.privileged(), target: c.target };
        let quotas = if subject.privileged { None } else { Some(self.domain_quotas(subject.domid)) };
        let mut ctx = OpCtx { conn, subject, implicit: c.implicit_path(), quotas, tx: None, after_reply: Vec::new() };
        let result = self.dispatch(&mut ctx, msg);
        let reply = match result {
            Ok(payload) if payload.len() <= XENSTORE_PAYLOAD_MAX => Message::reply_to(msg, payload),
            Ok(_) => Message::error_to(msg, Errno::TooBig),
            Err(e) => Message::error_to(msg, e),
        };
        let Some(c) = self.conns.get_mut(&conn) else { return };
        if let Some(tx) = ctx.tx.take() {
            c.transactions.insert(tx.id, tx);
        }
        c.push(reply, true);
        for m in ctx.after_reply {
            c.push(m, false);
        }
        self.woken.insert(conn);
    }

    fn dispatch(&mut self, ctx: &mut OpCtx, msg: &Message) -> Result<Vec<u8>, Errno> {
        let ty = match msg.kind() {
            None | Some(MsgType::WatchEvent) | Some(MsgType::Error) => return Err(Errno::NoSys),
            Some(t) => t,
        };
        let privileged_only = matches!(
            ty,
            MsgType::Control
                | MsgType::Introduce
                | MsgType::Release
                | MsgType::IsDomainIntroduced
                | MsgType::Resume
                | MsgType::SetTarget
                | MsgType::SetFeature
                | MsgType::GetQuota
                | MsgType::SetQuota
        );
        if privileged_only && !ctx.subject.privileged {
            return Err(Errno::Acces);
        }
        let ignores_tx = matches!(ty, MsgType::Watch | MsgType::Unwatch);
        if !ignores_tx && msg.tx_id != 0 {
            let c = self.conns.get_mut(&ctx.conn).ok_or(Errno::Io)?;
            ctx.tx = Some(c.transactions.remove(&msg.tx_id).ok_or(Errno::NoEnt)?);
        }
        let p = msg.payload.as_slice();
        match ty {
            MsgType::Read => self.op_read(ctx, p),
            MsgType::Write => self.op_write(ctx, p),
            MsgType::Mkdir => self.op_mkdir(ctx, p),
            MsgType::Rm => self.op_rm(ctx, p),
            MsgType::Directory => self.op_directory(ctx, p),
            MsgType::DirectoryPart => self.op_directory_part(ctx, p),
            MsgType::GetPerms => self.op_get_perms(ctx, p),
            MsgType::SetPerms => self.op_set_perms(ctx, p),
            MsgType::Watch => self.op_watch(ctx, p),
            MsgType::Unwatch => self.op_unwatch(ctx, p),
            MsgType::TransactionStart => self.op_transaction_start(ctx),
            MsgType::TransactionEnd => self.op_transaction_end(ctx, p),
            MsgType::ResetWatches => self.op_reset_watches(ctx),
            MsgType::GetDomainPath => self.op_get_domain_path(p),
            MsgType::IsDomainIntroduced => self.op_is_domain_introduced(p),
            MsgType::Introduce => self.op_introduce(p),
            MsgType::Release => self.op_release(p),
            MsgType::Resume => self.op_resume(p),
            MsgType::SetTarget => self.op_set_target(p),
            MsgType::GetFeature => self.op_get_feature(ctx, p),
            MsgType::SetFeature => self.op_set_feature(p),
            MsgType::GetQuota => self.op_get_quota(p),
            MsgType::SetQuota => self.op_set_quota(p),
            MsgType::Control => self.op_control(p),
            MsgType::WatchEvent | MsgType::Error => Err(Errno::NoSys),
        }
    }

    /// The quotas binding `domid`.
    pub(crate) fn domain_quotas(&self, domid: u32) -> Quotas {
        self.domains.get(&domid).map_or(self.quotas, |d| d.quotas)
    }

    /// A view of the tree for this request (its transaction, if any).
    pub(crate) fn view<'a>(store: &'a mut Store, ctx: &'a mut OpCtx) -> View<'a> {
        let tx_limit = ctx.quotas.map_or(0, |q| q.transaction_nodes);
        View { store, tx: ctx.tx.as_mut(), tx_limit }
    }

    /// Takes the next message queued for `conn`.
    pub fn pop_output(&mut self, conn: ConnId) -> Option<Message> {
        self.conns.get_mut(&conn)?.pop().map(|o| o.msg)
    }

    /// The next message queued for `conn`, without taking it.
    pub fn peek_output(&self, conn: ConnId) -> Option<&Message> {
        self.conns.get(&conn)?.outbox.front().map(|o| &o.msg)
    }

    /// Takes everything queued for `conn`.
    pub fn drain(&mut self, conn: ConnId) -> Vec<Message> {
        let mut out = Vec::new();
        while let Some(m) = self.pop_output(conn) {
            out.push(m);
        }
        out
    }

    /// Connections that got output since the last call.
    pub fn take_woken(&mut self) -> Vec<ConnId> {
        std::mem::take(&mut self.woken).into_iter().collect()
    }

    /// Whether `conn` may read more requests: an unprivileged connection stops
    /// at its `outstanding` quota of unread replies.
    pub fn can_accept(&self, conn: ConnId) -> bool {
        let Some(c) = self.conns.get(&conn) else { return false };
        if c.privileged() {
            return true;
        }
        let limit = self.domain_quotas(c.domid()).outstanding;
        limit == 0 || c.outstanding < limit
    }

    /// Checks the store's invariants and the engine's bookkeeping (tests, `CONTROL check`).
    pub fn check(&self) -> Result<(), String> {
        self.store.check()?;
        for c in self.conns.values() {
            let replies = c.outbox.iter().filter(|o| o.is_reply).count();
            if replies != c.outstanding as usize || c.outbox.len() - replies != c.queued_events as usize {
                return Err(format!("connection {:?}: outbox counters out of step", c.id));
            }
            if c.pending_events.values().map(|n| *n as usize).sum::<usize>() != c.queued_events as usize {
                return Err(format!("connection {:?}: event index out of step", c.id));
            }
        }
        for d in self.domains.values() {
            if let Some(conn) = d.conn {
                if !self.conns.contains_key(&conn) {
                    return Err(format!("domain {}: dangling connection", d.domid));
                }
            }
        }
        Ok(())
    }
}

/// Whether the domain of an ACL entry counts for a node last written at `gen`.
pub(crate) fn live(domains: &BTreeMap<u32, Domain>, domid: u32, gen: u64) -> bool {
    domid == DOMID_ANY || domains.get(&domid).is_some_and(|d| d.generation <= gen)
}

pub(crate) fn access_with(domains: &BTreeMap<u32, Domain>, subject: &Subject, perms: &Perms, gen: u64) -> Access {
    subject.access(perms, |d| live(domains, d, gen))
}

/// Marks ACL entries whose domain does not count for a node last written at
/// `gen` as ignored, before the node is written again (`domain_adjust_node_perms`).
pub(crate) fn fold_stale(domains: &BTreeMap<u32, Domain>, perms: &mut Perms, gen: u64) {
    for p in perms.entries_mut().iter_mut().skip(1) {
        if !live(domains, p.domid, gen) {
            p.ignored = true;
        }
    }
}
