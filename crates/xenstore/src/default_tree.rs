//! The nodes a toolstack creates for a new domain, as libxl does
//! (`libxl__domain_make` and `libxl__build_post`, tools/libs/light):
//!
//! * `/local/domain/<id>` owned by dom0, readable by the domain (`n0 r<id>`),
//!   and so everything written below it by dom0 (`name`, `domid`, `memory/*`,
//!   `store/*`, `console/*`, `cpu/*`, `control/platform-feature-*`);
//! * `cpu`, `memory`, `device`, `control` (and `hvmloader` for HVM) with the
//!   same read-only permissions;
//! * nodes the domain writes, owned by the domain (`n<id>`): `control/shutdown`,
//!   `control/feature-{poweroff,reboot,suspend}` (and `-s3`, `-s4` for HVM),
//!   `control/sysrq`, `device/suspend/event-channel`, `data`, `drivers`,
//!   `feature`, `attr`, `error`;
//! * `/vm/<uuid>` with `uuid` and `name` when a UUID is given.
//!
//! The nodes are written through a privileged connection in one transaction,
//! exactly as a client would, so they obey the same rules as everything else.

use crate::errno::Errno;
use crate::path::domain_path;
use crate::wire::{Message, MsgType};
use crate::{ConnId, Xenstore};

/// What the toolstack knows about the domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainTree {
    pub domid: u32,
    pub name: String,
    pub uuid: Option<String>,
    /// `memory/static-max` and `memory/target`, in KiB.
    pub memory_kib: u64,
    pub vcpus: u32,
    /// An HVM or PVH guest (adds `hvmloader`, `feature-s3`, `feature-s4`).
    pub hvm: bool,
    /// Event channel and ring frame of the xenstore ring (`store/port`, `store/ring-ref`).
    pub store: Option<(u32, u64)>,
    /// Event channel and ring frame of the console (`console/*`).
    pub console: Option<(u32, u64)>,
}

impl DomainTree {
    /// A domain with defaults for everything but its id, name and memory.
    pub fn new(domid: u32, name: &str, memory_kib: u64) -> DomainTree {
        DomainTree { domid, name: name.into(), uuid: None, memory_kib, vcpus: 1, hvm: true, store: None, console: None }
    }
}

struct Client<'a> {
    xs: &'a mut Xenstore,
    conn: ConnId,
    tx: u32,
}

impl Client<'_> {
    fn call(&mut self, ty: MsgType, parts: &[&[u8]]) -> Result<Vec<u8>, Errno> {
        let msg = Message::with_strings(ty, 0, self.tx, parts);
        let out = self.xs.handle(self.conn, &msg);
        let reply = out.into_iter().find(|m| m.ty != MsgType::WatchEvent as u32).ok_or(Errno::Io)?;
        match reply.as_error() {
            Some(e) => Err(e),
            None => Ok(reply.payload),
        }
    }

    fn write(&mut self, path: &str, value: &str) -> Result<(), Errno> {
        let mut p = path.as_bytes().to_vec();
        p.push(0);
        p.extend_from_slice(value.as_bytes());
        let out = self.xs.handle(self.conn, &Message::new(MsgType::Write, 0, self.tx, p));
        match out.into_iter().find(|m| m.ty != MsgType::WatchEvent as u32).and_then(|m| m.as_error()) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// `libxl__xs_mknod`: mkdir plus permissions.
    fn mknod(&mut self, path: &str, perms: &[String]) -> Result<(), Errno> {
        self.call(MsgType::Mkdir, &[path.as_bytes()])?;
        let mut parts: Vec<&[u8]> = vec![path.as_bytes()];
        parts.extend(perms.iter().map(|p| p.as_bytes()));
        self.call(MsgType::SetPerms, &parts).map(|_| ())
    }

    fn rm(&mut self, path: &str) -> Result<(), Errno> {
        self.call(MsgType::Rm, &[path.as_bytes()]).map(|_| ())
    }
}

fn populate(c: &mut Client<'_>, t: &DomainTree) -> Result<(), Errno> {
    let dom = domain_path(t.domid);
    let ro = vec!["n0".to_string(), format!("r{}", t.domid)];
    let rw = vec![format!("n{}", t.domid)];
    // Like libxl, start from scratch and ignore a missing parent.
    let _ = c.rm(&dom);
    c.mknod(&dom, &ro)?;
    if let Some(uuid) = &t.uuid {
        let vm = format!("/vm/{uuid}");
        let _ = c.rm(&vm);
        c.mknod(&vm, &ro)?;
        c.write(&format!("{dom}/vm"), &vm)?;
        c.write(&format!("{vm}/uuid"), uuid)?;
        c.write(&format!("{vm}/name"), &t.name)?;
    }
    for sub in ["cpu", "memory", "device", "control"] {
        c.mknod(&format!("{dom}/{sub}"), &ro)?;
    }
    if t.hvm {
        c.mknod(&format!("{dom}/hvmloader"), &ro)?;
    }
    let mut owned = vec![
        "device/suspend/event-channel",
        "control/shutdown",
        "control/feature-poweroff",
        "control/feature-reboot",
        "control/feature-suspend",
    ];
    if t.hvm {
        owned.extend(["control/feature-s3", "control/feature-s4"]);
    }
    owned.extend(["control/sysrq", "data", "drivers", "feature", "attr", "error"]);
    for sub in owned {
        c.mknod(&format!("{dom}/{sub}"), &rw)?;
    }
    c.write(&format!("{dom}/name"), &t.name)?;
    c.write(&format!("{dom}/domid"), &t.domid.to_string())?;
    c.write(&format!("{dom}/memory/static-max"), &t.memory_kib.to_string())?;
    c.write(&format!("{dom}/memory/target"), &t.memory_kib.to_string())?;
    c.write(&format!("{dom}/memory/videoram"), "0")?;
    for i in 0..t.vcpus {
        c.write(&format!("{dom}/cpu/{i}/availability"), "online")?;
    }
    if let Some((port, mfn)) = t.store {
        c.write(&format!("{dom}/store/port"), &port.to_string())?;
        c.write(&format!("{dom}/store/ring-ref"), &mfn.to_string())?;
    }
    if let Some((port, mfn)) = t.console {
        c.write(&format!("{dom}/console/port"), &port.to_string())?;
        c.write(&format!("{dom}/console/ring-ref"), &mfn.to_string())?;
        c.write(&format!("{dom}/console/limit"), "1048576")?;
        c.write(&format!("{dom}/console/type"), "xenconsoled")?;
    }
    c.write(&format!("{dom}/control/platform-feature-multiprocessor-suspend"), "1")?;
    c.write(&format!("{dom}/control/platform-feature-xs_reset_watches"), "1")?;
    Ok(())
}

/// Makes the domain known to the store and creates its tree in one
/// transaction (retried on conflict).
pub fn create_domain_tree(xs: &mut Xenstore, tree: &DomainTree) -> Result<(), Errno> {
    xs.create_domain(tree.domid);
    let conn = xs.connect_privileged();
    let mut result = Err(Errno::Again);
    for _ in 0..8 {
        let mut c = Client { xs: &mut *xs, conn, tx: 0 };
        let started = c.call(MsgType::TransactionStart, &[b""]);
        let tx = match started {
            Ok(id) => {
                std::str::from_utf8(id.split(|b| *b == 0).next().unwrap_or(&[])).ok().and_then(|s| s.parse().ok())
            }
            Err(e) => {
                result = Err(e);
                break;
            }
        };
        c.tx = tx.unwrap_or(0);
        result = populate(&mut c, tree);
        let end: &[u8] = if result.is_ok() { b"T" } else { b"F" };
        let ended = c.call(MsgType::TransactionEnd, &[end]);
        match (result, ended) {
            (Ok(()), Ok(_)) => break,
            (Ok(()), Err(Errno::Again)) => result = Err(Errno::Again),
            (Ok(()), Err(e)) => {
                result = Err(e);
                break;
            }
            (Err(_), _) => break,
        }
    }
    xs.disconnect(conn);
    result
}
