//! The primary PV console (hvc0): drains the guest's console ring to its chardev
//! when the guest kicks its event channel (and every few milliseconds, in case
//! a kick was missed), feeds it typed input, and tells the guest when it made
//! room or placed input.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use xenkvm_xen_core::page::SharedPage;
use xenkvm_xen_core::Domain;
use xenkvm_xen_pv::console::{ConsolePage, ConsoleRing, Progress};

use crate::chardev::Chardev;
use crate::events::{serve_backend, Backends};
use crate::vcpu::RunControl;

const POLL: Duration = Duration::from_millis(20);
/// Input held for the guest beyond its 1 KiB ring; more waits in the sender.
const INPUT_QUEUE: usize = 4096;

/// Typed bytes waiting for room in the guest's input ring.
pub struct ConsoleInput {
    queue: Mutex<VecDeque<u8>>,
    backends: Arc<Backends>,
}

impl ConsoleInput {
    pub fn new(backends: Arc<Backends>) -> Self {
        Self { queue: Mutex::new(VecDeque::new()), backends }
    }

    /// Queues what fits of `bytes` and wakes the console thread; returns how many.
    pub fn push(&self, bytes: &[u8]) -> usize {
        let n = match self.queue.lock() {
            Ok(mut q) => {
                let n = INPUT_QUEUE.saturating_sub(q.len()).min(bytes.len());
                q.extend(bytes.iter().take(n));
                n
            }
            Err(_) => 0,
        };
        if n > 0 {
            self.backends.signal.notify();
        }
        n
    }

    /// Bytes waiting for the guest.
    #[cfg(test)]
    pub fn queued(&self) -> usize {
        self.queue.lock().map_or(0, |q| q.len())
    }

    /// Moves queued input into the ring as far as it has room.
    pub(crate) fn feed<P: ConsolePage + ?Sized>(&self, ring: &ConsoleRing<'_, P>, p: &mut Progress) {
        let Ok(mut q) = self.queue.lock() else { return };
        if q.is_empty() {
            return;
        }
        // The queue may wrap: its two slices, in order, while the ring has room.
        for _ in 0..2 {
            let (front, _) = q.as_slices();
            let taken = ring.write_input(front, p);
            let n = taken.min(q.len());
            q.drain(..n);
            if n == 0 || q.is_empty() {
                break;
            }
        }
    }
}

/// The console backend of one VM.
pub struct Console {
    pub page: Arc<SharedPage>,
    /// Our (backend) end of the console event channel.
    pub port: u32,
    pub domain: Arc<Mutex<Domain>>,
    pub backends: Arc<Backends>,
    pub control: Arc<RunControl>,
    pub input: Arc<ConsoleInput>,
    /// Where the guest's output goes.
    pub out: Arc<Chardev>,
}

impl Console {
    /// Runs until the VM stops.
    pub fn run(self) {
        let ring = ConsoleRing::new(&*self.page);
        let mut warned = false;
        serve_backend(self.port, &self.domain, &self.backends, &self.control, POLL, || {
            let mut p = Progress::default();
            ring.read_output(&mut p);
            self.input.feed(&ring, &mut p);
            if p.broken && !warned {
                tracing::warn!("guest console ring indices are inconsistent; ignoring it");
                warned = true;
            }
            if !p.output.is_empty() {
                self.out.write(&p.output);
            }
            p.notify()
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use xenkvm_xen_pv::console::{IN_CONS, IN_PROD, IN_SIZE};

    #[test]
    fn typed_input_waits_for_room_in_the_ring_and_keeps_its_order() {
        let page = SharedPage::new().unwrap();
        let ring = ConsoleRing::new(&page);
        let input = ConsoleInput::new(Arc::new(Backends::default()));
        let typed: Vec<u8> = (0..1500u32).map(|i| (i % 251) as u8).collect();
        assert_eq!(input.push(&typed), typed.len());
        // More than the queue holds is refused, not dropped silently.
        assert_eq!(input.push(&vec![0; INPUT_QUEUE]), INPUT_QUEUE - typed.len());
        let mut p = Progress::default();
        input.feed(&ring, &mut p);
        assert_eq!(p.input_written, IN_SIZE as usize);
        assert!(p.notify());
        assert_eq!(page.load_u32(IN_PROD), IN_SIZE);
        // The guest reads 1000 bytes; the next pass fills the room it made.
        page.store_u32(IN_CONS, 1000);
        let mut p = Progress::default();
        input.feed(&ring, &mut p);
        assert_eq!(p.input_written, 1000);
        let mut got = vec![0u8; 1500];
        for (i, b) in got.iter_mut().enumerate() {
            let mut one = [0u8];
            page.read(xenkvm_xen_pv::console::IN_OFFSET + i % IN_SIZE as usize, &mut one);
            *b = one[0];
        }
        // Bytes 1024.. wrapped over the consumed start of the ring.
        assert_eq!(&got[..476], &typed[1024..1500]);
        assert_eq!(&got[1000..1024], &typed[1000..1024]);
    }
}
