//! The toolstack's and the backends' side of XenBus: where a PV device lives in
//! the store, and the state handshake with the guest's frontend driver.
//!
//! A device of kind `vbd` (or `vif`, ...) with id `devid` for domain `domid` has
//! two directories, as libxl creates them:
//!
//! * the backend's, `/local/domain/0/backend/<kind>/<domid>/<devid>`, owned by
//!   domain 0 and readable by the guest (`n0 r<domid>`);
//! * the frontend's, `/local/domain/<domid>/device/<kind>/<devid>`, owned by
//!   the guest and readable by domain 0 (`n<domid> r0`).
//!
//! Each holds a `state` node (a [`XenbusState`] in decimal) and a link to the
//! other. The handshake ([`Handshake`]): the backend publishes its features
//! and goes to InitWait; the frontend publishes its transport parameters (ring
//! grant references, event channel) and goes to Initialised (or Connected);
//! the backend connects and goes to Connected. Closing on either side tears
//! down; a frontend that comes back in Initialising after Closed (a guest
//! reset, kexec or driver reload) gets a fresh InitWait.
//!
//! Everything here runs on a [`Xenstore`] through a privileged connection and
//! never blocks; the caller holds the store lock only for these calls and
//! does the connecting (grant maps, event channels) outside it.

use xenkvm_xenstore::{ConnId, Errno, Message, MsgType, Xenstore};

/// `enum xenbus_state` (`io/xenbus.h`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum XenbusState {
    Unknown = 0,
    Initialising = 1,
    InitWait = 2,
    Initialised = 3,
    Connected = 4,
    Closing = 5,
    Closed = 6,
    Reconfiguring = 7,
    Reconfigured = 8,
}

impl XenbusState {
    /// The state a `state` node holds; anything unparsable is `Unknown`.
    pub fn parse(text: &str) -> Self {
        match text.trim().parse::<u32>() {
            Ok(1) => Self::Initialising,
            Ok(2) => Self::InitWait,
            Ok(3) => Self::Initialised,
            Ok(4) => Self::Connected,
            Ok(5) => Self::Closing,
            Ok(6) => Self::Closed,
            Ok(7) => Self::Reconfiguring,
            Ok(8) => Self::Reconfigured,
            _ => Self::Unknown,
        }
    }

    /// The decimal form written to a `state` node.
    pub fn value(self) -> String {
        (self as u32).to_string()
    }
}

/// A virtual device name that is not `xvd<letters>[<partition>]` or a number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid virtual device \"{0}\" (expected xvda, xvdb, ..., xvdaa, ... or a device number)")]
pub struct ParseVdevError(pub String);

/// Disks at most this index (`xvdp`) use the compact encoding.
const COMPACT_DISKS: u32 = 16;
/// Highest disk index the extended encoding holds (`docs/misc/vbd-interface.txt`).
const MAX_DISK: u32 = (1 << 20) - 1;

/// The device id of a Xen virtual disk name (`docs/misc/vbd-interface.txt`):
/// `xvda` is 51712 (`202 << 8`); disk `d` with partition `p` is
/// `202 << 8 | d << 4 | p` for `d < 16`, `p < 16`, else `1 << 28 | d << 8 | p`.
/// A plain decimal number is taken as the id itself.
pub fn parse_vdev(name: &str) -> Result<u32, ParseVdevError> {
    let bad = || ParseVdevError(name.to_owned());
    if let Ok(n) = name.parse::<u32>() {
        return if n == 0 { Err(bad()) } else { Ok(n) };
    }
    let rest = name.strip_prefix("xvd").ok_or_else(bad)?;
    let letters_end = rest.find(|c: char| !c.is_ascii_lowercase()).unwrap_or(rest.len());
    let (letters, digits) = rest.split_at(letters_end);
    if letters.is_empty() || letters.len() > 4 {
        return Err(bad());
    }
    // Bijective base 26: a=0 ... z=25, aa=26, ...
    let mut disk: u32 = 0;
    for c in letters.bytes() {
        disk = disk.checked_mul(26).and_then(|d| d.checked_add(u32::from(c - b'a') + 1)).ok_or_else(bad)?;
    }
    let disk = disk - 1;
    let part = if digits.is_empty() {
        0
    } else if digits.starts_with('0') {
        return Err(bad());
    } else {
        digits.parse::<u32>().map_err(|_| bad())?
    };
    if disk < COMPACT_DISKS && part < 16 {
        Ok(202 << 8 | disk << 4 | part)
    } else if disk <= MAX_DISK && part < 256 {
        Ok(1 << 28 | disk << 8 | part)
    } else {
        Err(bad())
    }
}

/// The name of the `index`th whole disk: 0 is `xvda`, 25 `xvdz`, 26 `xvdaa`.
pub fn disk_name(index: u32) -> String {
    let mut letters = Vec::new();
    let mut n = u64::from(index) + 1;
    while n > 0 {
        let rem = ((n - 1) % 26) as u8;
        letters.push(b'a' + rem);
        n = (n - 1) / 26;
    }
    letters.reverse();
    format!("xvd{}", String::from_utf8_lossy(&letters))
}

/// The two directories of one device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevicePaths {
    pub kind: String,
    pub domid: u32,
    pub devid: u32,
    /// `/local/domain/0/backend/<kind>/<domid>/<devid>`.
    pub backend: String,
    /// `/local/domain/<domid>/device/<kind>/<devid>`.
    pub frontend: String,
}

impl DevicePaths {
    pub fn new(kind: &str, domid: u32, devid: u32) -> Self {
        Self {
            kind: kind.to_owned(),
            domid,
            devid,
            backend: format!("/local/domain/0/backend/{kind}/{domid}/{devid}"),
            frontend: format!("/local/domain/{domid}/device/{kind}/{devid}"),
        }
    }
}

/// A store operation that failed, with the path it was about.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("xenstore {op} {path}: {errno:?}")]
pub struct StoreError {
    pub op: &'static str,
    pub path: String,
    pub errno: Errno,
}

/// A privileged (domain 0) connection to the store, used by the toolstack
/// and the backends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreClient {
    conn: ConnId,
}

impl StoreClient {
    /// Opens a privileged connection.
    pub fn connect(xs: &mut Xenstore) -> Self {
        Self { conn: xs.connect_privileged() }
    }

    /// The connection, e.g. to drain its watch events.
    pub fn conn(&self) -> ConnId {
        self.conn
    }

    fn call(&self, xs: &mut Xenstore, op: &'static str, msg: &Message, path: &str) -> Result<Vec<u8>, StoreError> {
        let reply = xs.handle(self.conn, msg).into_iter().find(|m| m.ty != MsgType::WatchEvent as u32);
        let err = |errno| StoreError { op, path: path.to_owned(), errno };
        let reply = reply.ok_or_else(|| err(Errno::Io))?;
        match reply.as_error() {
            Some(e) => Err(err(e)),
            None => Ok(reply.payload),
        }
    }

    /// The value of `path`, or `None` if it does not exist or is not UTF-8.
    pub fn read(&self, xs: &mut Xenstore, path: &str) -> Option<String> {
        let msg = Message::with_strings(MsgType::Read, 0, 0, &[path.as_bytes()]);
        let value = self.call(xs, "read", &msg, path).ok()?;
        String::from_utf8(value).ok()
    }

    pub fn write(&self, xs: &mut Xenstore, path: &str, value: &str) -> Result<(), StoreError> {
        let mut payload = path.as_bytes().to_vec();
        payload.push(0);
        payload.extend_from_slice(value.as_bytes());
        self.call(xs, "write", &Message::new(MsgType::Write, 0, 0, payload), path).map(|_| ())
    }

    /// Creates `path` (and its parents) with permissions `perms` (`n0`, `r1`, ...).
    pub fn mknod(&self, xs: &mut Xenstore, path: &str, perms: &[String]) -> Result<(), StoreError> {
        self.call(xs, "mkdir", &Message::with_strings(MsgType::Mkdir, 0, 0, &[path.as_bytes()]), path)?;
        let mut parts: Vec<&[u8]> = vec![path.as_bytes()];
        parts.extend(perms.iter().map(|p| p.as_bytes()));
        self.call(xs, "set-perms", &Message::with_strings(MsgType::SetPerms, 0, 0, &parts), path).map(|_| ())
    }

    /// Removes `path` and everything below it; a missing node is fine.
    pub fn rm(&self, xs: &mut Xenstore, path: &str) -> Result<(), StoreError> {
        match self.call(xs, "rm", &Message::with_strings(MsgType::Rm, 0, 0, &[path.as_bytes()]), path) {
            Ok(_) => Ok(()),
            Err(e) if e.errno == Errno::NoEnt => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// Creates a device's two directories as the toolstack does: both `state`
/// nodes Initialising, the links between them, and the given extra nodes
/// (`backend_nodes` under the backend directory, `frontend_nodes` under the
/// frontend's).
pub fn create_device(
    xs: &mut Xenstore,
    client: &StoreClient,
    paths: &DevicePaths,
    backend_nodes: &[(&str, String)],
    frontend_nodes: &[(&str, String)],
) -> Result<(), StoreError> {
    let domid = paths.domid;
    client.rm(xs, &paths.backend)?;
    client.rm(xs, &paths.frontend)?;
    client.mknod(xs, &paths.backend, &["n0".into(), format!("r{domid}")])?;
    client.mknod(xs, &paths.frontend, &[format!("n{domid}"), "r0".into()])?;
    let init = XenbusState::Initialising.value();
    let mut back: Vec<(&str, String)> = vec![
        ("frontend", paths.frontend.clone()),
        ("frontend-id", domid.to_string()),
        ("online", "1".into()),
        ("state", init.clone()),
    ];
    back.extend(backend_nodes.iter().cloned());
    for (name, value) in back {
        client.write(xs, &format!("{}/{name}", paths.backend), &value)?;
    }
    let mut front: Vec<(&str, String)> =
        vec![("backend", paths.backend.clone()), ("backend-id", "0".into()), ("state", init)];
    front.extend(frontend_nodes.iter().cloned());
    for (name, value) in front {
        client.write(xs, &format!("{}/{name}", paths.frontend), &value)?;
    }
    Ok(())
}

/// Removes both directories of a device (unplug).
pub fn remove_device(xs: &mut Xenstore, client: &StoreClient, paths: &DevicePaths) -> Result<(), StoreError> {
    client.rm(xs, &paths.frontend)?;
    client.rm(xs, &paths.backend)
}

/// What the backend must do after looking at the frontend's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Nothing changed.
    Idle,
    /// The frontend published its parameters: connect with them, then call
    /// [`Handshake::connected`] (or [`Handshake::failed`]).
    Connect,
    /// Tear the connection down (if any), then [`Handshake::switch`] to the state.
    Disconnect(XenbusState),
}

/// The backend's half of the XenBus state handshake for one device.
#[derive(Debug, Clone)]
pub struct Handshake {
    pub paths: DevicePaths,
    state: XenbusState,
    /// The frontend state seen last, to act on changes only.
    seen: Option<XenbusState>,
}

impl Handshake {
    /// A device whose nodes exist (see [`create_device`]), backend Initialising.
    pub fn new(paths: DevicePaths) -> Self {
        Self { paths, state: XenbusState::Initialising, seen: None }
    }

    /// Our (the backend's) state.
    pub fn state(&self) -> XenbusState {
        self.state
    }

    /// Writes our state node.
    pub fn switch(&mut self, xs: &mut Xenstore, client: &StoreClient, to: XenbusState) -> Result<(), StoreError> {
        if self.state != to {
            tracing::debug!("{}: backend state {:?} -> {to:?}", self.paths.backend, self.state);
        }
        self.state = to;
        client.write(xs, &format!("{}/state", self.paths.backend), &to.value())
    }

    /// Publishes `nodes` under the backend directory and goes to InitWait:
    /// the backend is ready for the frontend's parameters.
    pub fn init_wait(&mut self, xs: &mut Xenstore, client: &StoreClient, nodes: &[(&str, String)]) -> Result<(), StoreError> {
        for (name, value) in nodes {
            client.write(xs, &format!("{}/{name}", self.paths.backend), value)?;
        }
        self.switch(xs, client, XenbusState::InitWait)
    }

    /// The frontend's state now (`Unknown` if its node is gone).
    pub fn frontend_state(&self, xs: &mut Xenstore, client: &StoreClient) -> XenbusState {
        client.read(xs, &format!("{}/state", self.paths.frontend)).map_or(XenbusState::Unknown, |s| XenbusState::parse(&s))
    }

    /// A node under the frontend directory.
    pub fn frontend_node(&self, xs: &mut Xenstore, client: &StoreClient, name: &str) -> Option<String> {
        client.read(xs, &format!("{}/{name}", self.paths.frontend))
    }

    /// Looks at the frontend's state and says how ours moves, as blkback and
    /// netback do; writes nothing (the caller acts, then switches).
    pub fn poll(&mut self, xs: &mut Xenstore, client: &StoreClient) -> Result<Step, StoreError> {
        use XenbusState::*;
        let front = self.frontend_state(xs, client);
        if self.seen == Some(front) {
            return Ok(Step::Idle);
        }
        self.seen = Some(front);
        tracing::debug!("{}: frontend state {front:?} (backend {:?})", self.paths.backend, self.state);
        Ok(match front {
            // A frontend starting over (reset, kexec, reload): offer a new connection.
            Initialising if matches!(self.state, Closed | Closing | Connected) => Step::Disconnect(InitWait),
            Initialised | Connected if self.state == InitWait || self.state == Initialising => Step::Connect,
            Closing if self.state != Closing && self.state != Closed => Step::Disconnect(Closing),
            Closed | Unknown if self.state != Closed => Step::Disconnect(Closed),
            _ => Step::Idle,
        })
    }

    /// The connection is up: publish `nodes` and go to Connected.
    pub fn connected(&mut self, xs: &mut Xenstore, client: &StoreClient, nodes: &[(&str, String)]) -> Result<(), StoreError> {
        for (name, value) in nodes {
            client.write(xs, &format!("{}/{name}", self.paths.backend), value)?;
        }
        self.switch(xs, client, XenbusState::Connected)
    }

    /// Connecting failed (`xenbus_dev_fatal`): the reason goes to the
    /// backend's `error` node and the backend to Closing, so the frontend
    /// gives up and may start over.
    pub fn failed(&mut self, xs: &mut Xenstore, client: &StoreClient, reason: &str) -> Result<(), StoreError> {
        tracing::warn!("{}: cannot connect: {reason}", self.paths.backend);
        client.write(xs, &format!("{}/error", self.paths.backend), reason)?;
        self.switch(xs, client, XenbusState::Closing)
    }
}

/// What a device type adds to [`Handshake`]: how it reads the frontend's
/// parameters and how it connects and disconnects. [`run_handshake`] does the
/// rest, the same for every backend.
pub trait HandshakeDevice {
    type Params;
    type Error: std::fmt::Display;
    /// The handshake state and the store identity it acts as.
    fn handshake(&mut self) -> (&mut Handshake, StoreClient);
    /// Reads the frontend's connection parameters (store locked).
    fn read_params(hs: &Handshake, xs: &mut Xenstore, client: &StoreClient) -> Result<Self::Params, Self::Error>;
    /// The error when the parameters could not be read at all.
    fn no_params() -> Self::Error;
    fn connect_frontend(&mut self, p: Self::Params) -> Result<(), Self::Error>;
    fn disconnect_frontend(&mut self);
}

/// A closure that runs its argument with the store locked.
pub type StoreStep<'a> = dyn FnMut(&mut Xenstore) -> Result<Option<Step>, StoreError> + 'a;

/// Runs `dev`'s handshake one step: polls the frontend's state, then connects
/// (publishing Connected, or the error and Closing) or disconnects. The store
/// is locked only around store work, never while rings are mapped. Returns
/// whether the connection changed.
pub fn run_handshake<D, F>(dev: &mut D, mut with_store: F) -> Result<bool, StoreError>
where
    D: HandshakeDevice,
    F: FnMut(&mut StoreStep<'_>) -> Result<Option<Step>, StoreError>,
{
    let mut params = None;
    let step = {
        let (hs, client) = dev.handshake();
        let p = &mut params;
        with_store(&mut |xs: &mut Xenstore| {
            let step = hs.poll(xs, &client)?;
            if step == Step::Connect {
                *p = Some(D::read_params(hs, xs, &client));
            }
            Ok(Some(step))
        })?
    };
    match step {
        None | Some(Step::Idle) => Ok(false),
        Some(Step::Disconnect(then)) => {
            dev.disconnect_frontend();
            let (hs, client) = dev.handshake();
            with_store(&mut |xs| hs.switch(xs, &client, then).map(|()| None))?;
            Ok(true)
        }
        Some(Step::Connect) => {
            let result = params.unwrap_or_else(|| Err(D::no_params())).and_then(|p| dev.connect_frontend(p));
            let (hs, client) = dev.handshake();
            with_store(&mut |xs| {
                match &result {
                    Ok(()) => hs.connected(xs, &client, &[])?,
                    Err(e) => hs.failed(xs, &client, &e.to_string())?,
                }
                Ok(None)
            })?;
            Ok(result.is_ok())
        }
    }
}

/// [`run_handshake`] with the VMM's shared store.
pub fn run_handshake_on<D: HandshakeDevice>(dev: &mut D, shared: &xenkvm_xenstore::server::Shared) -> Result<bool, StoreError> {
    run_handshake(dev, |f| shared.with(|xs| f(xs)))
}

/// How long an unplug waits for the frontend to close before removing the
/// device anyway (a guest that keeps a disk mounted refuses to close it).
pub const UNPLUG_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

/// Where an unplug stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnplugProgress {
    /// Asked the frontend to close; call again.
    Waiting,
    /// Disconnected and the device's directories removed.
    Done,
}

/// Removes a device as the toolstack does: the backend goes to Closing, the
/// frontend closes (or [`UNPLUG_GRACE`] passes, or it never connected), then
/// the backend disconnects, goes to Closed and both directories are removed.
/// `since` is when the unplug began (`None` on the first call, which sets it).
pub fn unplug_step<D: HandshakeDevice>(
    dev: &mut D,
    shared: &xenkvm_xenstore::server::Shared,
    since: &mut Option<std::time::Instant>,
) -> Result<UnplugProgress, StoreError> {
    let first = since.is_none();
    let started = *since.get_or_insert_with(std::time::Instant::now);
    let (hs, client) = dev.handshake();
    let front = shared.with(|xs| -> Result<XenbusState, StoreError> {
        if first && hs.state() != XenbusState::Closed {
            hs.switch(xs, &client, XenbusState::Closing)?;
        }
        Ok(hs.frontend_state(xs, &client))
    })?;
    use XenbusState::*;
    let closed = matches!(front, Closed | Unknown | Initialising | InitWait);
    if !closed && started.elapsed() < UNPLUG_GRACE {
        return Ok(UnplugProgress::Waiting);
    }
    if !closed {
        tracing::warn!("{}: the frontend did not close in {UNPLUG_GRACE:?} (state {front:?}); removing the device anyway", hs.paths.backend);
    }
    dev.disconnect_frontend();
    let (hs, client) = dev.handshake();
    shared.with(|xs| {
        hs.switch(xs, &client, XenbusState::Closed)?;
        remove_device(xs, &client, &hs.paths)
    })?;
    Ok(UnplugProgress::Done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vdev_numbers() {
        assert_eq!(parse_vdev("xvda"), Ok(51712));
        assert_eq!(parse_vdev("xvdb"), Ok(51728));
        assert_eq!(parse_vdev("xvda1"), Ok(51713));
        assert_eq!(parse_vdev("xvdp"), Ok(202 << 8 | 15 << 4));
        assert_eq!(parse_vdev("xvdq"), Ok(1 << 28 | 16 << 8));
        assert_eq!(parse_vdev("xvdaa"), Ok(1 << 28 | 26 << 8));
        assert_eq!(parse_vdev("51712"), Ok(51712));
        for bad in ["", "xvd", "sda", "xvdA", "xvda01", "xvda256", "0", "xvdzzzzz"] {
            assert!(parse_vdev(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn disk_names_round_trip() {
        assert_eq!(disk_name(0), "xvda");
        assert_eq!(disk_name(25), "xvdz");
        assert_eq!(disk_name(26), "xvdaa");
        for i in [0, 1, 15, 16, 25, 26, 700] {
            let id = parse_vdev(&disk_name(i)).unwrap_or(0);
            let disk = if id >> 28 == 1 { (id >> 8) & 0xFFFFF } else { (id >> 4) & 0xF };
            assert_eq!(disk, i);
        }
    }

    #[test]
    fn states_parse() {
        assert_eq!(XenbusState::parse("4"), XenbusState::Connected);
        assert_eq!(XenbusState::parse("x"), XenbusState::Unknown);
        assert_eq!(XenbusState::Closed.value(), "6");
    }
}
