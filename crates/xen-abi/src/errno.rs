//! `xen/include/public/errno.h`: the values Xen returns, negated, in `rax`.

/// A Xen error number. Hypercalls return `-(errno)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(i32)]
pub enum XenErrno {
    Eperm = 1,
    Enoent = 2,
    Esrch = 3,
    Eintr = 4,
    Eio = 5,
    Enxio = 6,
    E2big = 7,
    Eagain = 11,
    Enomem = 12,
    Eacces = 13,
    Efault = 14,
    Ebusy = 16,
    Eexist = 17,
    Enodev = 19,
    Einval = 22,
    Enospc = 28,
    Erange = 34,
    Enosys = 38,
    Etime = 62,
    Eoverflow = 75,
    Eopnotsupp = 95,
    Etimedout = 110,
}

impl XenErrno {
    /// The value a hypercall leaves in `rax` for this error.
    pub fn to_ret(self) -> i64 {
        -(self as i64)
    }

    /// The symbolic name, as Xen's `errno.h` spells it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Eperm => "EPERM",
            Self::Enoent => "ENOENT",
            Self::Esrch => "ESRCH",
            Self::Eintr => "EINTR",
            Self::Eio => "EIO",
            Self::Enxio => "ENXIO",
            Self::E2big => "E2BIG",
            Self::Eagain => "EAGAIN",
            Self::Enomem => "ENOMEM",
            Self::Eacces => "EACCES",
            Self::Efault => "EFAULT",
            Self::Ebusy => "EBUSY",
            Self::Eexist => "EEXIST",
            Self::Enodev => "ENODEV",
            Self::Einval => "EINVAL",
            Self::Enospc => "ENOSPC",
            Self::Erange => "ERANGE",
            Self::Enosys => "ENOSYS",
            Self::Etime => "ETIME",
            Self::Eoverflow => "EOVERFLOW",
            Self::Eopnotsupp => "EOPNOTSUPP",
            Self::Etimedout => "ETIMEDOUT",
        }
    }
}

impl std::fmt::Display for XenErrno {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "-{} ({})", self.name(), *self as i32)
    }
}
