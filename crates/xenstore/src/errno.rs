//! The error names of `xsd_errors[]` in xs_wire.h. Errors travel as strings: the
//! name of the errno value, NUL-terminated, in an `ERROR` message.

/// An error answered to a request, spelled on the wire as xenstored spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, thiserror::Error)]
pub enum Errno {
    #[error("EINVAL")]
    Inval,
    #[error("EACCES")]
    Acces,
    #[error("EEXIST")]
    Exist,
    #[error("EISDIR")]
    IsDir,
    #[error("ENOENT")]
    NoEnt,
    #[error("ENOMEM")]
    NoMem,
    #[error("ENOSPC")]
    NoSpc,
    #[error("EIO")]
    Io,
    #[error("ENOTEMPTY")]
    NotEmpty,
    #[error("ENOSYS")]
    NoSys,
    #[error("EROFS")]
    RoFs,
    #[error("EBUSY")]
    Busy,
    #[error("EAGAIN")]
    Again,
    #[error("EISCONN")]
    IsConn,
    #[error("E2BIG")]
    TooBig,
    #[error("EPERM")]
    Perm,
}

impl Errno {
    /// Every error, in the order of `xsd_errors[]`.
    pub const ALL: [Errno; 16] = [
        Errno::Inval,
        Errno::Acces,
        Errno::Exist,
        Errno::IsDir,
        Errno::NoEnt,
        Errno::NoMem,
        Errno::NoSpc,
        Errno::Io,
        Errno::NotEmpty,
        Errno::NoSys,
        Errno::RoFs,
        Errno::Busy,
        Errno::Again,
        Errno::IsConn,
        Errno::TooBig,
        Errno::Perm,
    ];

    /// The wire name, e.g. `"ENOENT"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Errno::Inval => "EINVAL",
            Errno::Acces => "EACCES",
            Errno::Exist => "EEXIST",
            Errno::IsDir => "EISDIR",
            Errno::NoEnt => "ENOENT",
            Errno::NoMem => "ENOMEM",
            Errno::NoSpc => "ENOSPC",
            Errno::Io => "EIO",
            Errno::NotEmpty => "ENOTEMPTY",
            Errno::NoSys => "ENOSYS",
            Errno::RoFs => "EROFS",
            Errno::Busy => "EBUSY",
            Errno::Again => "EAGAIN",
            Errno::IsConn => "EISCONN",
            Errno::TooBig => "E2BIG",
            Errno::Perm => "EPERM",
        }
    }

    /// The error named `name`, if it is one of `xsd_errors[]`.
    pub fn from_name(name: &str) -> Option<Errno> {
        Errno::ALL.iter().copied().find(|e| e.as_str() == name)
    }

    /// The Linux errno number (what libxenstore's callers see in `errno`).
    pub fn code(self) -> i32 {
        match self {
            Errno::Perm => 1,
            Errno::NoEnt => 2,
            Errno::Io => 5,
            Errno::TooBig => 7,
            Errno::Again => 11,
            Errno::NoMem => 12,
            Errno::Acces => 13,
            Errno::Busy => 16,
            Errno::Exist => 17,
            Errno::IsDir => 21,
            Errno::Inval => 22,
            Errno::NoSpc => 28,
            Errno::RoFs => 30,
            Errno::NoSys => 38,
            Errno::NotEmpty => 39,
            Errno::IsConn => 106,
        }
    }
}
