//! [`VmHandle`]: the [`Machine`] QMP commands act on. It outlives guest
//! reboots; each run of the guest attaches its store and run control while
//! it runs ([`VmHandle::attach`]), and the main loop asks it what to do when
//! a guest run ended ([`VmHandle::after_shutdown`]).

use std::os::unix::net::UnixStream;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, Weak};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use xenkvm_xen_core::Domain;
use xenkvm_xen_pv::xenbus::StoreClient;
use xenkvm_xenstore::server::Shared;

use super::{event, GuestRequest, Machine, QmpError, RunStatus};
use crate::hotplug::{DeviceRequest, Hotplug, HotplugError};
use crate::{DiskConfig, VmConfig};
use crate::vcpu::{GuestEnd, RunControl};

/// A client that cannot take an event for this long is skipped.
const EVENT_WRITE_TIMEOUT: Duration = Duration::from_millis(200);

/// What a guest run is made of, as far as QMP needs it.
pub struct Running {
    pub store: Arc<Shared>,
    pub control: Arc<RunControl>,
    pub domain: Arc<Mutex<Domain>>,
}

/// A host command made while no guest ran, or that ends the current run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostAction {
    Quit,
    Reset,
}

struct State {
    status: RunStatus,
    running: Option<Running>,
    pending: Option<HostAction>,
    /// Commands being answered (their replies not yet sent).
    busy: u32,
}

/// Marks a command in progress until dropped (see [`VmHandle::settle`]).
pub struct Busy<'a>(&'a VmHandle);

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        let mut s = self.0.lock();
        s.busy = s.busy.saturating_sub(1);
        self.0.changed.notify_all();
    }
}

/// The VM as QMP sees it, across guest runs.
pub struct VmHandle {
    name: Option<String>,
    domid: u16,
    max_bytes: u64,
    hotplug: Arc<Hotplug>,
    state: Mutex<State>,
    changed: Condvar,
    /// Negotiated clients' sockets, for events.
    listeners: Mutex<Vec<Arc<Mutex<UnixStream>>>>,
}

impl VmHandle {
    pub fn new(cfg: &VmConfig) -> Arc<Self> {
        let state = State { status: RunStatus::Prelaunch, running: None, pending: None, busy: 0 };
        Arc::new_cyclic(|me: &Weak<VmHandle>| {
            let me = me.clone();
            let deleted = Box::new(move |id: &str| {
                if let Some(vm) = me.upgrade() {
                    vm.emit("DEVICE_DELETED", json!({ "device": id, "path": format!("/machine/peripheral/{id}") }));
                }
            });
            Self {
                name: cfg.name.clone(),
                domid: cfg.domid,
                max_bytes: cfg.memory_bytes,
                hotplug: Hotplug::new(cfg, deleted),
                state: Mutex::new(state),
                changed: Condvar::new(),
                listeners: Mutex::new(Vec::new()),
            }
        })
    }

    /// The hotplug registry.
    pub fn hotplug(&self) -> &Hotplug {
        &self.hotplug
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A guest run started; commands now reach it. A quit or reset asked for
    /// before it started ends it at once.
    pub fn attach(&self, running: Running) {
        let mut s = self.lock();
        match s.pending.take() {
            Some(HostAction::Quit) => running.control.finish(GuestEnd::HostQuit),
            Some(HostAction::Reset) => running.control.finish(GuestEnd::HostReset),
            None => {}
        }
        s.running = Some(running);
        s.status = RunStatus::Running;
    }

    /// The guest run ended.
    pub fn detach(&self) {
        let mut s = self.lock();
        s.running = None;
        s.status = RunStatus::Prelaunch;
    }

    /// With `-no-shutdown`: the guest is down; waits until a client asks to
    /// quit or reset, or `deadline` passes (`None`).
    pub fn after_shutdown(&self, deadline: Option<Instant>) -> Option<HostAction> {
        let mut s = self.lock();
        s.status = RunStatus::Shutdown;
        loop {
            if let Some(action) = s.pending.take() {
                s.status = RunStatus::Prelaunch;
                return Some(action);
            }
            let step = match deadline {
                Some(d) => d.checked_duration_since(Instant::now())?,
                None => Duration::from_secs(3600),
            };
            s = self.changed.wait_timeout(s, step).unwrap_or_else(PoisonError::into_inner).0;
        }
    }

    /// Holds xenkvm's exit back while a command is answered.
    pub fn busy(&self) -> Busy<'_> {
        self.lock().busy += 1;
        Busy(self)
    }

    /// Before xenkvm exits: lets commands in progress (a `quit`) send their
    /// replies, for at most `limit`.
    pub fn settle(&self, limit: Duration) {
        let deadline = Instant::now() + limit;
        let mut s = self.lock();
        while s.busy > 0 {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else { return };
            s = self.changed.wait_timeout(s, left).unwrap_or_else(PoisonError::into_inner).0;
        }
    }

    /// Takes a client's socket for events.
    pub fn listen(&self, out: Arc<Mutex<UnixStream>>) {
        if let Ok(s) = out.lock() {
            let _ = s.set_write_timeout(Some(EVENT_WRITE_TIMEOUT));
        }
        self.listeners.lock().unwrap_or_else(PoisonError::into_inner).push(out);
    }

    /// Sends an event to every negotiated client; gone clients are dropped.
    pub fn emit(&self, name: &str, data: Value) {
        let message = event(name, data);
        let mut listeners = self.listeners.lock().unwrap_or_else(PoisonError::into_inner);
        listeners.retain(|out| super::server::send(out, &message).is_ok());
    }

    /// The SHUTDOWN event for how a guest run ended.
    pub fn report_end(&self, end: &GuestEnd) {
        let (guest, reason) = match end {
            GuestEnd::Shutdown(xenkvm_xen_core::ShutdownReason::Reboot) | GuestEnd::TripleFault => (true, "guest-reset"),
            GuestEnd::Shutdown(xenkvm_xen_core::ShutdownReason::Crash) => (true, "guest-panic"),
            GuestEnd::Shutdown(_) | GuestEnd::HaltedForever(_) => (true, "guest-shutdown"),
            GuestEnd::HostQuit => (false, "host-qmp-quit"),
            GuestEnd::HostReset => (false, "host-qmp-system-reset"),
            GuestEnd::Timeout | GuestEnd::Fatal(_) => (false, "host-error"),
        };
        self.emit("SHUTDOWN", json!({ "guest": guest, "reason": reason }));
    }

    /// Ends the current run with `end`, or keeps `action` for when none runs.
    fn act(&self, action: HostAction) {
        let mut s = self.lock();
        match &s.running {
            Some(r) => r.control.finish(match action {
                HostAction::Quit => GuestEnd::HostQuit,
                HostAction::Reset => GuestEnd::HostReset,
            }),
            None => {
                // Quit outranks a reset already asked for.
                if s.pending != Some(HostAction::Quit) {
                    s.pending = Some(action);
                }
                if action == HostAction::Reset {
                    // Reported at once, so nobody sees the old run's state.
                    s.status = RunStatus::Prelaunch;
                }
            }
        }
        self.changed.notify_all();
    }

    /// Runs `f` on the running guest's store as dom0.
    fn with_store<R>(&self, f: impl FnOnce(&mut xenkvm_xenstore::Xenstore, &StoreClient) -> R) -> Result<R, QmpError> {
        let s = self.lock();
        let r = s.running.as_ref().ok_or_else(|| QmpError::generic("the guest is not running"))?;
        Ok(r.store.with(|xs| {
            let client = StoreClient::connect(xs);
            let out = f(xs, &client);
            xs.disconnect(client.conn());
            out
        }))
    }
}



impl Machine for VmHandle {
    fn status(&self) -> RunStatus {
        self.lock().status
    }

    fn name(&self) -> Option<String> {
        self.name.clone()
    }

    fn request(&self, req: GuestRequest) -> Result<(), QmpError> {
        let (node, value) = match req {
            GuestRequest::Poweroff => ("control/shutdown", "poweroff"),
            GuestRequest::Reboot => ("control/shutdown", "reboot"),
            GuestRequest::Suspend => ("control/shutdown", "suspend"),
            GuestRequest::Halt => ("control/shutdown", "halt"),
            GuestRequest::Crash => ("control/sysrq", "c"),
        };
        let path = format!("/local/domain/{}/{node}", self.domid);
        self.with_store(|xs, c| c.write(xs, &path, value))?
            .map_err(|e| QmpError::generic(format!("cannot ask the guest: {e}")))?;
        tracing::info!("QMP: wrote {value} to {node}");
        if req == GuestRequest::Poweroff {
            self.emit("POWERDOWN", json!({}));
        }
        Ok(())
    }

    fn reset(&self) {
        self.emit("RESET", json!({ "guest": false, "reason": "host-qmp-system-reset" }));
        self.act(HostAction::Reset);
    }

    fn quit(&self) {
        self.act(HostAction::Quit);
    }

    fn set_balloon_target(&self, bytes: u64) -> Result<(), QmpError> {
        if bytes > self.max_bytes {
            return Err(QmpError::generic(format!(
                "balloon target {bytes} bytes is above the guest's maximum of {} bytes",
                self.max_bytes
            )));
        }
        let kib = (bytes / 1024).to_string();
        let path = format!("/local/domain/{}/memory/target", self.domid);
        self.with_store(|xs, c| c.write(xs, &path, &kib))?
            .map_err(|e| QmpError::generic(format!("cannot set the balloon target: {e}")))?;
        tracing::info!("QMP: balloon target {kib} KiB");
        Ok(())
    }

    fn device_add(&self, req: DeviceRequest) -> Result<(), QmpError> {
        self.hotplug.add(req).map_err(|e| QmpError::generic(e.to_string()))
    }

    fn device_del(&self, id: &str) -> Result<(), QmpError> {
        self.hotplug.remove(id).map_err(|e| {
            let class = if matches!(e, HotplugError::NoDevice(_)) { "DeviceNotFound" } else { "GenericError" };
            QmpError { class, desc: e.to_string() }
        })
    }

    fn blockdev_add(&self, id: String, disk: DiskConfig) -> Result<(), QmpError> {
        self.hotplug.add_drive(id, disk).map_err(|e| QmpError::generic(e.to_string()))
    }

    fn netdev_add(&self, id: String, ifname: String) -> Result<(), QmpError> {
        self.hotplug.add_netdev(id, ifname).map_err(|e| QmpError::generic(e.to_string()))
    }

    fn balloon_actual(&self) -> Result<u64, QmpError> {
        let s = self.lock();
        let r = s.running.as_ref().ok_or_else(|| QmpError::generic("the guest is not running"))?;
        let d = r.domain.lock().map_err(|_| QmpError::generic("Xen state lock poisoned"))?;
        Ok(d.current_pages() * 4096)
    }
}
