//! The netif wire format (`io/netif.h`): the tx and rx rings' requests and
//! responses and the extra-info slots, decoded from and encoded to the bytes
//! of a ring entry. Nothing here trusts a value; the checks that need the
//! packet as a whole are in [`crate::netback`].
//!
//! * tx request (12 bytes): `gref` u32, `offset` u16, `flags` u16 (NETTXF_*),
//!   `id` u16, `size` u16 (in the first slot of a packet: the whole packet).
//! * tx response (4 bytes): `id` u16, `status` i16.
//! * extra info (8 bytes, in a tx request or rx response slot): `type` u8,
//!   `flags` u8, then for GSO `size` u16, `type` u8, `pad` u8, `features` u16.
//! * rx request (8 bytes): `id` u16, pad u16, `gref` u32.
//! * rx response (8 bytes): `id` u16, `offset` u16, `flags` u16 (NETRXF_*),
//!   `status` i16 (the byte count, or a negative NETIF_RSP_*).

/// A tx ring entry: the union of request, response and extra info.
pub const TX_ENTRY_SIZE: usize = 12;
/// An rx ring entry.
pub const RX_ENTRY_SIZE: usize = 8;

/// Checksum blank: the frontend left the L4 checksum to us (partial).
pub const NETTXF_CSUM_BLANK: u16 = 1 << 0;
/// The packet was validated against its checksum.
pub const NETTXF_DATA_VALIDATED: u16 = 1 << 1;
/// The packet continues in the next request.
pub const NETTXF_MORE_DATA: u16 = 1 << 2;
/// Extra-info slots follow this request.
pub const NETTXF_EXTRA_INFO: u16 = 1 << 3;

pub const NETRXF_DATA_VALIDATED: u16 = 1 << 0;
pub const NETRXF_CSUM_BLANK: u16 = 1 << 1;
pub const NETRXF_MORE_DATA: u16 = 1 << 2;
pub const NETRXF_EXTRA_INFO: u16 = 1 << 3;

pub const EXTRA_TYPE_NONE: u8 = 0;
pub const EXTRA_TYPE_GSO: u8 = 1;
pub const EXTRA_TYPE_MCAST_ADD: u8 = 2;
pub const EXTRA_TYPE_MCAST_DEL: u8 = 3;
pub const EXTRA_TYPE_HASH: u8 = 4;
/// First invalid extra type.
pub const EXTRA_TYPE_MAX: u8 = 5;
/// Another extra-info slot follows.
pub const EXTRA_FLAG_MORE: u8 = 1 << 0;

pub const GSO_TYPE_NONE: u8 = 0;
pub const GSO_TYPE_TCPV4: u8 = 1;
pub const GSO_TYPE_TCPV6: u8 = 2;

pub const RSP_DROPPED: i16 = -2;
pub const RSP_ERROR: i16 = -1;
pub const RSP_OKAY: i16 = 0;
/// The response of an extra-info slot.
pub const RSP_NULL: i16 = 1;

/// `XEN_NETIF_NR_SLOTS_MIN` (18): Linux netback drops a tx packet with more
/// slots than this after its first (`XEN_NETBK_LEGACY_SLOTS_MAX`).
pub const MAX_SLOTS: usize = 18;
/// A tx packet with more slots than this after its first is an attack:
/// Linux netback's `fatal_skb_slots` default, at which it disables the
/// interface.
pub const FATAL_SLOTS: usize = 20;

fn u16_at(b: &[u8], at: usize) -> u16 {
    let mut v = [0u8; 2];
    if let Some(s) = b.get(at..at + 2) {
        v.copy_from_slice(s);
    }
    u16::from_le_bytes(v)
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut v = [0u8; 4];
    if let Some(s) = b.get(at..at + 4) {
        v.copy_from_slice(s);
    }
    u32::from_le_bytes(v)
}

fn put(b: &mut [u8], at: usize, v: &[u8]) {
    if let Some(d) = b.get_mut(at..at + v.len()) {
        d.copy_from_slice(v);
    }
}

/// `struct netif_tx_request`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxRequest {
    pub gref: u32,
    pub offset: u16,
    pub flags: u16,
    pub id: u16,
    pub size: u16,
}

impl TxRequest {
    /// Decodes an entry (missing bytes read as zero).
    pub fn parse(b: &[u8]) -> Self {
        Self { gref: u32_at(b, 0), offset: u16_at(b, 4), flags: u16_at(b, 6), id: u16_at(b, 8), size: u16_at(b, 10) }
    }

    pub fn encode(&self) -> [u8; TX_ENTRY_SIZE] {
        let mut b = [0u8; TX_ENTRY_SIZE];
        put(&mut b, 0, &self.gref.to_le_bytes());
        put(&mut b, 4, &self.offset.to_le_bytes());
        put(&mut b, 6, &self.flags.to_le_bytes());
        put(&mut b, 8, &self.id.to_le_bytes());
        put(&mut b, 10, &self.size.to_le_bytes());
        b
    }

    pub fn has(&self, flag: u16) -> bool {
        self.flags & flag != 0
    }
}

/// `struct netif_tx_response`.
pub fn encode_tx_response(id: u16, status: i16) -> [u8; 4] {
    let mut b = [0u8; 4];
    put(&mut b, 0, &id.to_le_bytes());
    put(&mut b, 2, &status.to_le_bytes());
    b
}

/// `(id, status)` of a tx response.
pub fn decode_tx_response(b: &[u8]) -> (u16, i16) {
    (u16_at(b, 0), u16_at(b, 2) as i16)
}

/// `struct netif_extra_info`, with the GSO member decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExtraInfo {
    pub ty: u8,
    pub flags: u8,
    /// The six bytes of the union.
    pub body: [u8; 6],
}

impl ExtraInfo {
    pub fn parse(b: &[u8]) -> Self {
        let mut body = [0u8; 6];
        if let Some(s) = b.get(2..8) {
            body.copy_from_slice(s);
        }
        Self { ty: b.first().copied().unwrap_or(0), flags: b.get(1).copied().unwrap_or(0), body }
    }

    /// A GSO extra (`u.gso`): segment size and `GSO_TYPE_*`.
    pub fn gso(size: u16, gso_type: u8, more: bool) -> Self {
        let mut body = [0u8; 6];
        put(&mut body, 0, &size.to_le_bytes());
        put(&mut body, 2, &[gso_type]);
        Self { ty: EXTRA_TYPE_GSO, flags: if more { EXTRA_FLAG_MORE } else { 0 }, body }
    }

    pub fn encode(&self) -> [u8; 8] {
        let mut b = [0u8; 8];
        b[0] = self.ty;
        b[1] = self.flags;
        put(&mut b, 2, &self.body);
        b
    }

    /// `u.gso.size`.
    pub fn gso_size(&self) -> u16 {
        u16_at(&self.body, 0)
    }

    /// `u.gso.type`.
    pub fn gso_type(&self) -> u8 {
        self.body[2]
    }

    pub fn more(&self) -> bool {
        self.flags & EXTRA_FLAG_MORE != 0
    }
}

/// `struct netif_rx_request`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RxRequest {
    pub id: u16,
    pub gref: u32,
}

impl RxRequest {
    pub fn parse(b: &[u8]) -> Self {
        Self { id: u16_at(b, 0), gref: u32_at(b, 4) }
    }

    pub fn encode(&self) -> [u8; RX_ENTRY_SIZE] {
        let mut b = [0u8; RX_ENTRY_SIZE];
        put(&mut b, 0, &self.id.to_le_bytes());
        put(&mut b, 4, &self.gref.to_le_bytes());
        b
    }
}

/// `struct netif_rx_response`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RxResponse {
    pub id: u16,
    pub offset: u16,
    pub flags: u16,
    /// Bytes in the slot, or a negative `RSP_*`.
    pub status: i16,
}

impl RxResponse {
    pub fn parse(b: &[u8]) -> Self {
        Self { id: u16_at(b, 0), offset: u16_at(b, 2), flags: u16_at(b, 4), status: u16_at(b, 6) as i16 }
    }

    pub fn encode(&self) -> [u8; RX_ENTRY_SIZE] {
        let mut b = [0u8; RX_ENTRY_SIZE];
        put(&mut b, 0, &self.id.to_le_bytes());
        put(&mut b, 2, &self.offset.to_le_bytes());
        put(&mut b, 4, &self.flags.to_le_bytes());
        put(&mut b, 6, &self.status.to_le_bytes());
        b
    }
}

/// A MAC address as `aa:bb:cc:dd:ee:ff`.
pub fn format_mac(mac: &[u8; 6]) -> String {
    mac.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}

/// Parses `aa:bb:cc:dd:ee:ff` (hex digits in either case).
pub fn parse_mac(text: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = text.split(':');
    for byte in &mut mac {
        let p = parts.next()?;
        if p.len() != 2 {
            return None;
        }
        *byte = u8::from_str_radix(p, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::ring::ring_size;

    #[test]
    fn ring_sizes_match_netif_h() {
        // NET_TX_RING_SIZE and NET_RX_RING_SIZE for 4 KiB pages.
        assert_eq!(ring_size(1, TX_ENTRY_SIZE), 256);
        assert_eq!(ring_size(1, RX_ENTRY_SIZE), 256);
    }

    #[test]
    fn tx_request_layout() {
        let b = [0x78, 0x56, 0x34, 0x12, 0x10, 0x00, 0x05, 0x00, 0x07, 0x00, 0xDC, 0x05];
        let r = TxRequest::parse(&b);
        assert_eq!(r, TxRequest { gref: 0x1234_5678, offset: 16, flags: NETTXF_CSUM_BLANK | NETTXF_MORE_DATA, id: 7, size: 1500 });
        assert_eq!(r.encode(), b);
        assert!(r.has(NETTXF_MORE_DATA) && !r.has(NETTXF_EXTRA_INFO));
        // A short entry decodes with zeros rather than failing.
        let short = TxRequest::parse(&b[..5]);
        assert_eq!((short.gref, short.offset, short.size), (0x1234_5678, 0, 0));
    }

    #[test]
    fn responses_and_extras() {
        assert_eq!(encode_tx_response(0x1234, RSP_ERROR), [0x34, 0x12, 0xFF, 0xFF]);
        assert_eq!(decode_tx_response(&[0x34, 0x12, 0x01, 0x00]), (0x1234, RSP_NULL));
        let e = ExtraInfo::gso(1448, GSO_TYPE_TCPV6, true);
        assert_eq!(e.encode(), [1, 1, 0xA8, 0x05, 2, 0, 0, 0]);
        let p = ExtraInfo::parse(&e.encode());
        assert_eq!((p.ty, p.gso_size(), p.gso_type(), p.more()), (EXTRA_TYPE_GSO, 1448, GSO_TYPE_TCPV6, true));
        let rx = RxResponse { id: 3, offset: 0, flags: NETRXF_MORE_DATA, status: 4096 };
        assert_eq!(rx.encode(), [3, 0, 0, 0, 4, 0, 0, 0x10]);
        assert_eq!(RxResponse::parse(&rx.encode()), rx);
        let rq = RxRequest { id: 9, gref: 0xABCD };
        assert_eq!(rq.encode(), [9, 0, 0, 0, 0xCD, 0xAB, 0, 0]);
        assert_eq!(RxRequest::parse(&rq.encode()), rq);
    }

    #[test]
    fn macs() {
        assert_eq!(parse_mac("52:54:00:12:AB:cd"), Some([0x52, 0x54, 0, 0x12, 0xAB, 0xCD]));
        assert_eq!(format_mac(&[0x52, 0x54, 0, 0x12, 0xAB, 0xCD]), "52:54:00:12:ab:cd");
        for bad in ["52:54:00:12:ab", "52:54:00:12:ab:cd:ef", "5254:00:12:ab:cd", "52:54:00:12:ab:g0", ""] {
            assert_eq!(parse_mac(bad), None, "{bad}");
        }
    }
}
