//! The guest transport: `struct xenstore_domain_interface` in the ring page
//! (xs_wire.h, docs/misc/xenstore-ring.txt).
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 1024 | `req`: requests, guest → store |
//! | 1024 | 1024 | `rsp`: replies and watch events, store → guest |
//! | 2048 | 4 | `req_cons` |
//! | 2052 | 4 | `req_prod` |
//! | 2056 | 4 | `rsp_cons` |
//! | 2060 | 4 | `rsp_prod` |
//! | 2064 | 4 | `server_features` |
//! | 2068 | 4 | `connection` |
//! | 2072 | 4 | `error` |
//! | 2076 | 4 | `evtchn_port` |
//!
//! [`XenstoreRing::kick`] is what the VMM calls when the guest signals the
//! store's event channel (or when the engine queued output for the domain): it
//! moves queued output into `rsp`, reads and processes every complete request
//! in `req` (several may be in flight), and reports whether to notify the
//! guest. Indices are free-running `u32`s; a producer more than 1024 bytes
//! ahead of its consumer is a protocol error (XSA-38), as is a header announcing
//! more than 4096 bytes: the connection is then stopped with the `error` field
//! set, until the guest asks to reconnect. The reconnect feature is offered:
//! `connection = 1` makes the store drop the connection's state, empty both
//! queues and set `connection` back to 0.

use crate::conn::{ConnId, FEATURE_ERROR, FEATURE_RECONNECTION};
use crate::engine::Xenstore;
use crate::wire::{Decoder, ProtocolError};

/// Bytes in each direction.
pub const RING_SIZE: u32 = 1024;
pub const OFF_REQ: usize = 0;
pub const OFF_RSP: usize = 1024;
pub const OFF_REQ_CONS: usize = 2048;
pub const OFF_REQ_PROD: usize = 2052;
pub const OFF_RSP_CONS: usize = 2056;
pub const OFF_RSP_PROD: usize = 2060;
pub const OFF_SERVER_FEATURES: usize = 2064;
pub const OFF_CONNECTION: usize = 2068;
pub const OFF_ERROR: usize = 2072;
pub const OFF_EVTCHN_PORT: usize = 2076;

/// `connection` values.
pub const XENSTORE_CONNECTED: u32 = 0;
pub const XENSTORE_RECONNECT: u32 = 1;
/// `error` values.
pub const XENSTORE_ERROR_NONE: u32 = 0;
pub const XENSTORE_ERROR_COMM: u32 = 1;
pub const XENSTORE_ERROR_RINGIDX: u32 = 2;
pub const XENSTORE_ERROR_PROTO: u32 = 3;

/// Bytes read from the guest per kick before yielding back to the caller.
pub const KICK_BUDGET: usize = 64 * 1024;

/// Access to the shared ring page. Offsets are within the page. The guest may
/// change the page at any time: implementations read and write the bytes as
/// they are (no caching), `load_u32` has acquire and `store_u32` release
/// ordering, so that data is read after the producer index and published
/// before it.
pub trait RingMemory {
    fn read(&self, offset: usize, buf: &mut [u8]);
    fn write(&self, offset: usize, buf: &[u8]);
    fn load_u32(&self, offset: usize) -> u32;
    fn store_u32(&self, offset: usize, value: u32);
}

/// A ring page in host memory, for tests and in-process clients.
#[derive(Debug)]
pub struct MemRing(std::cell::RefCell<Vec<u8>>);

impl Default for MemRing {
    fn default() -> MemRing {
        MemRing(std::cell::RefCell::new(vec![0; 4096]))
    }
}

impl RingMemory for MemRing {
    fn read(&self, offset: usize, buf: &mut [u8]) {
        let page = self.0.borrow();
        match page.get(offset..offset.saturating_add(buf.len())) {
            Some(src) => buf.copy_from_slice(src),
            None => buf.fill(0),
        }
    }

    fn write(&self, offset: usize, buf: &[u8]) {
        let mut page = self.0.borrow_mut();
        if let Some(dst) = page.get_mut(offset..offset.saturating_add(buf.len())) {
            dst.copy_from_slice(buf);
        }
    }

    fn load_u32(&self, offset: usize) -> u32 {
        let mut b = [0u8; 4];
        self.read(offset, &mut b);
        u32::from_le_bytes(b)
    }

    fn store_u32(&self, offset: usize, value: u32) {
        self.write(offset, &value.to_le_bytes());
    }
}

/// What one kick did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct KickOutcome {
    /// Signal the guest's event channel.
    pub notify: bool,
    /// Request bytes consumed.
    pub consumed: usize,
    /// Reply bytes produced.
    pub produced: usize,
    /// Requests processed.
    pub processed: usize,
    /// The budget ran out with input left: kick again.
    pub more: bool,
    /// The connection is stopped with this `error` code.
    pub error: Option<u32>,
}

/// The store side of one domain's ring.
#[derive(Debug, Clone)]
pub struct XenstoreRing {
    conn: ConnId,
    decoder: Decoder,
    /// Encoded front message of the outbox and how much of it is in the ring.
    out: Vec<u8>,
    out_pos: usize,
    epoch: u64,
    features: u32,
    error: Option<u32>,
}

impl XenstoreRing {
    /// Attaches to the ring page of `conn` (a domain connection) and
    /// advertises the server features; call before the guest uses the ring.
    pub fn new(xs: &Xenstore, conn: ConnId, mem: &dyn RingMemory) -> XenstoreRing {
        let (epoch, features) = match xs.connection(conn) {
            Some(c) => (c.epoch(), xs.features_of(c)),
            None => (0, 0),
        };
        mem.store_u32(OFF_SERVER_FEATURES, features);
        XenstoreRing { conn, decoder: Decoder::new(), out: Vec::new(), out_pos: 0, epoch, features, error: None }
    }

    pub fn conn(&self) -> ConnId {
        self.conn
    }

    /// The error that stopped the connection, if any.
    pub fn error(&self) -> Option<u32> {
        self.error
    }

    fn drop_partial(&mut self) {
        self.decoder.reset();
        self.out.clear();
        self.out_pos = 0;
    }

    /// Empties both queues (all indices to 0, as xenstored does on a reset).
    fn clear_indices(mem: &dyn RingMemory) {
        for off in [OFF_REQ_CONS, OFF_REQ_PROD, OFF_RSP_CONS, OFF_RSP_PROD] {
            mem.store_u32(off, 0);
        }
    }

    /// Stops the connection: the error goes to the page, the connection's
    /// watches, transactions and output are dropped.
    fn fail(&mut self, xs: &mut Xenstore, mem: &dyn RingMemory, code: u32, out: &mut KickOutcome) {
        if self.features & FEATURE_ERROR != 0 {
            mem.store_u32(OFF_ERROR, code);
        }
        self.error = Some(code);
        self.drop_partial();
        self.epoch = xs.reset_connection(self.conn).unwrap_or(self.epoch);
        out.error = Some(code);
        out.notify = true;
    }

    /// Handles a guest notification: reconnect requests, output, input.
    pub fn kick(&mut self, xs: &mut Xenstore, mem: &dyn RingMemory) -> KickOutcome {
        let mut out = KickOutcome::default();
        let Some(epoch) = xs.connection(self.conn).map(|c| c.epoch()) else {
            out.error = Some(XENSTORE_ERROR_COMM);
            return out;
        };
        if epoch != self.epoch {
            // Re-introduced: start over on a clean ring.
            self.drop_partial();
            self.epoch = epoch;
            self.error = None;
            Self::clear_indices(mem);
            mem.store_u32(OFF_ERROR, XENSTORE_ERROR_NONE);
            if mem.load_u32(OFF_CONNECTION) == XENSTORE_RECONNECT {
                mem.store_u32(OFF_CONNECTION, XENSTORE_CONNECTED);
            }
            out.notify = true;
        }
        if self.features & FEATURE_RECONNECTION != 0 && mem.load_u32(OFF_CONNECTION) == XENSTORE_RECONNECT {
            self.drop_partial();
            self.epoch = xs.reset_connection(self.conn).unwrap_or(self.epoch);
            self.error = None;
            Self::clear_indices(mem);
            mem.store_u32(OFF_ERROR, XENSTORE_ERROR_NONE);
            mem.store_u32(OFF_CONNECTION, XENSTORE_CONNECTED);
            out.notify = true;
            return out;
        }
        if let Some(code) = self.error {
            out.error = Some(code);
            return out;
        }
        loop {
            let produced = match self.flush(xs, mem) {
                Ok(n) => n,
                Err(code) => {
                    self.fail(xs, mem, code, &mut out);
                    return out;
                }
            };
            out.produced += produced;
            let before = out.consumed;
            if let Err(code) = self.read_input(xs, mem, &mut out) {
                self.fail(xs, mem, code, &mut out);
                return out;
            }
            if produced == 0 && out.consumed == before {
                break;
            }
            if out.consumed >= KICK_BUDGET {
                out.more = true;
                out.produced += self.flush(xs, mem).unwrap_or(0);
                break;
            }
        }
        out.notify |= out.consumed > 0 || out.produced > 0;
        out
    }

    /// Moves queued messages into `rsp` while there is room.
    fn flush(&mut self, xs: &mut Xenstore, mem: &dyn RingMemory) -> Result<usize, u32> {
        let mut produced = 0;
        loop {
            if self.out.is_empty() {
                match xs.peek_output(self.conn) {
                    Some(m) => {
                        self.out = m.to_bytes();
                        self.out_pos = 0;
                    }
                    None => return Ok(produced),
                }
            }
            let cons = mem.load_u32(OFF_RSP_CONS);
            let prod = mem.load_u32(OFF_RSP_PROD);
            let used = prod.wrapping_sub(cons);
            if used > RING_SIZE {
                return Err(XENSTORE_ERROR_RINGIDX);
            }
            let start = (prod % RING_SIZE) as usize;
            let room = ((RING_SIZE - used) as usize).min(RING_SIZE as usize - start);
            let rest = self.out.get(self.out_pos..).unwrap_or(&[]);
            let n = room.min(rest.len());
            if n == 0 {
                return Ok(produced);
            }
            mem.write(OFF_RSP + start, rest.get(..n).unwrap_or(&[]));
            mem.store_u32(OFF_RSP_PROD, prod.wrapping_add(n as u32));
            self.out_pos += n;
            produced += n;
            if self.out_pos >= self.out.len() {
                xs.pop_output(self.conn);
                self.out.clear();
                self.out_pos = 0;
            }
        }
    }

    /// Reads requests from `req` and processes each complete one, stopping at
    /// the connection's `outstanding` quota or the kick budget.
    fn read_input(&mut self, xs: &mut Xenstore, mem: &dyn RingMemory, out: &mut KickOutcome) -> Result<(), u32> {
        let mut buf = [0u8; RING_SIZE as usize];
        while xs.can_accept(self.conn) && out.consumed < KICK_BUDGET {
            let cons = mem.load_u32(OFF_REQ_CONS);
            let prod = mem.load_u32(OFF_REQ_PROD);
            let avail = prod.wrapping_sub(cons);
            if avail > RING_SIZE {
                return Err(XENSTORE_ERROR_RINGIDX);
            }
            let start = (cons % RING_SIZE) as usize;
            let n = (avail as usize).min(RING_SIZE as usize - start).min(self.decoder.wanted()).min(buf.len());
            if n == 0 {
                return Ok(());
            }
            let chunk = buf.get_mut(..n).unwrap_or(&mut []);
            mem.read(OFF_REQ + start, chunk);
            mem.store_u32(OFF_REQ_CONS, cons.wrapping_add(n as u32));
            out.consumed += n;
            match self.decoder.feed(chunk) {
                Ok((_, Some(msg))) => {
                    xs.process(self.conn, &msg);
                    out.processed += 1;
                    // Replies go out as soon as there is room.
                    out.produced += self.flush(xs, mem)?;
                }
                Ok((_, None)) => {}
                Err(ProtocolError::Oversized(_)) | Err(ProtocolError::Failed) => return Err(XENSTORE_ERROR_PROTO),
            }
        }
        Ok(())
    }
}
