//! A minimal writer of initramfs images: the "newc" cpio format the Linux kernel
//! unpacks (`Documentation/driver-api/early-userspace/buffer-format.rst`),
//! gzipped with the `gzip` command.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use anyhow::{bail, ensure, Context, Result};

const S_IFDIR: u32 = 0o040_000;
const S_IFREG: u32 = 0o100_000;
const S_IFLNK: u32 = 0o120_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    Dir,
    File { mode: u32, data: Vec<u8> },
    Symlink(String),
}

/// The files of an image, keyed by path without the leading `/`. Parents are
/// created on demand; the sorted order puts every directory before its content.
#[derive(Debug, Default, Clone)]
pub struct Archive {
    nodes: BTreeMap<String, Node>,
}

fn normalise(path: &str) -> Result<String> {
    let p = path.trim_start_matches('/').trim_end_matches('/');
    ensure!(!p.is_empty(), "empty path in the image");
    ensure!(!p.split('/').any(|c| c.is_empty() || c == "." || c == ".."), "bad image path {path:?}");
    Ok(p.to_string())
}

impl Archive {
    pub fn new() -> Self {
        Self::default()
    }

    fn insert(&mut self, path: &str, node: Node) -> Result<()> {
        let p = normalise(path)?;
        let mut parent = String::new();
        for comp in p.split('/').collect::<Vec<_>>().split_last().map_or(&[][..], |(_, rest)| rest) {
            if !parent.is_empty() {
                parent.push('/');
            }
            parent.push_str(comp);
            match self.nodes.get(&parent) {
                None => {
                    self.nodes.insert(parent.clone(), Node::Dir);
                }
                Some(Node::Dir) => {}
                Some(_) => bail!("{parent:?} is not a directory in the image"),
            }
        }
        match (self.nodes.get(&p), &node) {
            (Some(Node::Dir), Node::Dir) => {}
            (Some(Node::Dir), _) => bail!("{p:?} is a directory in the image"),
            _ => {
                self.nodes.insert(p, node);
            }
        }
        Ok(())
    }

    pub fn dir(&mut self, path: &str) -> Result<()> {
        self.insert(path, Node::Dir)
    }

    pub fn file(&mut self, path: &str, mode: u32, data: impl Into<Vec<u8>>) -> Result<()> {
        self.insert(path, Node::File { mode: mode & 0o7777, data: data.into() })
    }

    /// Copies a host file (following symlinks) into the image at `path`.
    pub fn host_file(&mut self, path: &str, host: &Path) -> Result<()> {
        use std::os::unix::fs::PermissionsExt;
        let data = std::fs::read(host).with_context(|| format!("cannot read {}", host.display()))?;
        let mode = std::fs::metadata(host)?.permissions().mode();
        self.file(path, mode, data)
    }

    pub fn symlink(&mut self, path: &str, target: &str) -> Result<()> {
        self.insert(path, Node::Symlink(target.to_string()))
    }

    /// Every path, with a leading `/`, in archive order.
    #[cfg(test)]
    pub fn paths(&self) -> Vec<String> {
        self.nodes.keys().map(|k| format!("/{k}")).collect()
    }

    #[cfg(test)]
    pub fn get(&self, path: &str) -> Option<&Node> {
        self.nodes.get(path.trim_start_matches('/'))
    }

    /// The uncompressed newc archive, ending with the `TRAILER!!!` entry.
    pub fn to_newc(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for (ino, (name, node)) in self.nodes.iter().enumerate() {
            let (mode, nlink, data): (u32, u32, &[u8]) = match node {
                Node::Dir => (S_IFDIR | 0o755, 2, &[]),
                Node::File { mode, data } => (S_IFREG | mode, 1, data),
                Node::Symlink(target) => (S_IFLNK | 0o777, 1, target.as_bytes()),
            };
            entry(&mut out, u32::try_from(ino + 1).unwrap_or(u32::MAX), mode, nlink, name, data);
        }
        entry(&mut out, 0, 0, 1, "TRAILER!!!", &[]);
        out
    }

    /// Writes the archive gzipped to `dest` (through `<dest>.cpio` and `gzip`).
    pub fn write_gz(&self, dest: &Path) -> Result<()> {
        let raw = dest.with_extension("").with_extension("cpio");
        ensure!(raw != dest, "{} must end in .gz", dest.display());
        std::fs::write(&raw, self.to_newc()).with_context(|| format!("cannot write {}", raw.display()))?;
        let gz = std::fs::File::create(dest).with_context(|| format!("cannot create {}", dest.display()))?;
        let status = Command::new("gzip")
            .args(["-c", "-6", "-n"])
            .arg(&raw)
            .stdout(gz)
            .status()
            .context("cannot run gzip (install the gzip package)")?;
        ensure!(status.success(), "gzip {} failed with {status}", raw.display());
        std::fs::remove_file(&raw)?;
        Ok(())
    }
}

fn pad4(out: &mut Vec<u8>) {
    let padded = out.len().next_multiple_of(4);
    out.resize(padded, 0);
}

fn entry(out: &mut Vec<u8>, ino: u32, mode: u32, nlink: u32, name: &str, data: &[u8]) {
    let size = u32::try_from(data.len()).expect("file larger than 4 GiB in an initramfs");
    let namesize = u32::try_from(name.len() + 1).expect("path too long");
    // magic, then ino mode uid gid nlink mtime filesize devmajor devminor
    // rdevmajor rdevminor namesize check, 8 hex digits each.
    out.extend_from_slice(b"070701");
    for v in [ino, mode, 0, 0, nlink, 0, size, 0, 0, 0, 0, namesize, 0] {
        out.extend_from_slice(format!("{v:08X}").as_bytes());
    }
    out.extend_from_slice(name.as_bytes());
    out.push(0);
    pad4(out);
    out.extend_from_slice(data);
    pad4(out);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Archive {
        let mut a = Archive::new();
        a.file("/init", 0o755, "#!/bin/sh\n").unwrap();
        a.file("/bin/busybox", 0o755, vec![0x7f, b'E', b'L', b'F', 1]).unwrap();
        a.symlink("/bin/sh", "busybox").unwrap();
        a.dir("/proc").unwrap();
        a.file("/lib/x86_64-linux-gnu/libc.so.6", 0o644, "libc").unwrap();
        a
    }

    #[test]
    fn creates_parents_before_children() {
        let a = sample();
        assert_eq!(
            a.paths(),
            [
                "/bin",
                "/bin/busybox",
                "/bin/sh",
                "/init",
                "/lib",
                "/lib/x86_64-linux-gnu",
                "/lib/x86_64-linux-gnu/libc.so.6",
                "/proc"
            ]
        );
        assert_eq!(a.get("/lib"), Some(&Node::Dir));
    }

    #[test]
    fn refuses_bad_paths_and_files_over_directories() {
        let mut a = sample();
        assert!(a.file("/", 0o644, "x").is_err());
        assert!(a.file("/a/../b", 0o644, "x").is_err());
        assert!(a.file("/bin", 0o644, "x").is_err());
        assert!(a.file("/init/x", 0o644, "x").is_err());
        a.dir("/bin").unwrap();
    }

    #[test]
    fn newc_layout_is_aligned_and_ends_with_the_trailer() {
        let mut a = Archive::new();
        a.file("/a", 0o644, "hello").unwrap();
        let raw = a.to_newc();
        assert_eq!(&raw[..6], b"070701");
        assert_eq!(&raw[6..14], b"00000001");
        assert_eq!(&raw[14..22], b"000081A4");
        assert_eq!(&raw[54..62], b"00000005"); // filesize
        assert_eq!(&raw[94..102], b"00000002"); // namesize "a\0"
        assert_eq!(&raw[110..112], b"a\0");
        assert_eq!(&raw[112..117], b"hello"); // 110 + 2 is already aligned
        assert_eq!(raw.len() & 3, 0);
        let trailer = 120;
        assert_eq!(&raw[trailer..trailer + 6], b"070701");
        assert_eq!(&raw[trailer + 110..trailer + 120], b"TRAILER!!!");
    }

    /// Cross-check with GNU cpio when it is installed.
    #[test]
    fn cpio_lists_and_extracts_what_we_wrote() {
        let Ok(probe) = Command::new("cpio").arg("--version").output() else {
            eprintln!("cpio is not installed; skipping the cross-check");
            return;
        };
        if !probe.status.success() {
            return;
        }
        let dir = crate::nested::test_dir("cpio");
        let path = dir.join("t.cpio");
        std::fs::write(&path, sample().to_newc()).unwrap();
        let out = Command::new("cpio").args(["-t", "--quiet", "-F"]).arg(&path).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let listed: Vec<String> = String::from_utf8_lossy(&out.stdout).lines().map(|l| format!("/{l}")).collect();
        assert_eq!(listed, sample().paths());
        let x = dir.join("x");
        std::fs::create_dir_all(&x).unwrap();
        let st = Command::new("cpio")
            .args(["-i", "--quiet", "-d", "--no-absolute-filenames", "-F"])
            .arg(&path)
            .current_dir(&x)
            .status()
            .unwrap();
        assert!(st.success());
        assert_eq!(std::fs::read_to_string(x.join("init")).unwrap(), "#!/bin/sh\n");
        assert_eq!(std::fs::read_link(x.join("bin/sh")).unwrap(), Path::new("busybox"));
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(x.join("init")).unwrap().permissions().mode() & 0o777, 0o755);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
