//! Host ends of character devices (`-chardev`): standard I/O, a unix socket
//! server (one client at a time), an output file, or a new pseudo-terminal.
//!
//! They are opened once per process ([`open`]) and outlive guest reboots; each
//! run of the guest tells a chardev where its input goes ([`Chardev::set_target`]).
//! Input of a stdio chardev comes from the `stdin` module's reader; sockets
//! and ptys have one reader thread each, detached like the stdin reader.
//! Output never blocks the guest for long: a socket client that does not read
//! for a while is dropped, and a full pty drops output.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::stdin::InputTarget;
use crate::{ChardevBackend, SerialConfig, VmConfig};

/// A socket client that cannot take output for this long is dropped.
const CLIENT_WRITE_TIMEOUT: Duration = Duration::from_millis(500);

/// A chardev that could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenChardevError {
    #[error("chardev {id}: cannot create {}", path.display())]
    CreateFile { id: String, path: PathBuf, source: std::io::Error },
    #[error("chardev {id}: cannot listen on {}", path.display())]
    Listen { id: String, path: PathBuf, source: std::io::Error },
    #[error("chardev {id}: {} exists and is not a socket", path.display())]
    PathInUse { id: String, path: PathBuf },
    #[error("chardev {id}: cannot accept the first client on {}", path.display())]
    Accept { id: String, path: PathBuf, source: std::io::Error },
    #[error("chardev {id}: cannot open a pseudo-terminal")]
    OpenPty { id: String, source: std::io::Error },
    #[error("chardev {id}: cannot start its reader thread")]
    SpawnReader { id: String, source: std::io::Error },
}

enum Kind {
    Stdio,
    File(Mutex<File>),
    Socket(Mutex<Option<UnixStream>>),
    Pty(File),
}

/// One opened character device.
pub struct Chardev {
    pub id: String,
    kind: Kind,
    target: Mutex<Option<InputTarget>>,
}

impl Chardev {
    /// Standard output and input (`-serial stdio`, or hvc0 without `-device xen-console`).
    pub fn stdio(id: &str) -> Arc<Self> {
        Arc::new(Self { id: id.to_owned(), kind: Kind::Stdio, target: Mutex::new(None) })
    }

    /// Whether this is standard I/O.
    pub fn is_stdio(&self) -> bool {
        matches!(self.kind, Kind::Stdio)
    }

    /// Sends guest output; dropped where nobody listens.
    pub fn write(&self, bytes: &[u8]) {
        match &self.kind {
            Kind::Stdio => {
                let mut out = std::io::stdout().lock();
                let _ = out.write_all(bytes);
                let _ = out.flush();
            }
            Kind::File(f) => {
                if let Ok(mut f) = f.lock() {
                    let _ = f.write_all(bytes);
                }
            }
            Kind::Socket(client) => {
                let Ok(mut client) = client.lock() else { return };
                if let Some(stream) = client.as_mut() {
                    if stream.write_all(bytes).is_err() {
                        tracing::info!("chardev {}: dropping a client that does not read", self.id);
                        let _ = stream.shutdown(std::net::Shutdown::Both);
                        *client = None;
                    }
                }
            }
            // Non-blocking: what the terminal has no room for is lost.
            Kind::Pty(master) => {
                let _ = (&*master).write(bytes);
            }
        }
    }

    /// Directs input typed into this chardev to `target` from now on.
    pub fn set_target(&self, target: InputTarget) {
        if self.is_stdio() {
            crate::stdin::forward(target);
        } else if let Ok(mut t) = self.target.lock() {
            *t = Some(target);
        }
    }

    /// Hands `bytes` to the current target, waiting while it is full.
    fn deliver(&self, mut rest: &[u8]) {
        while !rest.is_empty() {
            let target = self.target.lock().ok().and_then(|t| t.clone());
            let Some(target) = target else { return };
            let taken = target.receive(rest);
            rest = rest.get(taken..).unwrap_or(&[]);
            if taken == 0 {
                std::thread::sleep(Duration::from_millis(2));
            }
        }
    }
}

/// `serial` as `io::Write` (COM1's transmitter).
pub enum SerialOut {
    Stdout(crate::console::LineFlushedStdout),
    Chardev(Arc<Chardev>),
}

impl Write for SerialOut {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            SerialOut::Stdout(s) => s.write(buf),
            SerialOut::Chardev(c) if c.is_stdio() => crate::console::LineFlushedStdout.write(buf),
            SerialOut::Chardev(c) => {
                c.write(buf);
                Ok(buf.len())
            }
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            SerialOut::Chardev(c) if !c.is_stdio() => Ok(()),
            _ => std::io::stdout().flush(),
        }
    }
}

static OPEN: Mutex<Vec<Arc<Chardev>>> = Mutex::new(Vec::new());

/// Opens every chardev of `cfg` (once per process: a reboot keeps them).
pub fn open(cfg: &VmConfig) -> Result<(), OpenChardevError> {
    let mut opened = Vec::new();
    for c in &cfg.chardevs {
        if let Some(existing) = get(&c.id) {
            opened.push(existing);
            continue;
        }
        let dev = match &c.backend {
            ChardevBackend::Stdio { signal } => {
                raw_terminal(*signal);
                Chardev::stdio(&c.id)
            }
            ChardevBackend::File { path } => {
                let f = File::create(path).map_err(|source| OpenChardevError::CreateFile {
                    id: c.id.clone(),
                    path: path.clone(),
                    source,
                })?;
                Arc::new(Chardev { id: c.id.clone(), kind: Kind::File(Mutex::new(f)), target: Mutex::new(None) })
            }
            ChardevBackend::Socket { path, wait } => open_socket(&c.id, path, *wait)?,
            ChardevBackend::Pty => open_pty(&c.id)?,
        };
        opened.push(dev);
    }
    if let Ok(mut all) = OPEN.lock() {
        *all = opened;
    }
    Ok(())
}

/// The opened chardev `id`.
pub fn get(id: &str) -> Option<Arc<Chardev>> {
    OPEN.lock().ok()?.iter().find(|c| c.id == id).cloned()
}

/// Where COM1's output goes, or `None` for no serial port.
pub fn serial_output(cfg: &VmConfig) -> Option<SerialOut> {
    match &cfg.serial {
        SerialConfig::None => None,
        SerialConfig::Stdio => Some(SerialOut::Stdout(crate::console::LineFlushedStdout)),
        SerialConfig::Chardev(id) => match get(id) {
            Some(c) => Some(SerialOut::Chardev(c)),
            None => {
                tracing::warn!("-serial chardev:{id}: no such chardev; no serial port");
                None
            }
        },
    }
}

/// The chardev of the serial port (stdio for `-serial stdio`).
pub fn serial_chardev(cfg: &VmConfig) -> Option<Arc<Chardev>> {
    match &cfg.serial {
        SerialConfig::None => None,
        SerialConfig::Stdio => Some(Chardev::stdio("serial0")),
        SerialConfig::Chardev(id) => get(id),
    }
}

/// The chardev of console `index` (0: hvc0, stdio when no `-device xen-console`).
pub fn console_chardev(cfg: &VmConfig, index: usize) -> Option<Arc<Chardev>> {
    match cfg.consoles.get(index) {
        Some(id) => get(id),
        None if index == 0 && cfg.consoles.is_empty() => Some(Chardev::stdio("hvc0")),
        None => None,
    }
}

/// The same host end: the same chardev, or both standard I/O.
pub fn same(a: &Chardev, b: &Chardev) -> bool {
    a.id == b.id || (a.is_stdio() && b.is_stdio())
}

/// The terminal settings before [`raw_terminal`], restored at exit.
static SAVED_TERMINAL: std::sync::OnceLock<libc::termios> = std::sync::OnceLock::new();

/// Puts a terminal on stdin in raw mode as QEMU's stdio chardev does (no echo,
/// no line editing; with `signal` false, Ctrl-C goes to the guest), and
/// restores it at exit or on a terminating signal. Nothing happens without a terminal.
fn raw_terminal(signal: bool) {
    // SAFETY: isatty only inspects fd 0.
    if unsafe { libc::isatty(0) } != 1 || SAVED_TERMINAL.get().is_some() {
        return;
    }
    // SAFETY: termios is plain data, filled by tcgetattr before it is used.
    let mut t: libc::termios = unsafe { std::mem::zeroed() };
    // SAFETY: fd 0 is a terminal; t is a valid termios.
    if unsafe { libc::tcgetattr(0, &mut t) } != 0 || SAVED_TERMINAL.set(t).is_err() {
        return;
    }
    t.c_iflag &= !(libc::IGNBRK | libc::BRKINT | libc::PARMRK | libc::ISTRIP | libc::INLCR | libc::IGNCR | libc::ICRNL | libc::IXON);
    t.c_oflag |= libc::OPOST;
    t.c_lflag &= !(libc::ECHO | libc::ECHONL | libc::ICANON | libc::IEXTEN);
    if !signal {
        t.c_lflag &= !libc::ISIG;
    }
    t.c_cflag = (t.c_cflag & !(libc::CSIZE | libc::PARENB)) | libc::CS8;
    t.c_cc[libc::VMIN] = 1;
    t.c_cc[libc::VTIME] = 0;
    // SAFETY: restore_terminal and restore_and_die only call async-signal-safe
    // functions on data set before they were registered.
    unsafe {
        libc::atexit(restore_terminal);
        for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT] {
            libc::signal(sig, restore_and_die as extern "C" fn(libc::c_int) as libc::sighandler_t);
        }
        libc::tcsetattr(0, libc::TCSANOW, &t);
    }
}

extern "C" fn restore_terminal() {
    if let Some(t) = SAVED_TERMINAL.get() {
        // SAFETY: t is the termios tcgetattr returned for fd 0.
        unsafe { libc::tcsetattr(0, libc::TCSANOW, t) };
    }
}

extern "C" fn restore_and_die(sig: libc::c_int) {
    restore_terminal();
    // SAFETY: back to the default action, then the same signal again: the
    // process ends as it would have without the handler.
    unsafe {
        libc::signal(sig, libc::SIG_DFL);
        libc::raise(sig);
    }
}

/// Why a unix socket server could not start.
#[derive(Debug)]
pub(crate) enum BindError {
    /// The path exists and is not a socket.
    PathInUse,
    Listen(std::io::Error),
}

/// Listens on `path`. A stale socket from an earlier run is replaced;
/// anything else at that path is kept.
pub(crate) fn bind_unix(path: &Path) -> Result<UnixListener, BindError> {
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            return Err(BindError::PathInUse);
        }
        let _ = std::fs::remove_file(path);
    }
    UnixListener::bind(path).map_err(BindError::Listen)
}

pub(crate) fn open_socket(id: &str, path: &Path, wait: bool) -> Result<Arc<Chardev>, OpenChardevError> {
    let listener = bind_unix(path).map_err(|e| match e {
        BindError::PathInUse => OpenChardevError::PathInUse { id: id.to_owned(), path: path.to_owned() },
        BindError::Listen(source) => OpenChardevError::Listen { id: id.to_owned(), path: path.to_owned(), source },
    })?;
    let dev = Arc::new(Chardev { id: id.to_owned(), kind: Kind::Socket(Mutex::new(None)), target: Mutex::new(None) });
    let first = if wait {
        eprintln!("xenkvm: waiting for connection on: disconnected:unix:{},server=on", path.display());
        let (s, _) = listener.accept().map_err(|source| OpenChardevError::Accept {
            id: id.to_owned(),
            path: path.to_owned(),
            source,
        })?;
        Some(s)
    } else {
        None
    };
    let reader = dev.clone();
    std::thread::Builder::new()
        .name(format!("chardev-{id}"))
        .spawn(move || {
            crate::seccomp::enter(crate::seccomp::ThreadKind::Service);
            serve_socket(&reader, &listener, first)
        })
        .map_err(|source| OpenChardevError::SpawnReader { id: id.to_owned(), source })?;
    Ok(dev)
}

/// Takes one client at a time: its input goes to the guest until it hangs up.
fn serve_socket(dev: &Chardev, listener: &UnixListener, mut next: Option<UnixStream>) {
    let Kind::Socket(client) = &dev.kind else { return };
    loop {
        let stream = match next.take() {
            Some(s) => s,
            None => match listener.accept() {
                Ok((s, _)) => s,
                Err(e) => {
                    tracing::warn!("chardev {}: accept: {e}", dev.id);
                    std::thread::sleep(Duration::from_millis(100));
                    continue;
                }
            },
        };
        let writer = stream.try_clone().and_then(|w| w.set_write_timeout(Some(CLIENT_WRITE_TIMEOUT)).map(|()| w));
        match writer {
            Ok(w) => {
                if let Ok(mut c) = client.lock() {
                    *c = Some(w);
                }
            }
            Err(e) => {
                tracing::warn!("chardev {}: client: {e}", dev.id);
                continue;
            }
        }
        tracing::info!("chardev {}: client connected", dev.id);
        let mut reader = stream;
        let mut buf = [0u8; 256];
        loop {
            match reader.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => dev.deliver(buf.get(..n).unwrap_or(&[])),
            }
        }
        if let Ok(mut c) = client.lock() {
            *c = None;
        }
        tracing::info!("chardev {}: client disconnected", dev.id);
    }
}

fn open_pty(id: &str) -> Result<Arc<Chardev>, OpenChardevError> {
    let err = |source| OpenChardevError::OpenPty { id: id.to_owned(), source };
    let (master, name) = new_pty().map_err(err)?;
    eprintln!("char device redirected to {name} (label {id})");
    let reader = master.try_clone().map_err(err)?;
    let dev = Arc::new(Chardev { id: id.to_owned(), kind: Kind::Pty(master), target: Mutex::new(None) });
    let dev2 = dev.clone();
    std::thread::Builder::new()
        .name(format!("chardev-{id}"))
        .spawn(move || {
            crate::seccomp::enter(crate::seccomp::ThreadKind::Worker);
            read_pty(&dev2, reader)
        })
        .map_err(|source| OpenChardevError::SpawnReader { id: id.to_owned(), source })?;
    Ok(dev)
}

/// A new pty master (non-blocking, its slave in raw mode) and the slave's path.
fn new_pty() -> std::io::Result<(File, String)> {
    let last = std::io::Error::last_os_error;
    // SAFETY: posix_openpt takes flags only; a non-negative result is a new fd we own.
    let fd = unsafe { libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY | libc::O_NONBLOCK | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(last());
    }
    // SAFETY: fd was just opened and is owned by nothing else.
    let master = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut name = [0 as libc::c_char; 128];
    // SAFETY: plain calls on our master fd; ptsname_r writes at most name.len() bytes into name.
    let ok = unsafe {
        libc::grantpt(master.as_raw_fd()) == 0
            && libc::unlockpt(master.as_raw_fd()) == 0
            && libc::ptsname_r(master.as_raw_fd(), name.as_mut_ptr(), name.len()) == 0
    };
    if !ok {
        return Err(last());
    }
    // SAFETY: ptsname_r succeeded, so name holds a NUL-terminated string.
    let name = unsafe { std::ffi::CStr::from_ptr(name.as_ptr()) }.to_string_lossy().into_owned();
    let slave = std::fs::OpenOptions::new().read(true).write(true).open(&name)?;
    // SAFETY: termios is plain data filled by tcgetattr on our slave fd before use.
    unsafe {
        let mut t: libc::termios = std::mem::zeroed();
        if libc::tcgetattr(slave.as_raw_fd(), &mut t) == 0 {
            libc::cfmakeraw(&mut t);
            libc::tcsetattr(slave.as_raw_fd(), libc::TCSANOW, &t);
        }
    }
    // The slave stays closed until a user opens it; the master then reads EIO (retried).
    drop(slave);
    Ok((File::from(master), name))
}

/// Reads what the user types into the pty, waiting with poll (the fd is non-blocking).
fn read_pty(dev: &Chardev, mut master: File) {
    let mut buf = [0u8; 256];
    loop {
        let mut pfd = libc::pollfd { fd: master.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        // SAFETY: one valid pollfd, for the duration of the call.
        let ready = unsafe { libc::poll(&mut pfd, 1, 200) };
        if ready <= 0 || pfd.revents & libc::POLLHUP != 0 {
            // Nobody has the slave open (POLLHUP) or nothing came: look again later.
            if pfd.revents & libc::POLLHUP != 0 {
                std::thread::sleep(Duration::from_millis(100));
            }
            continue;
        }
        match master.read(&mut buf) {
            Ok(n) if n > 0 => dev.deliver(buf.get(..n).unwrap_or(&[])),
            _ => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

#[cfg(test)]
mod tests;
