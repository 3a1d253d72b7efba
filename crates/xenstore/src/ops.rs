//! The node operations: READ, WRITE, MKDIR, RM, DIRECTORY, DIRECTORY_PART,
//! GET_PERMS, SET_PERMS and TRANSACTION_START/END, with xenstored's argument
//! checks and error choices (tools/xenstored/core.c, transaction.c).

use crate::engine::{access_with, fold_stale, OpCtx, Xenstore};
use crate::errno::Errno;
use crate::node::Node;
use crate::path;
use crate::perms::{Access, Perms, DOMID_ANY, DOMID_SELF};
use crate::quota;
use crate::watch::{PermsAt, WatchMatch};
use crate::wire::payload;

const OK: &[u8] = b"OK\0";

/// Result of looking a node up for an operation.
pub(crate) enum Lookup {
    /// The node exists and the caller has the rights asked for.
    Found(String, Node),
    /// The node does not exist and the caller may know that (`ENOENT`).
    Missing(String),
}

/// A watch event decided while the view was borrowed, fired afterwards.
struct Pending {
    path: String,
    m: WatchMatch,
    node: Option<PermsAt>,
    parent: Option<PermsAt>,
    old: Option<Perms>,
}

impl Xenstore {
    /// `get_node()`: canonicalises `raw`, reads the node through the request's
    /// view and checks `perm`. A missing node answers `ENOENT` only if the
    /// nearest existing ancestor grants some of `perm`, else `EACCES`, so that
    /// callers learn nothing about nodes they may not see.
    pub(crate) fn lookup(
        &mut self,
        ctx: &mut OpCtx,
        raw: Option<&[u8]>,
        perm: Access,
        special: bool,
    ) -> Result<Lookup, Errno> {
        let raw = raw.ok_or(Errno::Inval)?;
        let (name, _) = path::canonicalize(raw, &ctx.implicit, special, ctx.path_max())?;
        let subject = ctx.subject;
        let domains = &self.domains;
        let mut view = Xenstore::view(&mut self.store, ctx);
        if let Some(node) = view.read(&name)? {
            return if access_with(domains, &subject, &node.perms, node.generation).contains(perm) {
                Ok(Lookup::Found(name, node))
            } else {
                Err(Errno::Acces)
            };
        }
        let mut cur = name.as_str();
        while let Some(parent) = path::parent(cur) {
            if let Some(p) = view.get(parent)? {
                let acc = access_with(domains, &subject, &p.perms, p.generation);
                return if acc.bits() & perm.bits() != 0 { Ok(Lookup::Missing(name)) } else { Err(Errno::Acces) };
            }
            cur = parent;
        }
        Err(Errno::Acces)
    }

    /// Fires now, or at commit inside a transaction.
    fn fire_or_defer(&mut self, ctx: &mut OpCtx, name: &str, m: WatchMatch, old: Option<&Perms>) {
        let mut view = Xenstore::view(&mut self.store, ctx);
        if !view.defer_fire(name, m) {
            self.fire_watches(name, m, None, None, old);
        }
    }

    /// Checks the `node-size` quota of an unprivileged caller.
    fn check_size(ctx: &OpCtx, node: &Node) -> Result<(), Errno> {
        match ctx.quotas {
            Some(q) if quota::exceeds(q.node_size, node.acc_size()) => Err(Errno::NoSpc),
            _ => Ok(()),
        }
    }

    /// Writes a node through the view after folding stale ACL entries.
    fn put_node(&mut self, ctx: &mut OpCtx, path: &str, mut node: Node) -> Result<(), Errno> {
        fold_stale(&self.domains, &mut node.perms, node.generation);
        let mut view = Xenstore::view(&mut self.store, ctx);
        let r = view.write(path, node);
        if r.is_err() {
            if let Some(tx) = ctx.tx.as_mut() {
                tx.failed = true;
            }
        }
        r
    }

    /// `create_node()`: creates `name` and any missing ancestors. New nodes
    /// inherit their parent's permissions; an unprivileged creator owns them.
    fn create_node(&mut self, ctx: &mut OpCtx, name: &str, value: &[u8]) -> Result<(), Errno> {
        let mut missing = vec![name.to_string()];
        let (mut ppath, mut pnode) = {
            let mut view = Xenstore::view(&mut self.store, ctx);
            let mut cur = name.to_string();
            loop {
                let parent = path::parent(&cur).ok_or(Errno::Inval)?.to_string();
                if let Some(n) = view.read(&parent)? {
                    break (parent, n);
                }
                missing.push(parent.clone());
                cur = parent;
            }
        };
        if let Some(q) = ctx.quotas {
            let domid = ctx.subject.domid;
            let view = Xenstore::view(&mut self.store, ctx);
            let after = view.owned_by(domid) + missing.len() as i64;
            if quota::exceeds(q.nodes, usize::try_from(after).unwrap_or(usize::MAX)) {
                return Err(Errno::NoSpc);
            }
        }
        fold_stale(&self.domains, &mut pnode.perms, pnode.generation);
        let mut writes = Vec::with_capacity(missing.len() + 1);
        for p in missing.iter().rev() {
            pnode.add_child(path::basename(p));
            let mut n = Node::new(pnode.perms.clone());
            n.generation = pnode.generation;
            if !ctx.subject.privileged {
                n.perms.set_owner(ctx.subject.domid);
            }
            writes.push((std::mem::replace(&mut ppath, p.clone()), std::mem::replace(&mut pnode, n)));
        }
        pnode.value = value.to_vec();
        writes.push((ppath, pnode));
        for (_, n) in &writes {
            Xenstore::check_size(ctx, n)?;
        }
        for (p, n) in writes {
            self.put_node(ctx, &p, n)?;
        }
        Ok(())
    }

    /// `READ <path>|` → `<value|>`.
    pub(crate) fn op_read(&mut self, ctx: &mut OpCtx, p: &[u8]) -> Result<Vec<u8>, Errno> {
        match self.lookup(ctx, payload::onearg(p), Access::READ, false)? {
            Lookup::Found(_, node) => Ok(node.value),
            Lookup::Missing(_) => Err(Errno::NoEnt),
        }
    }

    /// `WRITE <path>|<value|>`: creates missing parents.
    pub(crate) fn op_write(&mut self, ctx: &mut OpCtx, p: &[u8]) -> Result<Vec<u8>, Errno> {
        let (raw, value) = payload::split_first(p).ok_or(Errno::Inval)?;
        let name = match self.lookup(ctx, Some(raw), Access::WRITE, false)? {
            Lookup::Found(name, mut node) => {
                node.value = value.to_vec();
                Xenstore::check_size(ctx, &node)?;
                self.put_node(ctx, &name, node)?;
                name
            }
            Lookup::Missing(name) => {
                self.create_node(ctx, &name, value)?;
                name
            }
        };
        self.fire_or_defer(ctx, &name, WatchMatch::Subtree, None);
        Ok(OK.to_vec())
    }

    /// `MKDIR <path>|`: nothing happens if it exists.
    pub(crate) fn op_mkdir(&mut self, ctx: &mut OpCtx, p: &[u8]) -> Result<Vec<u8>, Errno> {
        if let Lookup::Missing(name) = self.lookup(ctx, payload::onearg(p), Access::WRITE, false)? {
            self.create_node(ctx, &name, &[])?;
            self.fire_or_defer(ctx, &name, WatchMatch::Subtree, None);
        }
        Ok(OK.to_vec())
    }

    /// `RM <path>|`: removes the subtree; a missing node is fine if its parent exists.
    pub(crate) fn op_rm(&mut self, ctx: &mut OpCtx, p: &[u8]) -> Result<Vec<u8>, Errno> {
        match self.lookup(ctx, payload::onearg(p), Access::WRITE, false)? {
            Lookup::Missing(name) => {
                let parent = path::parent(&name).ok_or(Errno::NoEnt)?;
                let mut view = Xenstore::view(&mut self.store, ctx);
                match view.get(parent)? {
                    Some(_) => Ok(OK.to_vec()),
                    None => Err(Errno::NoEnt),
                }
            }
            Lookup::Found(name, _) => {
                if name == "/" {
                    return Err(Errno::Inval);
                }
                self.rm_node(ctx, &name)?;
                Ok(OK.to_vec())
            }
        }
    }

    /// `rm_node()`: deletes `name` and its subtree, children first, then drops
    /// it from its parent's list. Fires exact watches for every removed node
    /// and subtree watches (ancestors too) for `name`.
    pub(crate) fn rm_node(&mut self, ctx: &mut OpCtx, name: &str) -> Result<(), Errno> {
        let parent_path = path::parent(name).ok_or(Errno::Inval)?.to_string();
        let mut pending = Vec::new();
        let result = (|| -> Result<Option<Node>, Errno> {
            let mut view = Xenstore::view(&mut self.store, ctx);
            let Some(parent) = view.read(&parent_path)? else { return Err(Errno::Inval) };
            // Iterative post-order walk (no recursion on guest-shaped data).
            let mut stack = vec![(name.to_string(), false)];
            let mut order = Vec::new();
            while let Some((p, expanded)) = stack.pop() {
                if expanded {
                    order.push(p);
                    continue;
                }
                let Some(n) = view.get(&p)? else { continue };
                let kids: Vec<String> = n.children.iter().rev().map(|c| path::child(&p, c)).collect();
                stack.push((p, true));
                stack.extend(kids.into_iter().map(|k| (k, false)));
            }
            for p in order {
                let node = view.get(&p)?.map(|n| (n.perms.clone(), n.generation));
                let par = path::parent(&p).map(str::to_string);
                let parent_perms = match par {
                    Some(pp) => view.get(&pp)?.map(|n| (n.perms.clone(), n.generation)),
                    None => None,
                };
                view.delete(&p)?;
                let m = if p == name { WatchMatch::Subtree } else { WatchMatch::Exact };
                if !view.defer_fire(&p, m) {
                    pending.push(Pending { path: p, m, node, parent: parent_perms, old: None });
                }
            }
            Ok(Some(parent))
        })();
        let parent = match result {
            Ok(parent) => parent,
            Err(e) => {
                if let Some(tx) = ctx.tx.as_mut() {
                    tx.failed = true;
                }
                return Err(e);
            }
        };
        if let Some(mut parent) = parent {
            parent.remove_child(path::basename(name));
            self.put_node(ctx, &parent_path, parent)?;
        }
        for ev in pending {
            self.fire_watches(&ev.path, ev.m, ev.node.as_ref(), ev.parent.as_ref(), ev.old.as_ref());
        }
        Ok(())
    }

    /// `DIRECTORY <path>|` → `<child-leaf-name>|*`.
    pub(crate) fn op_directory(&mut self, ctx: &mut OpCtx, p: &[u8]) -> Result<Vec<u8>, Errno> {
        match self.lookup(ctx, payload::onearg(p), Access::READ, false)? {
            Lookup::Found(_, node) => Ok(node.children_wire()),
            Lookup::Missing(_) => Err(Errno::NoEnt),
        }
    }

    /// `DIRECTORY_PART <path>|<offset>|` → `<gencnt>|<child-leaf-name>|*`, the
    /// list ending with an empty name once complete.
    pub(crate) fn op_directory_part(&mut self, ctx: &mut OpCtx, p: &[u8]) -> Result<Vec<u8>, Errno> {
        if payload::count_nuls(p) != 2 {
            return Err(Errno::Inval);
        }
        let strs = payload::strings(p);
        let (raw, off) = match strs.as_slice() {
            [raw, off] => (*raw, payload::atoi(off) as u32 as usize),
            _ => return Err(Errno::Inval),
        };
        let node = match self.lookup(ctx, Some(raw), Access::READ, false)? {
            Lookup::Found(_, node) => node,
            Lookup::Missing(_) => return Err(Errno::NoEnt),
        };
        let blob = node.children_wire();
        let mut out = node.generation.to_string().into_bytes();
        out.push(0);
        let Some(rest) = blob.get(off..).filter(|r| !r.is_empty()) else {
            out.push(0);
            return Ok(out);
        };
        let maxlen = crate::wire::XENSTORE_PAYLOAD_MAX.saturating_sub(out.len() + 1);
        let mut len = 0;
        loop {
            let tail = rest.get(len..).unwrap_or(&[]);
            let slen = tail.iter().position(|b| *b == 0).unwrap_or(tail.len());
            if len + slen >= maxlen || tail.is_empty() {
                break;
            }
            len += slen + 1;
            if len >= rest.len() {
                break;
            }
        }
        let len = len.min(rest.len());
        out.extend_from_slice(rest.get(..len).unwrap_or(&[]));
        if len == rest.len() {
            out.push(0);
        }
        Ok(out)
    }

    /// `GET_PERMS <path>|` → `<perm-as-string>|+` (special paths allowed).
    pub(crate) fn op_get_perms(&mut self, ctx: &mut OpCtx, p: &[u8]) -> Result<Vec<u8>, Errno> {
        match self.lookup(ctx, payload::onearg(p), Access::READ, true)? {
            Lookup::Found(_, node) => Ok(node.perms.to_wire()),
            Lookup::Missing(_) => Err(Errno::NoEnt),
        }
    }

    /// `SET_PERMS <path>|<perm-as-string>|+`: owner or privileged only; only
    /// the privileged may change the owner.
    pub(crate) fn op_set_perms(&mut self, ctx: &mut OpCtx, p: &[u8]) -> Result<Vec<u8>, Errno> {
        let n = payload::count_nuls(p);
        if n < 2 {
            return Err(Errno::Inval);
        }
        if let Some(q) = ctx.quotas {
            if quota::exceeds(q.node_permissions, n - 1) {
                return Err(Errno::NoSpc);
            }
        }
        let strs = payload::strings(p);
        let raw = *strs.first().ok_or(Errno::Inval)?;
        let mut perms = Perms::parse_list(strs.get(1..).unwrap_or(&[]))?;
        for e in perms.entries_mut().iter_mut() {
            if e.domid == DOMID_ANY {
                continue;
            }
            if ctx.subject.privileged && e.domid < DOMID_SELF {
                self.known_domain(e.domid);
            } else if !self.domains.contains_key(&e.domid) {
                e.ignored = true;
            }
        }
        if perms.entries().first().is_some_and(|e| e.ignored) {
            return Err(Errno::NoEnt);
        }
        let (name, mut node) = match self.lookup(ctx, Some(raw), Access::WRITE.union(Access::OWNER), true)? {
            Lookup::Found(name, node) => (name, node),
            Lookup::Missing(_) => return Err(Errno::NoEnt),
        };
        if !ctx.subject.privileged && perms.owner() != node.perms.owner() {
            return Err(Errno::Perm);
        }
        let old = std::mem::replace(&mut node.perms, perms);
        Xenstore::check_size(ctx, &node)?;
        node.generation = self.store.generation();
        self.put_node(ctx, &name, node)?;
        self.fire_or_defer(ctx, &name, WatchMatch::Subtree, Some(&old));
        Ok(OK.to_vec())
    }

    /// `TRANSACTION_START |` → `<transid>|`.
    pub(crate) fn op_transaction_start(&mut self, ctx: &mut OpCtx) -> Result<Vec<u8>, Errno> {
        if ctx.tx.is_some() {
            return Err(Errno::Busy);
        }
        let conn = self.conns.get_mut(&ctx.conn).ok_or(Errno::Io)?;
        if let Some(q) = ctx.quotas {
            if quota::exceeds(q.transactions, conn.transactions.len() + 1) {
                return Err(Errno::NoSpc);
            }
        }
        let mut id = conn.next_tx_id;
        while id == 0 || conn.transactions.contains_key(&id) {
            id = id.wrapping_add(1);
        }
        conn.next_tx_id = id.wrapping_add(1);
        conn.transactions.insert(id, crate::transaction::Transaction::new(id));
        let mut out = id.to_string().into_bytes();
        out.push(0);
        Ok(out)
    }

    /// `TRANSACTION_END T|` commits, `F|` discards; the transaction ends either way.
    pub(crate) fn op_transaction_end(&mut self, ctx: &mut OpCtx, p: &[u8]) -> Result<Vec<u8>, Errno> {
        let commit = match payload::onearg(p) {
            Some(b"T") => true,
            Some(b"F") => false,
            _ => return Err(Errno::Inval),
        };
        let tx = ctx.tx.take().ok_or(Errno::NoEnt)?;
        if !commit {
            return Ok(OK.to_vec());
        }
        let check_quota = !ctx.subject.privileged;
        let (domains, global) = (&self.domains, self.quotas);
        let nodes_quota = |d: u32| {
            if d == crate::conn::PRIV_DOMID {
                return None;
            }
            let q = domains.get(&d).map_or(global, |d| d.quotas).nodes;
            (q != 0).then_some(q)
        };
        let fired = tx.commit(&mut self.store, check_quota, nodes_quota)?;
        for f in fired {
            self.fire_watches(&f.path, f.fire, None, None, f.old_perms.as_ref());
        }
        Ok(OK.to_vec())
    }
}
