//! The xenstore wire protocol of `xen/include/public/io/xs_wire.h`: the 16-byte
//! `xsd_sockmsg` header, the message types, the error names, the limits, a
//! streaming decoder that accepts bytes in arbitrary chunks, and the encoder.
//!
//! Every byte handed to the decoder is untrusted. The decoder allocates a payload
//! buffer only after the header passed the [`XENSTORE_PAYLOAD_MAX`] check, so a
//! hostile length never drives an allocation; after a protocol error it stays
//! failed until [`Decoder::reset`] (the connection is to be reset or dropped).

use crate::errno::Errno;

/// Size of `struct xsd_sockmsg`.
pub const HEADER_LEN: usize = 16;
/// Largest payload in either direction; a client exceeding it is disconnected.
pub const XENSTORE_PAYLOAD_MAX: usize = 4096;
/// Longest absolute path.
pub const XENSTORE_ABS_PATH_MAX: usize = 3072;
/// Longest relative path (also the default `path-max` quota of unprivileged domains).
pub const XENSTORE_REL_PATH_MAX: usize = 2048;

/// `enum xsd_sockmsg_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u32)]
pub enum MsgType {
    Control = 0,
    Directory = 1,
    Read = 2,
    GetPerms = 3,
    Watch = 4,
    Unwatch = 5,
    TransactionStart = 6,
    TransactionEnd = 7,
    Introduce = 8,
    Release = 9,
    GetDomainPath = 10,
    Write = 11,
    Mkdir = 12,
    Rm = 13,
    SetPerms = 14,
    WatchEvent = 15,
    Error = 16,
    IsDomainIntroduced = 17,
    Resume = 18,
    SetTarget = 19,
    // 20 was XS_RESTRICT, removed: invalid.
    ResetWatches = 21,
    DirectoryPart = 22,
    GetFeature = 23,
    SetFeature = 24,
    GetQuota = 25,
    SetQuota = 26,
}

/// `XS_TYPE_COUNT`: one past the last defined type.
pub const XS_TYPE_COUNT: u32 = 27;
/// `XS_INVALID`: guaranteed to remain an invalid type.
pub const XS_INVALID: u32 = 0xffff;

impl MsgType {
    /// Every defined type, in numeric order.
    pub const ALL: [MsgType; 26] = [
        MsgType::Control,
        MsgType::Directory,
        MsgType::Read,
        MsgType::GetPerms,
        MsgType::Watch,
        MsgType::Unwatch,
        MsgType::TransactionStart,
        MsgType::TransactionEnd,
        MsgType::Introduce,
        MsgType::Release,
        MsgType::GetDomainPath,
        MsgType::Write,
        MsgType::Mkdir,
        MsgType::Rm,
        MsgType::SetPerms,
        MsgType::WatchEvent,
        MsgType::Error,
        MsgType::IsDomainIntroduced,
        MsgType::Resume,
        MsgType::SetTarget,
        MsgType::ResetWatches,
        MsgType::DirectoryPart,
        MsgType::GetFeature,
        MsgType::SetFeature,
        MsgType::GetQuota,
        MsgType::SetQuota,
    ];

    /// The type for a raw header value, `None` for undefined values (20, ≥ 27).
    pub fn from_u32(raw: u32) -> Option<MsgType> {
        MsgType::ALL.iter().copied().find(|t| *t as u32 == raw)
    }

    /// The name xenstored uses in its logs (`XS_DEBUG` is an alias of `CONTROL`).
    pub fn name(self) -> &'static str {
        match self {
            MsgType::Control => "CONTROL",
            MsgType::Directory => "DIRECTORY",
            MsgType::Read => "READ",
            MsgType::GetPerms => "GET_PERMS",
            MsgType::Watch => "WATCH",
            MsgType::Unwatch => "UNWATCH",
            MsgType::TransactionStart => "TRANSACTION_START",
            MsgType::TransactionEnd => "TRANSACTION_END",
            MsgType::Introduce => "INTRODUCE",
            MsgType::Release => "RELEASE",
            MsgType::GetDomainPath => "GET_DOMAIN_PATH",
            MsgType::Write => "WRITE",
            MsgType::Mkdir => "MKDIR",
            MsgType::Rm => "RM",
            MsgType::SetPerms => "SET_PERMS",
            MsgType::WatchEvent => "WATCH_EVENT",
            MsgType::Error => "ERROR",
            MsgType::IsDomainIntroduced => "IS_DOMAIN_INTRODUCED",
            MsgType::Resume => "RESUME",
            MsgType::SetTarget => "SET_TARGET",
            MsgType::ResetWatches => "RESET_WATCHES",
            MsgType::DirectoryPart => "DIRECTORY_PART",
            MsgType::GetFeature => "GET_FEATURE",
            MsgType::SetFeature => "SET_FEATURE",
            MsgType::GetQuota => "GET_QUOTA",
            MsgType::SetQuota => "SET_QUOTA",
        }
    }
}

/// `struct xsd_sockmsg`, little-endian on the wire (host order on x86).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Header {
    pub ty: u32,
    pub req_id: u32,
    pub tx_id: u32,
    pub len: u32,
}

impl Header {
    /// Decodes the 16 header bytes.
    pub fn from_bytes(b: &[u8; HEADER_LEN]) -> Header {
        let word = |i: usize| {
            let mut w = [0u8; 4];
            for (k, byte) in w.iter_mut().enumerate() {
                *byte = b.get(i * 4 + k).copied().unwrap_or(0);
            }
            u32::from_le_bytes(w)
        };
        Header { ty: word(0), req_id: word(1), tx_id: word(2), len: word(3) }
    }

    /// Encodes the header.
    pub fn to_bytes(self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        for (chunk, v) in out.chunks_exact_mut(4).zip([self.ty, self.req_id, self.tx_id, self.len]) {
            chunk.copy_from_slice(&v.to_le_bytes());
        }
        out
    }
}

/// One message: a request, a reply, an error or a watch event.
///
/// `ty` is the raw header value so that undefined types survive decoding (they
/// are answered with `ENOSYS`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub ty: u32,
    pub req_id: u32,
    pub tx_id: u32,
    pub payload: Vec<u8>,
}

impl Message {
    /// A message of a defined type.
    pub fn new(ty: MsgType, req_id: u32, tx_id: u32, payload: impl Into<Vec<u8>>) -> Message {
        Message { ty: ty as u32, req_id, tx_id, payload: payload.into() }
    }

    /// A request whose payload is the given strings, each NUL-terminated
    /// (the `<foo>|` notation of xenstore.txt).
    pub fn with_strings(ty: MsgType, req_id: u32, tx_id: u32, strings: &[&[u8]]) -> Message {
        let mut payload = Vec::new();
        for s in strings {
            payload.extend_from_slice(s);
            payload.push(0);
        }
        Message::new(ty, req_id, tx_id, payload)
    }

    /// The reply to `req` with the same type, req_id and tx_id.
    pub fn reply_to(req: &Message, payload: impl Into<Vec<u8>>) -> Message {
        Message { ty: req.ty, req_id: req.req_id, tx_id: req.tx_id, payload: payload.into() }
    }

    /// The `ERROR` reply to `req`: `E<name>|`.
    pub fn error_to(req: &Message, err: Errno) -> Message {
        let mut payload = err.as_str().as_bytes().to_vec();
        payload.push(0);
        Message { ty: MsgType::Error as u32, req_id: req.req_id, tx_id: req.tx_id, payload }
    }

    /// A `WATCH_EVENT`: `<epath>|<token>|`, req_id and tx_id 0.
    pub fn watch_event(path: &[u8], token: &[u8]) -> Message {
        let mut payload = Vec::with_capacity(path.len() + token.len() + 2);
        payload.extend_from_slice(path);
        payload.push(0);
        payload.extend_from_slice(token);
        payload.push(0);
        Message::new(MsgType::WatchEvent, 0, 0, payload)
    }

    /// The defined type, if any.
    pub fn kind(&self) -> Option<MsgType> {
        MsgType::from_u32(self.ty)
    }

    /// The header of this message (the length saturates; payloads built here
    /// never exceed the wire limit).
    pub fn header(&self) -> Header {
        Header {
            ty: self.ty,
            req_id: self.req_id,
            tx_id: self.tx_id,
            len: u32::try_from(self.payload.len()).unwrap_or(u32::MAX),
        }
    }

    /// Bytes on the wire: header plus payload.
    pub fn wire_len(&self) -> usize {
        HEADER_LEN + self.payload.len()
    }

    /// Appends the encoded message to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.header().to_bytes());
        out.extend_from_slice(&self.payload);
    }

    /// The encoded message.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.wire_len());
        self.encode_into(&mut out);
        out
    }

    /// If this is an `ERROR` message, the error it carries.
    pub fn as_error(&self) -> Option<Errno> {
        if self.ty != MsgType::Error as u32 {
            return None;
        }
        let name = self.payload.split(|b| *b == 0).next()?;
        Errno::from_name(std::str::from_utf8(name).ok()?)
    }
}

/// A violation that ends the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    /// The header announced more than [`XENSTORE_PAYLOAD_MAX`] bytes.
    #[error("payload length {0} exceeds XENSTORE_PAYLOAD_MAX ({XENSTORE_PAYLOAD_MAX})")]
    Oversized(u32),
    /// An earlier error left the decoder unusable until it is reset.
    #[error("the connection had a protocol error and awaits a reset")]
    Failed,
}

/// Streaming decoder: feed it bytes in any chunking, get whole messages back.
#[derive(Debug, Clone, Default)]
pub struct Decoder {
    hdr: [u8; HEADER_LEN],
    hdr_used: usize,
    /// Set once the header is complete and valid.
    current: Option<Header>,
    payload: Vec<u8>,
    failed: bool,
}

impl Decoder {
    pub fn new() -> Decoder {
        Decoder::default()
    }

    /// Drops any partial message and clears a previous error.
    pub fn reset(&mut self) {
        *self = Decoder::default();
    }

    /// Whether a protocol error occurred.
    pub fn is_failed(&self) -> bool {
        self.failed
    }

    /// Whether a partial message is buffered.
    pub fn is_partial(&self) -> bool {
        self.hdr_used > 0 || self.current.is_some()
    }

    /// How many more bytes complete the current header or payload. Never more
    /// than [`XENSTORE_PAYLOAD_MAX`]; a transport can read exactly this much so
    /// that it never consumes bytes past the end of one message.
    pub fn wanted(&self) -> usize {
        match self.current {
            Some(h) => (h.len as usize).saturating_sub(self.payload.len()),
            None => HEADER_LEN.saturating_sub(self.hdr_used),
        }
    }

    /// Consumes bytes from `input` up to the end of at most one message.
    /// Returns how many bytes were consumed and the message if one completed.
    pub fn feed(&mut self, input: &[u8]) -> Result<(usize, Option<Message>), ProtocolError> {
        if self.failed {
            return Err(ProtocolError::Failed);
        }
        let mut used = 0;
        if self.current.is_none() {
            let take = self.wanted().min(input.len());
            let (src, dst) = (input.get(..take).unwrap_or(&[]), self.hdr.get_mut(self.hdr_used..self.hdr_used + take));
            if let Some(dst) = dst {
                dst.copy_from_slice(src);
            }
            self.hdr_used += take;
            used = take;
            if self.hdr_used < HEADER_LEN {
                return Ok((used, None));
            }
            let h = Header::from_bytes(&self.hdr);
            if h.len as usize > XENSTORE_PAYLOAD_MAX {
                self.failed = true;
                return Err(ProtocolError::Oversized(h.len));
            }
            self.current = Some(h);
            self.payload = Vec::with_capacity(h.len as usize);
        }
        let rest = input.get(used..).unwrap_or(&[]);
        let take = self.wanted().min(rest.len());
        self.payload.extend_from_slice(rest.get(..take).unwrap_or(&[]));
        used += take;
        if self.wanted() > 0 {
            return Ok((used, None));
        }
        let Some(h) = self.current.take() else { return Ok((used, None)) };
        self.hdr_used = 0;
        let payload = std::mem::take(&mut self.payload);
        Ok((used, Some(Message { ty: h.ty, req_id: h.req_id, tx_id: h.tx_id, payload })))
    }

    /// Decodes every complete message in `input`, keeping a trailing partial one.
    pub fn feed_all(&mut self, mut input: &[u8], out: &mut Vec<Message>) -> Result<(), ProtocolError> {
        while !input.is_empty() {
            let (used, msg) = self.feed(input)?;
            if let Some(m) = msg {
                out.push(m);
            }
            input = input.get(used..).unwrap_or(&[]);
        }
        Ok(())
    }
}

/// Payload helpers following xenstored's `get_string`/`get_strings`/`onearg`.
pub mod payload {
    /// The NUL-terminated strings at the start of `p` (trailing bytes without a
    /// NUL are ignored, as `get_strings` does).
    pub fn strings(p: &[u8]) -> Vec<&[u8]> {
        let mut out = Vec::new();
        let mut rest = p;
        while let Some(pos) = rest.iter().position(|b| *b == 0) {
            out.push(rest.get(..pos).unwrap_or(&[]));
            rest = rest.get(pos + 1..).unwrap_or(&[]);
        }
        out
    }

    /// Number of NUL bytes (`xenstore_count_strings`).
    pub fn count_nuls(p: &[u8]) -> usize {
        p.iter().filter(|b| **b == 0).count()
    }

    /// Exactly one string with its NUL as the last byte (`onearg`).
    pub fn onearg(p: &[u8]) -> Option<&[u8]> {
        match p.iter().position(|b| *b == 0) {
            Some(pos) if pos + 1 == p.len() => p.get(..pos),
            _ => None,
        }
    }

    /// The first string and everything after its NUL (`WRITE`'s `<path>|<value|>`).
    pub fn split_first(p: &[u8]) -> Option<(&[u8], &[u8])> {
        let pos = p.iter().position(|b| *b == 0)?;
        Some((p.get(..pos)?, p.get(pos + 1..)?))
    }

    /// C `atoi`: optional blanks and sign, then digits; garbage gives 0.
    pub fn atoi(s: &[u8]) -> i32 {
        let mut it = s.iter().copied().skip_while(|b| b.is_ascii_whitespace()).peekable();
        let neg = match it.peek() {
            Some(b'-') => {
                it.next();
                true
            }
            Some(b'+') => {
                it.next();
                false
            }
            _ => false,
        };
        let mut v: i64 = 0;
        for b in it.take_while(u8::is_ascii_digit) {
            v = (v * 10 + i64::from(b - b'0')).min(i64::from(u32::MAX) + 1);
        }
        let v = if neg { -v } else { v };
        // Out-of-range values are undefined in C; wrap like glibc's strtol cast.
        v as i32
    }

    /// xenstored's `parse_domid`: `strtoul` base 10 over the whole string, at most 65535.
    pub fn parse_domid(s: &[u8]) -> Option<u32> {
        let start = s.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(s.len());
        let body = s.get(start..)?;
        let (neg, digits) = match body.first() {
            Some(b'-') => (true, body.get(1..)?),
            Some(b'+') => (false, body.get(1..)?),
            _ => (false, body),
        };
        if digits.is_empty() {
            // No conversion: strtoul leaves end at the start of the input.
            return if s.is_empty() { Some(0) } else { None };
        }
        if !digits.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let mut v: u64 = 0;
        for b in digits {
            v = v.saturating_mul(10).saturating_add(u64::from(b - b'0'));
        }
        if neg && v != 0 {
            return None; // wraps to a huge unsigned value, > 65535
        }
        if v > 65535 {
            return None;
        }
        u32::try_from(v).ok()
    }
}
