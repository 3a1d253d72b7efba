//! `struct hvm_start_info` (PVH boot) and the kernel command line.

use crate::shared::{read32, read64, read8};

/// `XEN_HVM_START_MAGIC_VALUE`.
pub const XEN_HVM_START_MAGIC_VALUE: u32 = 0x336e_c578;
/// Offsets in `struct hvm_start_info`.
const MAGIC: u64 = 0;
const CMDLINE_PADDR: u64 = 24;
/// Longest command line the guest looks at.
pub const CMDLINE_MAX: usize = 1024;

/// The kernel command line, copied out of guest memory.
pub struct Cmdline {
    buf: [u8; CMDLINE_MAX],
    len: usize,
}

impl Cmdline {
    pub const fn empty() -> Self {
        Self { buf: [0; CMDLINE_MAX], len: 0 }
    }

    /// The bytes of the command line.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len.min(CMDLINE_MAX)]
    }

    /// The value of the first `key=value` word with this key.
    pub fn value(&self, key: &[u8]) -> Option<&[u8]> {
        self.words().find_map(|w| {
            let rest = w.strip_prefix(key)?;
            rest.strip_prefix(b"=")
        })
    }

    fn words(&self) -> impl Iterator<Item = &[u8]> {
        self.as_bytes().split(|&b| b == b' ' || b == b'\t' || b == b'\n').filter(|w| !w.is_empty())
    }
}

/// What the guest takes from `hvm_start_info`.
pub struct StartInfo {
    /// Whether the magic value matched.
    pub magic_ok: bool,
    pub magic: u32,
    pub cmdline: Cmdline,
}

impl StartInfo {
    /// Reads the start info at physical address `paddr` (0 = none given).
    ///
    /// # Safety
    /// `paddr` must be 0 or the address the VMM passed in ebx; the command line
    /// it names must be NUL-terminated (at most `CMDLINE_MAX` bytes are read).
    pub unsafe fn read(paddr: u64) -> Self {
        let mut info = Self { magic_ok: false, magic: 0, cmdline: Cmdline::empty() };
        if paddr == 0 || paddr >= 1 << 32 {
            return info;
        }
        // SAFETY: forwarded to the caller; the identity map covers 4 GiB.
        info.magic = unsafe { read32(paddr + MAGIC) };
        info.magic_ok = info.magic == XEN_HVM_START_MAGIC_VALUE;
        if !info.magic_ok {
            return info;
        }
        // SAFETY: as above.
        let cmdline = unsafe { read64(paddr + CMDLINE_PADDR) };
        if cmdline == 0 || cmdline >= 1 << 32 {
            return info;
        }
        let mut len = 0;
        while len < CMDLINE_MAX {
            // SAFETY: the string is NUL-terminated per the caller's contract.
            let b = unsafe { read8(cmdline + len as u64) };
            if b == 0 {
                break;
            }
            info.cmdline.buf[len] = b;
            len += 1;
        }
        info.cmdline.len = len;
        info
    }
}

/// Parses a decimal number (ASCII digits only; `None` if empty, malformed or
/// out of range).
pub fn parse_u64(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() {
        return None;
    }
    let mut value: u64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        value = value.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
    }
    Some(value)
}
