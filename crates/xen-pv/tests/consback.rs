//! A xenbus console (console 1) against a simulated hvc_xen frontend: the
//! toolstack layout, the handshake, text both ways through the granted ring,
//! a frontend that gets its parameters wrong, and close and reconnect.

use std::sync::{Arc, Mutex};

use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};
use xenkvm_xen_abi::grant_table::{GTF_PERMIT_ACCESS, GTF_READING, GTF_WRITING};
use xenkvm_xen_core::domain::Ports;
use xenkvm_xen_core::page::SharedPage;
use xenkvm_xen_core::ports::{BackendNotify, CallbackLine, Clock, ConsoleSink, Physmap, PhysmapError, Upcall, UpcallVia};
use xenkvm_xen_core::{Domain, DomainConfig};
use xenkvm_xen_pv::consback::ConsoleBackend;
use xenkvm_xen_pv::console::{Progress, IN_CONS, IN_OFFSET, IN_PROD, OUT_OFFSET, OUT_PROD};
use xenkvm_xen_pv::grants::DomainGrants;
use xenkvm_xen_pv::xenbus::XenbusState;
use xenkvm_xenstore::{ConnId, Message, MsgType, Quotas, Xenstore};

const DOMID: u32 = 1;
const RING_GFN: u64 = 0x123;
const GREF: u32 = 9;

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

struct Rig {
    domain: Arc<Mutex<Domain>>,
    ram: GuestMemoryMmap<()>,
    xs: Xenstore,
    guest: ConnId,
    backend: ConsoleBackend,
    front: String,
    back: String,
}

fn rig() -> Rig {
    let ram = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 16 << 20)]).unwrap();
    let cfg = DomainConfig { xen_version: 0x40011, domid: DOMID as u16, vcpus: 1, max_gfn: 0xF_FFFF, handle: [1; 16], gnttab_max_frames: 4 };
    let f = Arc::new(Fakes);
    let ports = Ports { clock: f.clone(), console: f.clone(), physmap: f.clone(), upcall: f.clone(), backends: f };
    let domain = Arc::new(Mutex::new(Domain::new(cfg, ram.clone(), ports).unwrap()));
    let mut xs = Xenstore::new(Quotas::default());
    xs.create_domain(DOMID);
    let store_port = domain.lock().unwrap().alloc_unbound_for_backend().unwrap();
    let guest = xs.introduce_domain(DOMID, 0xFEFF8, store_port).unwrap();
    let backend = ConsoleBackend::create(&mut xs, DOMID, 1, DomainGrants::new(domain.clone())).unwrap();
    let (front, back) = (backend.paths().frontend.clone(), backend.paths().backend.clone());
    Rig { domain, ram, xs, guest, backend, front, back }
}

impl Rig {
    fn read(&mut self, path: &str) -> Option<String> {
        let c = self.xs.connect_privileged();
        let out = self.xs.handle(c, &Message::with_strings(MsgType::Read, 0, 0, &[path.as_bytes()]));
        self.xs.disconnect(c);
        let m = out.into_iter().next()?;
        (m.ty == MsgType::Read as u32).then(|| String::from_utf8(m.payload).unwrap())
    }

    fn guest_write(&mut self, name: &str, value: &str) {
        let mut p = format!("{}/{name}", self.front).into_bytes();
        p.push(0);
        p.extend_from_slice(value.as_bytes());
        let out = self.xs.handle(self.guest, &Message::new(MsgType::Write, 0, 0, p));
        assert!(out.iter().any(|m| m.ty == MsgType::Write as u32), "guest write of {name} refused");
    }

    fn xenbus(&mut self) -> bool {
        let xs = &mut self.xs;
        self.backend.xenbus(|f| f(xs)).unwrap()
    }

    fn back_state(&mut self) -> XenbusState {
        let p = format!("{}/state", self.back);
        XenbusState::parse(&self.read(&p).unwrap_or_default())
    }

    fn grant_flags(&self) -> u16 {
        self.domain.lock().unwrap().grant_entry(GREF).unwrap().flags
    }

    /// What `xencons_connect_backend` does: a zeroed page granted to dom0,
    /// an unbound event channel, `ring-ref` and `port`, then Initialised.
    fn frontend_connect(&mut self, with_port: bool) -> u32 {
        self.ram.write_slice(&[0u8; 4096], GuestAddress(RING_GFN << 12)).unwrap();
        let port = {
            let d = self.domain.lock().unwrap();
            let frame = d.grant_table().frame(0).unwrap().clone();
            let raw = u64::from(GTF_PERMIT_ACCESS) | (RING_GFN << 32);
            frame.write(GREF as usize * 8, &raw.to_le_bytes());
            drop(d);
            self.domain.lock().unwrap().alloc_unbound_for_backend().unwrap()
        };
        self.guest_write("ring-ref", &GREF.to_string());
        if with_port {
            self.guest_write("port", &port.to_string());
        }
        self.guest_write("state", &XenbusState::Initialised.value());
        port
    }

    /// The guest's `xencons_interface`, as hvc_xen writes output.
    fn guest_output(&self, text: &[u8]) {
        let at = |o: usize| GuestAddress((RING_GFN << 12) + o as u64);
        let mut prod: u32 = self.ram.read_obj(at(OUT_PROD)).unwrap();
        for b in text {
            self.ram.write_obj(*b, at(OUT_OFFSET + (prod % 2048) as usize)).unwrap();
            prod = prod.wrapping_add(1);
        }
        self.ram.write_obj(prod, at(OUT_PROD)).unwrap();
    }

    /// Reads all input the backend placed (hvc_xen's `domU_read_console`).
    fn guest_input(&self) -> Vec<u8> {
        let at = |o: usize| GuestAddress((RING_GFN << 12) + o as u64);
        let mut cons: u32 = self.ram.read_obj(at(IN_CONS)).unwrap();
        let prod: u32 = self.ram.read_obj(at(IN_PROD)).unwrap();
        let mut out = Vec::new();
        while cons != prod {
            out.push(self.ram.read_obj::<u8>(at(IN_OFFSET + (cons % 1024) as usize)).unwrap());
            cons = cons.wrapping_add(1);
        }
        self.ram.write_obj(cons, at(IN_CONS)).unwrap();
        out
    }
}

#[test]
fn toolstack_layout_handshake_and_text_both_ways() {
    let mut r = rig();
    assert_eq!(r.front, "/local/domain/1/device/console/1");
    assert_eq!(r.back, "/local/domain/0/backend/console/1/1");
    let (f, b) = (r.front.clone(), r.back.clone());
    let mut node = |p: String| r.read(&p).unwrap_or_else(|| panic!("missing {p}"));
    assert_eq!(node(format!("{f}/backend")), b);
    assert_eq!(node(format!("{f}/backend-id")), "0");
    assert_eq!(node(format!("{f}/limit")), "1048576");
    assert_eq!(node(format!("{f}/state")), "1");
    assert_eq!(node(format!("{b}/frontend")), f);
    assert_eq!(node(format!("{b}/frontend-id")), "1");
    assert_eq!(node(format!("{b}/protocol")), "vt100");
    assert_eq!(node(format!("{b}/state")), "2");
    assert!(r.backend.ring().is_none());

    let guest_port = r.frontend_connect(true);
    assert!(r.xenbus());
    assert_eq!(r.back_state(), XenbusState::Connected);
    let port = r.backend.port().unwrap();
    assert_eq!(r.domain.lock().unwrap().backend_peer(port), Some(guest_port));
    assert_eq!(r.grant_flags() & (GTF_READING | GTF_WRITING), GTF_READING | GTF_WRITING);
    // hvc_xen follows the backend to Connected; nothing more to do.
    r.guest_write("state", &XenbusState::Connected.value());
    assert!(!r.xenbus());

    r.guest_output(b"login: ");
    let mut p = Progress::default();
    let ring = r.backend.ring().unwrap();
    ring.read_output(&mut p);
    assert_eq!(ring.write_input(b"root\n", &mut p), 5);
    assert_eq!(p.output, b"login: ");
    assert!(p.notify() && !p.broken);
    assert_eq!(r.guest_input(), b"root\n");

    // The guest closes: the ring is unpinned, the channel closed.
    r.guest_write("state", &XenbusState::Closing.value());
    assert!(r.xenbus());
    assert_eq!(r.back_state(), XenbusState::Closing);
    assert!(r.backend.ring().is_none() && r.backend.port().is_none());
    assert_eq!(r.grant_flags() & (GTF_READING | GTF_WRITING), 0);
    r.guest_write("state", &XenbusState::Closed.value());
    assert!(r.xenbus());
    assert_eq!(r.back_state(), XenbusState::Closed);
    // A reloaded driver starts over and connects again.
    r.guest_write("state", &XenbusState::Initialising.value());
    assert!(r.xenbus());
    assert_eq!(r.back_state(), XenbusState::InitWait);
    r.frontend_connect(true);
    assert!(r.xenbus());
    assert_eq!(r.back_state(), XenbusState::Connected);
    r.guest_output(b"again\n");
    let mut p = Progress::default();
    r.backend.ring().unwrap().read_output(&mut p);
    assert_eq!(p.output, b"again\n");
}

#[test]
fn a_frontend_without_its_port_is_refused_with_an_error_node() {
    let mut r = rig();
    r.frontend_connect(false);
    assert!(!r.xenbus());
    assert_eq!(r.back_state(), XenbusState::Closing);
    let e = r.read(&format!("{}/error", r.back)).unwrap();
    assert!(e.contains("port"), "{e}");
    assert!(r.backend.ring().is_none());
    assert_eq!(r.grant_flags() & (GTF_READING | GTF_WRITING), 0);
}

#[test]
fn a_bad_grant_is_refused() {
    let mut r = rig();
    r.frontend_connect(true);
    r.guest_write("ring-ref", "4000");
    assert!(!r.xenbus());
    assert_eq!(r.back_state(), XenbusState::Closing);
    assert!(r.read(&format!("{}/error", r.back)).unwrap().contains("ring page"));
}
