//! QMP sockets: one listening thread per socket and one thread per client.
//! A client's commands are answered in order; its events come from
//! [`VmHandle::emit`] through a clone of its socket.

use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use super::machine::VmHandle;
use super::stream::Splitter;
use super::{greeting, Session};
use crate::chardev::{bind_unix, BindError};
use crate::QmpConfig;

/// A QMP socket that could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenQmpError {
    #[error("QMP socket {}: the path exists and is not a socket", path.display())]
    PathInUse { path: PathBuf },
    #[error("QMP socket {}: cannot listen", path.display())]
    Listen { path: PathBuf, source: std::io::Error },
    #[error("QMP socket {}: cannot accept the first client", path.display())]
    Accept { path: PathBuf, source: std::io::Error },
    #[error("QMP socket {}: cannot start its thread", path.display())]
    Spawn { path: PathBuf, source: std::io::Error },
}

/// Removes the socket file when xenkvm ends.
pub struct SocketGuard(PathBuf);

impl Drop for SocketGuard {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Opens every configured QMP socket (waiting for a first client where
/// `wait=on`) and starts serving them.
pub fn start(sockets: &[QmpConfig], vm: &Arc<VmHandle>) -> Result<Vec<SocketGuard>, OpenQmpError> {
    sockets.iter().map(|s| start_one(s, vm)).collect()
}

fn start_one(cfg: &QmpConfig, vm: &Arc<VmHandle>) -> Result<SocketGuard, OpenQmpError> {
    let path = cfg.path.clone();
    let listener = bind_unix(&path).map_err(|e| match e {
        BindError::PathInUse => OpenQmpError::PathInUse { path: path.clone() },
        BindError::Listen(source) => OpenQmpError::Listen { path: path.clone(), source },
    })?;
    let guard = SocketGuard(path.clone());
    eprintln!("xenkvm: QMP on {}", path.display());
    if cfg.wait {
        eprintln!("xenkvm: waiting for a QMP client on {}", path.display());
        let (first, _) = listener.accept().map_err(|source| OpenQmpError::Accept { path: path.clone(), source })?;
        spawn_client(first, vm.clone(), &path);
    }
    let vm = vm.clone();
    let name = path.clone();
    std::thread::Builder::new()
        .name("qmp-listen".into())
        .spawn(move || {
            crate::seccomp::enter(crate::seccomp::ThreadKind::Service);
            accept_loop(&listener, &vm, &name)
        })
        .map_err(|source| OpenQmpError::Spawn { path, source })?;
    Ok(guard)
}

fn accept_loop(listener: &UnixListener, vm: &Arc<VmHandle>, path: &Path) {
    for stream in listener.incoming() {
        match stream {
            Ok(s) => spawn_client(s, vm.clone(), path),
            Err(e) => tracing::warn!("QMP {}: accept failed: {e}", path.display()),
        }
    }
}

fn spawn_client(stream: UnixStream, vm: Arc<VmHandle>, path: &Path) {
    let spawned = std::thread::Builder::new().name("qmp-client".into()).spawn(move || {
        crate::seccomp::enter(crate::seccomp::ThreadKind::Service);
        if let Err(e) = serve(stream, &vm) {
            tracing::debug!("QMP client gone: {e}");
        }
    });
    if let Err(e) = spawned {
        tracing::warn!("QMP {}: cannot serve a client: {e}", path.display());
    }
}

/// Serves one client until it disconnects.
fn serve(mut stream: UnixStream, vm: &Arc<VmHandle>) -> std::io::Result<()> {
    // Replies and events share the socket's write side, one line at a time.
    let out = Arc::new(Mutex::new(stream.try_clone()?));
    send(&out, &greeting())?;
    let mut session = Session::default();
    let mut splitter = Splitter::default();
    let mut buf = vec![0u8; 4096];
    loop {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        for piece in splitter.feed(buf.get(..n).unwrap_or_default()) {
            let was_negotiated = session.negotiated();
            let busy = vm.busy();
            let answer = session.handle(piece, vm.as_ref());
            send(&out, &answer)?;
            drop(busy);
            if session.negotiated() && !was_negotiated {
                vm.listen(out.clone());
            }
        }
    }
}

/// Writes one message as a line.
pub(super) fn send(out: &Mutex<UnixStream>, value: &serde_json::Value) -> std::io::Result<()> {
    let mut line = value.to_string();
    line.push_str("\r\n");
    out.lock().unwrap_or_else(PoisonError::into_inner).write_all(line.as_bytes())
}
