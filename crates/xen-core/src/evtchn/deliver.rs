//! 2-level delivery (Xen's `event_2l.c`): the pending, mask and selector bits
//! and `evtchn_upcall_pending`, updated with atomic read-modify-writes on the
//! shared_info page and on guest RAM (a registered vcpu_info); then the upcall,
//! routed by the per-vCPU vector or `HVM_PARAM_CALLBACK_IRQ` (Xen's
//! `hvm_assert_evtchn_irq` and `hvm_set_callback_via`).

use std::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, Ordering};

use vm_memory::bitmap::BitmapSlice;
use vm_memory::{GuestAddress, GuestMemoryBackend, VolatileMemory, VolatileSlice};
use xenkvm_xen_abi::hvm::HVM_PARAM_CALLBACK_IRQ;
use xenkvm_xen_abi::shared_info::*;
use xenkvm_xen_abi::xen::XEN_LEGACY_MAX_VCPUS;

use crate::domain::Domain;
use crate::ports::{CallbackLine, UpcallVia};

/// With kernel delivery, the passes of [`Domain::reassert_upcalls`] (about
/// 20 ms each) an upcall flag must stay set before the core re-raises it.
pub const KERNEL_RESCUE_PASSES: u32 = 50;

/// The route `HVM_PARAM_CALLBACK_IRQ` selects (Xen's `hvm_set_callback_via`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Via {
    None,
    Vector(u8),
    Line(CallbackLine),
}

fn decode_via(val: u64) -> Via {
    match val >> 56 {
        0 if val as u8 != 0 => Via::Line(CallbackLine::Gsi(val as u8)),
        1 => Via::Line(CallbackLine::PciIntx { dev: ((val >> 11) & 31) as u8, pin: (val & 3) as u8 }),
        2 => Via::Vector(val as u8),
        _ => Via::None,
    }
}

#[derive(Clone, Copy)]
enum BitOp {
    Test,
    Set,
    Clear,
}

/// Atomically tests, sets or clears bit `bit` of the 64-bit (`wide`) or 32-bit
/// word at `off`, returning the old bit; `None` if the word is out of range.
fn bit_op<B: BitmapSlice>(s: &VolatileSlice<'_, B>, off: usize, bit: u64, wide: bool, op: BitOp) -> Option<bool> {
    let o = Ordering::SeqCst;
    if wide {
        let w = s.get_atomic_ref::<AtomicU64>(off).ok()?;
        let m = 1u64.checked_shl(u32::try_from(bit).ok()?)?;
        let old = match op {
            BitOp::Test => w.load(o),
            BitOp::Set => w.fetch_or(m, o),
            BitOp::Clear => w.fetch_and(!m, o),
        };
        Some(old & m != 0)
    } else {
        let w = s.get_atomic_ref::<AtomicU32>(off).ok()?;
        let m = 1u32.checked_shl(u32::try_from(bit).ok()?)?;
        let old = match op {
            BitOp::Test => w.load(o),
            BitOp::Set => w.fetch_or(m, o),
            BitOp::Clear => w.fetch_and(!m, o),
        };
        Some(old & m != 0)
    }
}

impl Domain {

    fn layout(&self) -> SharedInfoLayout {
        if self.shared_info_compat {
            SHARED_INFO_COMPAT
        } else {
            SHARED_INFO_64
        }
    }

    /// Applies `op` to `port`'s bit in the pending (`mask == false`) or mask
    /// bitmap of shared_info. `None` for a port outside the current layout.
    fn port_bit(&self, port: u32, mask: bool, op: BitOp) -> Option<bool> {
        let l = self.layout();
        if port >= self.max_ports() {
            return None;
        }
        let bits = l.word_bytes * 8;
        let base = if mask { l.evtchn_mask } else { l.evtchn_pending };
        let off = base + u64::from(port) / bits * l.word_bytes;
        bit_op(&self.shared_info.volatile(), off as usize, u64::from(port) % bits, l.word_bytes == 8, op)
    }

    /// The 64 bytes of `vcpu`'s vcpu_info: its registered area in RAM, else its
    /// shared_info slot. A vCPU at or above 32 without a registered area has
    /// none (Xen points it at a dummy that the guest never sees).
    fn vcpu_info(&self, vcpu: u32) -> Option<VolatileSlice<'_>> {
        match self.vcpus.get(vcpu as usize)?.vcpu_info {
            Some((gfn, offset)) => {
                let gpa = gfn.checked_mul(4096)?.checked_add(u64::from(offset))?;
                self.mem.ram().get_slice(GuestAddress(gpa), VCPU_INFO_SIZE as usize).ok()
            }
            None if vcpu < XEN_LEGACY_MAX_VCPUS => {
                self.shared_info.volatile().subslice((u64::from(vcpu) * VCPU_INFO_SIZE) as usize, VCPU_INFO_SIZE as usize).ok()
            }
            None => None,
        }
    }

    /// Sets selector bit `word` in `vcpu`'s `evtchn_pending_sel`; the old bit.
    fn selector_test_and_set(&self, vcpu: u32, word: u64) -> Option<bool> {
        let wide = !self.shared_info_compat;
        let off = if wide { VCPU_INFO_PENDING_SEL } else { COMPAT_VCPU_INFO_PENDING_SEL };
        bit_op(&self.vcpu_info(vcpu)?, off as usize, word, wide, BitOp::Set)
    }

    /// Clears `port`'s pending bit (when the port is freed).
    pub(super) fn clear_pending(&self, port: u32) {
        self.port_bit(port, false, BitOp::Clear);
    }

    fn word_bits(&self) -> u64 {
        self.layout().word_bytes * 8
    }

    /// Xen's `evtchn_2l_set_pending` for `port`, notifying `vcpu`.
    pub(crate) fn evtchn_set_pending(&mut self, vcpu: u32, port: u32) {
        if self.kernel_send(port, vcpu) {
            self.check_pollers(port);
            return;
        }
        if self.port_bit(port, false, BitOp::Set) != Some(false) {
            return;
        }
        let masked = self.port_bit(port, true, BitOp::Test) != Some(false);
        if !masked && self.selector_test_and_set(vcpu, u64::from(port) / self.word_bits()) == Some(false) {
            self.mark_events_pending(vcpu);
        }
        self.check_pollers(port);
    }

    /// Xen's `evtchn_2l_unmask`.
    pub(super) fn unmask_2l(&mut self, port: u32, vcpu: u32) {
        if self.kernel_delivers() {
            // The kernel's send does nothing for a port already pending: take
            // the bit back and send it again, now unmasked.
            if self.port_bit(port, true, BitOp::Clear) == Some(true) && self.port_bit(port, false, BitOp::Clear) == Some(true) {
                self.evtchn_set_pending(vcpu, port);
            }
            return;
        }
        if self.port_bit(port, true, BitOp::Clear) == Some(true)
            && self.port_bit(port, false, BitOp::Test) == Some(true)
            && self.selector_test_and_set(vcpu, u64::from(port) / self.word_bits()) == Some(false)
        {
            self.mark_events_pending(vcpu);
        }
    }

    /// Wakes the vCPUs polling `port` (Xen's `evtchn_check_pollers`).
    fn check_pollers(&self, port: u32) {
        for (v, ev) in self.events.vcpus.iter().enumerate() {
            if ev.wait.as_ref().is_some_and(|w| w.ports.contains(&port)) {
                self.ports.upcall.kick(v as u32);
            }
        }
    }

    /// Xen's `vcpu_mark_events_pending`: sets `evtchn_upcall_pending` and raises
    /// the upcall if it was clear.
    pub(crate) fn mark_events_pending(&mut self, vcpu: u32) {
        let newly = self.vcpu_info(vcpu).is_some_and(|info| {
            let flag = info.get_atomic_ref::<AtomicU8>(VCPU_INFO_UPCALL_PENDING as usize);
            flag.is_ok_and(|f| f.fetch_or(1, Ordering::SeqCst) & 1 == 0)
        });
        if newly {
            self.assert_evtchn_irq(vcpu);
        }
    }

    /// Xen's `hvm_assert_evtchn_irq`: delivers `vcpu`'s upcall by the per-vCPU
    /// vector if it has one, else by `HVM_PARAM_CALLBACK_IRQ` (vector, or the
    /// line for vCPU 0). A vCPU blocked in SCHEDOP_block is kicked either way.
    pub(crate) fn assert_evtchn_irq(&mut self, vcpu: u32) {
        match self.upcall_via(vcpu) {
            Some(via) => self.inject_upcall(vcpu, via),
            None if vcpu == 0 => self.sync_callback_line(),
            None => {}
        }
        let blocked = self.events.vcpus.get(vcpu as usize).and_then(|v| v.wait.as_ref()).is_some_and(|w| w.ports.is_empty());
        if blocked {
            self.ports.upcall.kick(vcpu);
        }
    }

    /// Injects `vcpu`'s upcall by `via`. The kernel injects the global vector
    /// itself on the vCPU's next entry while the flag is set, so it only needs
    /// a kick: an extra LAPIC interrupt would never see an EOI (guests do not
    /// acknowledge that vector).
    fn inject_upcall(&self, vcpu: u32, via: UpcallVia) {
        match via {
            UpcallVia::CallbackVector(_) if self.kernel_callback_vector => self.ports.upcall.kick(vcpu),
            via => self.ports.upcall.raise(vcpu, via),
        }
    }

    /// How `vcpu`'s upcall is injected: the per-vCPU vector, else the global
    /// callback vector; `None` for the GSI / PCI INTx line or no callback. The
    /// VMM uses it to re-inject a `CallbackVector` while
    /// [`Domain::upcall_pending`] holds.
    pub fn upcall_via(&self, vcpu: u32) -> Option<UpcallVia> {
        match self.events.vcpus.get(vcpu as usize).map_or(0, |v| v.upcall_vector) {
            0 => match self.callback_via() {
                Via::Vector(v) => Some(UpcallVia::CallbackVector(v)),
                _ => None,
            },
            v => Some(UpcallVia::LapicVector(v)),
        }
    }

    /// Raises the upcall again for every vCPU whose `evtchn_upcall_pending` is
    /// still set. Xen re-checks the flag on every VM entry; a VMM that delivers
    /// upcalls as interrupts must retry, or an interrupt the guest's LAPIC dropped
    /// (sent before the guest enabled it) leaves events stuck forever, because
    /// new events only raise the upcall when the flag goes from 0 to 1.
    ///
    /// Where the kernel delivers, its injection is the rule and this only
    /// rescues a flag that stayed set for [`KERNEL_RESCUE_PASSES`] passes: the
    /// flag stays set as long as the guest runs with interrupts off, and each
    /// interrupt sent into such a vCPU costs exits and interrupt-window work
    /// for nothing (the vector is already in its IRR).
    pub fn reassert_upcalls(&mut self) {
        let every = if self.kernel_events.is_some() { KERNEL_RESCUE_PASSES } else { 1 };
        for vcpu in 0..self.cfg.vcpus {
            let pending = self.upcall_pending(vcpu);
            let Some(v) = self.events.vcpus.get_mut(vcpu as usize) else { continue };
            v.pending_passes = if pending { v.pending_passes.saturating_add(1) } else { 0 };
            if !pending || !v.pending_passes.is_multiple_of(every) {
                continue;
            }
            if let Some(via) = self.upcall_via(vcpu) {
                self.inject_upcall(vcpu, via);
            }
        }
    }

    fn callback_via(&self) -> Via {
        decode_via(self.param(HVM_PARAM_CALLBACK_IRQ).unwrap_or(0))
    }

    /// Brings the callback line to the level of vCPU 0's `evtchn_upcall_pending`
    /// (Xen's `hvm_set_callback_irq_level`). The VMM calls it after vCPU 0 exits
    /// while [`Domain::callback_line_asserted`] holds, to lower the line once the
    /// guest has cleared the flag.
    pub fn sync_callback_line(&mut self) {
        let lapic0 = self.events.vcpus.first().is_some_and(|v| v.upcall_vector != 0);
        let want = match self.callback_via() {
            Via::Line(line) if !lapic0 && self.upcall_pending(0) => Some(line),
            _ => None,
        };
        let have = self.events.asserted_line;
        if have != want {
            if let Some(old) = have {
                self.ports.upcall.set_line(old, false);
            }
            if let Some(new) = want {
                self.ports.upcall.set_line(new, true);
            }
            self.events.asserted_line = want;
        }
    }

    /// Whether the core holds the callback line asserted.
    pub fn callback_line_asserted(&self) -> bool {
        self.events.asserted_line.is_some()
    }

    /// `HVM_PARAM_CALLBACK_IRQ` changed (Xen's `hvm_set_callback_via`): the old
    /// line drops, and every vCPU with an upcall pending gets it again through
    /// the new route.
    pub(crate) fn callback_via_changed(&mut self) {
        if let Some(old) = self.events.asserted_line.take() {
            self.ports.upcall.set_line(old, false);
        }
        let vector = match self.callback_via() {
            Via::Vector(v) => Some(v),
            _ => None,
        };
        self.kernel_callback_vector(vector);
        for vcpu in 0..self.cfg.vcpus {
            if self.upcall_pending(vcpu) {
                self.assert_evtchn_irq(vcpu);
            }
        }
    }

    /// `HVMOP_set_evtchn_upcall_vector`: records `vector` for `vcpu` and raises
    /// the upcall if one is pending. (Xen injects the vector even when none is;
    /// we spare the guest that spurious interrupt.)
    pub(crate) fn set_upcall_vector(&mut self, vcpu: u32, vector: u8) {
        if let Some(v) = self.events.vcpus.get_mut(vcpu as usize) {
            v.upcall_vector = vector;
        }
        self.kernel_upcall_vector(vcpu, vector);
        if self.upcall_pending(vcpu) {
            self.assert_evtchn_irq(vcpu);
        }
    }
}
