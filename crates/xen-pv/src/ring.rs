//! The backend's end of a Xen shared ring (`io/ring.h`), over one or more
//! guest frames that need not be contiguous.
//!
//! The first frame starts with four free-running 32-bit indices, `req_prod`,
//! `req_event`, `rsp_prod` and `rsp_event`, then 48 bytes of padding; the
//! entries (a union of request and response, `entry_size` bytes) follow at
//! byte 64 of the concatenated frames, a power-of-two count of them. An entry
//! may straddle two frames.
//!
//! The guest writes `req_prod` and `rsp_event`; we keep our own `req_cons`
//! and `rsp_prod_pvt` and never trust the shared values beyond one check: a
//! producer more than a ring ahead of our responses is impossible for an honest
//! frontend, and stops the ring for good ([`BackRing::broken`]). Requests are
//! copied out whole before anyone looks at them.

use std::sync::atomic::{fence, Ordering};

use vm_memory::GuestMemoryMmap;
use xenkvm_xen_core::page::PAGE_SIZE;

use crate::grants::{load_u32, read_frame, store_u32, write_frame};

const REQ_PROD: usize = 0;
const REQ_EVENT: usize = 4;
const RSP_PROD: usize = 8;
const RSP_EVENT: usize = 12;
/// Where the entries start (`struct __name##_sring` header).
pub const RING_HEADER: usize = 64;

/// Entries in a ring of `pages` frames with `entry_size`-byte entries
/// (`__RING_SIZE`: the largest power of two that fits).
pub fn ring_size(pages: usize, entry_size: usize) -> u32 {
    let fit = (pages * PAGE_SIZE).saturating_sub(RING_HEADER) / entry_size.max(1);
    if fit == 0 {
        return 0;
    }
    let pow = 1usize << (usize::BITS - 1 - fit.leading_zeros());
    u32::try_from(pow).unwrap_or(0)
}

/// The backend side of one shared ring.
#[derive(Debug)]
pub struct BackRing {
    ram: GuestMemoryMmap<()>,
    gfns: Vec<u64>,
    entry_size: usize,
    size: u32,
    req_cons: u32,
    rsp_prod_pvt: u32,
    broken: bool,
}

/// What [`BackRing::next_request`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// A request, copied out of the ring.
    Request(Vec<u8>),
    /// Nothing more to do now.
    Empty,
    /// The producer index is impossible; the ring is stopped.
    Broken,
}

impl BackRing {
    /// Attaches to a ring in `gfns` (pinned frames): both our indices start at
    /// the ring's current `rsp_prod`, as `BACK_RING_ATTACH` does, so a ring
    /// that did not start at zero (a reconnect) is served where it stands.
    pub fn attach(ram: GuestMemoryMmap<()>, gfns: Vec<u64>, entry_size: usize) -> Self {
        let size = ring_size(gfns.len(), entry_size);
        let first = gfns.first().copied().unwrap_or(0);
        let rsp_prod = load_u32(&ram, first, RSP_PROD);
        Self { ram, gfns, entry_size, size, req_cons: rsp_prod, rsp_prod_pvt: rsp_prod, broken: size == 0 }
    }

    /// Entries in the ring.
    pub fn size(&self) -> u32 {
        self.size
    }

    /// Whether the ring was stopped because of impossible indices.
    pub fn broken(&self) -> bool {
        self.broken
    }

    fn header(&self) -> u64 {
        self.gfns.first().copied().unwrap_or(0)
    }

    /// Copies `buf.len()` bytes at byte `offset` of the concatenated frames.
    fn read_at(&self, offset: usize, buf: &mut [u8]) -> bool {
        let mut done = 0;
        while done < buf.len() {
            let pos = offset + done;
            let (page, off) = (pos / PAGE_SIZE, pos % PAGE_SIZE);
            let n = (PAGE_SIZE - off).min(buf.len() - done);
            let (Some(&gfn), Some(chunk)) = (self.gfns.get(page), buf.get_mut(done..done + n)) else { return false };
            if !read_frame(&self.ram, gfn, off, chunk) {
                return false;
            }
            done += n;
        }
        true
    }

    fn write_at(&self, offset: usize, buf: &[u8]) -> bool {
        let mut done = 0;
        while done < buf.len() {
            let pos = offset + done;
            let (page, off) = (pos / PAGE_SIZE, pos % PAGE_SIZE);
            let n = (PAGE_SIZE - off).min(buf.len() - done);
            let (Some(&gfn), Some(chunk)) = (self.gfns.get(page), buf.get(done..done + n)) else { return false };
            if !write_frame(&self.ram, gfn, off, chunk) {
                return false;
            }
            done += n;
        }
        true
    }

    fn slot_offset(&self, idx: u32) -> usize {
        RING_HEADER + (idx % self.size.max(1)) as usize * self.entry_size
    }

    /// Requests the frontend has produced that we have not taken, or `None`
    /// if its producer index is impossible (which stops the ring).
    fn unconsumed(&mut self) -> Option<u32> {
        if self.broken {
            return None;
        }
        let prod = load_u32(&self.ram, self.header(), REQ_PROD);
        fence(Ordering::Acquire);
        // RING_REQUEST_PROD_OVERFLOW: the frontend cannot be more than a ring
        // of requests ahead of the responses we produced.
        if prod.wrapping_sub(self.rsp_prod_pvt) > self.size {
            tracing::warn!(
                "frontend ring producer {prod} is impossible (responses at {}, ring of {}); ring stopped",
                self.rsp_prod_pvt,
                self.size
            );
            self.broken = true;
            return None;
        }
        Some(prod.wrapping_sub(self.req_cons))
    }

    /// Takes the next request, if the frontend produced one and there is room
    /// for its response (`RING_REQUEST_CONS_OVERFLOW`).
    pub fn next_request(&mut self) -> Next {
        let Some(avail) = self.unconsumed() else { return Next::Broken };
        if avail == 0 || self.req_cons.wrapping_sub(self.rsp_prod_pvt) >= self.size {
            return Next::Empty;
        }
        let mut buf = vec![0u8; self.entry_size];
        if !self.read_at(self.slot_offset(self.req_cons), &mut buf) {
            self.broken = true;
            return Next::Broken;
        }
        self.req_cons = self.req_cons.wrapping_add(1);
        Next::Request(buf)
    }

    /// Places one response (`bytes` at most an entry) in the next slot; it
    /// becomes visible with [`Self::push_responses`].
    pub fn put_response(&mut self, bytes: &[u8]) {
        if self.broken {
            return;
        }
        let mut slot = vec![0u8; bytes.len().min(self.entry_size)];
        let n = slot.len();
        if let (Some(dst), Some(src)) = (slot.get_mut(..n), bytes.get(..n)) {
            dst.copy_from_slice(src);
        }
        self.write_at(self.slot_offset(self.rsp_prod_pvt), &slot);
        self.rsp_prod_pvt = self.rsp_prod_pvt.wrapping_add(1);
    }

    /// Publishes the responses placed so far (`RING_PUSH_RESPONSES_AND_CHECK_NOTIFY`);
    /// returns whether the frontend asked to be notified of them.
    pub fn push_responses(&mut self) -> bool {
        let header = self.header();
        let old = load_u32(&self.ram, header, RSP_PROD);
        let new = self.rsp_prod_pvt;
        if old == new {
            return false;
        }
        fence(Ordering::Release);
        store_u32(&self.ram, header, RSP_PROD, new);
        fence(Ordering::SeqCst);
        let event = load_u32(&self.ram, header, RSP_EVENT);
        new.wrapping_sub(event) < new.wrapping_sub(old)
    }

    /// `RING_FINAL_CHECK_FOR_REQUESTS`: if nothing is pending, asks the
    /// frontend to notify us of the next request, then looks once more
    /// (closing the race with a frontend that produced meanwhile).
    pub fn final_check_for_requests(&mut self) -> bool {
        if self.unconsumed().is_some_and(|n| n > 0) {
            return true;
        }
        if self.broken {
            return false;
        }
        store_u32(&self.ram, self.header(), REQ_EVENT, self.req_cons.wrapping_add(1));
        fence(Ordering::SeqCst);
        self.unconsumed().is_some_and(|n| n > 0)
    }

    /// Requests produced and not taken yet (0 once the ring is broken).
    pub fn pending(&mut self) -> u32 {
        self.unconsumed().unwrap_or(0)
    }

    /// Asks the frontend to notify us when it produces its next request
    /// (`req_event = req_prod + 1`, as netback does while it waits for rx
    /// buffers), then returns the requests pending (closing the race).
    pub fn arm_req_event(&mut self) -> u32 {
        if self.broken {
            return 0;
        }
        let prod = load_u32(&self.ram, self.header(), REQ_PROD);
        store_u32(&self.ram, self.header(), REQ_EVENT, prod.wrapping_add(1));
        fence(Ordering::SeqCst);
        self.pending()
    }

    /// Our private indices (`req_cons`, `rsp_prod_pvt`), for tests and logs.
    pub fn indices(&self) -> (u32, u32) {
        (self.req_cons, self.rsp_prod_pvt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vm_memory::{Bytes, GuestAddress};

    fn ram() -> GuestMemoryMmap<()> {
        GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 16 * PAGE_SIZE)]).unwrap()
    }

    fn put_u32(ram: &GuestMemoryMmap<()>, gpa: u64, v: u32) {
        ram.write_obj(v, GuestAddress(gpa)).unwrap();
    }

    #[test]
    fn sizes_match_ring_h() {
        assert_eq!(ring_size(1, 112), 32);
        assert_eq!(ring_size(2, 112), 64);
        assert_eq!(ring_size(16, 112), 512);
        assert_eq!(ring_size(1, 108), 32);
        assert_eq!(ring_size(0, 112), 0);
    }

    #[test]
    fn entries_straddle_noncontiguous_frames() {
        let ram = ram();
        // Four frames out of order; entry 72 spans bytes 8128..8240: 64 bytes
        // at the end of the second frame (7), 48 at the start of the third (2).
        let mut ring = BackRing::attach(ram.clone(), vec![9, 7, 2, 4], 112);
        assert_eq!(ring.size(), 128);
        ram.write_slice(&[0xAA; 64], GuestAddress(7 * 4096 + 4032)).unwrap();
        ram.write_slice(&[0xBB; 48], GuestAddress(2 * 4096)).unwrap();
        put_u32(&ram, 9 * 4096, 73);
        for _ in 0..72 {
            assert!(matches!(ring.next_request(), Next::Request(_)));
            ring.put_response(&[0; 16]);
        }
        let Next::Request(req) = ring.next_request() else { panic!("no request") };
        assert_eq!(&req[..64], &[0xAA; 64][..]);
        assert_eq!(&req[64..], &[0xBB; 48][..]);
        assert_eq!(ring.next_request(), Next::Empty);
        // Its response goes to the same straddling slot.
        ring.put_response(&[0xCC; 16]);
        assert!(ring.push_responses() || ram.read_obj::<u32>(GuestAddress(9 * 4096 + 8)).unwrap() == 73);
        let mut rsp = [0u8; 16];
        ram.read_slice(&mut rsp, GuestAddress(7 * 4096 + 4032)).unwrap();
        assert_eq!(rsp, [0xCC; 16]);
    }

    #[test]
    fn runaway_producer_stops_the_ring() {
        let ram = ram();
        let mut ring = BackRing::attach(ram.clone(), vec![1], 112);
        put_u32(&ram, 4096, 33);
        assert_eq!(ring.next_request(), Next::Broken);
        assert!(ring.broken());
        // Even a sane producer later does not revive it.
        put_u32(&ram, 4096, 1);
        assert_eq!(ring.next_request(), Next::Broken);
        assert!(!ring.final_check_for_requests());
    }

    #[test]
    fn no_request_taken_without_room_for_its_response() {
        let ram = ram();
        let mut ring = BackRing::attach(ram.clone(), vec![1], 112);
        put_u32(&ram, 4096, 32);
        for _ in 0..32 {
            assert!(matches!(ring.next_request(), Next::Request(_)));
        }
        assert_eq!(ring.next_request(), Next::Empty);
        ring.put_response(&[1; 16]);
        put_u32(&ram, 4096, 33);
        assert!(matches!(ring.next_request(), Next::Request(_)));
    }

    #[test]
    fn notify_follows_rsp_event() {
        let ram = ram();
        let mut ring = BackRing::attach(ram.clone(), vec![1], 112);
        put_u32(&ram, 4096, 2);
        put_u32(&ram, 4096 + 12, 1); // rsp_event: notify at the first response
        for _ in 0..2 {
            assert!(matches!(ring.next_request(), Next::Request(_)));
            ring.put_response(&[7; 16]);
        }
        assert!(ring.push_responses());
        assert_eq!(ram.read_obj::<u32>(GuestAddress(4096 + 8)).unwrap(), 2);
        // The frontend has not moved rsp_event past 1: no new notification.
        put_u32(&ram, 4096, 3);
        assert!(matches!(ring.next_request(), Next::Request(_)));
        ring.put_response(&[7; 16]);
        assert!(!ring.push_responses());
        // final check arms req_event one past our consumer.
        assert!(!ring.final_check_for_requests());
        assert_eq!(ram.read_obj::<u32>(GuestAddress(4096 + 4)).unwrap(), 4);
    }

    #[test]
    fn indices_wrap_at_u32() {
        let ram = ram();
        put_u32(&ram, 4096 + 8, u32::MAX - 1); // rsp_prod before attach
        put_u32(&ram, 4096, u32::MAX - 1);
        let mut ring = BackRing::attach(ram.clone(), vec![1], 112);
        put_u32(&ram, 4096, 2); // four requests across the wrap
        for _ in 0..4 {
            assert!(matches!(ring.next_request(), Next::Request(_)));
            ring.put_response(&[0; 16]);
        }
        assert_eq!(ring.next_request(), Next::Empty);
        ring.push_responses();
        assert_eq!(ring.indices(), (2, 2));
    }
}
