//! `HYPERVISOR_physdev_op` (`public/physdev.h`) for an HVM guest: the PIRQ
//! table. A PIRQ stands for a GSI (an I/O APIC pin) or an MSI the guest
//! routes to an event channel: `map_pirq` names it, `EVTCHNOP_bind_pirq`
//! binds a port, and the device side raises it with [`Domain::raise_pirq`]
//! (an MSI carries the PIRQ in its address: [`msi_pirq`]).
//!
//! The table holds at most `max_pirqs` entries (`xen-evtchn-max-pirq`,
//! default 256); a PIRQ number must be below it (QEMU's CVE-2026-0665 was
//! accepting `pirq == max`). With XENFEAT_hvm_pirqs a Linux guest maps
//! every GSI it uses (the VMM's lines then call [`Domain::set_gsi`] before
//! the I/O APIC) and takes its MSIs as PIRQs (`get_free_pirq`, then the PIRQ
//! in the message the device sends).

use std::collections::BTreeMap;

use xenkvm_xen_abi::errno::XenErrno;
use xenkvm_xen_abi::physdev::*;
use xenkvm_xen_abi::xen::{DOMID_SELF, HYPERVISOR_PHYSDEV_OP};

use crate::domain::Domain;
use crate::guest::GuestView;
use crate::hypercall::HypercallRequest;

/// The default and the largest `xen-evtchn-max-pirq`.
pub const DEFAULT_MAX_PIRQS: u32 = 256;
pub const MAX_PIRQS_LIMIT: u32 = 1024;
/// GSIs a guest may map (the I/O APIC's pins).
pub const NR_GSIS: i32 = 24;
/// Xen's allocation order, which a migrated guest may rely on: PIRQs 0-15
/// are never handed out, GSIs take 16-23 counting up, and MSIs (or GSIs
/// once 16-23 are gone) count down from the top.
const FIRST_GSI_PIRQ: u32 = 16;
const FIRST_MSI_PIRQ: u32 = NR_GSIS as u32;

/// What a PIRQ stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PirqSource {
    Gsi(u32),
    /// Allocated by `get_free_pirq` (or mapped as an MSI): a device's MSI
    /// names it in its message.
    Msi,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pirq {
    pub source: PirqSource,
    /// The event channel bound to it.
    pub port: Option<u32>,
}

/// The domain's PIRQs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PirqTable {
    max: u32,
    entries: BTreeMap<u32, Pirq>,
    /// GSI → the PIRQ mapped to it.
    by_gsi: [Option<u32>; NR_GSIS as usize],
    /// Levels of the PIRQ-routed GSIs as the devices drive them (bit n =
    /// GSI n): a level-triggered line still high at EOI fires again.
    gsi_levels: u32,
    /// `PHYSDEVOP_pirq_eoi_gmfn`: the guest's EOI bitmap frame.
    eoi_gmfn: Option<u64>,
    /// The VMM routes its lines and MSIs here: XENFEAT_hvm_pirqs is offered.
    offered: bool,
}

impl Default for PirqTable {
    fn default() -> Self {
        Self {
            max: DEFAULT_MAX_PIRQS,
            entries: BTreeMap::new(),
            by_gsi: [None; NR_GSIS as usize],
            gsi_levels: 0,
            eoi_gmfn: None,
            offered: false,
        }
    }
}

impl PirqTable {
    pub fn get(&self, pirq: u32) -> Option<&Pirq> {
        self.entries.get(&pirq)
    }

    /// The PIRQ a GSI is routed to, if the guest mapped one.
    pub fn of_gsi(&self, gsi: u32) -> Option<u32> {
        *self.by_gsi.get(gsi as usize)?
    }

    /// `pirq` must be below the maximum (not equal to it).
    fn check(&self, pirq: i32) -> Result<u32, XenErrno> {
        u32::try_from(pirq).ok().filter(|p| *p < self.max).ok_or(XenErrno::Einval)
    }

    /// A mapped PIRQ from a guest's `irq` field: ENOENT when not in use.
    fn in_use(&self, irq: u32) -> Result<(u32, Pirq), XenErrno> {
        let pirq = self.check(i32::try_from(irq).map_err(|_| XenErrno::Einval)?)?;
        self.entries.get(&pirq).map(|e| (pirq, *e)).ok_or(XenErrno::Enoent)
    }

    /// A free PIRQ in Xen's order: for a GSI the lowest of 16-23, else
    /// the highest free one at or above 24.
    fn allocate_number(&self, gsi: bool) -> Result<u32, XenErrno> {
        let low = gsi.then(|| (FIRST_GSI_PIRQ..FIRST_MSI_PIRQ.min(self.max)).find(|p| !self.entries.contains_key(p)));
        if let Some(Some(p)) = low {
            return Ok(p);
        }
        (FIRST_MSI_PIRQ..self.max).rev().find(|p| !self.entries.contains_key(p)).ok_or(XenErrno::Enospc)
    }

    fn insert(&mut self, pirq: u32, source: PirqSource) {
        if let PirqSource::Gsi(gsi) = source {
            if let Some(slot) = self.by_gsi.get_mut(gsi as usize) {
                *slot = Some(pirq);
            }
        }
        self.entries.insert(pirq, Pirq { source, port: None });
    }

    fn remove(&mut self, pirq: u32) {
        if let Some(Pirq { source: PirqSource::Gsi(gsi), .. }) = self.entries.remove(&pirq) {
            if let Some(slot) = self.by_gsi.get_mut(gsi as usize) {
                *slot = None;
            }
            self.gsi_levels &= !gsi_bit(gsi);
        }
    }

    /// Whether a PIRQ-routed GSI's line is high.
    fn gsi_high(&self, source: PirqSource) -> bool {
        matches!(source, PirqSource::Gsi(gsi) if self.gsi_levels & gsi_bit(gsi) != 0)
    }

    /// Forgets every port binding (event channels were reset).
    pub fn unbind_all(&mut self) {
        for e in self.entries.values_mut() {
            e.port = None;
        }
    }
}

/// GSI `gsi`'s bit in a level mask (none beyond the I/O APIC's pins).
fn gsi_bit(gsi: u32) -> u32 {
    if gsi < NR_GSIS as u32 { 1 << gsi } else { 0 }
}

/// The PIRQ an MSI names, if it is one (Linux's `xen_msi_compose_msg`):
/// vector 0 in the data, PIRQ bits 0-7 in address bits 12-19 and bits 8-31
/// in the high address word.
pub fn msi_pirq(address: u64, data: u32) -> Option<u32> {
    if data & 0xFF != 0 {
        return None;
    }
    let low = ((address >> 12) & 0xFF) as u32;
    let high = ((address >> 32) as u32) & 0xFFFF_FF00;
    Some(high | low).filter(|p| *p != 0)
}

impl Domain {
    /// `xen-evtchn-max-pirq` (1 to 1024).
    pub fn set_max_pirqs(&mut self, max: u32) -> Result<(), XenErrno> {
        if !(1..=MAX_PIRQS_LIMIT).contains(&max) {
            return Err(XenErrno::Einval);
        }
        self.pirqs.max = max;
        Ok(())
    }

    /// The VMM sends every GSI through [`Domain::set_gsi`] and every device
    /// MSI through [`msi_pirq`]: offer XENFEAT_hvm_pirqs, so that Linux
    /// routes its interrupts to event channels.
    pub fn offer_hvm_pirqs(&mut self) {
        self.pirqs.offered = true;
    }

    /// Whether XENFEAT_hvm_pirqs is offered.
    pub fn hvm_pirqs_offered(&self) -> bool {
        self.pirqs.offered
    }

    pub fn pirqs(&self) -> &PirqTable {
        &self.pirqs
    }

    pub(crate) fn physdev_op(&mut self, req: &HypercallRequest) -> Result<i64, XenErrno> {
        let (cmd, arg) = (req.arg(0), req.arg(1));
        let view = GuestView::new(&self.mem, req.paging);
        match cmd {
            PHYSDEVOP_MAP_PIRQ => {
                let mut m: PhysdevMapPirq = view.read_obj(arg)?;
                self.check_physdev_domid(m.domid)?;
                m.pirq = self.map_pirq(m.type_, m.index, m.pirq)? as i32;
                GuestView::new(&self.mem, req.paging).write_obj(arg, &m)?;
                Ok(0)
            }
            PHYSDEVOP_UNMAP_PIRQ => {
                let u: PhysdevUnmapPirq = view.read_obj(arg)?;
                self.check_physdev_domid(u.domid)?;
                self.unmap_pirq(u.pirq).map(|()| 0)
            }
            PHYSDEVOP_EOI => {
                let e: PhysdevEoi = view.read_obj(arg)?;
                self.eoi_pirq(e.irq).map(|()| 0)
            }
            PHYSDEVOP_IRQ_STATUS_QUERY => {
                let mut q: PhysdevIrqStatusQuery = view.read_obj(arg)?;
                let (_, entry) = self.pirqs.in_use(q.irq)?;
                q.flags = match entry.source {
                    PirqSource::Gsi(_) => XENIRQSTAT_NEEDS_EOI,
                    PirqSource::Msi => 0,
                };
                GuestView::new(&self.mem, req.paging).write_obj(arg, &q)?;
                Ok(0)
            }
            PHYSDEVOP_GET_FREE_PIRQ => {
                // Xen and QEMU reserve the number: the guest binds it next
                // and writes it into its device's MSI message.
                let mut g: PhysdevGetFreePirq = view.read_obj(arg)?;
                g.pirq = self.pirqs.allocate_number(g.type_ == MAP_PIRQ_TYPE_GSI)?;
                GuestView::new(&self.mem, req.paging).write_obj(arg, &g)?;
                self.pirqs.insert(g.pirq, PirqSource::Msi);
                Ok(0)
            }
            PHYSDEVOP_PIRQ_EOI_GMFN_V1 | PHYSDEVOP_PIRQ_EOI_GMFN_V2 => {
                let gmfn: u64 = view.read_obj(arg)?;
                if !self.mem.is_ram(gmfn) {
                    return Err(XenErrno::Einval);
                }
                self.pirqs.eoi_gmfn = Some(gmfn);
                Ok(0)
            }
            _ => {
                self.report_unknown(HYPERVISOR_PHYSDEV_OP, cmd, "physdev_op sub-op");
                Err(XenErrno::Enosys)
            }
        }
    }

    fn check_physdev_domid(&self, domid: u16) -> Result<(), XenErrno> {
        if domid == DOMID_SELF || domid == self.cfg.domid {
            Ok(())
        } else {
            Err(XenErrno::Eperm)
        }
    }

    /// `map_pirq`: a GSI gets the PIRQ asked for, else one in Xen's order;
    /// mapping a GSI again returns its PIRQ. A PIRQ the guest reserved with
    /// `get_free_pirq` may be mapped to a GSI.
    fn map_pirq(&mut self, type_: i32, index: i32, want: i32) -> Result<u32, XenErrno> {
        let source = match type_ {
            MAP_PIRQ_TYPE_GSI if (0..NR_GSIS).contains(&index) => PirqSource::Gsi(index as u32),
            MAP_PIRQ_TYPE_GSI => return Err(XenErrno::Einval),
            MAP_PIRQ_TYPE_MSI | MAP_PIRQ_TYPE_MSI_SEG | MAP_PIRQ_TYPE_MULTI_MSI => PirqSource::Msi,
            _ => return Err(XenErrno::Einval),
        };
        if let PirqSource::Gsi(gsi) = source {
            if let Some(p) = self.pirqs.of_gsi(gsi) {
                return Ok(p);
            }
        }
        let pirq = if want >= 0 {
            let p = self.pirqs.check(want)?;
            match self.pirqs.entries.get(&p) {
                None => p,
                Some(Pirq { source: PirqSource::Msi, port: None }) if source != PirqSource::Msi => p,
                Some(_) => return Err(XenErrno::Eexist),
            }
        } else {
            self.pirqs.allocate_number(matches!(source, PirqSource::Gsi(_)))?
        };
        self.pirqs.insert(pirq, source);
        Ok(pirq)
    }

    fn unmap_pirq(&mut self, pirq: i32) -> Result<(), XenErrno> {
        let pirq = self.pirqs.check(pirq)?;
        match self.pirqs.entries.get(&pirq) {
            None => Err(XenErrno::Enoent),
            Some(Pirq { port: Some(_), .. }) => Err(XenErrno::Ebusy),
            Some(_) => {
                self.pirqs.remove(pirq);
                Ok(())
            }
        }
    }

    /// `PHYSDEVOP_eoi`: a level-triggered GSI still high fires again.
    fn eoi_pirq(&mut self, irq: u32) -> Result<(), XenErrno> {
        let (pirq, entry) = self.pirqs.in_use(irq)?;
        if entry.source == PirqSource::Msi {
            return Err(XenErrno::Einval);
        }
        if self.pirqs.gsi_high(entry.source) {
            self.raise_pirq(pirq);
        }
        Ok(())
    }

    /// A device drives GSI `gsi` to `level`. When the guest routed the GSI
    /// to a PIRQ this takes the line (the I/O APIC must not see it) and
    /// returns true; a rising or held level makes the bound port pending.
    pub fn set_gsi(&mut self, gsi: u32, level: bool) -> bool {
        let Some(pirq) = self.pirqs.of_gsi(gsi) else { return false };
        if level {
            self.pirqs.gsi_levels |= gsi_bit(gsi);
            self.raise_pirq(pirq);
        } else {
            self.pirqs.gsi_levels &= !gsi_bit(gsi);
        }
        true
    }

    /// `EVTCHNOP_bind_pirq`: the PIRQ must be mapped and not bound.
    pub(crate) fn bind_pirq(&mut self, pirq: u32, port: u32) -> Result<(), XenErrno> {
        let p = self.pirqs.check(i32::try_from(pirq).map_err(|_| XenErrno::Einval)?)?;
        match self.pirqs.entries.get_mut(&p) {
            None => Err(XenErrno::Einval),
            Some(Pirq { port: Some(_), .. }) => Err(XenErrno::Ebusy),
            Some(e) => {
                e.port = Some(port);
                Ok(())
            }
        }
    }

    /// After `EVTCHNOP_bind_pirq` set the port up: a level GSI that is
    /// already high is delivered now rather than lost.
    pub(crate) fn pirq_bound(&mut self, pirq: u32) {
        if self.pirqs.get(pirq).is_some_and(|e| self.pirqs.gsi_high(e.source)) {
            self.raise_pirq(pirq);
        }
    }

    /// The port bound to `pirq` was closed.
    pub(crate) fn unbind_pirq(&mut self, pirq: u32) {
        if let Some(e) = self.pirqs.entries.get_mut(&pirq) {
            e.port = None;
        }
    }

    /// A device raised `pirq` (a GSI edge or an MSI): its bound port goes
    /// pending. Returns whether a port took it.
    pub fn raise_pirq(&mut self, pirq: u32) -> bool {
        let Some(port) = self.pirqs.get(pirq).and_then(|p| p.port) else { return false };
        let vcpu = self.events.ports.get(port as usize).map_or(0, |p| p.notify_vcpu);
        self.evtchn_set_pending(vcpu, port);
        true
    }
}
