//! `HYPERVISOR_physdev_op` (`public/physdev.h`) for an HVM guest: the PIRQ
//! table. A PIRQ stands for a GSI (an I/O APIC pin) or an MSI the guest
//! routes to an event channel: `map_pirq` names it, `EVTCHNOP_bind_pirq`
//! binds a port, and the device side raises it with [`Domain::raise_pirq`]
//! (an MSI carries the PIRQ in its address: [`msi_pirq`]).
//!
//! The table holds at most `max_pirqs` entries (`xen-evtchn-max-pirq`,
//! default 256); a PIRQ number must be below it (QEMU's CVE-2026-0665 was
//! accepting `pirq == max`). XENFEAT_hvm_pirqs is not offered yet, so a Linux
//! guest does not use these calls until the device routes are wired.

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
/// MSI PIRQs are taken from here up, below them are the GSIs' own numbers.
const FIRST_MSI_PIRQ: u32 = NR_GSIS as u32;

/// What a PIRQ stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PirqSource {
    Gsi(u32),
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
    /// `PHYSDEVOP_pirq_eoi_gmfn`: the guest's EOI bitmap frame.
    eoi_gmfn: Option<u64>,
}

impl Default for PirqTable {
    fn default() -> Self {
        Self { max: DEFAULT_MAX_PIRQS, entries: BTreeMap::new(), eoi_gmfn: None }
    }
}

impl PirqTable {
    pub fn get(&self, pirq: u32) -> Option<&Pirq> {
        self.entries.get(&pirq)
    }

    /// `pirq` must be below the maximum (not equal to it).
    fn check(&self, pirq: i32) -> Result<u32, XenErrno> {
        u32::try_from(pirq).ok().filter(|p| *p < self.max).ok_or(XenErrno::Einval)
    }

    /// The lowest free PIRQ from `from` up.
    fn free_from(&self, from: u32) -> Result<u32, XenErrno> {
        (from..self.max).find(|p| !self.entries.contains_key(p)).ok_or(XenErrno::Enospc)
    }

    /// Forgets every port binding (event channels were reset).
    pub fn unbind_all(&mut self) {
        for e in self.entries.values_mut() {
            e.port = None;
        }
    }
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
                let pirq = self.pirqs.check(i32::try_from(e.irq).map_err(|_| XenErrno::Einval)?)?;
                self.pirqs.get(pirq).map(|_| 0).ok_or(XenErrno::Einval)
            }
            PHYSDEVOP_IRQ_STATUS_QUERY => {
                let mut q: PhysdevIrqStatusQuery = view.read_obj(arg)?;
                let pirq = self.pirqs.check(i32::try_from(q.irq).map_err(|_| XenErrno::Einval)?)?;
                q.flags = match self.pirqs.get(pirq).map(|p| p.source) {
                    Some(PirqSource::Gsi(_)) => XENIRQSTAT_NEEDS_EOI,
                    _ => 0,
                };
                GuestView::new(&self.mem, req.paging).write_obj(arg, &q)?;
                Ok(0)
            }
            PHYSDEVOP_GET_FREE_PIRQ => {
                let mut g: PhysdevGetFreePirq = view.read_obj(arg)?;
                let from = if g.type_ == MAP_PIRQ_TYPE_GSI { 0 } else { FIRST_MSI_PIRQ };
                g.pirq = self.pirqs.free_from(from)?;
                GuestView::new(&self.mem, req.paging).write_obj(arg, &g)?;
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

    /// `map_pirq`: a GSI gets the PIRQ asked for, or its own number if free,
    /// else the lowest free; an MSI the one asked for or the lowest free
    /// above the GSIs. Mapping a GSI again returns its PIRQ.
    fn map_pirq(&mut self, type_: i32, index: i32, want: i32) -> Result<u32, XenErrno> {
        let source = match type_ {
            MAP_PIRQ_TYPE_GSI if (0..NR_GSIS).contains(&index) => PirqSource::Gsi(index as u32),
            MAP_PIRQ_TYPE_GSI => return Err(XenErrno::Einval),
            MAP_PIRQ_TYPE_MSI | MAP_PIRQ_TYPE_MSI_SEG | MAP_PIRQ_TYPE_MULTI_MSI => PirqSource::Msi,
            _ => return Err(XenErrno::Einval),
        };
        if let PirqSource::Gsi(_) = source {
            if let Some((p, _)) = self.pirqs.entries.iter().find(|(_, e)| e.source == source) {
                return Ok(*p);
            }
        }
        let pirq = if want >= 0 {
            let p = self.pirqs.check(want)?;
            if self.pirqs.entries.contains_key(&p) {
                return Err(XenErrno::Eexist);
            }
            p
        } else {
            match source {
                PirqSource::Gsi(gsi) if !self.pirqs.entries.contains_key(&gsi) && gsi < self.pirqs.max => gsi,
                PirqSource::Gsi(_) => self.pirqs.free_from(0)?,
                PirqSource::Msi => self.pirqs.free_from(FIRST_MSI_PIRQ)?,
            }
        };
        self.pirqs.entries.insert(pirq, Pirq { source, port: None });
        Ok(pirq)
    }

    fn unmap_pirq(&mut self, pirq: i32) -> Result<(), XenErrno> {
        let pirq = self.pirqs.check(pirq)?;
        match self.pirqs.entries.get(&pirq) {
            None => Err(XenErrno::Einval),
            Some(Pirq { port: Some(_), .. }) => Err(XenErrno::Ebusy),
            Some(_) => {
                self.pirqs.entries.remove(&pirq);
                Ok(())
            }
        }
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
