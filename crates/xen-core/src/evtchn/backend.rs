//! The backends' side of interdomain channels: the VMM's PV backends play
//! domain 0, with their own port table (port 0 reserved), and bind to the
//! guest's ports or offer ports for the guest to bind.

use xenkvm_xen_abi::errno::XenErrno;

use super::{BackendPort, Port, PortState, Remote, DOMID_BACKEND, MAX_BACKEND_PORTS};
use crate::domain::Domain;

impl Domain {

    /// Toolstack: allocates a guest port that accepts a binding from the
    /// backends (`alloc_unbound(dom = guest, remote_dom = 0)`), for the xenstore
    /// and console channels; publish it with [`Domain::set_param_host`].
    pub fn alloc_unbound_for_backend(&mut self) -> Result<u32, XenErrno> {
        let port = self.get_free_port()?;
        self.set_port(port, PortState::Unbound { remote_dom: DOMID_BACKEND }, 0);
        Ok(port)
    }

    /// Backend: binds to the guest's unbound `guest_port` (domain 0's
    /// `bind_interdomain(guest, guest_port)`); returns the backend's port. Xen
    /// sets the binder's new port pending, so the backend should look at its
    /// ring once after binding.
    pub fn backend_bind_interdomain(&mut self, guest_port: u32) -> Result<u32, XenErrno> {
        match self.events.ports.get(guest_port as usize) {
            Some(Port { state: PortState::Unbound { remote_dom: DOMID_BACKEND }, .. }) => {}
            _ => return Err(XenErrno::Einval),
        }
        let bport = self.backend_free_port()?;
        if let Some(b) = self.events.backend.get_mut(bport as usize) {
            *b = BackendPort::Interdomain { guest_port };
        }
        if let Some(p) = self.events.ports.get_mut(guest_port as usize) {
            p.state = PortState::Interdomain(Remote::Backend(bport));
        }
        Ok(bport)
    }

    /// Backend: allocates a port that the guest may bind with
    /// `bind_interdomain(remote_dom = 0, remote_port = port)`.
    pub fn backend_alloc_unbound(&mut self) -> Result<u32, XenErrno> {
        let bport = self.backend_free_port()?;
        if let Some(b) = self.events.backend.get_mut(bport as usize) {
            *b = BackendPort::Unbound;
        }
        Ok(bport)
    }

    /// Backend: notifies the guest end (domain 0's `EVTCHNOP_send`). An unbound
    /// port drops the event; a free one is -EINVAL.
    pub fn backend_send(&mut self, backend_port: u32) -> Result<(), XenErrno> {
        match self.events.backend.get(backend_port as usize) {
            Some(BackendPort::Interdomain { guest_port }) => {
                let gp = *guest_port;
                let target = self.events.ports.get(gp as usize).map_or(0, |p| p.notify_vcpu);
                self.evtchn_set_pending(target, gp);
                Ok(())
            }
            Some(BackendPort::Unbound) => Ok(()),
            _ => Err(XenErrno::Einval),
        }
    }

    /// Backend: closes its end; the guest's end waits for domain 0 again.
    pub fn backend_close(&mut self, backend_port: u32) -> Result<(), XenErrno> {
        match self.events.backend.get(backend_port as usize).copied() {
            Some(BackendPort::Interdomain { guest_port }) => {
                if let Some(p) = self.events.ports.get_mut(guest_port as usize) {
                    p.state = PortState::Unbound { remote_dom: DOMID_BACKEND };
                }
            }
            Some(BackendPort::Unbound) => {}
            _ => return Err(XenErrno::Einval),
        }
        if let Some(b) = self.events.backend.get_mut(backend_port as usize) {
            *b = BackendPort::Free;
        }
        Ok(())
    }

    /// The guest port connected to `backend_port`, if any.
    pub fn backend_peer(&self, backend_port: u32) -> Option<u32> {
        match self.events.backend.get(backend_port as usize) {
            Some(BackendPort::Interdomain { guest_port }) => Some(*guest_port),
            _ => None,
        }
    }

    fn backend_free_port(&mut self) -> Result<u32, XenErrno> {
        let table = &mut self.events.backend;
        if let Some(free) = table.iter().position(|p| *p == BackendPort::Free) {
            return Ok(free as u32);
        }
        if table.len() as u32 >= MAX_BACKEND_PORTS {
            return Err(XenErrno::Enospc);
        }
        table.push(BackendPort::Free);
        Ok(table.len() as u32 - 1)
    }
}
