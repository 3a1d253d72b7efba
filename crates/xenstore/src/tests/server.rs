//! The unix-socket server, with a std client and, where installed, Debian's
//! xenstore-utils.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use crate::server::{Shared, SocketServer};
use crate::wire::{Decoder, Header, MsgType};
use crate::{Message, Xenstore};

fn socket_path() -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    std::env::temp_dir().join(format!(
        "xenkvm-xs-test-{}-{}.sock",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ))
}

struct Client {
    s: UnixStream,
    d: Decoder,
    q: Vec<Message>,
}

impl Client {
    fn connect(path: &PathBuf) -> Client {
        let s = UnixStream::connect(path).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        Client { s, d: Decoder::new(), q: Vec::new() }
    }
    fn send(&mut self, ty: MsgType, req_id: u32, strings: &[&str]) {
        let parts: Vec<&[u8]> = strings.iter().map(|s| s.as_bytes()).collect();
        self.s.write_all(&Message::with_strings(ty, req_id, 0, &parts).to_bytes()).unwrap();
    }
    fn next(&mut self) -> Message {
        let mut buf = [0u8; 4096];
        while self.q.is_empty() {
            let n = self.s.read(&mut buf).unwrap();
            assert!(n > 0, "connection closed");
            self.d.feed_all(&buf[..n], &mut self.q).unwrap();
        }
        self.q.remove(0)
    }
}

#[test]
fn clients_share_the_store_and_see_each_others_writes() {
    let path = socket_path();
    let shared = Shared::new(Xenstore::default());
    let mut server = SocketServer::spawn(&path, shared.clone()).unwrap();
    let mut a = Client::connect(&path);
    let mut b = Client::connect(&path);
    b.send(MsgType::Watch, 1, &["/s", "tok"]);
    assert_eq!(b.next().payload, b"OK\0");
    assert_eq!(b.next().ty, MsgType::WatchEvent as u32);
    a.send(MsgType::Write, 2, &["/s/x", "v"]);
    assert_eq!(a.next().payload, b"OK\0");
    let ev = b.next();
    assert_eq!(ev.payload, b"/s/x\0tok\0");
    b.send(MsgType::Read, 3, &["/s/x"]);
    let r = b.next();
    assert_eq!((r.req_id, r.payload.as_slice()), (3, &b"v\0"[..]));
    // Pipelined requests are answered in order.
    for i in 0..50 {
        a.send(MsgType::Read, 100 + i, &["/s/x"]);
    }
    for i in 0..50 {
        assert_eq!(a.next().req_id, 100 + i);
    }
    // An oversized packet ends that client only.
    a.s.write_all(&Header { ty: 2, req_id: 1, tx_id: 0, len: 5000 }.to_bytes()).unwrap();
    let mut buf = [0u8; 16];
    assert!(matches!(a.s.read(&mut buf), Ok(0) | Err(_)));
    b.send(MsgType::Read, 4, &["/s/x"]);
    assert_eq!(b.next().req_id, 4);
    server.shutdown();
    assert!(!path.exists());
    shared.with(|xs| xs.check()).unwrap();
}

/// Requests that arrive together (several in one write, one split over two
/// writes) are each answered, in order, and the replies of one batch leave
/// together.
#[test]
fn batched_and_split_requests_are_answered_in_order() {
    let path = socket_path();
    let shared = Shared::new(Xenstore::default());
    let _server = SocketServer::spawn(&path, shared.clone()).unwrap();
    let mut a = Client::connect(&path);
    let mut batch = Vec::new();
    for i in 0..8u32 {
        let value = format!("v{i}");
        batch.extend(Message::with_strings(MsgType::Write, 10 + i, 0, &[b"/b/x", value.as_bytes()]).to_bytes());
        batch.extend(Message::with_strings(MsgType::Read, 20 + i, 0, &[b"/b/x"]).to_bytes());
    }
    a.s.write_all(&batch).unwrap();
    // One write of requests is one read for the server: its 16 replies come
    // back in one write, so one read gets them all.
    let mut buf = [0u8; 4096];
    let n = a.s.read(&mut buf).unwrap();
    a.d.feed_all(&buf[..n], &mut a.q).unwrap();
    assert_eq!(a.q.len(), 16);
    for i in 0..8u32 {
        let w = a.next();
        assert_eq!((w.req_id, w.payload.as_slice()), (10 + i, &b"OK\0"[..]));
        let r = a.next();
        // with_strings ends the value with a NUL, which WRITE stores.
        assert_eq!((r.req_id, r.payload.clone()), (20 + i, format!("v{i}\0").into_bytes()));
    }
    // A request whose header and payload come in separate writes.
    let split = Message::with_strings(MsgType::Read, 99, 0, &[b"/b/x"]).to_bytes();
    let (head, tail) = split.split_at(10);
    a.s.write_all(head).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    a.s.write_all(tail).unwrap();
    let r = a.next();
    assert_eq!((r.req_id, r.payload.as_slice()), (99, &b"v7\0"[..]));
    shared.with(|xs| xs.check()).unwrap();
}

#[test]
fn the_hook_hears_about_guest_output() {
    let path = socket_path();
    let (tx, rx) = std::sync::mpsc::channel();
    let hook = Box::new(move |woken: &[crate::ConnId]| {
        let _ = tx.send(woken.to_vec());
    });
    let shared = Shared::with_hook(Xenstore::default(), hook);
    let g = shared.with(|xs| {
        crate::default_tree::create_domain_tree(xs, &crate::default_tree::DomainTree::new(1, "g", 1024)).unwrap();
        let g = xs.introduce_domain(1, 1, 1).unwrap();
        xs.handle(g, &Message::with_strings(MsgType::Watch, 1, 0, &[b"/local/domain/1", b"t"]));
        g
    });
    let _server = SocketServer::spawn(&path, shared.clone()).unwrap();
    let mut a = Client::connect(&path);
    a.send(MsgType::Write, 1, &["/local/domain/1/data/x", ""]);
    a.next();
    let mut seen = false;
    while let Ok(w) = rx.recv_timeout(Duration::from_secs(5)) {
        if w.contains(&g) {
            seen = true;
            break;
        }
    }
    assert!(seen);
}

/// Debian's xenstore-utils (libxenstore 4.17) against the socket, if installed.
#[test]
fn debian_xenstore_utils() {
    if Command::new("xenstore-read").arg("--help").output().is_err() {
        eprintln!("xenstore-utils not installed; skipping");
        return;
    }
    let path = socket_path();
    let shared = Shared::new(Xenstore::default());
    let _server = SocketServer::spawn(&path, shared.clone()).unwrap();
    let run = |args: &[&str]| {
        let out = Command::new(args[0]).args(&args[1..]).env("XENSTORED_PATH", &path).output().unwrap();
        (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned())
    };
    assert!(run(&["xenstore-write", "/t/a", "hello", "/t/b/c", "x"]).0);
    assert_eq!(run(&["xenstore-read", "/t/a"]), (true, "hello\n".into()));
    assert!(run(&["xenstore-exists", "/t/b/c"]).0);
    assert!(!run(&["xenstore-exists", "/t/nope"]).0);
    let (ok, ls) = run(&["xenstore-list", "/t"]);
    assert!(ok);
    assert_eq!(ls, "a\nb\n");
    let (ok, tree) = run(&["xenstore-ls", "/t"]);
    assert!(ok, "xenstore-ls");
    assert!(tree.contains("a = \"hello\"") && tree.contains("c = \"x\""), "{tree}");
    assert!(run(&["xenstore-chmod", "/t/a", "n0", "r1"]).0);
    let perms = shared.with(|xs| xs.store().get("/t/a").map(|n| n.perms.to_wire()));
    assert_eq!(perms.unwrap(), b"n0\0r1\0");
    assert!(run(&["xenstore-rm", "/t/b"]).0);
    assert!(!run(&["xenstore-exists", "/t/b/c"]).0);
    // xenstore-watch -n 2: the first event plus one change.
    let child = Command::new("xenstore-watch")
        .args(["-n", "2", "/t/w"])
        .env("XENSTORED_PATH", &path)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert!(run(&["xenstore-write", "/t/w", "1"]).0);
    let out = child.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "/t/w\n/t/w\n");
}

/// Xen's own test-xenstore (Debian's xen-utils-4.17), if installed: every
/// test once, then two seconds of its random mode.
#[test]
fn xen_test_xenstore() {
    let bin = "/usr/lib/xen-4.17/bin/test-xenstore";
    if !std::path::Path::new(bin).exists() {
        eprintln!("{bin} not installed; skipping");
        return;
    }
    let path = socket_path();
    let shared = Shared::new(Xenstore::default());
    let _server = SocketServer::spawn(&path, shared.clone()).unwrap();
    for args in [&[][..], &["-r", "2"]] {
        let out = Command::new(bin).args(args).env("XENSTORED_PATH", &path).output().unwrap();
        assert!(
            out.status.success(),
            "test-xenstore {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    shared.with(|xs| xs.check()).unwrap();
}
