//! Xenbus consoles (the second and further `xen-console` devices; the first
//! is the primary console on the special console page).
//!
//! The toolstack's layout, as libxl writes it for `console` devices: backend
//! `/local/domain/0/backend/console/<domid>/<devid>` (with `protocol`
//! `vt100`), frontend `/local/domain/<domid>/device/console/<devid>` (with
//! `limit`, `type` and `output`). Linux's `hvc_xen` (`xencons_probe`,
//! `xencons_connect_backend`) allocates a page, grants it to domain 0, writes
//! `ring-ref` and `port` (its event channel) and goes to Initialised; we map
//! the grant, bind the channel and go to Connected, after which the frontend
//! does too. The page is a `struct xencons_interface`, served with
//! [`ConsoleRing`] exactly like the primary console's.

use xenkvm_xen_core::gnttab::GrantAccess;
use xenkvm_xenstore::Xenstore;

use crate::console::{ConsoleRing, GuestFrame};
use crate::grants::{DomainGrants, Mapped};
use crate::xenbus::{
    create_device, run_handshake, DevicePaths, Handshake, HandshakeDevice, Step, StoreClient, StoreError, StoreStep, XenbusState,
};

/// The grant and event channel the frontend published.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrontendParams {
    pub ring_ref: u32,
    pub event_channel: u32,
}

/// Why connecting to the frontend failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectError {
    #[error("missing or invalid frontend node {0}")]
    Node(&'static str),
    #[error("ring page: {0}")]
    MapRing(crate::grants::MapGrantError),
    #[error("event channel {0}: {1:?}")]
    BindEventChannel(u32, xenkvm_xen_abi::errno::XenErrno),
}

struct Connection {
    page: Mapped,
    frame: GuestFrame,
    port: u32,
}

/// One xenbus console of the guest.
pub struct ConsoleBackend {
    handshake: Handshake,
    client: StoreClient,
    grants: DomainGrants,
    conn: Option<Connection>,
}

impl ConsoleBackend {
    /// Writes the toolstack's nodes of console `devid` (1 and up) and goes to InitWait.
    pub fn create(xs: &mut Xenstore, domid: u32, devid: u32, grants: DomainGrants) -> Result<Self, StoreError> {
        let client = StoreClient::connect(xs);
        let paths = DevicePaths::new("console", domid, devid);
        let backend_nodes = [("protocol", "vt100".to_string())];
        let frontend_nodes =
            [("limit", "1048576".to_string()), ("type", "ioemu".into()), ("output", format!("xenkvm console {devid}"))];
        create_device(xs, &client, &paths, &backend_nodes, &frontend_nodes)?;
        let mut backend = Self { handshake: Handshake::new(paths), client, grants, conn: None };
        backend.handshake.init_wait(xs, &client, &[])?;
        Ok(backend)
    }

    pub fn paths(&self) -> &DevicePaths {
        &self.handshake.paths
    }

    pub fn state(&self) -> XenbusState {
        self.handshake.state()
    }

    /// Our end of the event channel, while connected.
    pub fn port(&self) -> Option<u32> {
        self.conn.as_ref().map(|c| c.port)
    }

    /// The ring, while connected.
    pub fn ring(&self) -> Option<ConsoleRing<'_, GuestFrame>> {
        self.conn.as_ref().map(|c| ConsoleRing::new(&c.frame))
    }

    /// Runs the handshake one step; `with_store` runs a closure with the store
    /// locked. Returns whether the connection changed.
    pub fn xenbus<F>(&mut self, with_store: F) -> Result<bool, StoreError>
    where
        F: FnMut(&mut StoreStep<'_>) -> Result<Option<Step>, StoreError>,
    {
        run_handshake(self, with_store)
    }

    /// Maps the ring page and binds the event channel.
    pub fn connect(&mut self, p: FrontendParams) -> Result<(), ConnectError> {
        self.disconnect();
        let mapped = self.grants.map(&[(p.ring_ref, GrantAccess::Write)]).map_err(ConnectError::MapRing)?;
        let Some(page) = mapped.first().copied() else {
            return Err(ConnectError::Node("ring-ref"));
        };
        let bound = self.grants.domain().lock().map_err(|_| ConnectError::Node("domain")).and_then(|mut d| {
            d.backend_bind_interdomain(p.event_channel).map_err(|e| ConnectError::BindEventChannel(p.event_channel, e))
        });
        let port = match bound {
            Ok(port) => port,
            Err(e) => {
                self.grants.unmap(&mapped);
                return Err(e);
            }
        };
        let frame = GuestFrame { ram: self.grants.ram().clone(), gfn: page.gfn };
        tracing::info!("{}: connected, event channel {}", self.handshake.paths.backend, p.event_channel);
        self.conn = Some(Connection { page, frame, port });
        Ok(())
    }

    /// Unpins the ring and closes the event channel (idempotent).
    pub fn disconnect(&mut self) {
        if let Some(c) = self.conn.take() {
            self.grants.unmap(&[c.page]);
            if let Ok(mut d) = self.grants.domain().lock() {
                let _ = d.backend_close(c.port);
            }
            tracing::info!("{}: disconnected", self.handshake.paths.backend);
        }
    }
}

impl HandshakeDevice for ConsoleBackend {
    type Params = FrontendParams;
    type Error = ConnectError;
    fn handshake(&mut self) -> (&mut Handshake, StoreClient) {
        (&mut self.handshake, self.client)
    }
    fn read_params(hs: &Handshake, xs: &mut Xenstore, client: &StoreClient) -> Result<FrontendParams, ConnectError> {
        read_params(hs, xs, client)
    }
    fn no_params() -> ConnectError {
        ConnectError::Node("state")
    }
    fn connect_frontend(&mut self, p: FrontendParams) -> Result<(), ConnectError> {
        self.connect(p)
    }
    fn disconnect_frontend(&mut self) {
        self.disconnect();
    }
}

impl Drop for ConsoleBackend {
    fn drop(&mut self) {
        self.disconnect();
    }
}

fn read_params(hs: &Handshake, xs: &mut Xenstore, client: &StoreClient) -> Result<FrontendParams, ConnectError> {
    let mut number = |names: &[&'static str]| -> Result<u32, ConnectError> {
        let first = names.first().copied().unwrap_or("?");
        let value = names.iter().find_map(|n| hs.frontend_node(xs, client, n));
        value.and_then(|s| s.trim().parse().ok()).ok_or(ConnectError::Node(first))
    };
    let ring_ref = number(&["ring-ref"])?;
    // Linux and QEMU name it `port`; accept the other drivers' `event-channel` too.
    let event_channel = number(&["port", "event-channel"])?;
    Ok(FrontendParams { ring_ref, event_channel })
}
