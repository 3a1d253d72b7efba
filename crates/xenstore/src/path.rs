//! Path syntax: validation, canonicalisation of relative paths, parents and
//! children, following xenstored's `canonicalize()` and docs/misc/xenstore.txt.
//!
//! A path is `/`-separated, starts with `/` (or `@` for the special watch paths)
//! and uses only ASCII alphanumerics and `-/_@`. Doubled and trailing slashes are
//! forbidden (except the root `/`). A relative path (not starting with `/` or
//! `@`) is taken relative to the connection's domain path `/local/domain/<domid>`.
//! The length check happens after prefixing (XSA-323).

use crate::errno::Errno;
use crate::wire::XENSTORE_ABS_PATH_MAX;

/// The special watch path fired when a domain is introduced.
pub const INTRODUCE_DOMAIN: &str = "@introduceDomain";
/// The special watch path fired when a domain is released or shuts down.
pub const RELEASE_DOMAIN: &str = "@releaseDomain";

/// `/local/domain/<domid>`.
pub fn domain_path(domid: u32) -> String {
    format!("/local/domain/{domid}")
}

/// Whether every byte is an ASCII alphanumeric or one of `-/_@`.
pub fn valid_chars(p: &[u8]) -> bool {
    p.iter().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'/' | b'_' | b'@'))
}

/// Length of a leading `/local/domain/<up to 5 digits>/`, else 0 (the part of a
/// path that the `path-max` quota does not count).
fn local_off(name: &str) -> usize {
    const PREFIX: &str = "/local/domain/";
    let Some(rest) = name.strip_prefix(PREFIX) else { return 0 };
    let digits = rest.bytes().take(5).take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return 0;
    }
    match rest.as_bytes().get(digits) {
        Some(b'/') => PREFIX.len() + digits + 1,
        _ => 0,
    }
}

/// Canonicalises a path as received on the wire (without its NUL).
///
/// `implicit` is the base of relative paths (`/local/domain/<domid>`),
/// `allow_special` admits `@…` paths, and `path_max` is the `path-max` quota of
/// an unprivileged caller (counted without a `/local/domain/<id>/` prefix).
/// Returns the absolute path and whether the input was relative.
pub fn canonicalize(
    raw: &[u8],
    implicit: &str,
    allow_special: bool,
    path_max: Option<usize>,
) -> Result<(String, bool), Errno> {
    if !valid_chars(raw) || (raw.first() == Some(&b'@') && !allow_special) {
        return Err(Errno::Inval);
    }
    // valid_chars() guarantees ASCII.
    let text = std::str::from_utf8(raw).map_err(|_| Errno::Inval)?;
    let relative = !matches!(raw.first(), Some(b'/') | Some(b'@'));
    let name = if relative { format!("{implicit}/{text}") } else { text.to_string() };
    if (name.ends_with('/') && name != "/") || name.contains("//") || name.len() > XENSTORE_ABS_PATH_MAX {
        return Err(Errno::Inval);
    }
    if let Some(max) = path_max {
        if name.len() - local_off(&name) > max {
            return Err(Errno::Inval);
        }
    }
    Ok((name, relative))
}

/// The parent of a canonical path (`get_parent()`): `/a/b` → `/a`, `/a` → `/`,
/// and, as in xenstored, `@special` → `/`. The root has none.
pub fn parent(path: &str) -> Option<&str> {
    if path == "/" {
        return None;
    }
    let tail = path.get(1..).unwrap_or("");
    match tail.rfind('/') {
        Some(pos) => path.get(..pos + 1),
        None => Some("/"),
    }
}

/// The last component of a canonical path other than the root.
pub fn basename(path: &str) -> &str {
    match path.rfind('/') {
        Some(pos) => path.get(pos + 1..).unwrap_or(""),
        None => path,
    }
}

/// `parent/name`, without a doubled slash under the root.
pub fn child(parent: &str, name: &str) -> String {
    if parent == "/" {
        format!("/{name}")
    } else {
        format!("{parent}/{name}")
    }
}

/// Whether `child` is `parent` or below it, within `depth` levels if given
/// (watch matching, `is_child()` in xenstored's watch.c).
pub fn is_child(child: &str, parent: &str, depth: Option<u32>) -> bool {
    let Some(rest) = child.strip_prefix(parent) else { return false };
    if parent.len() > 1 && !rest.is_empty() && !rest.starts_with('/') {
        return false;
    }
    let Some(depth) = depth else { return true };
    if rest.is_empty() {
        return true;
    }
    // Levels below `parent`: the root counts its first component as a level.
    let levels = rest.split('/').filter(|c| !c.is_empty()).count();
    levels <= depth as usize
}
