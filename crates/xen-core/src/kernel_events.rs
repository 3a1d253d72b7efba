//! Handing event-channel delivery to the host kernel where it offers it (see
//! [`crate::ports::KernelEvents`]): the kernel then sets pending bits, injects
//! upcalls and runs the Xen timers, on the vCPU's own CPU and without an exit.
//! The core keeps every port's state and still answers all event-channel
//! hypercalls; it only tells the kernel what it needs to deliver.

use std::sync::Arc;

use crate::domain::Domain;
use crate::ports::KernelEvents;

impl Domain {
    /// Lets the kernel deliver events from now on.
    pub fn set_kernel_events(&mut self, ke: Arc<dyn KernelEvents>) {
        self.kernel_events = Some(ke);
        self.kernel_shared_info();
    }

    /// shared_info moved, or its layout was latched.
    pub(crate) fn kernel_shared_info(&mut self) {
        if let Some(ke) = &self.kernel_events {
            ke.shared_info_at(self.shared_info_gfn, !self.shared_info_compat);
        }
    }

    pub(crate) fn kernel_upcall_vector(&self, vcpu: u32, vector: u8) {
        if let Some(ke) = &self.kernel_events {
            ke.upcall_vector(vcpu, vector);
        }
    }

    /// The global callback vector changed to `vector` (or to another route).
    pub(crate) fn kernel_callback_vector(&mut self, vector: Option<u8>) {
        self.kernel_callback_vector = match &self.kernel_events {
            Some(ke) => ke.callback_vector(vector) && vector.is_some(),
            None => false,
        };
    }

    /// `vcpu`'s VIRQ_TIMER was bound to `port`, or unbound.
    pub(crate) fn kernel_timer_port(&self, vcpu: u32, port: Option<u32>) {
        if let Some(ke) = &self.kernel_events {
            ke.timer_port(vcpu, port);
        }
    }

    /// Delivers `port` to `vcpu` through the kernel; false if it could not.
    pub(crate) fn kernel_send(&self, port: u32, vcpu: u32) -> bool {
        self.kernel_events.as_ref().is_some_and(|ke| ke.send(port, vcpu))
    }

    pub(crate) fn kernel_delivers(&self) -> bool {
        self.kernel_events.is_some()
    }
}
