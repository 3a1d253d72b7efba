//! A simulated netfront: fake guest RAM and a real Xen core (grant table,
//! event channels), the real store, a network backend with a fake tap, and a
//! frontend that grants pages, writes tx and rx requests into the rings and
//! reads the responses byte for byte, as xen-netfront would.

#![allow(dead_code)]

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};
use xenkvm_xen_abi::grant_table::{GTF_PERMIT_ACCESS, GTF_READONLY};
use xenkvm_xen_core::domain::Ports;
use xenkvm_xen_core::page::SharedPage;
use xenkvm_xen_core::ports::{BackendNotify, CallbackLine, Clock, ConsoleSink, Physmap, PhysmapError, Upcall, UpcallVia};
use xenkvm_xen_core::{Domain, DomainConfig};
use xenkvm_xen_pv::grants::DomainGrants;
use xenkvm_xen_pv::netback::{NetBackend, NetDevice, Offload, RxCaps, VifOptions};
use xenkvm_xen_pv::netif::*;
use xenkvm_xen_pv::xenbus::XenbusState;
use xenkvm_xenstore::{ConnId, Message, MsgType, Quotas, Xenstore};

pub const DOMID: u32 = 1;
pub const RAM: usize = 16 << 20;
pub const TX_GFN: u64 = 0x100;
pub const RX_GFN: u64 = 0x102;
/// Tx data pages, granted read-only as refs 100 + i.
pub const DATA_GFN: u64 = 0x200;
pub const DATA_REF: u32 = 100;
/// Rx buffers, granted writable as refs 400 + i.
pub const RXBUF_GFN: u64 = 0x400;
pub const RXBUF_REF: u32 = 400;
pub const MAC: [u8; 6] = [0x52, 0x54, 0, 0x12, 0x34, 0x56];

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

/// Frames a tap was sent, with their offloads.
pub type Sent = Arc<Mutex<Vec<(Vec<u8>, Offload)>>>;

/// A tap that records what it was sent and the offloads it was given.
#[derive(Clone, Default)]
pub struct FakeTap {
    pub sent: Sent,
    pub offloads: Arc<Mutex<Option<RxCaps>>>,
    pub fail: Arc<AtomicBool>,
}

impl NetDevice for FakeTap {
    fn send(&mut self, frame: &[u8], offload: &Offload) -> io::Result<()> {
        if self.fail.load(Ordering::SeqCst) {
            return Err(io::Error::other("injected send failure"));
        }
        self.sent.lock().unwrap().push((frame.to_vec(), *offload));
        Ok(())
    }
    fn set_offloads(&mut self, caps: &RxCaps) -> io::Result<()> {
        *self.offloads.lock().unwrap() = Some(*caps);
        Ok(())
    }
}

impl FakeTap {
    pub fn take(&self) -> Vec<(Vec<u8>, Offload)> {
        std::mem::take(&mut *self.sent.lock().unwrap())
    }
}

/// One tx slot as the frontend writes it.
#[derive(Debug, Clone, Copy)]
pub struct Slot {
    pub gref: u32,
    pub offset: u16,
    pub flags: u16,
    pub id: u16,
    pub size: u16,
}

/// The guest, its store and one vif.
pub struct Rig {
    pub domain: Arc<Mutex<Domain>>,
    pub ram: GuestMemoryMmap<()>,
    pub xs: Xenstore,
    pub guest: ConnId,
    pub backend: NetBackend,
    pub tap: FakeTap,
    pub front: String,
    pub back: String,
    pub tx_prod: u32,
    pub tx_cons: u32,
    pub rx_prod: u32,
    pub rx_cons: u32,
    pub next_id: u16,
}

pub fn rig() -> Rig {
    let ram = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), RAM)]).unwrap();
    let cfg = DomainConfig { xen_version: 0x40011, domid: DOMID as u16, vcpus: 1, max_gfn: 0xF_FFFF, handle: [1; 16], gnttab_max_frames: 4 };
    let f = Arc::new(Fakes);
    let ports = Ports { clock: f.clone(), console: f.clone(), physmap: f.clone(), upcall: f.clone(), backends: f };
    let domain = Arc::new(Mutex::new(Domain::new(cfg, ram.clone(), ports).unwrap()));
    let mut xs = Xenstore::new(Quotas::default());
    xs.create_domain(DOMID);
    let store_port = domain.lock().unwrap().alloc_unbound_for_backend().unwrap();
    let guest = xs.introduce_domain(DOMID, 0xFEFF8, store_port).unwrap();
    let tap = FakeTap::default();
    let opts = VifOptions { devid: 0, mac: MAC, ifname: "tap-test".into() };
    let backend = NetBackend::create(&mut xs, DOMID, opts, Box::new(tap.clone()), DomainGrants::new(domain.clone())).unwrap();
    let (front, back) = (backend.paths().frontend.clone(), backend.paths().backend.clone());
    Rig { domain, ram, xs, guest, backend, tap, front, back, tx_prod: 0, tx_cons: 0, rx_prod: 0, rx_cons: 0, next_id: 0 }
}

/// The features xen-netfront writes.
pub const NETFRONT: &[(&str, &str)] = &[
    ("request-rx-copy", "1"),
    ("feature-rx-notify", "1"),
    ("feature-sg", "1"),
    ("feature-gso-tcpv4", "1"),
    ("feature-gso-tcpv6", "1"),
    ("feature-ipv6-csum-offload", "1"),
];

impl Rig {
    pub fn xenbus(&mut self) -> bool {
        let xs = &mut self.xs;
        self.backend.xenbus(|f| f(xs)).unwrap()
    }

    pub fn read(&mut self, path: &str) -> Option<String> {
        let c = self.xs.connect_privileged();
        let out = self.xs.handle(c, &Message::with_strings(MsgType::Read, 0, 0, &[path.as_bytes()]));
        self.xs.disconnect(c);
        let m = out.into_iter().next()?;
        (m.ty == MsgType::Read as u32).then(|| String::from_utf8(m.payload).unwrap())
    }

    pub fn guest_write(&mut self, name: &str, value: &str) -> bool {
        let mut p = format!("{}/{name}", self.front).into_bytes();
        p.push(0);
        p.extend_from_slice(value.as_bytes());
        let out = self.xs.handle(self.guest, &Message::new(MsgType::Write, 0, 0, p));
        out.iter().any(|m| m.ty == MsgType::Write as u32)
    }

    pub fn guest_rm(&mut self, name: &str) {
        let p = format!("{}/{name}", self.front);
        self.xs.handle(self.guest, &Message::with_strings(MsgType::Rm, 0, 0, &[p.as_bytes()]));
    }

    pub fn set_front_state(&mut self, s: XenbusState) {
        assert!(self.guest_write("state", &s.value()));
    }

    pub fn back_state(&mut self) -> XenbusState {
        let p = format!("{}/state", self.back);
        XenbusState::parse(&self.read(&p).unwrap_or_default())
    }

    pub fn grant(&self, gref: u32, gfn: u64, readonly: bool) {
        let d = self.domain.lock().unwrap();
        let frame = d.grant_table().frame(gref / 512).unwrap().clone();
        let flags = GTF_PERMIT_ACCESS | if readonly { GTF_READONLY } else { 0 };
        let raw = u64::from(flags) | (gfn << 32);
        frame.write((gref % 512) as usize * 8, &raw.to_le_bytes());
    }

    /// Publishes rings and features like netfront and goes to Connected
    /// (or whatever the backend answers).
    pub fn publish(&mut self, features: &[(&str, &str)]) {
        for gfn in [TX_GFN, RX_GFN] {
            self.ram.write_slice(&[0u8; 4096], GuestAddress(gfn << 12)).unwrap();
        }
        self.grant(10, TX_GFN, false);
        self.grant(11, RX_GFN, false);
        // rsp_event = 1 on both rings: notify at the first response.
        self.ram.write_obj(1u32, GuestAddress((TX_GFN << 12) + 12)).unwrap();
        self.ram.write_obj(1u32, GuestAddress((RX_GFN << 12) + 12)).unwrap();
        (self.tx_prod, self.tx_cons, self.rx_prod, self.rx_cons) = (0, 0, 0, 0);
        let port = self.domain.lock().unwrap().alloc_unbound_for_backend().unwrap();
        assert!(self.guest_write("tx-ring-ref", "10"));
        assert!(self.guest_write("rx-ring-ref", "11"));
        assert!(self.guest_write("event-channel", &port.to_string()));
        for (k, v) in features {
            assert!(self.guest_write(k, v));
        }
        self.set_front_state(XenbusState::Connected);
        self.xenbus();
    }

    pub fn connect(&mut self, features: &[(&str, &str)]) {
        self.publish(features);
        assert_eq!(self.back_state(), XenbusState::Connected);
        assert!(self.backend.port().is_some());
    }

    /// Closes and starts over, as a rebooting guest does.
    pub fn reset(&mut self) {
        for s in [XenbusState::Closing, XenbusState::Closed, XenbusState::Initialising] {
            self.set_front_state(s);
            self.xenbus();
        }
        assert_eq!(self.back_state(), XenbusState::InitWait);
    }

    fn entry_addr(base_gfn: u64, entry: usize, idx: u32) -> GuestAddress {
        GuestAddress((base_gfn << 12) + 64 + u64::from(idx % 256) * entry as u64)
    }

    /// Writes tx slots and advances (or not) the producer.
    pub fn tx_raw(&mut self, entries: &[[u8; 12]], publish: bool) {
        for e in entries {
            self.ram.write_slice(e, Self::entry_addr(TX_GFN, 12, self.tx_prod)).unwrap();
            self.tx_prod = self.tx_prod.wrapping_add(1);
        }
        if publish {
            self.set_tx_prod(self.tx_prod);
        }
    }

    pub fn set_tx_prod(&mut self, v: u32) {
        self.tx_prod = v;
        self.ram.write_obj(v, GuestAddress(TX_GFN << 12)).unwrap();
    }

    pub fn tx_slots(&mut self, slots: &[Slot]) {
        let e: Vec<[u8; 12]> = slots
            .iter()
            .map(|s| TxRequest { gref: s.gref, offset: s.offset, flags: s.flags, id: s.id, size: s.size }.encode())
            .collect();
        self.tx_raw(&e, true);
    }

    pub fn id(&mut self) -> u16 {
        self.next_id = self.next_id.wrapping_add(1);
        self.next_id
    }

    /// Puts `data` at `offset` of tx data page `page` (granted read-only).
    pub fn data(&self, page: u32, offset: u16, data: &[u8]) -> u32 {
        let gfn = DATA_GFN + u64::from(page);
        self.ram.write_slice(data, GuestAddress((gfn << 12) + u64::from(offset))).unwrap();
        self.grant(DATA_REF + page, gfn, true);
        DATA_REF + page
    }

    /// Queues `frame` split into `chunks` (offset, len) pieces, one data page
    /// each from `first_page`; `flags` go on the first slot, `extras` after it.
    pub fn tx_frame(&mut self, frame: &[u8], chunks: &[(u16, u16)], flags: u16, extras: &[ExtraInfo], first_page: u32) -> Vec<u16> {
        let mut entries = Vec::new();
        let mut ids = Vec::new();
        let mut pos = 0usize;
        for (i, &(off, len)) in chunks.iter().enumerate() {
            let gref = self.data(first_page + i as u32, off, &frame[pos..pos + usize::from(len)]);
            pos += usize::from(len);
            let id = self.id();
            ids.push(id);
            let mut f = if i == 0 { flags } else { 0 };
            if i + 1 < chunks.len() {
                f |= NETTXF_MORE_DATA;
            }
            if i == 0 && !extras.is_empty() {
                f |= NETTXF_EXTRA_INFO;
            }
            let size = if i == 0 { frame.len() as u16 } else { len };
            entries.push(TxRequest { gref, offset: off, flags: f, id, size }.encode());
            if i == 0 {
                for x in extras {
                    let mut e = [0u8; 12];
                    e[..8].copy_from_slice(&x.encode());
                    entries.push(e);
                }
            }
        }
        assert_eq!(pos, frame.len());
        self.tx_raw(&entries, true);
        ids
    }

    /// Lets the backend serve tx and collects the new responses `(id, status)`.
    pub fn tx_run(&mut self) -> Vec<(u16, i16)> {
        self.backend.process_tx(1024);
        let prod: u32 = self.ram.read_obj(GuestAddress((TX_GFN << 12) + 8)).unwrap();
        let mut out = Vec::new();
        while self.tx_cons != prod {
            let mut b = [0u8; 4];
            self.ram.read_slice(&mut b, Self::entry_addr(TX_GFN, 12, self.tx_cons)).unwrap();
            out.push(decode_tx_response(&b));
            self.tx_cons = self.tx_cons.wrapping_add(1);
        }
        out
    }

    /// Posts `n` rx buffers (ids and refs follow the ring index).
    pub fn post_rx(&mut self, n: u32) {
        for _ in 0..n {
            let i = self.rx_prod % 256;
            let gfn = RXBUF_GFN + u64::from(i);
            self.ram.write_slice(&[0xEE; 4096], GuestAddress(gfn << 12)).unwrap();
            self.grant(RXBUF_REF + i, gfn, false);
            let req = RxRequest { id: i as u16, gref: RXBUF_REF + i };
            self.ram.write_slice(&req.encode(), Self::entry_addr(RX_GFN, 8, self.rx_prod)).unwrap();
            self.rx_prod = self.rx_prod.wrapping_add(1);
        }
        self.ram.write_obj(self.rx_prod, GuestAddress(RX_GFN << 12)).unwrap();
    }

    pub fn rx_req_event(&self) -> u32 {
        self.ram.read_obj(GuestAddress((RX_GFN << 12) + 4)).unwrap()
    }

    /// Collects new rx responses, with the bytes each data slot carried.
    pub fn rx_responses(&mut self) -> Vec<(RxResponse, Vec<u8>)> {
        let prod: u32 = self.ram.read_obj(GuestAddress((RX_GFN << 12) + 8)).unwrap();
        let mut out = Vec::new();
        while self.rx_cons != prod {
            let mut b = [0u8; 8];
            self.ram.read_slice(&mut b, Self::entry_addr(RX_GFN, 8, self.rx_cons)).unwrap();
            let r = RxResponse::parse(&b);
            let gfn = RXBUF_GFN + u64::from(self.rx_cons % 256);
            let mut data = vec![0u8; r.status.max(0) as usize];
            self.ram.read_slice(&mut data, GuestAddress((gfn << 12) + u64::from(r.offset))).unwrap();
            out.push((r, data));
            self.rx_cons = self.rx_cons.wrapping_add(1);
        }
        out
    }

    pub fn grant_flags(&self, gref: u32) -> u16 {
        self.domain.lock().unwrap().grant_entry(gref).unwrap().flags
    }
}

/// An Ethernet + IPv4 (or IPv6) + TCP frame with `payload`; checksum field zero.
pub fn tcp_frame(v6: bool, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0u8; 12];
    f[..6].copy_from_slice(&MAC);
    f[6..12].copy_from_slice(&[0x52, 0x54, 0, 0xAA, 0xBB, 0xCC]);
    let mut tcp = vec![0u8; 20];
    tcp[0..2].copy_from_slice(&40000u16.to_be_bytes());
    tcp[2..4].copy_from_slice(&5001u16.to_be_bytes());
    tcp[12] = 5 << 4;
    tcp[13] = 0x18;
    if v6 {
        f.extend_from_slice(&0x86DDu16.to_be_bytes());
        let mut ip = vec![0u8; 40];
        ip[0] = 0x60;
        ip[4..6].copy_from_slice(&((20 + payload.len()) as u16).to_be_bytes());
        ip[6] = 6;
        ip[7] = 64;
        ip[8] = 0xFD;
        ip[23] = 1;
        ip[24] = 0xFD;
        ip[39] = 2;
        f.extend_from_slice(&ip);
    } else {
        f.extend_from_slice(&0x0800u16.to_be_bytes());
        let mut ip = vec![0u8; 20];
        ip[0] = 0x45;
        ip[2..4].copy_from_slice(&((40 + payload.len()) as u16).to_be_bytes());
        ip[8] = 64;
        ip[9] = 6;
        ip[12..16].copy_from_slice(&[192, 168, 7, 1]);
        ip[16..20].copy_from_slice(&[192, 168, 7, 2]);
        f.extend_from_slice(&ip);
    }
    f.extend_from_slice(&tcp);
    f.extend_from_slice(payload);
    f
}

/// `n` bytes of a recognisable pattern.
pub fn pattern(n: usize, seed: u8) -> Vec<u8> {
    (0..n).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect()
}
