//! The whole engine to bytes and back, for snapshots and migration: nodes with
//! permissions and generations, domains, connections with their watches, open
//! transactions (with their private node versions) and queued output.
//!
//! The format is this crate's own, little-endian and length-prefixed:
//! `"XKVMXS\0\0"`, a `u32` version, then the sections in a fixed order (maps
//! in key order, so equal states give equal bytes). A snapshot is untrusted
//! input like any guest data: every count is checked against the bytes left
//! before anything is allocated, enums and flags are validated, trailing bytes
//! are refused, and the restored store must pass [`crate::store::Store::check`].
//!
//! Socket connections are saved too; a VMM restoring on another host simply
//! disconnects the ones it does not re-attach.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use crate::conn::{ConnId, ConnKind, Connection, Domain, Outgoing};
use crate::engine::Xenstore;
use crate::node::Node;
use crate::perms::{Access, Perm, Perms};
use crate::quota::{Quotas, QUOTA_NAMES};
use crate::store::Store;
use crate::transaction::{Accessed, Transaction};
use crate::watch::{Watch, WatchMatch};
use crate::wire::Message;

const MAGIC: &[u8; 8] = b"XKVMXS\0\0";
const VERSION: u32 = 1;

/// Why a snapshot was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotError {
    #[error("snapshot truncated")]
    Truncated,
    #[error("not a xenstore snapshot")]
    BadMagic,
    #[error("unsupported snapshot version {0}")]
    BadVersion(u32),
    #[error("invalid snapshot: {0}")]
    Invalid(String),
    #[error("{0} bytes after the end of the snapshot")]
    Trailing(usize),
}

fn invalid(what: &str) -> SnapshotError {
    SnapshotError::Invalid(what.to_string())
}

#[derive(Default)]
struct W(Vec<u8>);

impl W {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn bool(&mut self, v: bool) {
        self.u8(u8::from(v));
    }
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn len(&mut self, n: usize) {
        self.u32(u32::try_from(n).unwrap_or(u32::MAX));
    }
    fn bytes(&mut self, b: &[u8]) {
        self.len(b.len());
        self.0.extend_from_slice(b);
    }
    fn opt_u32(&mut self, v: Option<u32>) {
        self.bool(v.is_some());
        self.u32(v.unwrap_or(0));
    }
}

struct R<'a> {
    b: &'a [u8],
}

impl<'a> R<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], SnapshotError> {
        if n > self.b.len() {
            return Err(SnapshotError::Truncated);
        }
        let (head, tail) = self.b.split_at(n);
        self.b = tail;
        Ok(head)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], SnapshotError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }
    fn u8(&mut self) -> Result<u8, SnapshotError> {
        let [b] = self.array::<1>()?;
        Ok(b)
    }
    fn bool(&mut self) -> Result<bool, SnapshotError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(invalid("flag")),
        }
    }
    fn u32(&mut self) -> Result<u32, SnapshotError> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    fn u64(&mut self) -> Result<u64, SnapshotError> {
        Ok(u64::from_le_bytes(self.array()?))
    }
    /// A count of items each at least `min` bytes long.
    fn count(&mut self, min: usize) -> Result<usize, SnapshotError> {
        let n = self.u32()? as usize;
        if n.saturating_mul(min.max(1)) > self.b.len() {
            return Err(SnapshotError::Truncated);
        }
        Ok(n)
    }
    fn bytes(&mut self) -> Result<Vec<u8>, SnapshotError> {
        let n = self.count(1)?;
        Ok(self.take(n)?.to_vec())
    }
    fn string(&mut self) -> Result<String, SnapshotError> {
        String::from_utf8(self.bytes()?).map_err(|_| invalid("string"))
    }
    fn opt_u32(&mut self) -> Result<Option<u32>, SnapshotError> {
        let some = self.bool()?;
        let v = self.u32()?;
        Ok(some.then_some(v))
    }
}

fn put_perms(w: &mut W, p: &Perms) {
    w.len(p.len());
    for e in p.entries() {
        w.u32(e.domid);
        w.u8(e.access.bits());
        w.bool(e.ignored);
    }
}

fn get_perms(r: &mut R<'_>) -> Result<Perms, SnapshotError> {
    let n = r.count(6)?;
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        let domid = r.u32()?;
        let access = match r.u8()? {
            0 => Access::NONE,
            1 => Access::READ,
            2 => Access::WRITE,
            3 => Access::BOTH,
            _ => return Err(invalid("access bits")),
        };
        v.push(Perm { domid, access, ignored: r.bool()? });
    }
    Perms::from_vec(v).ok_or_else(|| invalid("empty permissions"))
}

fn put_node(w: &mut W, n: &Node) {
    w.bytes(&n.value);
    w.len(n.children.len());
    for c in &n.children {
        w.bytes(c.as_bytes());
    }
    put_perms(w, &n.perms);
    w.u64(n.generation);
}

fn get_node(r: &mut R<'_>) -> Result<Node, SnapshotError> {
    let value = r.bytes()?;
    let n = r.count(4)?;
    let mut children = Vec::with_capacity(n);
    for _ in 0..n {
        let c = r.string()?;
        if c.is_empty() || c.contains('/') || !crate::path::valid_chars(c.as_bytes()) {
            return Err(invalid("child name"));
        }
        children.push(c);
    }
    let perms = get_perms(r)?;
    Ok(Node { value, children, perms, generation: r.u64()? })
}

fn put_quotas(w: &mut W, q: &Quotas) {
    for name in QUOTA_NAMES {
        w.u32(q.get(name).unwrap_or(0));
    }
}

fn get_quotas(r: &mut R<'_>) -> Result<Quotas, SnapshotError> {
    let mut q = Quotas::unlimited();
    for name in QUOTA_NAMES {
        q.set(name, r.u32()?);
    }
    Ok(q)
}

fn match_code(m: WatchMatch) -> u8 {
    match m {
        WatchMatch::Exact => 0,
        WatchMatch::Subtree => 1,
        WatchMatch::Depth => 2,
        WatchMatch::NoDepth => 3,
    }
}

fn match_from(c: u8) -> Result<WatchMatch, SnapshotError> {
    Ok(match c {
        0 => WatchMatch::Exact,
        1 => WatchMatch::Subtree,
        2 => WatchMatch::Depth,
        3 => WatchMatch::NoDepth,
        _ => return Err(invalid("watch match")),
    })
}

fn put_tx(w: &mut W, t: &Transaction) {
    w.u32(t.id);
    w.bool(t.failed);
    w.bool(t.node_created);
    w.len(t.accessed.len());
    for (path, a) in &t.accessed {
        w.bytes(path.as_bytes());
        w.u64(a.base_gen);
        w.bool(a.check_gen);
        w.bool(a.modified);
        w.bool(a.node.is_some());
        if let Some(n) = &a.node {
            put_node(w, n);
        }
        w.u8(a.fire.map_or(0xff, match_code));
        w.bool(a.old_perms.is_some());
        if let Some(p) = &a.old_perms {
            put_perms(w, p);
        }
    }
    w.len(t.owner_delta.len());
    for (d, v) in &t.owner_delta {
        w.u32(*d);
        w.u64(*v as u64);
    }
}

fn get_tx(r: &mut R<'_>) -> Result<Transaction, SnapshotError> {
    let mut t = Transaction::new(r.u32()?);
    t.failed = r.bool()?;
    t.node_created = r.bool()?;
    for _ in 0..r.count(16)? {
        let path = r.string()?;
        let base_gen = r.u64()?;
        let check_gen = r.bool()?;
        let modified = r.bool()?;
        let node = if r.bool()? { Some(get_node(r)?) } else { None };
        let fire = match r.u8()? {
            0xff => None,
            c => Some(match_from(c)?),
        };
        let old_perms = if r.bool()? { Some(get_perms(r)?) } else { None };
        t.accessed.insert(path, Accessed { base_gen, check_gen, modified, node, fire, old_perms });
    }
    for _ in 0..r.count(12)? {
        let d = r.u32()?;
        t.owner_delta.insert(d, r.u64()? as i64);
    }
    Ok(t)
}

fn put_conn(w: &mut W, c: &Connection) {
    w.u64(c.id.0);
    match c.kind {
        ConnKind::Socket => w.opt_u32(None),
        ConnKind::Domain(d) => w.opt_u32(Some(d)),
    }
    w.len(c.watches.len());
    for wt in &c.watches {
        w.bytes(wt.path.as_bytes());
        w.bytes(&wt.token);
        w.opt_u32(wt.depth);
        w.len(wt.prefix_len);
    }
    w.len(c.transactions.len());
    for t in c.transactions.values() {
        put_tx(w, t);
    }
    w.u32(c.next_tx_id);
    w.len(c.outbox.len());
    for o in &c.outbox {
        w.u32(o.msg.ty);
        w.u32(o.msg.req_id);
        w.u32(o.msg.tx_id);
        w.bytes(&o.msg.payload);
        w.bool(o.is_reply);
    }
    w.u64(c.dropped_events);
    w.opt_u32(c.target);
    w.u64(c.epoch);
}

fn get_conn(r: &mut R<'_>) -> Result<Connection, SnapshotError> {
    let id = ConnId(r.u64()?);
    let kind = match r.opt_u32()? {
        None => ConnKind::Socket,
        Some(d) => ConnKind::Domain(d),
    };
    let mut c = Connection::new(id, kind);
    for _ in 0..r.count(13)? {
        let path = r.string()?;
        let token = r.bytes()?;
        let depth = r.opt_u32()?;
        let prefix_len = r.u32()? as usize;
        if prefix_len > path.len() {
            return Err(invalid("watch prefix"));
        }
        c.watches.push(Watch { path, token, depth, prefix_len });
    }
    for _ in 0..r.count(14)? {
        let t = get_tx(r)?;
        if t.id == 0 || c.transactions.insert(t.id, t).is_some() {
            return Err(invalid("transaction id"));
        }
    }
    c.next_tx_id = r.u32()?;
    let mut outbox = VecDeque::new();
    for _ in 0..r.count(17)? {
        let (ty, req_id, tx_id) = (r.u32()?, r.u32()?, r.u32()?);
        let payload = r.bytes()?;
        if payload.len() > crate::wire::XENSTORE_PAYLOAD_MAX {
            return Err(invalid("queued message too long"));
        }
        outbox.push_back(Outgoing { msg: Message { ty, req_id, tx_id, payload }, is_reply: r.bool()? });
    }
    for o in outbox {
        c.push(o.msg, o.is_reply);
    }
    c.dropped_events = r.u64()?;
    c.target = r.opt_u32()?;
    c.epoch = r.u64()?;
    Ok(c)
}

impl Xenstore {
    /// The whole state as bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = W::default();
        w.0.extend_from_slice(MAGIC);
        w.u32(VERSION);
        w.u64(self.store.generation());
        let nodes = self.store.iter_sorted();
        w.len(nodes.len());
        for (path, n) in nodes {
            w.bytes(path.as_bytes());
            put_node(&mut w, n);
        }
        put_quotas(&mut w, &self.quotas);
        w.len(self.domains.len());
        for d in self.domains.values() {
            w.u32(d.domid);
            w.u64(d.generation);
            w.bool(d.introduced);
            w.bool(d.shutdown);
            w.bool(d.conn.is_some());
            w.u64(d.conn.map_or(0, |c| c.0));
            w.u32(d.features);
            put_quotas(&mut w, &d.quotas);
            w.u64(d.ring_gfn);
            w.u32(d.port);
        }
        w.len(self.conns.len());
        for c in self.conns.values() {
            put_conn(&mut w, c);
        }
        w.u64(self.next_conn);
        w.0
    }

    /// Restores a state saved by [`Xenstore::to_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Xenstore, SnapshotError> {
        let mut r = R { b: bytes };
        if r.take(MAGIC.len())? != MAGIC {
            return Err(SnapshotError::BadMagic);
        }
        let version = r.u32()?;
        if version != VERSION {
            return Err(SnapshotError::BadVersion(version));
        }
        let mut store = Store::empty();
        let generation = r.u64()?;
        for _ in 0..r.count(30)? {
            let path = r.string()?;
            let ok = path == "/"
                || crate::path::canonicalize(path.as_bytes(), "/", true, None).is_ok_and(|(p, rel)| p == path && !rel);
            if !ok || store.contains(&path) {
                return Err(invalid("node path"));
            }
            let node = get_node(&mut r)?;
            if node.generation > generation {
                return Err(invalid("node generation"));
            }
            store.put(path, node);
        }
        store.set_generation(generation);
        store.check().map_err(SnapshotError::Invalid)?;
        let quotas = get_quotas(&mut r)?;
        let mut domains = BTreeMap::new();
        for _ in 0..r.count(40)? {
            let domid = r.u32()?;
            let mut d = Domain::new(domid, r.u64()?, quotas);
            d.introduced = r.bool()?;
            d.shutdown = r.bool()?;
            let has_conn = r.bool()?;
            let conn = r.u64()?;
            d.conn = has_conn.then_some(ConnId(conn));
            d.features = r.u32()?;
            d.quotas = get_quotas(&mut r)?;
            d.ring_gfn = r.u64()?;
            d.port = r.u32()?;
            if domains.insert(domid, d).is_some() {
                return Err(invalid("duplicate domain"));
            }
        }
        let mut conns = BTreeMap::new();
        for _ in 0..r.count(30)? {
            let c = get_conn(&mut r)?;
            if conns.insert(c.id, c).is_some() {
                return Err(invalid("duplicate connection"));
            }
        }
        let next_conn = r.u64()?;
        if !r.b.is_empty() {
            return Err(SnapshotError::Trailing(r.b.len()));
        }
        if conns.keys().any(|c| c.0 >= next_conn) || !domains.contains_key(&crate::conn::PRIV_DOMID) {
            return Err(invalid("connection ids"));
        }
        let woken: BTreeSet<ConnId> = conns.values().filter(|c| !c.outbox.is_empty()).map(|c| c.id).collect();
        let xs = Xenstore { store, conns, domains, quotas, next_conn, woken };
        xs.check().map_err(SnapshotError::Invalid)?;
        Ok(xs)
    }
}
