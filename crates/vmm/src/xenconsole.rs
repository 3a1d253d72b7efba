//! The consoles' host ends: which chardev's input reaches which console, and
//! one thread per xenbus console (`-device xen-console` after the first).
//!
//! A thread runs the XenBus handshake when the store changed, and while
//! connected moves the guest's output to the chardev and the chardev's input
//! into the ring, on kicks of the console's event channel (and every few
//! milliseconds, in case a kick was missed).

use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use xenkvm_xen_core::Domain;
use xenkvm_xen_pv::consback::ConsoleBackend;
use xenkvm_xen_pv::console::Progress;
use xenkvm_xen_pv::grants::DomainGrants;
use xenkvm_xen_pv::xenbus::run_handshake_on;
use xenkvm_xenstore::server::Shared;

use crate::builder::Com1;
use crate::chardev::{self, Chardev};
use crate::events::{Backends, StoreRecheck};
use crate::hotplug::{DeviceLife, Unplugging};
use crate::pvblock::Context;
use crate::pvconsole::ConsoleInput;
use crate::stdin::{console_is_hvc, InputTarget};
use crate::vcpu::RunControl;
use crate::{VmConfig, VmmError};

const POLL: Duration = Duration::from_millis(20);

/// Routes input to the serial port and hvc0. When both share a chardev
/// (`-serial mon:stdio`, or a `mux=on` chardev), the kernel's console
/// (the last `console=`) gets the input, as before chardevs existed.
pub fn route_primary(cfg: &VmConfig, serial: Option<Arc<Mutex<Com1>>>, hvc: &Arc<Chardev>, input: Arc<ConsoleInput>) {
    let hvc_target = InputTarget::PvConsole(input);
    let serial_dev = chardev::serial_chardev(cfg);
    match (serial, serial_dev) {
        (Some(port), Some(dev)) if chardev::same(&dev, hvc) => {
            let target = if console_is_hvc(&cfg.cmdline) { hvc_target } else { InputTarget::Serial(port) };
            hvc.set_target(target);
        }
        (Some(port), Some(dev)) => {
            dev.set_target(InputTarget::Serial(port));
            hvc.set_target(hvc_target);
        }
        _ => hvc.set_target(hvc_target),
    }
}

/// Creates each xenbus console's store nodes and starts its thread.
pub fn start(cfg: &VmConfig, ctx: &Context) -> Result<Vec<JoinHandle<()>>, VmmError> {
    let mut threads = Vec::new();
    let taken: Vec<Arc<Chardev>> =
        chardev::serial_chardev(cfg).into_iter().chain(chardev::console_chardev(cfg, 0)).collect();
    for (devid, id) in cfg.consoles.iter().enumerate().skip(1) {
        let Some(out) = chardev::get(id) else {
            return Err(VmmError::Internal(format!("xen-console {devid}: no chardev {id}")));
        };
        // A muxed chardev keeps its input for the serial port or hvc0.
        let take_input = !taken.iter().any(|t| chardev::same(t, &out));
        let devid = u32::try_from(devid).map_err(|_| VmmError::Internal("too many consoles".into()))?;
        threads.push(spawn_console(devid, out, take_input, ctx, None)?);
    }
    Ok(threads)
}

/// Creates xenbus console `devid`'s store nodes and starts its thread, with
/// `out` as its host end (whose input it takes if `take_input`); `life` is
/// set for a hotplugged console, which QMP may unplug.
pub fn spawn_console(
    devid: u32,
    out: Arc<Chardev>,
    take_input: bool,
    ctx: &Context,
    life: Option<Arc<DeviceLife>>,
) -> Result<JoinHandle<()>, VmmError> {
    let input = Arc::new(ConsoleInput::new(ctx.backends.clone()));
    if take_input {
        out.set_target(InputTarget::PvConsole(input.clone()));
    }
    let grants = DomainGrants::new(ctx.domain.clone());
    let backend = ctx
        .shared
        .with(|xs| ConsoleBackend::create(xs, ctx.domid, devid, grants))
        .map_err(|e| VmmError::Internal(format!("console {devid} xenstore set-up: {e}")))?;
    let worker = Worker {
        backend,
        out,
        input,
        shared: ctx.shared.clone(),
        recheck: StoreRecheck::new(ctx.changes.clone()),
        domain: ctx.domain.clone(),
        backends: ctx.backends.clone(),
        control: ctx.control.clone(),
        life,
    };
    std::thread::Builder::new().name(format!("console{devid}")).spawn(move || {
        crate::seccomp::enter(crate::seccomp::ThreadKind::Worker);
        worker.run()
    }).map_err(VmmError::SpawnThread)
}

pub struct Worker {
    pub backend: ConsoleBackend,
    pub out: Arc<Chardev>,
    pub input: Arc<ConsoleInput>,
    pub shared: Arc<Shared>,
    pub recheck: StoreRecheck,
    pub domain: Arc<Mutex<Domain>>,
    pub backends: Arc<Backends>,
    pub control: Arc<RunControl>,
    /// Set for a hotplugged console.
    pub life: Option<Arc<DeviceLife>>,
}

impl Worker {
    pub fn run(mut self) {
        let mut warned = false;
        let mut unplug = Unplugging::default();
        while !self.control.stopping() {
            let seen = self.backends.signal.current();
            if unplug.step(&self.life, &mut self.backend, &self.shared) {
                break;
            }
            if self.recheck.due() && !unplug.started() {
                if let Err(e) = run_handshake_on(&mut self.backend, &self.shared) {
                    tracing::warn!("{}: {e}", self.backend.paths().backend);
                }
            }
            if let (Some(port), Some(ring)) = (self.backend.port(), self.backend.ring()) {
                self.backends.take(port);
                let mut p = Progress::default();
                ring.read_output(&mut p);
                self.input.feed(&ring, &mut p);
                if p.broken && !warned {
                    tracing::warn!("{}: ring indices are inconsistent; ignoring it", self.backend.paths().backend);
                    warned = true;
                }
                if !p.output.is_empty() {
                    self.out.write(&p.output);
                }
                if p.notify() {
                    if let Ok(mut d) = self.domain.lock() {
                        let _ = d.backend_send(port);
                    }
                }
            }
            self.backends.signal.wait(seen, POLL);
        }
    }
}

#[cfg(test)]
mod tests;
