//! The guest's transmit side: a packet's slots taken off the tx ring and
//! checked as Linux netback checks them (`xenvif_get_extras`,
//! `xenvif_count_requests`, `xenvif_set_skb_gso`), its bytes copied out of
//! the granted pages, its offloads turned into [`Offload`] metadata.
//!
//! Outcomes, as in Linux:
//! * a packet that is merely bad (too many slots, a slot larger than the
//!   packet, shorter than an Ethernet header) is dropped: every slot gets
//!   `NETIF_RSP_ERROR` (extra-info slots `NETIF_RSP_NULL`);
//! * a grant that cannot be read gets `NETIF_RSP_ERROR` for the packet;
//! * an impossible one (missing or unknown extra info, a slot crossing its
//!   page, the packet running past the produced requests, a slot count at
//!   the attack threshold, a bad GSO descriptor) is fatal: the interface is
//!   disabled without responses until the frontend reconnects.

use xenkvm_xen_core::page::PAGE_SIZE;

use super::offload::{self, Gso, GsoKind, Offload, ETH_HLEN};
use crate::netif::*;
use crate::ring::{BackRing, Next};

/// One packet's slots, as taken off the ring.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxPacket {
    /// The data slots; the first one's `size` is its own share (the total
    /// it carried on the ring is [`TxPacket::total`]).
    pub slots: Vec<TxRequest>,
    /// Extra-info slots consumed after the first request.
    pub extra_count: usize,
    pub gso: Option<ExtraInfo>,
    /// A multicast add or delete: a control request, not a packet.
    pub mcast: bool,
    pub total: usize,
    /// Why the packet is dropped (every slot answered with an error).
    pub drop: Option<&'static str>,
}

impl TxPacket {
    pub fn first(&self) -> Option<&TxRequest> {
        self.slots.first()
    }

    /// The responses, in ring order: the first request, a NULL per extra
    /// slot, then each further data slot.
    pub fn responses(&self, status: i16) -> Vec<[u8; 4]> {
        let mut out = Vec::with_capacity(self.slots.len() + self.extra_count);
        let mut slots = self.slots.iter();
        if let Some(first) = slots.next() {
            out.push(encode_tx_response(first.id, status));
        }
        out.extend(std::iter::repeat_n(encode_tx_response(0, RSP_NULL), self.extra_count));
        out.extend(slots.map(|s| encode_tx_response(s.id, status)));
        out
    }
}

/// What [`take_packet`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Take {
    Empty,
    Packet(TxPacket),
    /// The frontend is hostile or broken: disable the interface.
    Fatal(String),
}

fn next(ring: &mut BackRing) -> Result<Option<Vec<u8>>, String> {
    match ring.next_request() {
        Next::Request(e) => Ok(Some(e)),
        Next::Empty => Ok(None),
        Next::Broken => Err("impossible tx ring producer index".into()),
    }
}

/// Takes the next packet's slots off the ring.
pub fn take_packet(ring: &mut BackRing) -> Take {
    match take(ring) {
        Ok(Some(p)) => Take::Packet(p),
        Ok(None) => Take::Empty,
        Err(why) => Take::Fatal(why),
    }
}

fn take(ring: &mut BackRing) -> Result<Option<TxPacket>, String> {
    let Some(entry) = next(ring)? else { return Ok(None) };
    let first = TxRequest::parse(&entry);
    let mut packet =
        TxPacket { slots: vec![first], extra_count: 0, gso: None, mcast: false, total: usize::from(first.size), drop: None };
    if first.has(NETTXF_EXTRA_INFO) {
        loop {
            let Some(e) = next(ring)? else { return Err("missing extra info".into()) };
            packet.extra_count += 1;
            let extra = ExtraInfo::parse(&e);
            match extra.ty {
                EXTRA_TYPE_GSO => packet.gso = Some(extra),
                EXTRA_TYPE_MCAST_ADD | EXTRA_TYPE_MCAST_DEL => packet.mcast = true,
                EXTRA_TYPE_HASH => {}
                other => return Err(format!("invalid extra type {other}")),
            }
            if !extra.more() {
                break;
            }
        }
    }
    if packet.mcast {
        // The multicast filter is not ours to keep (the tap passes all); the
        // request carries no data slots, as in netback.
        return Ok(Some(packet));
    }
    count_slots(ring, &mut packet)?;
    if packet.drop.is_some() {
        return Ok(Some(packet));
    }
    let Some(first) = packet.slots.first().copied() else { return Err("no first slot".into()) };
    if usize::from(first.size) < ETH_HLEN {
        packet.drop = Some("packet shorter than an Ethernet header");
        return Ok(Some(packet));
    }
    if usize::from(first.offset) + usize::from(first.size) > PAGE_SIZE {
        return Err(format!("first slot crosses its page (offset {}, size {})", first.offset, first.size));
    }
    if let Some(g) = packet.gso {
        if g.gso_size() == 0 {
            return Err("GSO size is zero".into());
        }
        if g.gso_type() != GSO_TYPE_TCPV4 && g.gso_type() != GSO_TYPE_TCPV6 {
            return Err(format!("bad GSO type {}", g.gso_type()));
        }
    }
    Ok(Some(packet))
}

/// Takes the data slots after the first (`NETTXF_more_data`), subtracting
/// each from the first slot's size as netback does.
fn count_slots(ring: &mut BackRing, packet: &mut TxPacket) -> Result<(), String> {
    let Some(mut more) = packet.slots.first().map(|f| f.has(NETTXF_MORE_DATA)) else { return Ok(()) };
    let mut first_size = packet.slots.first().map_or(0, |f| f.size);
    // Slots after the first, as netback counts them.
    let mut count = 0;
    while more {
        if count >= FATAL_SLOTS {
            return Err(format!("packet of more than {count} further slots (threshold {FATAL_SLOTS})"));
        }
        let Some(e) = next(ring)? else { return Err(format!("packet continues past the {} slots produced", count + 1)) };
        let slot = TxRequest::parse(&e);
        if packet.drop.is_none() && count >= MAX_SLOTS {
            packet.drop = Some("too many slots");
        }
        if packet.drop.is_none() && slot.size > first_size {
            packet.drop = Some("slot larger than the packet");
        }
        first_size = first_size.wrapping_sub(slot.size);
        if usize::from(slot.offset) + usize::from(slot.size) > PAGE_SIZE {
            return Err(format!("slot crosses its page (offset {}, size {})", slot.offset, slot.size));
        }
        more = slot.has(NETTXF_MORE_DATA);
        packet.slots.push(slot);
        count += 1;
    }
    if let Some(f) = packet.slots.first_mut() {
        f.size = first_size;
    }
    Ok(())
}

/// The offload metadata of a packet whose bytes are in `frame`; the
/// checksum field is set up for a partial checksum when the frontend left
/// it blank (or sent GSO). `Err` when the headers do not allow it.
pub fn offload(packet: &TxPacket, frame: &mut [u8]) -> Result<Offload, &'static str> {
    let Some(first) = packet.first() else { return Err("empty packet") };
    let mut out = Offload { data_valid: first.has(NETTXF_DATA_VALIDATED), ..Offload::default() };
    if !first.has(NETTXF_CSUM_BLANK) && packet.gso.is_none() {
        return Ok(out);
    }
    let (l4, csum) = offload::setup_partial(frame).ok_or("checksum offload on a frame that is not TCP or UDP over IP")?;
    out.csum = Some(csum);
    if let Some(g) = packet.gso {
        let kind = match (g.gso_type(), l4.v6) {
            (GSO_TYPE_TCPV4, false) => GsoKind::Tcpv4,
            (GSO_TYPE_TCPV6, true) => GsoKind::Tcpv6,
            _ => return Err("GSO type does not match the packet"),
        };
        if l4.proto != offload::IPPROTO_TCP {
            return Err("TCP segmentation of a packet that is not TCP");
        }
        let hdr_len = offload::tcp_headers_len(frame, &l4).ok_or("truncated TCP header")?;
        out.gso = Some(Gso { kind, size: g.gso_size(), hdr_len });
    }
    Ok(out)
}
