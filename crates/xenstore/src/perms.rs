//! Node permissions: an owner plus an ACL of `n`/`r`/`w`/`b` entries.
//!
//! The first entry names the owner, who always has full access; its access
//! letter is the default for every domain without an entry of its own. Later
//! entries grant a domain read and/or write access. Privileged callers (dom0:
//! the VMM, its backends and the unix-socket clients) may do anything. A domain
//! that was given a target by `SET_TARGET` also acts with its target's rights.
//!
//! Entries for domains that no longer exist are ignored (and removed on domain
//! destruction) so that a later domain reusing the domid does not inherit them
//! (XSA-322).

use crate::errno::Errno;

/// `DOMID_ANY`: an entry that matches every domain.
pub const DOMID_ANY: u32 = 0x7FF5;
/// `DOMID_SELF`.
pub const DOMID_SELF: u32 = 0x7FF0;

/// Access rights as bits: read 1, write 2, owner 8 (`XS_PERM_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Access(u8);

impl Access {
    pub const NONE: Access = Access(0);
    pub const READ: Access = Access(1);
    pub const WRITE: Access = Access(2);
    pub const BOTH: Access = Access(3);
    pub const OWNER: Access = Access(8);
    pub const ALL: Access = Access(11);

    pub fn bits(self) -> u8 {
        self.0
    }

    pub fn contains(self, other: Access) -> bool {
        self.0 & other.0 == other.0
    }

    pub fn union(self, other: Access) -> Access {
        Access(self.0 | other.0)
    }

    /// The letter of the wire format (owner bit not shown).
    pub fn letter(self) -> u8 {
        match self.0 & 3 {
            1 => b'r',
            2 => b'w',
            3 => b'b',
            _ => b'n',
        }
    }

    fn from_letter(c: u8) -> Option<Access> {
        match c {
            b'n' => Some(Access::NONE),
            b'r' => Some(Access::READ),
            b'w' => Some(Access::WRITE),
            b'b' => Some(Access::BOTH),
            _ => None,
        }
    }
}

/// One entry: a domain and its rights. `ignored` marks an entry whose domain
/// did not exist when the node was last written (`XS_PERM_IGNORE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Perm {
    pub domid: u32,
    pub access: Access,
    pub ignored: bool,
}

impl Perm {
    pub fn new(domid: u32, access: Access) -> Perm {
        Perm { domid, access, ignored: false }
    }

    /// `r5`, `n0`, … as xenstored prints it (`%i`, so huge ids show negative).
    pub fn to_wire(self) -> String {
        format!("{}{}", char::from(self.access.letter()), self.domid as i32)
    }

    /// Parses one entry as `xenstore_strings_to_perms` does: a letter, then a
    /// `strtol(…, 0)` number filling the rest of the string.
    pub fn parse(s: &[u8]) -> Result<Perm, Errno> {
        let (&letter, num) = s.split_first().ok_or(Errno::Inval)?;
        let access = Access::from_letter(letter).ok_or(Errno::Inval)?;
        let domid = parse_c_long(num).ok_or(Errno::Inval)?;
        Ok(Perm::new(domid, access))
    }
}

/// `strtol(s, &end, 0)` that must consume all of a non-empty `s`; the result is
/// truncated to 32 bits as the C assignment to `unsigned int` does.
fn parse_c_long(s: &[u8]) -> Option<u32> {
    if s.is_empty() {
        return None;
    }
    let start = s.iter().position(|b| !b.is_ascii_whitespace())?;
    let body = s.get(start..)?;
    let (neg, body) = match body.first() {
        Some(b'-') => (true, body.get(1..)?),
        Some(b'+') => (false, body.get(1..)?),
        _ => (false, body),
    };
    let (radix, digits) = if body.len() > 2 && (body.starts_with(b"0x") || body.starts_with(b"0X")) {
        (16, body.get(2..)?)
    } else if body.len() > 1 && body.starts_with(b"0") {
        (8, body.get(1..)?)
    } else {
        (10, body)
    };
    if digits.is_empty() {
        return None;
    }
    let mut v: i64 = 0;
    for &b in digits {
        let d = char::from(b).to_digit(radix)?;
        v = v.saturating_mul(i64::from(radix)).saturating_add(i64::from(d));
    }
    let v = if neg { v.wrapping_neg() } else { v };
    Some(v as u32)
}

/// The permissions of a node: never empty, the first entry is the owner.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Perms(Vec<Perm>);

impl Perms {
    /// Owned by `owner`, with `default` access for everybody else.
    pub fn owned(owner: u32, default: Access) -> Perms {
        Perms(vec![Perm::new(owner, default)])
    }

    /// From a list of entries; `None` if empty.
    pub fn from_vec(v: Vec<Perm>) -> Option<Perms> {
        if v.is_empty() {
            None
        } else {
            Some(Perms(v))
        }
    }

    /// Parses the `<perm-as-string>|+` list of `SET_PERMS`.
    pub fn parse_list(strings: &[&[u8]]) -> Result<Perms, Errno> {
        let v = strings.iter().map(|s| Perm::parse(s)).collect::<Result<Vec<_>, _>>()?;
        Perms::from_vec(v).ok_or(Errno::Inval)
    }

    pub fn entries(&self) -> &[Perm] {
        &self.0
    }

    pub fn entries_mut(&mut self) -> &mut Vec<Perm> {
        &mut self.0
    }

    pub fn owner(&self) -> u32 {
        self.0.first().map_or(0, |p| p.domid)
    }

    pub fn set_owner(&mut self, domid: u32) {
        if let Some(p) = self.0.first_mut() {
            p.domid = domid;
        }
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The `GET_PERMS` reply: each entry NUL-terminated.
    pub fn to_wire(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for p in &self.0 {
            out.extend_from_slice(p.to_wire().as_bytes());
            out.push(0);
        }
        out
    }
}

/// Who is asking, for permission checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subject {
    pub domid: u32,
    pub privileged: bool,
    /// The domain this one may act for (`SET_TARGET`).
    pub target: Option<u32>,
}

impl Subject {
    fn matches(&self, domid: u32) -> bool {
        domid == self.domid || self.target == Some(domid) || domid == DOMID_ANY
    }

    /// The rights of this subject on a node with `perms` (`perm_for_conn`).
    /// `live(domid)` tells whether an ACL entry's domain still counts (it
    /// existed when the node was last written).
    pub fn access(&self, perms: &Perms, live: impl Fn(u32) -> bool) -> Access {
        if self.privileged || self.matches(perms.owner()) {
            return Access::ALL;
        }
        for p in perms.entries().iter().skip(1) {
            if !p.ignored && live(p.domid) && self.matches(p.domid) {
                return Access(p.access.bits() & 3);
            }
        }
        Access(perms.entries().first().map_or(0, |p| p.access.bits() & 3))
    }
}
