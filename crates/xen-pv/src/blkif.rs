//! The blkif wire format (`io/blkif.h`): requests decoded from a private copy
//! of a ring entry and checked completely before any is acted on, and
//! responses encoded into zeroed entries.
//!
//! Layouts, per ABI (the frontend's `protocol` node):
//!
//! | field                     | x86_64 | x86_32 |
//! |---------------------------|--------|--------|
//! | operation, nr_segments    | 0, 1   | 0, 1   |
//! | handle (u16)              | 2      | 2      |
//! | id (u64)                  | 8      | 4      |
//! | sector_number (u64)       | 16     | 12     |
//! | seg\[11\] (8 bytes each)  | 24     | 20     |
//! | discard nr_sectors (u64)  | 24     | 20     |
//! | indirect nr_segments (u16)| 2      | 2      |
//! | indirect_grefs\[8\] (u32) | 28     | 24     |
//! | ring entry size           | 112    | 108    |
//! | response id, op, status   | 0, 8, 10 (16 bytes) | 0, 8, 10 (12 bytes) |
//!
//! A segment (`blkif_request_segment`) is `gref` (u32), `first_sect`,
//! `last_sect` (u8): sectors of 512 bytes within one 4 KiB page.

use std::fmt;

/// Request operations.
pub const OP_READ: u8 = 0;
pub const OP_WRITE: u8 = 1;
pub const OP_WRITE_BARRIER: u8 = 2;
pub const OP_FLUSH_DISKCACHE: u8 = 3;
pub const OP_DISCARD: u8 = 5;
pub const OP_INDIRECT: u8 = 6;

/// Response statuses.
pub const RSP_OKAY: i16 = 0;
pub const RSP_ERROR: i16 = -1;
pub const RSP_EOPNOTSUPP: i16 = -2;

/// `info` node bits.
pub const VDISK_CDROM: u32 = 1;
pub const VDISK_REMOVABLE: u32 = 2;
pub const VDISK_READONLY: u32 = 4;

/// Segments in a direct request (`BLKIF_MAX_SEGMENTS_PER_REQUEST`).
pub const MAX_SEGMENTS: usize = 11;
/// Indirect pages in one request (`BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST`).
pub const MAX_INDIRECT_PAGES: usize = 8;
/// Segment descriptors in one indirect page.
pub const SEGMENTS_PER_INDIRECT_PAGE: usize = 4096 / SEGMENT_SIZE;
/// Bytes of one segment descriptor.
pub const SEGMENT_SIZE: usize = 8;
/// blkif sectors are always 512 bytes.
pub const SECTOR: u64 = 512;
/// Sectors in a page: `last_sect` is at most 7.
pub const SECTORS_PER_PAGE: u8 = 8;

/// The request/response layout the frontend uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Abi {
    X86_64,
    X86_32,
}

/// A `protocol` value we do not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unsupported ring protocol \"{0}\" (supported: x86_64-abi, x86_32-abi)")]
pub struct ProtocolError(pub String);

struct Layout {
    entry: usize,
    id: usize,
    sector: usize,
    segs: usize,
    indirect_grefs: usize,
    response: usize,
}

const X86_64: Layout = Layout { entry: 112, id: 8, sector: 16, segs: 24, indirect_grefs: 28, response: 16 };
const X86_32: Layout = Layout { entry: 108, id: 4, sector: 12, segs: 20, indirect_grefs: 24, response: 12 };

impl Abi {
    /// The ABI a frontend's `protocol` node names; absent means native (x86_64).
    pub fn from_protocol(protocol: Option<&str>) -> Result<Self, ProtocolError> {
        match protocol.map(str::trim) {
            None | Some("") | Some("x86_64-abi") => Ok(Self::X86_64),
            Some("x86_32-abi") => Ok(Self::X86_32),
            Some(other) => Err(ProtocolError(other.to_owned())),
        }
    }

    fn layout(self) -> &'static Layout {
        match self {
            Self::X86_64 => &X86_64,
            Self::X86_32 => &X86_32,
        }
    }

    /// Bytes of a ring entry.
    pub fn entry_size(self) -> usize {
        self.layout().entry
    }
}

/// One data segment: sectors `first..=last` of the page granted by `gref`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    pub gref: u32,
    pub first: u8,
    pub last: u8,
}

impl Segment {
    /// Decodes a descriptor (8 bytes) and checks its sectors stay in the page.
    pub fn parse(bytes: &[u8]) -> Result<Self, BadRequest> {
        let gref = u32_at(bytes, 0);
        let (first, last) = (u8_at(bytes, 4), u8_at(bytes, 5));
        if first > last || last >= SECTORS_PER_PAGE {
            return Err(BadRequest::SegmentSectors { first, last });
        }
        Ok(Self { gref, first, last })
    }

    /// Byte offset in the page.
    pub fn offset(&self) -> usize {
        usize::from(self.first) * SECTOR as usize
    }

    /// Bytes to transfer.
    pub fn len(&self) -> usize {
        usize::from(self.last - self.first + 1) * SECTOR as usize
    }

    /// Never true: a valid segment holds at least one sector.
    pub fn is_empty(&self) -> bool {
        false
    }

    pub fn sectors(&self) -> u64 {
        u64::from(self.last - self.first + 1)
    }
}

/// A request, decoded and checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Read, write, flush or barrier with up to 11 segments in the entry.
    Direct { op: u8, id: u64, sector: u64, segments: Vec<Segment> },
    /// Read or write whose segment descriptors are in `pages` (grants).
    Indirect { op: u8, id: u64, sector: u64, nr_segments: usize, pages: Vec<u32> },
    Discard { id: u64, sector: u64, nr_sectors: u64, secure: bool },
    /// An operation we do not implement: answered EOPNOTSUPP.
    Unsupported { op: u8, id: u64 },
}

impl Request {
    /// The id to echo in the response.
    pub fn id(&self) -> u64 {
        match self {
            Self::Direct { id, .. } | Self::Indirect { id, .. } | Self::Discard { id, .. } | Self::Unsupported { id, .. } => *id,
        }
    }

    /// The operation to echo (for indirect requests, the inner one, as
    /// frontends check).
    pub fn op(&self) -> u8 {
        match self {
            Self::Direct { op, .. } | Self::Indirect { op, .. } | Self::Unsupported { op, .. } => *op,
            Self::Discard { .. } => OP_DISCARD,
        }
    }
}

/// A request that breaks the protocol; answered `BLKIF_RSP_ERROR`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BadRequest {
    SegmentCount { op: u8, count: usize },
    IndirectOp(u8),
    SegmentSectors { first: u8, last: u8 },
    IndirectPages,
}

impl fmt::Display for BadRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::SegmentCount { op, count } => write!(f, "operation {op} with {count} segments"),
            Self::IndirectOp(op) => write!(f, "indirect request for operation {op} (only read and write)"),
            Self::SegmentSectors { first, last } => write!(f, "segment sectors {first}..={last} leave the page"),
            Self::IndirectPages => write!(f, "unreadable indirect segment page"),
        }
    }
}

/// A request whose response is already known (it is malformed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    pub id: u64,
    pub op: u8,
    pub why: BadRequest,
}

fn u8_at(b: &[u8], at: usize) -> u8 {
    b.get(at).copied().unwrap_or(0)
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    let mut x = [0u8; 2];
    if let Some(s) = b.get(at..at + 2) {
        x.copy_from_slice(s);
    }
    u16::from_le_bytes(x)
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut x = [0u8; 4];
    if let Some(s) = b.get(at..at + 4) {
        x.copy_from_slice(s);
    }
    u32::from_le_bytes(x)
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut x = [0u8; 8];
    if let Some(s) = b.get(at..at + 8) {
        x.copy_from_slice(s);
    }
    u64::from_le_bytes(x)
}

/// Decodes and checks one ring entry (a private copy). `max_indirect` is the
/// `feature-max-indirect-segments` we advertised (0: indirect not offered).
pub fn parse_request(abi: Abi, entry: &[u8], max_indirect: usize) -> Result<Request, Rejected> {
    let l = abi.layout();
    let op = u8_at(entry, 0);
    let id = u64_at(entry, l.id);
    let sector = u64_at(entry, l.sector);
    let reject = |op, why| Rejected { id, op, why };
    match op {
        OP_READ | OP_WRITE | OP_FLUSH_DISKCACHE | OP_WRITE_BARRIER => {
            let count = usize::from(u8_at(entry, 1));
            let min = usize::from(op == OP_READ || op == OP_WRITE);
            if count < min || count > MAX_SEGMENTS {
                return Err(reject(op, BadRequest::SegmentCount { op, count }));
            }
            let mut segments = Vec::with_capacity(count);
            for i in 0..count {
                let at = l.segs + i * SEGMENT_SIZE;
                let seg = Segment::parse(entry.get(at..at + SEGMENT_SIZE).unwrap_or(&[])).map_err(|why| reject(op, why))?;
                segments.push(seg);
            }
            Ok(Request::Direct { op, id, sector, segments })
        }
        OP_INDIRECT if max_indirect > 0 => {
            let inner = u8_at(entry, 1);
            if inner != OP_READ && inner != OP_WRITE {
                return Err(reject(inner, BadRequest::IndirectOp(inner)));
            }
            let count = usize::from(u16_at(entry, 2));
            if count == 0 || count > max_indirect.min(MAX_INDIRECT_PAGES * SEGMENTS_PER_INDIRECT_PAGE) {
                return Err(reject(inner, BadRequest::SegmentCount { op: inner, count }));
            }
            let nr_pages = count.div_ceil(SEGMENTS_PER_INDIRECT_PAGE);
            let pages = (0..nr_pages).map(|i| u32_at(entry, l.indirect_grefs + 4 * i)).collect();
            Ok(Request::Indirect { op: inner, id, sector, nr_segments: count, pages })
        }
        OP_DISCARD => {
            let nr_sectors = u64_at(entry, l.segs);
            let secure = u8_at(entry, 1) & 1 != 0;
            Ok(Request::Discard { id, sector, nr_sectors, secure })
        }
        _ => Ok(Request::Unsupported { op, id }),
    }
}

/// Encodes a response into a zeroed buffer of the ABI's response size.
pub fn encode_response(abi: Abi, id: u64, op: u8, status: i16) -> Vec<u8> {
    let mut out = vec![0u8; abi.layout().response];
    if let Some(s) = out.get_mut(0..8) {
        s.copy_from_slice(&id.to_le_bytes());
    }
    if let Some(s) = out.get_mut(8..9) {
        s.copy_from_slice(&[op]);
    }
    if let Some(s) = out.get_mut(10..12) {
        s.copy_from_slice(&status.to_le_bytes());
    }
    out
}

/// Decodes a response (what a frontend reads): `(id, op, status)`.
pub fn decode_response(bytes: &[u8]) -> (u64, u8, i16) {
    (u64_at(bytes, 0), u8_at(bytes, 8), u16_at(bytes, 10) as i16)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(abi: Abi, op: u8, nseg: u8, id: u64, sector: u64, segs: &[(u32, u8, u8)]) -> Vec<u8> {
        let l = abi.layout();
        let mut e = vec![0u8; l.entry];
        e[0] = op;
        e[1] = nseg;
        e[l.id..l.id + 8].copy_from_slice(&id.to_le_bytes());
        e[l.sector..l.sector + 8].copy_from_slice(&sector.to_le_bytes());
        for (i, (g, f, la)) in segs.iter().enumerate() {
            let at = l.segs + 8 * i;
            e[at..at + 4].copy_from_slice(&g.to_le_bytes());
            e[at + 4] = *f;
            e[at + 5] = *la;
        }
        e
    }

    #[test]
    fn direct_read_both_abis() {
        for abi in [Abi::X86_64, Abi::X86_32] {
            let e = entry(abi, OP_READ, 2, 0xDEAD_BEEF_0000_0001, 99, &[(7, 0, 7), (8, 2, 3)]);
            let r = parse_request(abi, &e, 0).unwrap();
            assert_eq!(
                r,
                Request::Direct {
                    op: OP_READ,
                    id: 0xDEAD_BEEF_0000_0001,
                    sector: 99,
                    segments: vec![Segment { gref: 7, first: 0, last: 7 }, Segment { gref: 8, first: 2, last: 3 }],
                }
            );
        }
    }

    #[test]
    fn segment_counts_checked() {
        let abi = Abi::X86_64;
        let bad = |op, n| parse_request(abi, &entry(abi, op, n, 5, 0, &[(1, 0, 7); 11]), 0);
        assert!(matches!(bad(OP_READ, 0), Err(Rejected { id: 5, op: OP_READ, .. })));
        assert!(matches!(bad(OP_WRITE, 12), Err(Rejected { why: BadRequest::SegmentCount { count: 12, .. }, .. })));
        assert!(bad(OP_WRITE, 255).is_err());
        assert!(bad(OP_WRITE, 11).is_ok());
        assert!(matches!(bad(OP_FLUSH_DISKCACHE, 0), Ok(Request::Direct { segments, .. }) if segments.is_empty()));
    }

    #[test]
    fn sectors_must_stay_in_the_page() {
        let abi = Abi::X86_64;
        for (f, l) in [(3, 2), (0, 8), (8, 8), (255, 255)] {
            let r = parse_request(abi, &entry(abi, OP_WRITE, 1, 1, 0, &[(1, f, l)]), 0);
            assert!(matches!(r, Err(Rejected { why: BadRequest::SegmentSectors { .. }, .. })), "{f}..{l}");
        }
    }

    #[test]
    fn indirect_checked() {
        let abi = Abi::X86_64;
        let mut e = vec![0u8; 112];
        e[0] = OP_INDIRECT;
        e[1] = OP_WRITE;
        e[2..4].copy_from_slice(&513u16.to_le_bytes());
        e[8..16].copy_from_slice(&77u64.to_le_bytes());
        e[28..32].copy_from_slice(&40u32.to_le_bytes());
        e[32..36].copy_from_slice(&41u32.to_le_bytes());
        // Not offered: unsupported.
        assert_eq!(parse_request(abi, &e, 0), Ok(Request::Unsupported { op: OP_INDIRECT, id: 77 }));
        // Beyond the advertised maximum.
        assert!(parse_request(abi, &e, 256).is_err());
        let r = parse_request(abi, &e, 4096).unwrap();
        assert_eq!(r, Request::Indirect { op: OP_WRITE, id: 77, sector: 0, nr_segments: 513, pages: vec![40, 41] });
        assert_eq!(r.op(), OP_WRITE);
        e[1] = OP_DISCARD;
        assert!(matches!(parse_request(abi, &e, 256), Err(Rejected { why: BadRequest::IndirectOp(5), .. })));
        e[1] = OP_READ;
        e[2..4].copy_from_slice(&0u16.to_le_bytes());
        assert!(parse_request(abi, &e, 256).is_err());
    }

    #[test]
    fn discard_and_unknown() {
        let abi = Abi::X86_64;
        let mut e = entry(abi, OP_DISCARD, 1, 3, 8, &[]);
        e[24..32].copy_from_slice(&16u64.to_le_bytes());
        assert_eq!(parse_request(abi, &e, 0), Ok(Request::Discard { id: 3, sector: 8, nr_sectors: 16, secure: true }));
        let e = entry(abi, 4, 0, 9, 0, &[]);
        assert_eq!(parse_request(abi, &e, 0), Ok(Request::Unsupported { op: 4, id: 9 }));
    }

    #[test]
    fn responses_are_zero_padded() {
        let r = encode_response(Abi::X86_64, u64::MAX, OP_WRITE, RSP_EOPNOTSUPP);
        assert_eq!(r.len(), 16);
        assert_eq!(&r[12..], &[0; 4]);
        assert_eq!(r[9], 0);
        assert_eq!(decode_response(&r), (u64::MAX, OP_WRITE, RSP_EOPNOTSUPP));
        assert_eq!(encode_response(Abi::X86_32, 1, 0, 0).len(), 12);
    }

    #[test]
    fn protocols() {
        assert_eq!(Abi::from_protocol(None), Ok(Abi::X86_64));
        assert_eq!(Abi::from_protocol(Some("x86_32-abi")), Ok(Abi::X86_32));
        assert!(Abi::from_protocol(Some("arm-abi")).is_err());
    }
}
