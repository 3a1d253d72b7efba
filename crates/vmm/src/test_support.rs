//! What component tests of backend threads share: a Xen domain on plain
//! memory with fake ports, a store with the guest introduced, and helpers to
//! act as the guest's frontend.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use vm_memory::{GuestAddress, GuestMemoryMmap};
use xenkvm_xen_core::domain::Ports;
use xenkvm_xen_core::page::SharedPage;
use xenkvm_xen_core::ports::{BackendNotify, CallbackLine, Clock, ConsoleSink, Physmap, PhysmapError, Upcall, UpcallVia};
use xenkvm_xen_core::{Domain, DomainConfig};
use xenkvm_xenstore::server::Shared;
use xenkvm_xenstore::{ConnId, Message, MsgType, Quotas, Xenstore};

use crate::events::Backends;
use crate::pvblock::Context;
use crate::vcpu::RunControl;

struct Fakes;
impl Clock for Fakes {
    fn guest_tsc(&self) -> u64 {
        0
    }
    fn tsc_khz(&self) -> u32 {
        1_000_000
    }
    fn wall_clock_ns(&self) -> u64 {
        0
    }
}
impl ConsoleSink for Fakes {
    fn write(&self, _: &[u8]) {}
}
impl Physmap for Fakes {
    fn move_overlay(&self, _: Option<u64>, _: u64, _: &SharedPage) -> Result<(), PhysmapError> {
        Ok(())
    }
}
impl Upcall for Fakes {
    fn raise(&self, _: u32, _: UpcallVia) {}
    fn set_line(&self, _: CallbackLine, _: bool) {}
    fn kick(&self, _: u32) {}
    fn timer_changed(&self, _: u32, _: Option<u64>) {}
}
impl BackendNotify for Fakes {
    fn notify(&self, _: u32) {}
}

/// Domain 1 with 16 MiB of RAM, its store connection, and a backend context.
pub struct TestVm {
    pub ram: GuestMemoryMmap,
    pub ctx: Context,
    /// The guest's store connection.
    pub guest: ConnId,
}

impl TestVm {
    pub fn new() -> Self {
        let ram = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 16 << 20)]).unwrap();
        let cfg = DomainConfig { xen_version: 0x40011, domid: 1, vcpus: 1, max_gfn: 0xF_FFFF, handle: [1; 16], gnttab_max_frames: 4 };
        let f = Arc::new(Fakes);
        let ports = Ports { clock: f.clone(), console: f.clone(), physmap: f.clone(), upcall: f.clone(), backends: f };
        let domain = Arc::new(Mutex::new(Domain::new(cfg, ram.clone(), ports).unwrap()));
        let mut xs = Xenstore::new(Quotas::default());
        xs.create_domain(1);
        let store_port = domain.lock().unwrap().alloc_unbound_for_backend().unwrap();
        let guest = xs.introduce_domain(1, 0xFEFF8, store_port).unwrap();
        let ctx = Context {
            domid: 1,
            domain,
            shared: Shared::new(xs),
            changes: Arc::new(AtomicU64::new(0)),
            backends: Arc::new(Backends::default()),
            control: Arc::new(RunControl::default()),
        };
        Self { ram, ctx, guest }
    }

    /// Writes a node as the guest, as a frontend does.
    pub fn guest_write(&self, path: &str, value: &str) {
        let mut p = path.as_bytes().to_vec();
        p.push(0);
        p.extend_from_slice(value.as_bytes());
        self.ctx.shared.with(|xs| xs.handle(self.guest, &Message::new(MsgType::Write, 0, 0, p)));
        self.ctx.changes.fetch_add(1, Ordering::AcqRel);
        self.ctx.backends.signal.notify();
    }

    /// Reads a node as dom0; `None` if it does not exist.
    pub fn read(&self, path: &str) -> Option<String> {
        let reply = self.ctx.shared.with(|xs| {
            let c = xs.connect_privileged();
            let r = xs.handle(c, &Message::with_strings(MsgType::Read, 0, 0, &[path.as_bytes()]));
            xs.disconnect(c);
            r
        });
        let m = reply.into_iter().next()?;
        (m.as_error().is_none()).then(|| String::from_utf8_lossy(&m.payload).into_owned())
    }
}

/// Polls `f` for up to five seconds.
pub fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + Duration::from_secs(5);
    while !f() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}
