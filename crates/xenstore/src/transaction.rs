//! Transactions with fine-grained conflict detection.
//!
//! A transaction records every node it accesses, with the node's generation at
//! first access (or "absent"), and keeps its own copy of the nodes it changes.
//! Reads and writes inside the transaction see that copy; other connections see
//! nothing until commit. Commit fails with `EAGAIN` only if a node the
//! transaction read (every change reads first) has a different generation in the
//! committed tree by then, so unrelated commits and writes do not disturb it
//! (xenstored's algorithm; QEMU fails on any intervening commit). Creating a
//! node changes its parent's child list, so concurrent creations of siblings do
//! conflict. Watches fire at commit for the nodes changed.
//!
//! [`View`] is the one way operations touch nodes: directly on the store, or
//! through a transaction.

use std::collections::BTreeMap;

use crate::errno::Errno;
use crate::node::{Node, NO_GENERATION};
use crate::perms::Perms;
use crate::quota;
use crate::store::Store;
use crate::watch::WatchMatch;

/// What a transaction knows about one node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accessed {
    /// Generation in the committed tree at first access ([`NO_GENERATION`] if absent).
    pub base_gen: u64,
    /// Whether commit must find `base_gen` unchanged.
    pub check_gen: bool,
    /// Whether the transaction changed the node.
    pub modified: bool,
    /// The transaction's version (`None`: absent or deleted).
    pub node: Option<Node>,
    /// Watch event to fire at commit.
    pub fire: Option<WatchMatch>,
    /// Permissions at first access, so that a watcher losing access still hears.
    pub old_perms: Option<Perms>,
}

/// An open transaction of one connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transaction {
    pub id: u32,
    pub(crate) accessed: BTreeMap<String, Accessed>,
    /// An operation failed half-way; commit answers `ENOMEM` as xenstored does.
    pub(crate) failed: bool,
    /// A node was created (commit checks the `nodes` quota).
    pub(crate) node_created: bool,
    /// Change of each domain's owned-node count if committed.
    pub(crate) owner_delta: BTreeMap<u32, i64>,
}

/// A change applied at commit, for firing watches.
#[derive(Debug, Clone)]
pub(crate) struct Committed {
    pub path: String,
    pub fire: WatchMatch,
    pub old_perms: Option<Perms>,
}

impl Transaction {
    pub fn new(id: u32) -> Transaction {
        Transaction { id, accessed: BTreeMap::new(), failed: false, node_created: false, owner_delta: BTreeMap::new() }
    }

    /// Number of nodes accessed so far.
    pub fn accessed_len(&self) -> usize {
        self.accessed.len()
    }

    /// Whether commit would conflict with the committed tree now.
    pub fn conflicts(&self, store: &Store) -> bool {
        self.accessed
            .iter()
            .any(|(path, a)| a.check_gen && store.get(path).map_or(NO_GENERATION, |n| n.generation) != a.base_gen)
    }

    /// Applies the transaction to the store. `nodes_quota(domid)` gives the
    /// `nodes` quota binding a domain (`None` if privileged or unlimited) and is
    /// checked only if `check_quota` (an unprivileged caller created nodes).
    pub(crate) fn commit(
        self,
        store: &mut Store,
        check_quota: bool,
        nodes_quota: impl Fn(u32) -> Option<u32>,
    ) -> Result<Vec<Committed>, Errno> {
        if self.failed {
            return Err(Errno::NoMem);
        }
        if check_quota && self.node_created {
            for (&domid, &delta) in &self.owner_delta {
                if delta <= 0 {
                    continue;
                }
                if let Some(limit) = nodes_quota(domid) {
                    let after = i64::from(store.owned_by(domid)) + delta;
                    if quota::exceeds(limit, usize::try_from(after).unwrap_or(usize::MAX)) {
                        return Err(Errno::NoSpc);
                    }
                }
            }
        }
        if self.conflicts(store) {
            return Err(Errno::Again);
        }
        let mut fired = Vec::new();
        for (path, a) in self.accessed {
            if !a.modified {
                continue;
            }
            match a.node {
                Some(mut node) => {
                    node.generation = store.next_generation();
                    store.put(path.clone(), node);
                }
                None => {
                    store.remove(&path);
                }
            }
            if let Some(fire) = a.fire {
                fired.push(Committed { path, fire, old_perms: a.old_perms });
            }
        }
        Ok(fired)
    }
}

/// Node access for one operation: the committed tree, or a transaction over it.
pub(crate) struct View<'a> {
    pub store: &'a mut Store,
    pub tx: Option<&'a mut Transaction>,
    /// `transaction-nodes` quota of the caller (0: none).
    pub tx_limit: u32,
}

impl View<'_> {
    fn track(&mut self, path: &str) -> Result<(), Errno> {
        let Some(tx) = self.tx.as_deref_mut() else { return Ok(()) };
        if tx.accessed.contains_key(path) {
            return Ok(());
        }
        if quota::exceeds(self.tx_limit, tx.accessed.len() + 1) {
            tx.failed = true;
            return Err(Errno::NoSpc);
        }
        let node = self.store.get(path).cloned();
        let base_gen = node.as_ref().map_or(NO_GENERATION, |n| n.generation);
        let old_perms = node.as_ref().map(|n| n.perms.clone());
        tx.accessed.insert(
            path.to_string(),
            Accessed { base_gen, check_gen: true, modified: false, node, fire: None, old_perms },
        );
        Ok(())
    }

    /// The node at `path` as this view sees it; records the read.
    pub fn get(&mut self, path: &str) -> Result<Option<&Node>, Errno> {
        self.track(path)?;
        Ok(match self.tx.as_deref() {
            Some(tx) => tx.accessed.get(path).and_then(|a| a.node.as_ref()),
            None => self.store.get(path),
        })
    }

    /// A copy of the node at `path`; records the read.
    pub fn read(&mut self, path: &str) -> Result<Option<Node>, Errno> {
        Ok(self.get(path)?.cloned())
    }

    /// Number of nodes `domid` would own if this view were committed.
    pub fn owned_by(&self, domid: u32) -> i64 {
        let delta = self.tx.as_deref().and_then(|t| t.owner_delta.get(&domid).copied()).unwrap_or(0);
        i64::from(self.store.owned_by(domid)) + delta
    }

    /// Writes a node (new generation).
    pub fn write(&mut self, path: &str, mut node: Node) -> Result<(), Errno> {
        self.track(path)?;
        node.generation = self.store.next_generation();
        match self.tx.as_deref_mut() {
            None => self.store.put(path.to_string(), node),
            Some(tx) => {
                let new_owner = node.perms.owner();
                let Some(a) = tx.accessed.get_mut(path) else { return Err(Errno::Io) };
                let old_owner = a.node.as_ref().map(|n| n.perms.owner());
                if old_owner.is_none() {
                    tx.node_created = true;
                }
                a.node = Some(node);
                a.modified = true;
                if let Some(o) = old_owner {
                    *tx.owner_delta.entry(o).or_insert(0) -= 1;
                }
                *tx.owner_delta.entry(new_owner).or_insert(0) += 1;
            }
        }
        Ok(())
    }

    /// Deletes one node (not its children).
    pub fn delete(&mut self, path: &str) -> Result<(), Errno> {
        self.track(path)?;
        match self.tx.as_deref_mut() {
            None => {
                self.store.remove(path);
            }
            Some(tx) => {
                let Some(a) = tx.accessed.get_mut(path) else { return Err(Errno::Io) };
                if let Some(old) = a.node.take() {
                    *tx.owner_delta.entry(old.perms.owner()).or_insert(0) -= 1;
                }
                a.modified = true;
            }
        }
        Ok(())
    }

    /// Inside a transaction, remembers that `path` fires `m` at commit and
    /// returns true; outside one returns false (the caller fires now). A
    /// subtree event replaces an exact one, not the other way round.
    pub fn defer_fire(&mut self, path: &str, m: WatchMatch) -> bool {
        let Some(tx) = self.tx.as_deref_mut() else { return false };
        match tx.accessed.get_mut(path) {
            Some(a) => {
                a.fire = match (a.fire, m) {
                    (Some(WatchMatch::Subtree), _) | (_, WatchMatch::Subtree) => Some(WatchMatch::Subtree),
                    _ => Some(m),
                };
            }
            None => tx.failed = true,
        }
        true
    }
}
