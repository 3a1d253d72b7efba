//! The unix-socket server: host tools talk to the store as dom0 (privileged),
//! with the same wire protocol as the guest ring. libxenstore finds the socket
//! through `XENSTORED_PATH`, so Debian's `xenstore-read`/`-write`/`-ls`/... work
//! against it.
//!
//! std only: one thread accepts, and each client gets a reader thread (socket →
//! decoder → engine → replies to the socket) and a writer thread (watch events
//! from the outbox → socket). The engine sits in
//! [`Shared`] behind one mutex, which the VMM also uses for the guest rings;
//! [`Shared::with`] runs a closure on the engine and then wakes the writers and
//! tells the VMM's hook which connections got output (so it can kick rings).
//!
//! The socket is created with mode 0600 (only the VMM's user may connect, as
//! C xenstored does); a client sending an oversized packet is disconnected; a
//! client that does not read its replies stops being read once the socket
//! buffer is full (its reply cannot be written) or its backlog of watch events
//! is [`SOCKET_BACKLOG`] messages, and those events are capped by the engine.
//!
//! A client's replies are written by the thread that read its requests, right
//! after processing them; the writer thread sends what other connections
//! cause. So a request costs one thread wakeup, and an idle server wakes
//! once a second per client. Measured: one `recv` and one `send` per request
//! (or per batch read at once), no `futex`; at one request in flight this is
//! as fast as `examples/xsnull.rs`, a store that does no work
//! (docs/testing.md).

use std::io::{self, Read, Write};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use crate::conn::ConnId;
use crate::engine::Xenstore;
use crate::wire::{Decoder, Message};

/// Messages queued for a socket client before its requests are no longer read.
pub const SOCKET_BACKLOG: usize = 1024;

/// Called with the connections that got output after a change.
pub type WokenHook = Box<dyn Fn(&[ConnId]) + Send + Sync>;

/// The engine shared by the socket threads and the VMM.
pub struct Shared {
    xs: Mutex<Xenstore>,
    output: Condvar,
    hook: Option<WokenHook>,
}

impl Shared {
    pub fn new(xs: Xenstore) -> Arc<Shared> {
        Arc::new(Shared { xs: Mutex::new(xs), output: Condvar::new(), hook: None })
    }

    /// With a hook told about connections that got output (the VMM kicks the
    /// rings among them).
    pub fn with_hook(xs: Xenstore, hook: WokenHook) -> Arc<Shared> {
        Arc::new(Shared { xs: Mutex::new(xs), output: Condvar::new(), hook: Some(hook) })
    }

    fn lock(&self) -> MutexGuard<'_, Xenstore> {
        self.xs.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `f` on the engine, then wakes the socket writers and calls the
    /// hook for the connections that got output.
    pub fn with<R>(&self, f: impl FnOnce(&mut Xenstore) -> R) -> R {
        let (r, woken) = {
            let mut xs = self.lock();
            let r = f(&mut xs);
            (r, xs.take_woken())
        };
        self.output.notify_all();
        if let (Some(hook), false) = (&self.hook, woken.is_empty()) {
            hook(&woken);
        }
        r
    }

    /// Runs `f` on the engine and takes `conn`'s output in the same critical
    /// section, so a socket client's replies go out from the thread that read
    /// its requests; the writers are woken only when other connections got
    /// output (one thread hop less per request).
    fn with_drain(&self, conn: ConnId, f: impl FnOnce(&mut Xenstore)) -> Vec<Message> {
        let (out, woken) = {
            let mut xs = self.lock();
            f(&mut xs);
            let out = xs.drain(conn);
            (out, xs.take_woken())
        };
        if woken.iter().any(|c| *c != conn) {
            self.output.notify_all();
        }
        if let (Some(hook), false) = (&self.hook, woken.is_empty()) {
            hook(&woken);
        }
        out
    }
}

/// A listening socket and its threads.
pub struct SocketServer {
    path: PathBuf,
    stop: Arc<AtomicBool>,
    clients: Arc<Mutex<Vec<Client>>>,
    accept: Option<JoinHandle<()>>,
}

/// A client's stream (to close it on shutdown) and whether it ended.
type Client = (Arc<AtomicBool>, UnixStream);

fn lock_clients(c: &Mutex<Vec<Client>>) -> MutexGuard<'_, Vec<Client>> {
    c.lock().unwrap_or_else(PoisonError::into_inner)
}

impl SocketServer {
    /// Listens at `path` (replacing a stale socket there) and serves clients
    /// in the background.
    pub fn spawn(path: &Path, shared: Arc<Shared>) -> io::Result<SocketServer> {
        if let Ok(meta) = std::fs::symlink_metadata(path) {
            if !meta.file_type().is_socket() {
                return Err(io::Error::new(io::ErrorKind::AlreadyExists, "path exists and is not a socket"));
            }
            std::fs::remove_file(path)?;
        }
        let listener = UnixListener::bind(path)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
        let stop = Arc::new(AtomicBool::new(false));
        let clients = Arc::new(Mutex::new(Vec::new()));
        let (stop2, clients2) = (stop.clone(), clients.clone());
        let accept = thread::Builder::new().name("xenstored-accept".into()).spawn(move || {
            // A blocking accept: no wakeups while nobody connects (they cost
            // the clients' CPU time); `shutdown` connects once to end it.
            while !stop2.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok(_) if stop2.load(Ordering::Relaxed) => break,
                    Ok((stream, _)) => {
                        let closed = Arc::new(AtomicBool::new(false));
                        let mut list = lock_clients(&clients2);
                        list.retain(|(c, _)| !c.load(Ordering::Relaxed));
                        if let Ok(copy) = stream.try_clone() {
                            list.push((closed.clone(), copy));
                        }
                        drop(list);
                        let _ = start_client(stream, shared.clone(), closed);
                    }
                    // Out of descriptors, say: try again a little later.
                    Err(_) => thread::sleep(Duration::from_millis(10)),
                }
            }
        })?;
        Ok(SocketServer { path: path.to_path_buf(), stop, clients, accept: Some(accept) })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Blocks until [`SocketServer::shutdown`] is called from another thread
    /// (or forever: the daemon mode).
    pub fn join(mut self) {
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
    }

    /// Stops accepting, closes every client and removes the socket.
    pub fn shutdown(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.accept.take() {
            // Wakes the accept; when the socket file is gone nothing can, and
            // the thread is left behind rather than waited for.
            if UnixStream::connect(&self.path).is_ok() {
                let _ = t.join();
            }
        }
        for (_, c) in lock_clients(&self.clients).drain(..) {
            let _ = c.shutdown(std::net::Shutdown::Both);
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

impl Drop for SocketServer {
    fn drop(&mut self) {
        if self.accept.is_some() {
            self.shutdown();
        }
    }
}

/// Serves one client as a privileged connection.
///
/// Both threads write to the socket: the reader its client's replies, the
/// writer what other connections caused (watch events). Each takes the
/// output from the engine while holding the writing half's lock, so messages
/// leave in the engine's order.
fn start_client(stream: UnixStream, shared: Arc<Shared>, closed: Arc<AtomicBool>) -> io::Result<()> {
    stream.set_nonblocking(false)?;
    let conn = shared.with(|xs| xs.connect_privileged());
    let out = Arc::new(Mutex::new(stream.try_clone()?));
    let mut reader = stream;
    let (shared_r, closed_r, out_r) = (shared.clone(), closed.clone(), out.clone());
    thread::Builder::new().name("xenstored-read".into()).spawn(move || {
        read_loop(&mut reader, &shared_r, conn, &out_r);
        closed_r.store(true, Ordering::Relaxed);
        shared_r.with(|xs| xs.disconnect(conn));
        let _ = reader.shutdown(std::net::Shutdown::Both);
    })?;
    thread::Builder::new().name("xenstored-write".into()).spawn(move || {
        write_loop(&out, &shared, conn, &closed);
        let _ = lock_stream(&out).shutdown(std::net::Shutdown::Both);
    })?;
    Ok(())
}

fn lock_stream(s: &Mutex<UnixStream>) -> MutexGuard<'_, UnixStream> {
    s.lock().unwrap_or_else(PoisonError::into_inner)
}

fn send(stream: &mut UnixStream, msgs: &[Message], bytes: &mut Vec<u8>) -> io::Result<()> {
    bytes.clear();
    for m in msgs {
        m.encode_into(bytes);
    }
    stream.write_all(bytes)
}

fn read_loop(stream: &mut UnixStream, shared: &Shared, conn: ConnId, out: &Mutex<UnixStream>) {
    let mut decoder = Decoder::new();
    let mut buf = vec![0u8; 8192];
    let mut msgs = Vec::new();
    let mut bytes = Vec::new();
    loop {
        let n = match stream.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        msgs.clear();
        // An oversized packet ends the connection.
        if decoder.feed_all(buf.get(..n).unwrap_or(&[]), &mut msgs).is_err() {
            return;
        }
        if msgs.is_empty() {
            continue;
        }
        // Back-pressure: wait while the client leaves its watch events unread.
        {
            let mut xs = shared.lock();
            while xs.connection(conn).is_some_and(|c| c.outbox_len() > SOCKET_BACKLOG) {
                xs = shared.output.wait(xs).unwrap_or_else(PoisonError::into_inner);
            }
        }
        let mut w = lock_stream(out);
        let replies = shared.with_drain(conn, |xs| {
            for m in &msgs {
                xs.process(conn, m);
            }
        });
        if send(&mut w, &replies, &mut bytes).is_err() {
            return;
        }
    }
}

fn write_loop(out: &Mutex<UnixStream>, shared: &Shared, conn: ConnId, closed: &AtomicBool) {
    let mut bytes = Vec::new();
    loop {
        {
            let mut xs = shared.lock();
            loop {
                if closed.load(Ordering::Relaxed) {
                    return;
                }
                match xs.connection(conn) {
                    None => return,
                    Some(c) if c.outbox_len() > 0 => break,
                    Some(_) => {}
                }
                xs = shared
                    .output
                    .wait_timeout(xs, Duration::from_secs(1))
                    .map(|(g, _)| g)
                    .unwrap_or_else(|e| e.into_inner().0);
            }
        }
        let mut w = lock_stream(out);
        // The reader may have sent it meanwhile.
        let msgs = shared.lock().drain(conn);
        if msgs.is_empty() {
            continue;
        }
        shared.output.notify_all();
        if send(&mut w, &msgs, &mut bytes).is_err() {
            return;
        }
    }
}
