//! xsnull: a store that stores nothing, for measuring what a request costs
//! without any store: `xsnull PATH` listens on a unix socket and answers every
//! request with a reply of its type, `req_id` and `tx_id` and the payload
//! `OK\0`; a WATCH also gets the event `PATH\0TOKEN\0` it asked for.
//!
//! It parses and encodes with the crate's wire code and serves each client
//! as `xenkvm xenstored` does at best (one thread, one blocking `recv` and
//! one `send` per batch of requests), so `xsbench --classes read,write`
//! against it gives the ops/s ceiling of a client and a socket store on that
//! machine: at one request in flight, the round trip (context switches and
//! system calls) that no store can avoid.

use std::io::{self, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;

use xenkvm_xenstore::wire::{Decoder, Message, MsgType};

/// The replies to `m`: an `OK` of its type, and for a WATCH the first event.
fn answer(m: &Message, out: &mut Vec<u8>) {
    Message { ty: m.ty, req_id: m.req_id, tx_id: m.tx_id, payload: b"OK\0".to_vec() }.encode_into(out);
    if m.kind() == Some(MsgType::Watch) {
        let mut strings = m.payload.split(|b| *b == 0);
        let (path, token) = (strings.next().unwrap_or(&[]), strings.next().unwrap_or(&[]));
        Message::with_strings(MsgType::WatchEvent, 0, 0, &[path, token]).encode_into(out);
    }
}

fn serve(mut s: UnixStream) -> io::Result<()> {
    let (mut decoder, mut buf, mut msgs, mut out) = (Decoder::new(), vec![0u8; 8192], Vec::new(), Vec::new());
    loop {
        let n = s.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        msgs.clear();
        decoder.feed_all(buf.get(..n).unwrap_or(&[]), &mut msgs).map_err(io::Error::other)?;
        out.clear();
        for m in &msgs {
            answer(m, &mut out);
        }
        if !out.is_empty() {
            s.write_all(&out)?;
        }
    }
}

fn main() -> io::Result<()> {
    let path: PathBuf = std::env::args_os().nth(1).map(PathBuf::from).ok_or_else(|| io::Error::other("usage: xsnull PATH"))?;
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path)?;
    for stream in listener.incoming() {
        let stream = stream?;
        std::thread::spawn(move || serve(stream));
    }
    Ok(())
}
