//! Checksum and segmentation offload metadata of a frame, as a tap's
//! `virtio_net_hdr` carries it, and the header parsing and checksum
//! arithmetic to set up or complete a partial checksum (what Linux's
//! `skb_checksum_setup` and a NIC do).

/// A checksum left to the next hop: the 16-bit field at `start + offset`
/// holds the pseudo-header sum, and the ones'-complement sum from `start`
/// to the end of the frame goes into it (`VIRTIO_NET_HDR_F_NEEDS_CSUM`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartialCsum {
    pub start: u16,
    pub offset: u16,
}

/// TCP segmentation the next hop does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GsoKind {
    Tcpv4,
    Tcpv6,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gso {
    pub kind: GsoKind,
    /// Payload bytes per segment (the MSS).
    pub size: u16,
    /// Bytes of Ethernet, IP and TCP headers.
    pub hdr_len: u16,
}

/// What travels with a frame besides its bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Offload {
    pub csum: Option<PartialCsum>,
    /// The checksums were verified (`VIRTIO_NET_HDR_F_DATA_VALID`).
    pub data_valid: bool,
    pub gso: Option<Gso>,
}

pub const ETH_HLEN: usize = 14;
const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86DD;
const ETH_P_8021Q: u16 = 0x8100;
pub const IPPROTO_TCP: u8 = 6;
pub const IPPROTO_UDP: u8 = 17;

/// Where a frame's transport header is, and what the pseudo-header sums to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct L4 {
    pub v6: bool,
    pub proto: u8,
    /// Offset of the TCP or UDP header.
    pub start: usize,
    /// Ones'-complement sum of the pseudo-header (addresses, protocol, and
    /// the transport length up to the end of the frame), unfolded.
    pseudo: u32,
}

impl L4 {
    /// Offset of the checksum field within the transport header.
    pub fn csum_offset(&self) -> Option<u16> {
        match self.proto {
            IPPROTO_TCP => Some(16),
            IPPROTO_UDP => Some(6),
            _ => None,
        }
    }
}

fn be16(f: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*f.get(at)?, *f.get(at + 1)?]))
}

/// Adds big-endian 16-bit words of `data` to `sum` (an odd byte is padded).
pub fn sum_words(data: &[u8], mut sum: u32) -> u32 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        if let [a, b] = c {
            sum = sum.wrapping_add(u32::from(u16::from_be_bytes([*a, *b])));
            if sum >= 0x8000_0000 {
                sum = (sum & 0xFFFF) + (sum >> 16);
            }
        }
    }
    if let [a] = chunks.remainder() {
        sum = sum.wrapping_add(u32::from(*a) << 8);
    }
    sum
}

/// Folds a 32-bit sum to 16 bits (not complemented).
pub fn fold(mut sum: u32) -> u16 {
    while sum > 0xFFFF {
        sum = (sum & 0xFFFF) + (sum >> 16);
    }
    sum as u16
}

/// Finds the TCP or UDP header of an Ethernet frame (one VLAN tag allowed):
/// IPv4 without fragmentation, or IPv6 with hop-by-hop, routing and
/// destination-option headers. `None` for anything else.
pub fn parse_l4(frame: &[u8]) -> Option<L4> {
    let mut l3 = ETH_HLEN;
    let mut ethertype = be16(frame, 12)?;
    if ethertype == ETH_P_8021Q {
        ethertype = be16(frame, 16)?;
        l3 += 4;
    }
    let (v6, proto, start, addrs) = match ethertype {
        ETH_P_IP => {
            let vihl = *frame.get(l3)?;
            let ihl = usize::from(vihl & 0x0F) * 4;
            if vihl >> 4 != 4 || ihl < 20 {
                return None;
            }
            // More-fragments or a fragment offset: no whole transport header.
            if be16(frame, l3 + 6)? & 0x3FFF != 0 {
                return None;
            }
            (false, *frame.get(l3 + 9)?, l3 + ihl, frame.get(l3 + 12..l3 + 20)?)
        }
        ETH_P_IPV6 => {
            if frame.get(l3)? >> 4 != 6 {
                return None;
            }
            let mut next = *frame.get(l3 + 6)?;
            let mut at = l3 + 40;
            // Hop-by-hop, routing, destination options: (len + 1) * 8 bytes.
            while matches!(next, 0 | 43 | 60) {
                let hdr_len = (usize::from(*frame.get(at + 1)?) + 1) * 8;
                next = *frame.get(at)?;
                at += hdr_len;
            }
            (true, next, at, frame.get(l3 + 8..l3 + 40)?)
        }
        _ => return None,
    };
    if proto != IPPROTO_TCP && proto != IPPROTO_UDP {
        return None;
    }
    let min_header = if proto == IPPROTO_TCP { 20 } else { 8 };
    let len = frame.len().checked_sub(start).filter(|&l| l >= min_header)?;
    let len = u32::try_from(len).ok()?;
    let mut pseudo = sum_words(addrs, 0);
    pseudo = pseudo.wrapping_add(u32::from(proto)).wrapping_add(len >> 16).wrapping_add(len & 0xFFFF);
    Some(L4 { v6, proto, start, pseudo })
}

/// Makes the L4 checksum partial, as `skb_checksum_setup(recalculate)`
/// does: the field gets the pseudo-header sum whatever the sender left in it.
pub fn setup_partial(frame: &mut [u8]) -> Option<(L4, PartialCsum)> {
    let l4 = parse_l4(frame)?;
    let offset = l4.csum_offset()?;
    let at = l4.start + usize::from(offset);
    frame.get_mut(at..at + 2)?.copy_from_slice(&fold(l4.pseudo).to_be_bytes());
    let start = u16::try_from(l4.start).ok()?;
    Some((l4, PartialCsum { start, offset }))
}

/// Completes a partial checksum in place (what a NIC does on transmit).
pub fn complete(frame: &mut [u8], csum: PartialCsum) -> bool {
    let start = usize::from(csum.start);
    let at = start + usize::from(csum.offset);
    if at + 2 > frame.len() {
        return false;
    }
    let Some(data) = frame.get(start..) else { return false };
    let mut value = !fold(sum_words(data, 0));
    // UDP sends "no checksum" as 0; a computed 0 is written as all ones.
    let udp = parse_l4(frame).is_some_and(|l| l.proto == IPPROTO_UDP && l.start == start);
    if udp && value == 0 {
        value = 0xFFFF;
    }
    match frame.get_mut(at..at + 2) {
        Some(field) => {
            field.copy_from_slice(&value.to_be_bytes());
            true
        }
        None => false,
    }
}

/// Whether the frame's TCP or UDP checksum is right (a UDP checksum of 0,
/// "none", counts as right).
pub fn l4_checksum_ok(frame: &[u8]) -> bool {
    let Some(l4) = parse_l4(frame) else { return false };
    let Some(data) = frame.get(l4.start..) else { return false };
    if l4.proto == IPPROTO_UDP && be16(data, 6) == Some(0) {
        return true;
    }
    fold(sum_words(data, l4.pseudo)) == 0xFFFF
}

/// The length of the Ethernet, IP and TCP headers of a TCP frame.
pub fn tcp_headers_len(frame: &[u8], l4: &L4) -> Option<u16> {
    let doff = usize::from(frame.get(l4.start + 12)? >> 4) * 4;
    u16::try_from(l4.start + doff.max(20)).ok()
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
pub(crate) mod tests {
    use super::*;

    /// An Ethernet + IPv4 + TCP or UDP frame with `payload`, checksum field zero.
    pub fn ipv4_frame(proto: u8, payload: &[u8]) -> Vec<u8> {
        let l4_len = if proto == IPPROTO_TCP { 20 } else { 8 };
        let mut f = vec![0u8; 14 + 20 + l4_len];
        f[12..14].copy_from_slice(&ETH_P_IP.to_be_bytes());
        f[14] = 0x45;
        let total = (20 + l4_len + payload.len()) as u16;
        f[16..18].copy_from_slice(&total.to_be_bytes());
        f[22] = 64;
        f[23] = proto;
        f[26..30].copy_from_slice(&[10, 0, 0, 1]);
        f[30..34].copy_from_slice(&[10, 0, 0, 2]);
        f[34..36].copy_from_slice(&1234u16.to_be_bytes());
        f[36..38].copy_from_slice(&80u16.to_be_bytes());
        if proto == IPPROTO_TCP {
            f[46] = 5 << 4;
        } else {
            f[38..40].copy_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
        }
        f.extend_from_slice(payload);
        f
    }

    #[test]
    fn partial_then_complete_gives_a_valid_checksum() {
        for proto in [IPPROTO_TCP, IPPROTO_UDP] {
            let mut f = ipv4_frame(proto, b"hello, odd payload");
            assert!(!l4_checksum_ok(&f) || proto == IPPROTO_UDP);
            // Garbage in the field does not matter: setup recalculates.
            let (l4, pc) = setup_partial(&mut f).unwrap();
            assert_eq!(pc.start, 34);
            assert_eq!(l4.proto, proto);
            assert!(complete(&mut f, pc));
            assert!(l4_checksum_ok(&f), "proto {proto}");
        }
    }

    #[test]
    fn known_tcp_checksum() {
        // Independent computation: sum everything by hand.
        let mut f = ipv4_frame(IPPROTO_TCP, &[0xAB; 7]);
        let (_, pc) = setup_partial(&mut f).unwrap();
        complete(&mut f, pc);
        let seg = &f[34..];
        let mut s: u32 = 0x0a00 + 0x0001 + 0x0a00 + 0x0002 + 6 + seg.len() as u32;
        for (i, b) in seg.iter().enumerate() {
            s += if i % 2 == 0 { u32::from(*b) << 8 } else { u32::from(*b) };
        }
        while s > 0xFFFF {
            s = (s & 0xFFFF) + (s >> 16);
        }
        assert_eq!(s, 0xFFFF);
    }

    #[test]
    fn ipv6_with_extension_header_and_vlan() {
        let payload = [7u8; 33];
        let mut f = vec![0u8; 18];
        f[12..14].copy_from_slice(&ETH_P_8021Q.to_be_bytes());
        f[16..18].copy_from_slice(&ETH_P_IPV6.to_be_bytes());
        let mut ip = vec![0u8; 40];
        ip[0] = 0x60;
        ip[6] = 0; // hop-by-hop
        ip[8] = 0xFE;
        ip[24] = 0xFE;
        ip[39] = 2;
        f.extend_from_slice(&ip);
        f.extend_from_slice(&[IPPROTO_UDP, 0, 1, 4, 0, 0, 0, 0]);
        let mut udp = vec![0u8; 8];
        udp[4..6].copy_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
        f.extend_from_slice(&udp);
        f.extend_from_slice(&payload);
        let (l4, pc) = setup_partial(&mut f).unwrap();
        assert!(l4.v6);
        assert_eq!(usize::from(pc.start), 18 + 40 + 8);
        assert!(complete(&mut f, pc));
        assert!(l4_checksum_ok(&f));
    }

    #[test]
    fn unparsable_frames() {
        let f = ipv4_frame(IPPROTO_TCP, b"x");
        assert!(parse_l4(&f[..40]).is_none(), "truncated TCP header");
        let mut frag = f.clone();
        frag[20] = 0x20; // more fragments
        assert!(parse_l4(&frag).is_none());
        let mut icmp = f.clone();
        icmp[23] = 1;
        assert!(parse_l4(&icmp).is_none());
        let mut arp = f;
        arp[12..14].copy_from_slice(&0x0806u16.to_be_bytes());
        assert!(parse_l4(&arp).is_none());
        assert!(parse_l4(&[]).is_none());
        assert!(!complete(&mut [0u8; 10], PartialCsum { start: 4, offset: 6 }));
    }
}
