//! Watches: `WATCH`/`UNWATCH`, matching and delivery of `WATCH_EVENT`s.
//!
//! Semantics of xenstored (tools/xenstored/watch.c):
//! * a new watch fires once at once, with the watched path, after the `OK`;
//! * a write, mkdir or set_perms of node N fires every watch on N or an
//!   ancestor of N (within the watch's depth if one was given);
//! * rm of N fires, for each removed node M, the watches on exactly M, and for
//!   N itself also the watches on its ancestors;
//! * changes inside a transaction fire only when it commits;
//! * `@introduceDomain`/`@releaseDomain` fire on domain introduction and
//!   release/shutdown; with a depth of 1, or watching `@releaseDomain/<domid>`,
//!   the event path names the domain;
//! * an event reaches a watcher only if it may read the node or its parent
//!   (or could read it before a permission change) (XSA-115);
//! * an event whose path is relative to the domain path is reported relative;
//! * events longer than the payload limit are dropped (XSA-324), identical
//!   pending events are not queued twice, and an unprivileged connection's
//!   queue holds at most its `watch-events` quota.

use crate::conn::{ConnKind, Connection, FEATURE_WATCHDEPTH, PRIV_EVENT_QUEUE_MAX, SUPPORTED_FEATURES};
use crate::engine::{access_with, OpCtx, Xenstore};
use crate::errno::Errno;
use crate::path;
use crate::perms::{Access, Perms, Subject};
use crate::quota;
use crate::wire::{payload, Message, XENSTORE_PAYLOAD_MAX};

/// How an event path is matched against watched paths.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WatchMatch {
    /// The watched path equals the event path.
    Exact,
    /// The event path is the watched path or below it (within the depth).
    Subtree,
    /// Special events with a domid: exact, or below with a depth > 0.
    Depth,
    /// Special events without a domid: exact, and only watches without depth.
    NoDepth,
}

/// One registered watch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Watch {
    /// Canonical (absolute or `@`) watched path.
    pub path: String,
    pub token: Vec<u8>,
    /// Levels below `path` that match (`None`: all).
    pub depth: Option<u32>,
    /// Length of the prefix to strip from event paths (a relative watch).
    pub prefix_len: usize,
}

impl Watch {
    /// Whether an event on `name` matched as `m` fires this watch.
    pub fn matches(&self, name: &str, m: WatchMatch) -> bool {
        match m {
            WatchMatch::Exact => name == self.path,
            WatchMatch::Subtree => path::is_child(name, &self.path, self.depth),
            WatchMatch::Depth => {
                name == self.path || (self.depth.is_some_and(|d| d > 0) && path::is_child(name, &self.path, self.depth))
            }
            WatchMatch::NoDepth => name == self.path && self.depth.is_none(),
        }
    }

    /// The path reported for an event on `name`.
    pub fn event_path<'a>(&self, name: &'a str) -> &'a str {
        name.get(self.prefix_len..).filter(|_| self.prefix_len > 0).unwrap_or(name)
    }
}

/// Queues an event for a connection, applying xenstored's filters. Returns
/// whether it was queued.
pub(crate) fn send_event(conn: &mut Connection, limit: u32, path: &str, token: &[u8]) -> bool {
    if path.len() + token.len() + 2 > XENSTORE_PAYLOAD_MAX {
        return false;
    }
    let msg = Message::watch_event(path.as_bytes(), token);
    if !path.starts_with('@') && conn.pending_events.contains_key(&msg.payload) {
        return false;
    }
    if quota::exceeds(limit, conn.queued_events as usize + 1) {
        conn.dropped_events += 1;
        return false;
    }
    conn.push(msg, false);
    true
}

/// Permissions of a node as seen at fire time: the entries and the generation.
pub(crate) type PermsAt = (Perms, u64);

impl Xenstore {
    /// Fires the watches matching an event on `name`. `node` and `parent` give
    /// the permissions to check (looked up in the store when `None`), `old`
    /// the permissions before a change.
    pub(crate) fn fire_watches(
        &mut self,
        name: &str,
        m: WatchMatch,
        node: Option<&PermsAt>,
        parent: Option<&PermsAt>,
        old: Option<&Perms>,
    ) {
        let (store, domains) = (&self.store, &self.domains);
        let node = node.cloned().or_else(|| store.get(name).map(|n| (n.perms.clone(), n.generation)));
        let parent = parent
            .cloned()
            .or_else(|| path::parent(name).and_then(|p| store.get(p)).map(|n| (n.perms.clone(), n.generation)));
        let global = self.quotas;
        for c in self.conns.values_mut() {
            if c.watches.is_empty() {
                continue;
            }
            let subject = Subject { domid: c.domid(), privileged: c.privileged(), target: c.target };
            let readable = |p: &Option<PermsAt>| {
                p.as_ref()
                    .is_some_and(|(perms, gen)| access_with(domains, &subject, perms, *gen).contains(Access::READ))
            };
            let permitted = subject.privileged
                || old.is_some_and(|o| access_with(domains, &subject, o, u64::MAX).contains(Access::READ))
                || (node.is_some() && (readable(&node) || readable(&parent)));
            if !permitted {
                continue;
            }
            let limit = if subject.privileged {
                PRIV_EVENT_QUEUE_MAX
            } else {
                domains.get(&subject.domid).map_or(global, |d| d.quotas).watch_events
            };
            let hits: Vec<(String, Vec<u8>)> = c
                .watches
                .iter()
                .filter(|w| w.matches(name, m))
                .map(|w| (w.event_path(name).to_string(), w.token.clone()))
                .collect();
            for (p, token) in hits {
                if send_event(c, limit, &p, &token) {
                    self.woken.insert(c.id);
                }
            }
        }
    }

    /// Fires `@introduceDomain` or `@releaseDomain`: without the domid for
    /// watches without depth (`with_plain`), and as `<special>/<domid>` for
    /// depth watches and domain-specific watches (`with_domid`).
    pub(crate) fn fire_special(&mut self, special: &str, domid: u32, with_plain: bool, with_domid: bool) {
        let Some(node) = self.store.get(special).map(|n| (n.perms.clone(), n.generation)) else { return };
        let root = self.store.get("/").map(|n| (n.perms.clone(), n.generation));
        if with_plain {
            self.fire_watches(special, WatchMatch::NoDepth, Some(&node), root.as_ref(), None);
        }
        if with_domid {
            let name = format!("{special}/{domid}");
            self.fire_watches(&name, WatchMatch::Depth, Some(&node), root.as_ref(), None);
        }
    }

    /// Features offered to a connection.
    pub(crate) fn features_of(&self, conn: &Connection) -> u32 {
        match conn.kind {
            ConnKind::Socket => SUPPORTED_FEATURES,
            ConnKind::Domain(d) => self.domains.get(&d).map_or(SUPPORTED_FEATURES, |d| d.features),
        }
    }

    /// `WATCH <wpath>|<token>|[<depth>|]`.
    pub(crate) fn op_watch(&mut self, ctx: &mut OpCtx, p: &[u8]) -> Result<Vec<u8>, Errno> {
        let strs = payload::strings(p);
        let conn = self.conns.get(&ctx.conn).ok_or(Errno::Io)?;
        let depth = match strs.as_slice() {
            [_, _, d] if self.features_of(conn) & FEATURE_WATCHDEPTH != 0 => {
                let d = payload::atoi(d);
                Some(u32::try_from(d).map_err(|_| Errno::Inval)?)
            }
            [_, _] => None,
            _ => return Err(Errno::Inval),
        };
        let (raw, token) = match strs.as_slice() {
            [raw, token, ..] => (*raw, token.to_vec()),
            _ => return Err(Errno::Inval),
        };
        let (name, relative) = path::canonicalize(raw, &ctx.implicit, true, ctx.path_max())?;
        if conn.watches.iter().any(|w| w.path == name && w.token == token) {
            return Err(Errno::Exist);
        }
        if let Some(q) = ctx.quotas {
            if quota::exceeds(q.watches, conn.watches.len() + 1) {
                return Err(Errno::NoSpc);
            }
        }
        let prefix_len = if relative { ctx.implicit.len() + 1 } else { 0 };
        let watch = Watch { path: name, token, depth, prefix_len };
        let first = watch.event_path(&watch.path).to_string();
        if first.len() + watch.token.len() + 2 <= XENSTORE_PAYLOAD_MAX {
            ctx.after_reply.push(Message::watch_event(first.as_bytes(), &watch.token));
        }
        let conn = self.conns.get_mut(&ctx.conn).ok_or(Errno::Io)?;
        conn.watches.push(watch);
        Ok(b"OK\0".to_vec())
    }

    /// `UNWATCH <wpath>|<token>|`.
    pub(crate) fn op_unwatch(&mut self, ctx: &mut OpCtx, p: &[u8]) -> Result<Vec<u8>, Errno> {
        let strs = payload::strings(p);
        let [raw, token] = strs.as_slice() else { return Err(Errno::Inval) };
        let (name, _) = path::canonicalize(raw, &ctx.implicit, true, ctx.path_max())?;
        let conn = self.conns.get_mut(&ctx.conn).ok_or(Errno::Io)?;
        let pos = conn.watches.iter().position(|w| w.path == name && w.token == *token).ok_or(Errno::NoEnt)?;
        conn.watches.remove(pos);
        Ok(b"OK\0".to_vec())
    }

    /// `RESET_WATCHES |`: drops the caller's watches and transactions.
    pub(crate) fn op_reset_watches(&mut self, ctx: &mut OpCtx) -> Result<Vec<u8>, Errno> {
        ctx.tx = None;
        let conn = self.conns.get_mut(&ctx.conn).ok_or(Errno::Io)?;
        conn.watches.clear();
        conn.transactions.clear();
        Ok(b"OK\0".to_vec())
    }
}
