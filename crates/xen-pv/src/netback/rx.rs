//! The guest's receive side, rx-copy only: a frame from the network is
//! copied into the buffers the frontend posted on the rx ring (one page
//! each), split over as many slots as it needs with `NETRXF_more_data`, the
//! GSO descriptor in the slot after the first when the frontend takes GSO.

use std::sync::Mutex;

use xenkvm_xen_core::page::PAGE_SIZE;
use xenkvm_xen_core::Domain;

use super::offload::{self, GsoKind, Offload};
use crate::netif::*;
use crate::ring::{BackRing, Next};

/// What the frontend said it can receive.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RxCaps {
    /// `feature-sg`: frames over several slots.
    pub sg: bool,
    /// Partial IPv4 checksums (`NETRXF_csum_blank`): unless `feature-no-csum-offload`.
    pub csum_v4: bool,
    /// Partial IPv6 checksums: `feature-ipv6-csum-offload`.
    pub csum_v6: bool,
    /// `feature-gso-tcpv4` (with sg and IPv4 checksum offload).
    pub gso_v4: bool,
    /// `feature-gso-tcpv6` (with sg and IPv6 checksum offload).
    pub gso_v6: bool,
}

/// What became of a frame offered to the guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    Delivered,
    /// Not enough buffers posted: offer it again after the next kick.
    NoRoom,
    /// The frame cannot go to this frontend (or the interface is down).
    Dropped(&'static str),
}

/// A frame made ready for the frontend: its first slot's flags and the
/// GSO descriptor, the checksum completed here if the frontend cannot take
/// it partial.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Prepared {
    pub flags: u16,
    pub gso: Option<ExtraInfo>,
    pub slots: usize,
}

/// Decides how `frame` travels, completing its checksum if needed.
pub fn prepare(frame: &mut [u8], off: &Offload, caps: &RxCaps) -> Result<Prepared, &'static str> {
    if frame.is_empty() {
        return Err("empty frame");
    }
    let slots = frame.len().div_ceil(PAGE_SIZE);
    if slots > 1 && !caps.sg {
        return Err("frame larger than a page for a frontend without feature-sg");
    }
    if slots > MAX_SLOTS {
        return Err("frame larger than the frontend's slot limit");
    }
    let mut flags = 0;
    let mut gso = None;
    if let Some(g) = off.gso {
        let (ok, ty) = match g.kind {
            GsoKind::Tcpv4 => (caps.gso_v4, GSO_TYPE_TCPV4),
            GsoKind::Tcpv6 => (caps.gso_v6, GSO_TYPE_TCPV6),
        };
        if !ok || g.size == 0 {
            return Err("GSO frame the frontend did not negotiate");
        }
        if off.csum.is_none() {
            offload::setup_partial(frame).ok_or("GSO frame that is not TCP")?;
        }
        gso = Some(ExtraInfo::gso(g.size, ty, false));
        flags |= NETRXF_CSUM_BLANK | NETRXF_DATA_VALIDATED;
    } else if let Some(c) = off.csum {
        let v6 = offload::parse_l4(frame).map(|l| l.v6);
        let partial_ok = match v6 {
            Some(true) => caps.csum_v6,
            Some(false) => caps.csum_v4,
            None => false,
        };
        if partial_ok {
            flags |= NETRXF_CSUM_BLANK | NETRXF_DATA_VALIDATED;
        } else if offload::complete(frame, c) {
            flags |= NETRXF_DATA_VALIDATED;
        } else {
            return Err("partial checksum outside the frame");
        }
    } else if off.data_valid {
        flags |= NETRXF_DATA_VALIDATED;
    }
    Ok(Prepared { flags, gso, slots })
}

/// Result of [`copy_to_guest`]: slots answered with an error (a bad grant).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Copied {
    pub failed_slots: usize,
}

/// Copies a prepared frame into the next posted buffers and queues the
/// responses (published by the caller). `None` if too few buffers are posted.
pub fn copy_to_guest(ring: &mut BackRing, domain: &Mutex<Domain>, frame: &[u8], p: &Prepared) -> Option<Copied> {
    let needed = p.slots + usize::from(p.gso.is_some());
    let needed = u32::try_from(needed).ok()?;
    if ring.pending() < needed && ring.arm_req_event() < needed {
        return None;
    }
    let mut d = domain.lock().ok()?;
    let mut failed_slots = 0;
    for (i, chunk) in frame.chunks(PAGE_SIZE).enumerate() {
        let Next::Request(entry) = ring.next_request() else { return Some(Copied { failed_slots }) };
        let req = RxRequest::parse(&entry);
        let status = match d.grant_write(req.gref, 0, chunk) {
            Ok(()) => i16::try_from(chunk.len()).unwrap_or(RSP_ERROR),
            Err(_) => {
                failed_slots += 1;
                RSP_ERROR
            }
        };
        let mut flags = if i == 0 { p.flags } else { 0 };
        if i + 1 < p.slots {
            flags |= NETRXF_MORE_DATA;
        }
        if i == 0 && p.gso.is_some() {
            flags |= NETRXF_EXTRA_INFO;
        }
        ring.put_response(&RxResponse { id: req.id, offset: 0, flags, status }.encode());
        if let (0, Some(extra)) = (i, p.gso) {
            // The descriptor takes the next slot; its buffer stays unused.
            if !matches!(ring.next_request(), Next::Request(_)) {
                return Some(Copied { failed_slots });
            }
            ring.put_response(&extra.encode());
        }
    }
    Some(Copied { failed_slots })
}
