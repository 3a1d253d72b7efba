//! The wire format, the decoder and path syntax.

use crate::path::{canonicalize, is_child, parent};
use crate::wire::payload::{atoi, onearg, parse_domid, strings};
use crate::wire::*;
use crate::Errno;

#[test]
fn header_is_16_little_endian_bytes() {
    let m = Message::new(MsgType::Write, 0x01020304, 5, b"/a\0b".to_vec());
    let b = m.to_bytes();
    assert_eq!(&b[..16], &[11, 0, 0, 0, 4, 3, 2, 1, 5, 0, 0, 0, 4, 0, 0, 0]);
    assert_eq!(&b[16..], b"/a\0b");
    let mut d = Decoder::new();
    let (used, got) = d.feed(&b).unwrap();
    assert_eq!((used, got), (b.len(), Some(m)));
}

#[test]
fn message_types_and_errors() {
    assert_eq!(MsgType::from_u32(20), None);
    assert_eq!(MsgType::from_u32(XS_TYPE_COUNT), None);
    assert_eq!(MsgType::from_u32(XS_INVALID), None);
    assert_eq!(MsgType::from_u32(21), Some(MsgType::ResetWatches));
    assert_eq!(MsgType::from_u32(22), Some(MsgType::DirectoryPart));
    for t in MsgType::ALL {
        assert_eq!(MsgType::from_u32(t as u32), Some(t));
        assert!(!t.name().is_empty());
    }
    let names: Vec<&str> = Errno::ALL.iter().map(|e| e.as_str()).collect();
    assert_eq!(
        names,
        [
            "EINVAL",
            "EACCES",
            "EEXIST",
            "EISDIR",
            "ENOENT",
            "ENOMEM",
            "ENOSPC",
            "EIO",
            "ENOTEMPTY",
            "ENOSYS",
            "EROFS",
            "EBUSY",
            "EAGAIN",
            "EISCONN",
            "E2BIG",
            "EPERM"
        ]
    );
    for e in Errno::ALL {
        assert_eq!(Errno::from_name(e.as_str()), Some(e));
        assert_eq!(e.to_string(), e.as_str());
    }
    let req = Message::new(MsgType::Read, 9, 3, b"x\0".to_vec());
    let e = Message::error_to(&req, Errno::NoEnt);
    assert_eq!((e.ty, e.req_id, e.tx_id, e.payload.as_slice()), (16, 9, 3, &b"ENOENT\0"[..]));
    assert_eq!(e.as_error(), Some(Errno::NoEnt));
}

#[test]
fn decoder_accepts_any_chunking() {
    let msgs = vec![
        Message::new(MsgType::Read, 1, 0, b"/a\0".to_vec()),
        Message::new(MsgType::TransactionStart, 2, 0, Vec::new()),
        Message::new(MsgType::Write, 3, 7, vec![b'x'; 4096]),
        Message::new(MsgType::Watch, 4, 0, b"/w\0t\0".to_vec()),
    ];
    let stream: Vec<u8> = msgs.iter().flat_map(|m| m.to_bytes()).collect();
    for chunk in [1, 2, 3, 7, 15, 16, 17, 100, 4111, 5000] {
        let mut d = Decoder::new();
        let mut out = Vec::new();
        for c in stream.chunks(chunk) {
            d.feed_all(c, &mut out).unwrap();
        }
        assert_eq!(out, msgs, "chunk {chunk}");
        assert!(!d.is_partial());
    }
    // wanted() never asks past the end of a message.
    let mut d = Decoder::new();
    assert_eq!(d.wanted(), 16);
    d.feed(&stream[..16]).unwrap();
    assert_eq!(d.wanted(), 3);
}

#[test]
fn oversized_payload_fails_until_reset() {
    let mut d = Decoder::new();
    let h = Header { ty: 2, req_id: 1, tx_id: 0, len: 4097 }.to_bytes();
    assert_eq!(d.feed(&h[..10]).unwrap(), (10, None));
    assert_eq!(d.feed(&h[10..]), Err(ProtocolError::Oversized(4097)));
    assert!(d.is_failed());
    assert_eq!(d.feed(b"more"), Err(ProtocolError::Failed));
    d.reset();
    let m = Message::new(MsgType::Read, 1, 0, b"/\0".to_vec());
    assert_eq!(d.feed(&m.to_bytes()).unwrap().1, Some(m));
    let h = Header { ty: 2, req_id: 1, tx_id: 0, len: u32::MAX }.to_bytes();
    assert_eq!(Decoder::new().feed(&h), Err(ProtocolError::Oversized(u32::MAX)));
}

#[test]
fn payload_helpers_follow_c() {
    assert_eq!(strings(b"a\0bc\0tail"), vec![&b"a"[..], b"bc"]);
    assert_eq!(onearg(b"a\0"), Some(&b"a"[..]));
    assert_eq!(onearg(b"a\0b\0"), None);
    assert_eq!(onearg(b"a"), None);
    assert_eq!(onearg(b""), None);
    assert_eq!(atoi(b" 42x"), 42);
    assert_eq!(atoi(b"-7"), -7);
    assert_eq!(atoi(b"x"), 0);
    assert_eq!(parse_domid(b"0"), Some(0));
    assert_eq!(parse_domid(b"65535"), Some(65535));
    assert_eq!(parse_domid(b"65536"), None);
    assert_eq!(parse_domid(b"+5"), Some(5));
    assert_eq!(parse_domid(b""), Some(0));
    assert_eq!(parse_domid(b"5 "), None);
    assert_eq!(parse_domid(b"99999999999999999999999"), None);
}

#[test]
fn canonicalization() {
    let base = "/local/domain/3";
    assert_eq!(canonicalize(b"/a/b", base, false, None), Ok(("/a/b".into(), false)));
    assert_eq!(canonicalize(b"a/b", base, false, None), Ok(("/local/domain/3/a/b".into(), true)));
    assert_eq!(canonicalize(b"/", base, false, None), Ok(("/".into(), false)));
    assert_eq!(canonicalize(b"@releaseDomain", base, true, None), Ok(("@releaseDomain".into(), false)));
    assert_eq!(canonicalize(b"/a@b-c_d", base, false, None), Ok(("/a@b-c_d".into(), false)));
    for bad in [&b""[..], b"/a/", b"//", b"/a//b", b"a/", b"/a b", b"/a\xff", b"/a.b", b"/a\0b"] {
        assert_eq!(canonicalize(bad, base, true, None), Err(Errno::Inval), "{bad:?}");
    }
    assert_eq!(canonicalize(b"@x", base, false, None), Err(Errno::Inval));
    // The relative part is checked after prefixing; the domain prefix is free.
    let rel = "a".repeat(10);
    assert!(canonicalize(rel.as_bytes(), base, false, Some(10)).is_ok());
    assert!(canonicalize(format!("{rel}b").as_bytes(), base, false, Some(10)).is_err());
    assert!(canonicalize(format!("/local/domain/9/{rel}").as_bytes(), base, false, Some(10)).is_ok());
    assert!(canonicalize(format!("/x/{rel}").as_bytes(), base, false, Some(10)).is_err());
}

#[test]
fn parents_and_children() {
    assert_eq!(parent("/a/b"), Some("/a"));
    assert_eq!(parent("/a"), Some("/"));
    assert_eq!(parent("/"), None);
    assert_eq!(parent("@releaseDomain"), Some("/"));
    assert!(is_child("/a/b", "/a", None));
    assert!(is_child("/a", "/a", Some(0)));
    assert!(!is_child("/ab", "/a", None));
    assert!(!is_child("/a/b", "/a", Some(0)));
    assert!(is_child("/a/b", "/a", Some(1)));
    assert!(!is_child("/a/b/c", "/a", Some(1)));
    assert!(is_child("/a", "/", Some(1)));
    assert!(!is_child("/a/b", "/", Some(1)));
    assert!(!is_child("@releaseDomain", "/", None));
    assert!(is_child("@releaseDomain/3", "@releaseDomain", Some(1)));
}
