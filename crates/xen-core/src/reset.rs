//! `SHUTDOWN_soft_reset` (what kexec asks for): the domain's Xen state goes
//! back to that of a new domain while its memory and vCPUs stay, as Xen's
//! `domain_soft_reset` and the toolstack's reset do it. Event channels close
//! (but the toolstack's xenstore and console channels stay bound, so their
//! HVM params stay true), the grant table and its frames go, shared_info and
//! every vCPU area are unregistered, timers stop, the callback is cleared, and
//! the host kernel is told the same. The toolstack then re-seeds its reserved
//! grants; frontends reconnect through their backends' handshake.

use xenkvm_xen_abi::hvm::HVM_PARAM_CALLBACK_IRQ;

use crate::domain::{Domain, DomainError};
use crate::evtchn::{BackendPort, EventState, Port, PortState, Remote};
use crate::gnttab::GrantTable;
use crate::vcpu::VcpuState;

impl Domain {
    /// Resets the Xen state; `keep` are backend ports whose bindings survive.
    pub fn soft_reset(&mut self, keep: &[u32]) -> Result<(), DomainError> {
        self.unmap_special_frames();
        self.gnttab = GrantTable::new(self.cfg.gnttab_max_frames).map_err(DomainError::AllocGrantFrame)?;
        self.reset_vcpus();
        self.reset_events(keep);
        self.pirqs.unbind_all();
        if let Some(p) = self.params.get_mut(HVM_PARAM_CALLBACK_IRQ as usize) {
            *p = 0;
        }
        self.callback_via_changed();
        self.vm_assist = 0;
        self.shared_info_compat = false;
        self.released.clear();
        self.init_shared_info();
        self.kernel_shared_info();
        tracing::info!("domain soft reset: event channels (but {keep:?}), grants, shared_info, vCPU areas and timers cleared");
        Ok(())
    }

    /// Takes shared_info and the grant frames out of the physmap.
    fn unmap_special_frames(&mut self) {
        let mut frames: Vec<u64> = (0..self.cfg.gnttab_max_frames).filter_map(|i| self.gnttab.frame_gfn(i)).collect();
        frames.extend(self.shared_info_gfn.take());
        for gfn in frames {
            if let Err(e) = self.ports.physmap.remove_overlay(gfn) {
                tracing::warn!("soft reset: {e}");
            }
            self.mem.remove_overlay(gfn);
        }
    }

    fn reset_vcpus(&mut self) {
        for vcpu in 0..self.cfg.vcpus {
            if let Some(kt) = &self.kernel_time {
                kt.forget_vcpu(vcpu);
            }
            self.kernel_upcall_vector(vcpu, 0);
            self.kernel_timer_port(vcpu, None);
            self.ports.upcall.timer_changed(vcpu, None);
        }
        self.vcpus = (0..self.cfg.vcpus).map(|_| VcpuState::default()).collect();
    }

    /// Closes every guest port but those bound to a kept backend port; a
    /// backend port whose guest end closed waits unbound (its backend
    /// reconnects when the frontend does).
    fn reset_events(&mut self, keep: &[u32]) {
        let old = std::mem::replace(&mut self.events, EventState::new(self.cfg.vcpus));
        self.events.max_port = old.max_port;
        if let Some(line) = old.asserted_line {
            self.ports.upcall.set_line(line, false);
        }
        self.events.backend = old
            .backend
            .iter()
            .enumerate()
            .map(|(b, p)| match p {
                BackendPort::Interdomain { .. } if !keep.contains(&(b as u32)) => BackendPort::Unbound,
                other => *other,
            })
            .collect();
        for (b, p) in old.backend.iter().enumerate() {
            let BackendPort::Interdomain { guest_port } = p else { continue };
            if !keep.contains(&(b as u32)) {
                continue;
            }
            let slot = *guest_port as usize;
            if self.events.ports.len() <= slot {
                self.events.ports.resize(slot + 1, Port::default());
            }
            if let Some(port) = self.events.ports.get_mut(slot) {
                *port = Port { state: PortState::Interdomain(Remote::Backend(b as u32)), notify_vcpu: 0 };
            }
        }
    }
}
