//! Character devices (`-chardev`): the host ends that the serial port and the
//! PV consoles are attached to.

use std::path::PathBuf;

/// Where a character device's bytes go and come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChardevBackend {
    /// xenkvm's standard output and input. `signal`: Ctrl-C stops xenkvm
    /// (on, the default) or goes to the guest (off, with a terminal).
    Stdio { signal: bool },
    /// A unix socket server: one client at a time gets the output and types
    /// the input. `wait`: start the guest only once a client connected.
    Socket { path: PathBuf, wait: bool },
    /// A file, created or truncated: output only.
    File { path: PathBuf },
    /// A new pseudo-terminal whose slave path is printed at start.
    Pty,
}

/// One `-chardev BACKEND,id=ID[,mux=on]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChardevConfig {
    pub id: String,
    pub backend: ChardevBackend,
    /// Several front ends (serial port, consoles, monitor) may share it.
    pub mux: bool,
}
