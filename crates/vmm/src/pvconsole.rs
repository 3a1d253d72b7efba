//! The primary PV console (hvc0): drains the guest's console ring to stdout
//! when the guest kicks its event channel (and every few milliseconds, in case
//! a kick was missed), and tells the guest when it made room.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use xenkvm_xen_core::page::SharedPage;
use xenkvm_xen_core::Domain;
use xenkvm_xen_pv::console::{ConsoleRing, Progress};

use crate::events::{serve_backend, Backends};
use crate::vcpu::RunControl;

const POLL: Duration = Duration::from_millis(20);

/// The console backend of one VM.
pub struct Console {
    pub page: Arc<SharedPage>,
    /// Our (backend) end of the console event channel.
    pub port: u32,
    pub domain: Arc<Mutex<Domain>>,
    pub backends: Arc<Backends>,
    pub control: Arc<RunControl>,
}

impl Console {
    /// Runs until the VM stops.
    pub fn run(self) {
        let ring = ConsoleRing::new(&self.page);
        let mut warned = false;
        serve_backend(self.port, &self.domain, &self.backends, &self.control, POLL, || {
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
            p.notify()
        });
    }
}
