//! The primary PV console (hvc0): drains the guest's console ring to stdout.
//! Until event channels carry the guest's kicks, the ring is polled.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use xenkvm_xen_core::page::SharedPage;
use xenkvm_xen_pv::console::{ConsoleRing, Progress};

use crate::vcpu::RunControl;

const POLL: Duration = Duration::from_millis(5);

/// Runs until the VM stops, copying console output to stdout.
pub fn run(page: Arc<SharedPage>, control: Arc<RunControl>) {
    let ring = ConsoleRing::new(&page);
    let mut warned = false;
    loop {
        let mut p = Progress::default();
        ring.read_output(&mut p);
        if p.broken && !warned {
            tracing::warn!("guest console ring indices are inconsistent; ignoring its output");
            warned = true;
        }
        if !p.output.is_empty() {
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(&p.output);
            let _ = out.flush();
        }
        if control.stopping() {
            return;
        }
        std::thread::sleep(POLL);
    }
}
