//! Unit tests of the engine, one file per concern.

use crate::conn::ConnId;
use crate::errno::Errno;
use crate::wire::{Message, MsgType};
use crate::Xenstore;

mod basic;
mod domains;
mod fuzz;
mod perms;
mod quotas;
mod ring;
mod serialize;
mod server;
mod transactions;
mod watches;
mod wire_paths;

/// Sends `strings` (each NUL-terminated) as a request and returns all output.
pub(crate) fn send(xs: &mut Xenstore, c: ConnId, ty: MsgType, tx: u32, strings: &[&str]) -> Vec<Message> {
    let parts: Vec<&[u8]> = strings.iter().map(|s| s.as_bytes()).collect();
    xs.handle(c, &Message::with_strings(ty, 7, tx, &parts))
}

/// The reply (first non-event message) of a request.
pub(crate) fn reply(out: &[Message]) -> &Message {
    out.iter().find(|m| m.ty != MsgType::WatchEvent as u32).expect("a reply")
}

/// Sends a request and expects success; returns the reply payload.
pub(crate) fn ok(xs: &mut Xenstore, c: ConnId, ty: MsgType, tx: u32, strings: &[&str]) -> Vec<u8> {
    let out = send(xs, c, ty, tx, strings);
    let r = reply(&out);
    assert_eq!(r.as_error(), None, "{ty:?} {strings:?} failed");
    assert_eq!(r.ty, ty as u32);
    r.payload.clone()
}

/// Sends a request and expects the error `e`.
pub(crate) fn err(xs: &mut Xenstore, c: ConnId, ty: MsgType, tx: u32, strings: &[&str]) -> Errno {
    let out = send(xs, c, ty, tx, strings);
    reply(&out).as_error().unwrap_or_else(|| panic!("{ty:?} {strings:?} succeeded"))
}

/// WRITE with a raw value.
pub(crate) fn write(xs: &mut Xenstore, c: ConnId, tx: u32, path: &str, value: &str) -> Result<(), Errno> {
    let mut p = path.as_bytes().to_vec();
    p.push(0);
    p.extend_from_slice(value.as_bytes());
    let out = xs.handle(c, &Message::new(MsgType::Write, 1, tx, p));
    match reply(&out).as_error() {
        None => Ok(()),
        Some(e) => Err(e),
    }
}

/// READ as a string.
pub(crate) fn read(xs: &mut Xenstore, c: ConnId, tx: u32, path: &str) -> Result<String, Errno> {
    let out = send(xs, c, MsgType::Read, tx, &[path]);
    let r = reply(&out);
    match r.as_error() {
        None => Ok(String::from_utf8(r.payload.clone()).expect("utf8")),
        Some(e) => Err(e),
    }
}

/// The watch events in `out` as (path, token).
pub(crate) fn events(out: &[Message]) -> Vec<(String, String)> {
    out.iter()
        .filter(|m| m.ty == MsgType::WatchEvent as u32)
        .map(|m| {
            let s = crate::wire::payload::strings(&m.payload);
            (String::from_utf8_lossy(s[0]).into_owned(), String::from_utf8_lossy(s[1]).into_owned())
        })
        .collect()
}

/// Splits a NUL-separated list.
pub(crate) fn list(p: &[u8]) -> Vec<String> {
    crate::wire::payload::strings(p).iter().map(|s| String::from_utf8_lossy(s).into_owned()).collect()
}
