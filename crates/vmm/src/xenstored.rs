//! The in-VMM xenstored serving the guest's ring: the toolstack's tree for the
//! domain, the domain introduced on the store page and channel, and a thread
//! that runs the ring whenever the guest kicks the channel.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use xenkvm_xen_core::page::SharedPage;
use xenkvm_xen_core::Domain;
use xenkvm_xenstore::default_tree::{create_domain_tree, DomainTree};
use xenkvm_xenstore::ring::{RingMemory, XenstoreRing};
use xenkvm_xenstore::server::{Shared, SocketServer};
use xenkvm_xenstore::{Quotas, Xenstore};

use crate::builder::{SpecialPages, CONSOLE_GFN, XENSTORE_GFN};
use crate::events::{serve_backend, Backends};
use crate::vcpu::RunControl;
use crate::{VmConfig, VmmError};

/// The store page as the ring transport reads it.
struct Page<'a>(&'a SharedPage);

impl RingMemory for Page<'_> {
    fn read(&self, offset: usize, buf: &mut [u8]) {
        if !self.0.read(offset, buf) {
            buf.fill(0);
        }
    }
    fn write(&self, offset: usize, buf: &[u8]) {
        let _ = self.0.write(offset, buf);
    }
    fn load_u32(&self, offset: usize) -> u32 {
        self.0.load_u32(offset)
    }
    fn store_u32(&self, offset: usize, value: u32) {
        self.0.store_u32(offset, value)
    }
}

/// The xenstored of one VM: the guest's ring and, for host tools, a socket.
pub struct Xenstored {
    shared: Arc<Shared>,
    ring: XenstoreRing,
    /// The guest's connection.
    conn: xenkvm_xenstore::ConnId,
    /// The guest's soft resets seen so far.
    soft_resets: (Arc<AtomicU64>, u64),
    page: Arc<SharedPage>,
    port: u32,
    /// Counts store activity that produced output (a change a backend may
    /// be waiting for); backends re-read their nodes when it moves.
    changes: Arc<AtomicU64>,
    /// Kept alive for the VM's lifetime; removes its socket when dropped.
    _socket: Option<SocketServer>,
}

/// Longest time between ring passes without a kick.
const POLL: Duration = Duration::from_millis(50);

impl Xenstored {
    /// Builds the domain's tree and introduces it, as a toolstack does.
    pub fn new(cfg: &VmConfig, special: &SpecialPages, backends: Arc<Backends>, soft_resets: Arc<AtomicU64>) -> Result<Self, VmmError> {
        let mut xs = Xenstore::new(Quotas::default());
        let mut tree = DomainTree::new(u32::from(cfg.domid), cfg.name.as_deref().unwrap_or("xenkvm-guest"), cfg.memory_bytes / 1024);
        tree.vcpus = cfg.vcpus;
        tree.store = Some((special.xenstore_guest_port, XENSTORE_GFN));
        tree.console = Some((special.console_guest_port, CONSOLE_GFN));
        let err = |e: xenkvm_xenstore::Errno| VmmError::Internal(format!("xenstore set-up: {e:?}"));
        create_domain_tree(&mut xs, &tree).map_err(err)?;
        let conn = xs.introduce_domain(u32::from(cfg.domid), XENSTORE_GFN, special.xenstore_guest_port).map_err(err)?;
        let ring = XenstoreRing::new(&xs, conn, &Page(&special.xenstore));
        // A tool's write can queue a watch event for the guest: wake the ring.
        let changes = Arc::new(AtomicU64::new(0));
        let counter = changes.clone();
        let shared = Shared::with_hook(
            xs,
            Box::new(move |_| {
                counter.fetch_add(1, Ordering::Release);
                backends.signal.notify()
            }),
        );
        let path = cfg.xenstore_socket_path();
        // Its threads cannot call seccomp::enter: start them under the service filter.
        let spawned = crate::seccomp::spawn_under(crate::seccomp::ThreadKind::Service, || SocketServer::spawn(&path, shared.clone()));
        let socket = match spawned.and_then(|r| r) {
            Ok(s) => {
                eprintln!("xenkvm: xenstore for host tools at {} (XENSTORED_PATH)", path.display());
                Some(s)
            }
            Err(e) => {
                tracing::warn!("no xenstore socket at {}: {e}", path.display());
                None
            }
        };
        let soft_resets = (soft_resets, 0);
        Ok(Self { shared, ring, conn, soft_resets, page: special.xenstore.clone(), port: special.xenstore_port, changes, _socket: socket })
    }

    /// The store, for the backends' own nodes.
    pub fn shared(&self) -> Arc<Shared> {
        self.shared.clone()
    }

    /// The store activity counter (see the field).
    pub fn changes(&self) -> Arc<AtomicU64> {
        self.changes.clone()
    }

    /// After the guest's soft reset (kexec): its watches, transactions and
    /// queued replies go, and the ring transport starts afresh, as a
    /// toolstack's release and introduce would do.
    fn after_soft_reset(&mut self) {
        let now = self.soft_resets.0.load(Ordering::Acquire);
        if now == self.soft_resets.1 {
            return;
        }
        self.soft_resets.1 = now;
        let (conn, page) = (self.conn, &self.page);
        self.ring = self.shared.with(|xs| {
            xs.reset_connection(conn);
            XenstoreRing::new(xs, conn, &Page(page))
        });
        tracing::info!("xenstore: the guest's connection was reset (soft reset)");
    }

    /// Serves the ring until the VM stops.
    pub fn run(mut self, domain: Arc<Mutex<Domain>>, backends: Arc<Backends>, control: Arc<RunControl>) {
        let port = self.port;
        serve_backend(port, &domain, &backends, &control, POLL, || {
            self.after_soft_reset();
            let mut notify = false;
            loop {
                let (ring, page) = (&mut self.ring, &self.page);
                let k = self.shared.with(|xs| ring.kick(xs, &Page(page)));
                notify |= k.notify;
                if let Some(e) = k.error {
                    tracing::warn!("guest xenstore ring stopped with error {e}");
                }
                if !k.more {
                    return notify;
                }
            }
        });
    }
}
