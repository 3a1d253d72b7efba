//! Domain management and miscellaneous operations: INTRODUCE, RELEASE, RESUME,
//! SET_TARGET, GET_DOMAIN_PATH, IS_DOMAIN_INTRODUCED, GET/SET_FEATURE,
//! GET/SET_QUOTA and a CONTROL subset; plus the same actions as a Rust API for
//! the VMM (tools/xenstored/domain.c, control.c).

use crate::conn::{ConnId, ConnKind, PRIV_DOMID, SUPPORTED_FEATURES};
use crate::engine::{OpCtx, Xenstore};
use crate::errno::Errno;
use crate::path::{self, INTRODUCE_DOMAIN, RELEASE_DOMAIN};
use crate::perms::{Subject, DOMID_SELF};
use crate::quota::QUOTA_NAMES;
use crate::wire::payload;

const OK: &[u8] = b"OK\0";

fn text_reply(s: &str) -> Vec<u8> {
    let mut v = s.as_bytes().to_vec();
    v.push(0);
    v
}

fn domid_arg(s: &[u8]) -> Result<u32, Errno> {
    payload::parse_domid(s).ok_or(Errno::Inval)
}

impl Xenstore {
    /// Introduces a domain (what `INTRODUCE <domid>|<gfn>|<evtchn>|` does) and
    /// returns its ring connection. Introducing it again keeps the connection
    /// but resets it (watches, transactions and queued output are dropped and
    /// the ring transport starts over).
    pub fn introduce_domain(&mut self, domid: u32, ring_gfn: u64, port: u32) -> Result<ConnId, Errno> {
        if domid == PRIV_DOMID || domid >= DOMID_SELF || port == 0 {
            return Err(Errno::Inval);
        }
        let existing = self.domains.get(&domid).and_then(|d| d.conn.filter(|_| d.introduced));
        let conn = match existing {
            Some(c) => c,
            None => {
                let c = self.add_conn(ConnKind::Domain(domid));
                let d = self.known_domain(domid);
                d.introduced = true;
                d.shutdown = false;
                d.conn = Some(c);
                self.fire_special(INTRODUCE_DOMAIN, domid, true, true);
                c
            }
        };
        let d = self.known_domain(domid);
        d.ring_gfn = ring_gfn;
        d.port = port;
        if let Some(c) = self.conns.get_mut(&conn) {
            c.reset();
        }
        Ok(conn)
    }

    /// Releases an introduced domain (`RELEASE`) and forgets it: its
    /// connection closes, the nodes it owns are deleted, its entries in other
    /// nodes' permissions are removed, and `@releaseDomain` fires.
    pub fn release_domain(&mut self, domid: u32) -> Result<(), Errno> {
        if domid == PRIV_DOMID {
            return Err(Errno::Inval);
        }
        let d = self.domains.get(&domid).filter(|d| d.introduced).ok_or(Errno::NoEnt)?;
        let conn = d.conn.ok_or(Errno::Inval)?;
        if let Some(c) = self.conns.get_mut(&conn) {
            c.watches.clear();
        }
        self.disconnect(conn);
        self.destroy_domain(domid);
        Ok(())
    }

    /// Forgets a domain that was never introduced or whose connection is gone
    /// (the hypervisor destroyed it). Same clean-up as [`Xenstore::release_domain`].
    pub fn destroy_domain(&mut self, domid: u32) {
        if domid == PRIV_DOMID {
            return;
        }
        let Some(d) = self.domains.get(&domid) else { return };
        let (was_introduced, conn) = (d.introduced, d.conn);
        if let Some(conn) = conn {
            self.disconnect(conn);
        }
        self.remove_domain_nodes(domid);
        self.domains.remove(&domid);
        if was_introduced {
            self.fire_special(RELEASE_DOMAIN, domid, true, true);
        }
    }

    /// Reports that a domain shut down: `@releaseDomain` fires once until
    /// [`Xenstore::resume_domain`].
    pub fn domain_shutdown(&mut self, domid: u32) {
        let Some(d) = self.domains.get_mut(&domid) else { return };
        if !d.introduced || d.shutdown {
            return;
        }
        d.shutdown = true;
        self.fire_special(RELEASE_DOMAIN, domid, false, true);
        self.fire_special(RELEASE_DOMAIN, domid, true, false);
    }

    /// `RESUME`: the next shutdown fires `@releaseDomain` again.
    pub fn resume_domain(&mut self, domid: u32) -> Result<(), Errno> {
        let d = self.connected_domain(domid)?;
        if let Some(d) = self.domains.get_mut(&d) {
            d.shutdown = false;
        }
        Ok(())
    }

    fn connected_domain(&self, domid: u32) -> Result<u32, Errno> {
        if domid == PRIV_DOMID {
            return Err(Errno::Inval);
        }
        let d = self.domains.get(&domid).filter(|d| d.introduced).ok_or(Errno::NoEnt)?;
        d.conn.ok_or(Errno::Inval)?;
        Ok(domid)
    }

    /// `domain_tree_remove()`: deletes the subtrees owned by `domid` and strips
    /// its ACL entries from every other node, special nodes included.
    fn remove_domain_nodes(&mut self, domid: u32) {
        let mut ctx = OpCtx {
            conn: ConnId(0),
            subject: Subject { domid: PRIV_DOMID, privileged: true, target: None },
            implicit: String::new(),
            quotas: None,
            tx: None,
            after_reply: Vec::new(),
        };
        let mut stack = vec!["/".to_string()];
        let mut owned_roots = Vec::new();
        let mut strip = vec![RELEASE_DOMAIN.to_string(), INTRODUCE_DOMAIN.to_string()];
        while let Some(p) = stack.pop() {
            let Some(n) = self.store.get(&p) else { continue };
            if n.perms.owner() == domid && p != "/" {
                owned_roots.push(p);
                continue;
            }
            stack.extend(n.children.iter().map(|c| path::child(&p, c)));
            strip.push(p);
        }
        for p in owned_roots {
            if self.store.contains(&p) {
                let _ = self.rm_node(&mut ctx, &p);
            }
        }
        for p in strip {
            let Some(mut n) = self.store.get(&p).cloned() else { continue };
            let entries = n.perms.entries_mut();
            let mut i = 0;
            entries.retain(|e| {
                i += 1;
                i == 1 || e.domid != domid
            });
            if n.perms.owner() == domid {
                n.perms.set_owner(PRIV_DOMID);
            }
            self.store.put(p, n);
        }
    }

    /// `INTRODUCE <domid>|<gfn>|<evtchn>|`.
    pub(crate) fn op_introduce(&mut self, p: &[u8]) -> Result<Vec<u8>, Errno> {
        let strs = payload::strings(p);
        let [d, gfn, port, ..] = strs.as_slice() else { return Err(Errno::Inval) };
        let domid = domid_arg(d)?;
        let port = payload::atoi(port);
        if port <= 0 {
            return Err(Errno::Inval);
        }
        // The gfn is a signed decimal; only recorded.
        let gfn = payload::atoi(gfn) as i64 as u64;
        self.introduce_domain(domid, gfn, port as u32)?;
        Ok(OK.to_vec())
    }

    /// `RELEASE <domid>|`.
    pub(crate) fn op_release(&mut self, p: &[u8]) -> Result<Vec<u8>, Errno> {
        let domid = domid_arg(payload::onearg(p).ok_or(Errno::Inval)?)?;
        self.release_domain(domid)?;
        Ok(OK.to_vec())
    }

    /// `RESUME <domid>|`.
    pub(crate) fn op_resume(&mut self, p: &[u8]) -> Result<Vec<u8>, Errno> {
        let domid = domid_arg(payload::onearg(p).ok_or(Errno::Inval)?)?;
        self.resume_domain(domid)?;
        Ok(OK.to_vec())
    }

    /// `SET_TARGET <domid>|<tdomid>|`: `domid` gets `tdomid`'s rights.
    pub(crate) fn op_set_target(&mut self, p: &[u8]) -> Result<Vec<u8>, Errno> {
        let strs = payload::strings(p);
        let [d, t, ..] = strs.as_slice() else { return Err(Errno::Inval) };
        let (domid, tdomid) = (domid_arg(d)?, domid_arg(t)?);
        let lookup = |xs: &Xenstore, id: u32| -> Result<ConnId, Errno> {
            let d = xs.domains.get(&id).filter(|d| d.introduced).ok_or(Errno::NoEnt)?;
            d.conn.ok_or(Errno::Inval)
        };
        let conn = lookup(self, domid)?;
        lookup(self, tdomid)?;
        if let Some(c) = self.conns.get_mut(&conn) {
            c.target = Some(tdomid);
        }
        Ok(OK.to_vec())
    }

    /// `GET_DOMAIN_PATH <domid>|` → `/local/domain/<domid>|`.
    pub(crate) fn op_get_domain_path(&mut self, p: &[u8]) -> Result<Vec<u8>, Errno> {
        let domid = domid_arg(payload::onearg(p).ok_or(Errno::Inval)?)?;
        Ok(text_reply(&path::domain_path(domid)))
    }

    /// `IS_DOMAIN_INTRODUCED <domid>|` → `T|` or `F|` (dom0 and `DOMID_SELF` are).
    pub(crate) fn op_is_domain_introduced(&mut self, p: &[u8]) -> Result<Vec<u8>, Errno> {
        let domid = domid_arg(payload::onearg(p).ok_or(Errno::Inval)?)?;
        let yes = domid == DOMID_SELF || domid == PRIV_DOMID || self.domains.get(&domid).is_some_and(|d| d.introduced);
        Ok(text_reply(if yes { "T" } else { "F" }))
    }

    /// `GET_FEATURE [<domid>|]` → `<value>|`.
    pub(crate) fn op_get_feature(&mut self, ctx: &mut OpCtx, p: &[u8]) -> Result<Vec<u8>, Errno> {
        let strs = payload::strings(p);
        let features = match strs.as_slice() {
            [] => {
                let c = self.conns.get(&ctx.conn).ok_or(Errno::Io)?;
                self.features_of(c)
            }
            _ if !ctx.subject.privileged => return Err(Errno::Acces),
            [d] => self.domains.get(&domid_arg(d)?).ok_or(Errno::NoEnt)?.features,
            _ => return Err(Errno::Inval),
        };
        Ok(text_reply(&features.to_string()))
    }

    /// `SET_FEATURE <domid>|<value>|`: only before the domain is introduced.
    pub(crate) fn op_set_feature(&mut self, p: &[u8]) -> Result<Vec<u8>, Errno> {
        let strs = payload::strings(p);
        let [d, v] = strs.as_slice() else { return Err(Errno::Inval) };
        let domid = domid_arg(d)?;
        let features = payload::atoi(v) as u32;
        if domid >= DOMID_SELF {
            return Err(Errno::NoEnt);
        }
        let dom = self.known_domain(domid);
        if dom.introduced {
            return Err(Errno::Busy);
        }
        if features & !SUPPORTED_FEATURES != 0 {
            return Err(Errno::Inval);
        }
        dom.features = features;
        Ok(OK.to_vec())
    }

    /// `GET_QUOTA [[<domid>|]<quota>|]` → `<value>|` (no argument: the names).
    pub(crate) fn op_get_quota(&mut self, p: &[u8]) -> Result<Vec<u8>, Errno> {
        let strs = payload::strings(p);
        let (quotas, name) = match strs.as_slice() {
            [] => return Ok(text_reply(&QUOTA_NAMES.join(" "))),
            [name] => (self.quotas, *name),
            [d, name] => {
                let domid = domid_arg(d)?;
                (self.domains.get(&domid).ok_or(Errno::NoEnt)?.quotas, *name)
            }
            _ => return Err(Errno::Inval),
        };
        let name = std::str::from_utf8(name).map_err(|_| Errno::Inval)?;
        let v = quotas.get(name).ok_or(Errno::Inval)?;
        Ok(text_reply(&v.to_string()))
    }

    /// `SET_QUOTA [<domid>|]<quota>|<value>|`: the global value (for domains
    /// that become known later) or one domain's.
    pub(crate) fn op_set_quota(&mut self, p: &[u8]) -> Result<Vec<u8>, Errno> {
        let strs = payload::strings(p);
        let (domid, name, val) = match strs.as_slice() {
            [name, v] => (None, *name, payload::atoi(v) as u32),
            [d, name, v] => (Some(domid_arg(d)?), *name, payload::atoi(v) as u32),
            _ => return Err(Errno::Inval),
        };
        let name = std::str::from_utf8(name).map_err(|_| Errno::Inval)?;
        if val == u32::MAX {
            return Err(Errno::Inval);
        }
        let target = match domid {
            None => &mut self.quotas,
            Some(d) => &mut self.domains.get_mut(&d).ok_or(Errno::NoEnt)?.quotas,
        };
        if !target.set(name, val) {
            return Err(Errno::Inval);
        }
        Ok(OK.to_vec())
    }

    /// `CONTROL <command>|[<parameters>|]`: `check`, `log`, `print`,
    /// `logfile`, `memreport`, `quota` and `help`; others are `EINVAL`.
    pub(crate) fn op_control(&mut self, p: &[u8]) -> Result<Vec<u8>, Errno> {
        let strs = payload::strings(p);
        let (cmd, args) = strs.split_first().ok_or(Errno::Inval)?;
        match *cmd {
            b"check" => self.check().map(|_| OK.to_vec()).map_err(|_| Errno::Io),
            b"log" | b"print" | b"logfile" | b"memreport" => Ok(OK.to_vec()),
            b"help" => Ok(text_reply("check\nlog\nprint <string>\nlogfile <file>\nmemreport\nquota [<domid>]\nhelp\n")),
            b"quota" => match args {
                [] => Ok(text_reply(&self.quotas.describe())),
                [d, ..] => {
                    let domid = domid_arg(d)?;
                    let dom = self.domains.get(&domid).ok_or(Errno::NoEnt)?;
                    let conns: Vec<_> =
                        self.conns.values().filter(|c| c.domid() == domid && c.kind != ConnKind::Socket).collect();
                    let watches: usize = conns.iter().map(|c| c.watches.len()).sum();
                    let txs: usize = conns.iter().map(|c| c.transactions.len()).sum();
                    let s = format!(
                        "Domain {domid}:\nnodes            : {:>8}\nwatches          : {watches:>8}\ntransactions     : {txs:>8}\n{}",
                        self.store.owned_by(domid),
                        dom.quotas.describe()
                    );
                    Ok(text_reply(&s))
                }
            },
            _ => Err(Errno::Inval),
        }
    }
}
