//! The virtio-net worker: a thread body that sends the guest's tx chains to
//! the backend when notified and fills posted rx buffers with frames from
//! the backend when it has some. Each pass does a bounded amount of work
//! under the device lock, so a driver reset waits at most one pass.

use std::io::{Read, Write};
use std::sync::Arc;
use std::time::Duration;

use virtio_queue::{Queue, QueueOwnedT, QueueT};
use vm_memory::GuestMemoryMmap;

use super::{hdr, NetBackend, RxOffloads, MAX_FRAME, RX_QUEUE, TX_QUEUE, VNET_HDR_LEN};
use crate::common::DeviceState;
use crate::pci::Shared;

/// Chains per queue per pass.
const BUDGET: usize = 64;
/// Longest sleep without a notification or a frame.
const POLL: Duration = Duration::from_millis(50);
/// Shortest frame worth sending: the header and an Ethernet header.
const MIN_TX: usize = VNET_HDR_LEN + 14;

type Mem = GuestMemoryMmap<()>;

/// Counters, logged when the worker ends.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct NetStats {
    pub tx_packets: u64,
    pub tx_bytes: u64,
    pub tx_errors: u64,
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub rx_dropped: u64,
    pub rx_errors: u64,
    /// Queues stopped for bad rings or descriptors (DEVICE_NEEDS_RESET).
    pub broken: u64,
}

/// What a pass left to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pass {
    /// A budget ran out: another pass at once.
    pub more: bool,
    /// The guest has rx buffers: worth waiting on the backend too.
    pub rx_room: bool,
}

/// A queue error: the ring or a descriptor the guest gave is unusable.
struct Broken;

/// What the backend had for the guest.
enum Next {
    /// A frame of this length (with its header) is in `rx_buf`.
    Frame(usize),
    /// It gave a frame the guest cannot take, now dropped.
    Dropped,
    /// Nothing (or a read error).
    Dry,
}

/// The worker of one virtio-net device.
pub struct NetWorker<B: NetBackend> {
    shared: Arc<Shared>,
    mem: Mem,
    backend: B,
    rx_buf: Vec<u8>,
    /// A frame read from the backend and not yet in the guest (its length).
    rx_pending: Option<usize>,
    tx_buf: Vec<u8>,
    /// Features whose offloads the backend has, once the driver is live,
    /// and the device's reset count then (a reset and a new bring-up
    /// between two passes must start again).
    applied: Option<(u64, u64)>,
    stats: NetStats,
}

impl<B: NetBackend> NetWorker<B> {
    pub fn new(shared: Arc<Shared>, mem: Mem, backend: B) -> Self {
        Self {
            shared,
            mem,
            backend,
            rx_buf: vec![0; MAX_FRAME],
            rx_pending: None,
            tx_buf: vec![0; MAX_FRAME],
            applied: None,
            stats: NetStats::default(),
        }
    }

    pub fn stats(&self) -> NetStats {
        self.stats
    }

    /// Serves the device until `stop` says so; returns the counters.
    pub fn run(mut self, stop: impl Fn() -> bool) -> NetStats {
        while !stop() {
            self.shared.kick.take();
            let pass = self.pass();
            if pass.more {
                continue;
            }
            if pass.rx_room {
                self.backend.wait_readable(&self.shared.kick, POLL);
            } else {
                self.shared.kick.wait(POLL);
            }
        }
        self.stats
    }

    /// One bounded round of tx and rx.
    pub fn pass(&mut self) -> Pass {
        let shared = self.shared.clone();
        let Ok(mut st) = shared.state.lock() else { return Pass::default() };
        if !st.live() {
            self.applied = None;
            return Pass::default();
        }
        if self.applied.map(|(resets, _)| resets) != Some(st.resets()) && !self.start(&mut st) {
            return Pass::default();
        }
        let (tx_used, tx_more) = self.serve(&mut st, TX_QUEUE, Self::tx);
        let (rx_used, rx_more) = self.serve(&mut st, RX_QUEUE, Self::rx);
        for (used, q) in [(tx_used, TX_QUEUE), (rx_used, RX_QUEUE)] {
            if used {
                let vector = st.queue_mut(q).map_or(crate::NO_VECTOR, |s| s.vector);
                shared.interrupts.queue(vector);
            }
        }
        if st.status() & crate::status::DEVICE_NEEDS_RESET != 0 {
            shared.interrupts.config(st.config_vector());
            return Pass::default();
        }
        // The backend ran dry (not the guest's buffers): wait on it too.
        let rx_room = rx_more == Some(false);
        Pass { more: tx_more == Some(true) || rx_more == Some(true), rx_room }
    }

    /// The driver just went live: check its rings and set the offloads.
    fn start(&mut self, st: &mut DeviceState) -> bool {
        let mem = &self.mem;
        let mut ok = true;
        for q in [RX_QUEUE, TX_QUEUE] {
            if let Some(slot) = st.queue_mut(q) {
                if slot.queue.ready() && !slot.queue.is_valid(mem) {
                    tracing::warn!("virtio-net: queue {q} has rings outside guest memory; device needs reset");
                    ok = false;
                }
            }
        }
        if !ok {
            self.stats.broken += 1;
            st.needs_reset();
            self.shared.interrupts.config(st.config_vector());
            return false;
        }
        // A frame held for the previous driver was fitted to its features.
        if self.rx_pending.take().is_some() {
            self.stats.rx_dropped += 1;
        }
        let features = st.driver_features();
        if let Err(e) = self.backend.set_offloads(RxOffloads::from_features(features)) {
            tracing::warn!("virtio-net: cannot set the backend's offloads: {e}");
        }
        self.applied = Some((st.resets(), features));
        true
    }

    /// Runs `f` on queue `q` if it is usable: (used any, more work: Some(true)
    /// budget ran out, Some(false) none left, None waiting on the other side).
    fn serve(
        &mut self,
        st: &mut DeviceState,
        q: usize,
        f: fn(&mut Self, &mut Queue, &mut bool) -> Result<Option<bool>, Broken>,
    ) -> (bool, Option<bool>) {
        let Some(slot) = st.queue_mut(q) else { return (false, None) };
        if slot.broken || !slot.queue.ready() {
            return (false, None);
        }
        let mut used = false;
        match f(self, &mut slot.queue, &mut used) {
            Ok(more) => (used, more),
            Err(Broken) => {
                slot.broken = true;
                self.stats.broken += 1;
                tracing::warn!("virtio-net: queue {q} is broken (bad ring or descriptors); device needs reset");
                st.needs_reset();
                (used, None)
            }
        }
    }

    /// Sends up to a budget of tx chains.
    fn tx(&mut self, queue: &mut Queue, used: &mut bool) -> Result<Option<bool>, Broken> {
        for _ in 0..BUDGET {
            let Some(chain) = queue.pop_descriptor_chain(&self.mem) else { return Ok(Some(false)) };
            let head = chain.head_index();
            match read_chain(&self.mem, chain, &mut self.tx_buf) {
                Some(len) if len >= MIN_TX => {
                    let frame = self.tx_buf.get(..len).unwrap_or_default();
                    match self.backend.write_frame(&[frame]) {
                        Ok(()) => {
                            self.stats.tx_packets += 1;
                            self.stats.tx_bytes += (len - VNET_HDR_LEN) as u64;
                        }
                        Err(_) => self.stats.tx_errors += 1,
                    }
                }
                _ => self.stats.tx_errors += 1,
            }
            queue.add_used(&self.mem, head, 0).map_err(|_| Broken)?;
            *used = true;
        }
        Ok(Some(true))
    }

    /// Fills up to a budget of rx buffers; None when it stopped for want of
    /// buffers (a frame waits for the guest).
    fn rx(&mut self, queue: &mut Queue, used: &mut bool) -> Result<Option<bool>, Broken> {
        for _ in 0..BUDGET {
            let len = match self.next_frame() {
                Next::Frame(len) => len,
                // A frame the guest cannot take still counts against the budget.
                Next::Dropped => continue,
                Next::Dry => return Ok(Some(false)),
            };
            let Some(chain) = queue.pop_descriptor_chain(&self.mem) else { return Ok(None) };
            let head = chain.head_index();
            let Ok(mut writer) = chain.writer(&self.mem) else { return Err(Broken) };
            if writer.available_bytes() < len {
                // Too big for the buffers this driver posts: dropped, buffer kept.
                self.stats.rx_dropped += 1;
                self.rx_pending = None;
                queue.go_to_previous_position();
                continue;
            }
            let frame = self.rx_buf.get(..len).unwrap_or_default();
            if writer.write_all(frame).is_err() {
                return Err(Broken);
            }
            queue.add_used(&self.mem, head, len as u32).map_err(|_| Broken)?;
            *used = true;
            self.rx_pending = None;
            self.stats.rx_packets += 1;
            self.stats.rx_bytes += (len - VNET_HDR_LEN) as u64;
        }
        Ok(Some(true))
    }

    /// The frame waiting for the guest, else the backend's next one, its
    /// header made fit for the negotiated features (one backend read at
    /// most, so a stream of bad frames cannot hold a pass).
    fn next_frame(&mut self) -> Next {
        if let Some(len) = self.rx_pending {
            return Next::Frame(len);
        }
        let offloads = RxOffloads::from_features(self.applied.map_or(0, |(_, f)| f));
        let len = match self.backend.read_frame(&mut self.rx_buf) {
            Ok(Some(len)) if (VNET_HDR_LEN + 14..=MAX_FRAME).contains(&len) => len,
            Ok(Some(_)) => {
                self.stats.rx_errors += 1;
                return Next::Dropped;
            }
            Ok(None) => return Next::Dry,
            Err(_) => {
                self.stats.rx_errors += 1;
                return Next::Dry;
            }
        };
        if fit_header(&mut self.rx_buf, offloads) {
            self.rx_pending = Some(len);
            return Next::Frame(len);
        }
        self.stats.rx_dropped += 1;
        Next::Dropped
    }
}

/// Copies a tx chain's readable bytes into `buf`; None if they do not fit
/// or a descriptor is outside guest memory.
fn read_chain(mem: &Mem, chain: virtio_queue::DescriptorChain<&Mem>, buf: &mut [u8]) -> Option<usize> {
    let mut reader = chain.reader(mem).ok()?;
    let len = reader.available_bytes();
    let dst = buf.get_mut(..len)?;
    reader.read_exact(dst).ok()?;
    Some(len)
}

/// Sets `num_buffers` to 1 and clears what the guest did not negotiate;
/// false for a segmented frame the guest cannot take.
fn fit_header(buf: &mut [u8], rx: RxOffloads) -> bool {
    let Some(h) = buf.get_mut(..VNET_HDR_LEN) else { return false };
    let gso = h.get(1).copied().unwrap_or(0);
    let allowed = match gso & !hdr::GSO_ECN {
        hdr::GSO_NONE => true,
        hdr::GSO_TCPV4 => rx.tso4,
        hdr::GSO_TCPV6 => rx.tso6,
        _ => false,
    };
    if !allowed || (gso & hdr::GSO_ECN != 0 && !rx.ecn) {
        return false;
    }
    if !rx.csum {
        if let Some(flags) = h.first_mut() {
            *flags = 0;
        }
    }
    if let Some(n) = h.get_mut(10..12) {
        n.copy_from_slice(&1u16.to_le_bytes());
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_follow_the_negotiated_offloads() {
        let all = RxOffloads { csum: true, tso4: true, tso6: true, ecn: true };
        let mut h = [hdr::F_NEEDS_CSUM, hdr::GSO_TCPV4 | hdr::GSO_ECN, 0, 0, 0, 0, 0, 0, 0, 0, 9, 9, 0xAA];
        assert!(fit_header(&mut h, all));
        assert_eq!(&h[10..], &[1, 0, 0xAA]);
        assert!(!fit_header(&mut h, RxOffloads { ecn: false, ..all }));
        h[1] = hdr::GSO_TCPV6;
        assert!(!fit_header(&mut h, RxOffloads { tso6: false, ..all }));
        h[1] = 3;
        assert!(!fit_header(&mut h, all), "UDP fragmentation is never offered");
        h[1] = hdr::GSO_NONE;
        h[0] = hdr::F_DATA_VALID;
        assert!(fit_header(&mut h, RxOffloads::default()));
        assert_eq!(h[0], 0, "no checksum flags without GUEST_CSUM");
        assert!(!fit_header(&mut [0u8; 4], all), "short");
    }
}
