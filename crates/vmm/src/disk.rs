//! Disk images behind the PV block backend: raw files (plain positioned reads
//! and writes, `fdatasync`, hole punching) and qcow2 (the `imago` crate).
//!
//! An image is locked with `flock` while the VMM uses it, exclusively when
//! writable and shared when read-only, unless `file.locking=off`, so two VMs
//! (or a VM and `qemu-img`, which takes the same kind of lock only with
//! `locking=on` semantics of its own) do not write the same image at once.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use imago::file::File as ImagoFile;
use imago::qcow2::Qcow2;
use imago::{FormatAccess, FormatDriverBuilder, PermissiveImplicitOpenGate, StorageOpenOptions};
use nix::fcntl::{fallocate, FallocateFlags, Flock, FlockArg};
use xenkvm_xen_pv::blkback::BlockDevice;

use crate::config::{DiskConfig, DiskFormat};

/// Why an image cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum OpenDiskError {
    #[error("Cannot open disk image {0}")]
    Open(PathBuf, #[source] io::Error),
    #[error("Disk image {0} is in use by another process (lock failed: {1}); use file.locking=off to share it")]
    Lock(PathBuf, nix::errno::Errno),
    #[error("Cannot open {0} as qcow2")]
    Qcow2(PathBuf, #[source] io::Error),
    #[error("Disk image {0} is not a regular file or block device")]
    NotAFile(PathBuf),
}

/// The open file: locked (the lock lives as long as the value) or not.
enum Handle {
    Locked(Flock<File>),
    Plain(File),
}

impl Handle {
    fn file(&self) -> &File {
        match self {
            Self::Locked(f) => f,
            Self::Plain(f) => f,
        }
    }
}

fn open_file(cfg: &DiskConfig) -> Result<Handle, OpenDiskError> {
    let path = &cfg.path;
    let file = OpenOptions::new()
        .read(true)
        .write(!cfg.readonly)
        .open(path)
        .map_err(|e| OpenDiskError::Open(path.clone(), e))?;
    let meta = file.metadata().map_err(|e| OpenDiskError::Open(path.clone(), e))?;
    if meta.is_dir() {
        return Err(OpenDiskError::NotAFile(path.clone()));
    }
    if !cfg.locking {
        return Ok(Handle::Plain(file));
    }
    let how = if cfg.readonly { FlockArg::LockSharedNonblock } else { FlockArg::LockExclusiveNonblock };
    Flock::lock(file, how).map(Handle::Locked).map_err(|(_, e)| OpenDiskError::Lock(path.clone(), e))
}

/// Opens the image `cfg` describes.
pub fn open(cfg: &DiskConfig) -> Result<Box<dyn BlockDevice>, OpenDiskError> {
    let handle = open_file(cfg)?;
    match cfg.format {
        DiskFormat::Raw => RawDisk::new(handle, &cfg.path).map(|d| Box::new(d) as Box<dyn BlockDevice>),
        DiskFormat::Qcow2 => Qcow2Disk::new(handle, cfg).map(|d| Box::new(d) as Box<dyn BlockDevice>),
    }
}

/// A raw image: guest sector `n` is byte `512 n` of the file.
struct RawDisk {
    handle: Handle,
    size: u64,
    /// Hole punching failed as unsupported once: stop offering it.
    punch: bool,
}

impl RawDisk {
    fn new(handle: Handle, path: &Path) -> Result<Self, OpenDiskError> {
        let size = file_size(handle.file()).map_err(|e| OpenDiskError::Open(path.to_owned(), e))?;
        let is_file = handle.file().metadata().is_ok_and(|m| m.is_file());
        Ok(Self { handle, size, punch: is_file })
    }
}

/// Size of a regular file or a block device (seek to its end).
fn file_size(file: &File) -> io::Result<u64> {
    use std::io::Seek;
    let mut f = file;
    f.seek(io::SeekFrom::End(0))
}

impl BlockDevice for RawDisk {
    fn size(&self) -> u64 {
        self.size
    }

    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.handle.file().read_exact_at(buf, offset)
    }

    fn write_at(&mut self, offset: u64, buf: &[u8]) -> io::Result<()> {
        self.handle.file().write_all_at(buf, offset)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.handle.file().sync_data()
    }

    fn discard(&mut self, offset: u64, len: u64) -> io::Result<()> {
        let (Ok(off), Ok(len)) = (i64::try_from(offset), i64::try_from(len)) else {
            return Err(io::Error::from(io::ErrorKind::InvalidInput));
        };
        let mode = FallocateFlags::FALLOC_FL_PUNCH_HOLE | FallocateFlags::FALLOC_FL_KEEP_SIZE;
        match fallocate(self.handle.file(), mode, off, len) {
            Ok(()) => Ok(()),
            Err(nix::errno::Errno::EOPNOTSUPP) => {
                self.punch = false;
                Err(io::Error::from(io::ErrorKind::Unsupported))
            }
            Err(e) => Err(io::Error::from(e)),
        }
    }

    fn can_discard(&self) -> bool {
        self.punch
    }
}

/// A qcow2 image through imago (its own metadata caches; flush writes them
/// out and then syncs the file).
struct Qcow2Disk {
    access: FormatAccess<ImagoFile>,
    size: u64,
    /// Keeps the flock (on a duplicate of the descriptor imago owns).
    _lock: Handle,
}

impl Qcow2Disk {
    fn new(handle: Handle, cfg: &DiskConfig) -> Result<Self, OpenDiskError> {
        let path = &cfg.path;
        let err = |e| OpenDiskError::Qcow2(path.clone(), e);
        let dup = handle.file().try_clone().map_err(|e| OpenDiskError::Open(path.clone(), e))?;
        let opts = StorageOpenOptions::new().filename(path).write(!cfg.readonly);
        let storage = ImagoFile::from_open_file(dup, opts).map_err(err)?;
        let qcow2 = Qcow2::<ImagoFile>::builder(storage).write(!cfg.readonly).open(PermissiveImplicitOpenGate::default()).map_err(err)?;
        let access = FormatAccess::new(qcow2);
        let size = access.size();
        Ok(Self { access, size, _lock: handle })
    }
}

impl BlockDevice for Qcow2Disk {
    fn size(&self) -> u64 {
        self.size
    }

    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.access.read(buf, offset)
    }

    fn write_at(&mut self, offset: u64, buf: &[u8]) -> io::Result<()> {
        self.access.write(buf, offset)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.access.flush()?;
        self.access.sync()
    }

    fn discard(&mut self, offset: u64, len: u64) -> io::Result<()> {
        self.access.discard_to_zero(offset, len)
    }

    fn can_discard(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod crash_tests;

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(path: &Path, readonly: bool, locking: bool) -> DiskConfig {
        DiskConfig { path: path.to_owned(), format: DiskFormat::Raw, readonly, locking, vdev: None, cdrom: false }
    }

    fn temp(name: &str, size: u64) -> PathBuf {
        let p = std::env::temp_dir().join(format!("xenkvm-disk-{}-{name}", std::process::id()));
        let f = File::create(&p).unwrap();
        f.set_len(size).unwrap();
        p
    }

    #[test]
    fn raw_read_write_flush_discard() {
        let p = temp("raw", 1 << 20);
        let mut d = open(&cfg(&p, false, true)).unwrap();
        assert_eq!(d.size(), 1 << 20);
        d.write_at(4096, &[0xAB; 8192]).unwrap();
        d.flush().unwrap();
        let mut b = vec![0u8; 8192];
        d.read_at(4096, &mut b).unwrap();
        assert_eq!(b, vec![0xAB; 8192]);
        if d.can_discard() {
            d.discard(4096, 4096).unwrap();
            d.read_at(4096, &mut b).unwrap();
            assert_eq!(&b[..4096], &[0; 4096][..]);
            assert_eq!(&b[4096..], &[0xAB; 4096][..]);
        }
        drop(d);
        std::fs::remove_file(p).unwrap();
    }

    #[test]
    fn writable_images_are_locked_unless_locking_is_off() {
        let p = temp("lock", 65536);
        let first = open(&cfg(&p, false, true)).unwrap();
        let second = open(&cfg(&p, false, true));
        assert!(matches!(second, Err(OpenDiskError::Lock(..))), "second writer must fail");
        assert!(open(&cfg(&p, true, true)).is_err(), "a reader conflicts with a writer");
        assert!(open(&cfg(&p, false, false)).is_ok(), "locking=off opens anyway");
        drop(first);
        let r1 = open(&cfg(&p, true, true)).unwrap();
        let r2 = open(&cfg(&p, true, true)).unwrap();
        drop((r1, r2));
        std::fs::remove_file(p).unwrap();
    }

    #[test]
    fn missing_image_is_a_clear_error() {
        let e = open(&cfg(Path::new("/nonexistent/disk.img"), false, true)).err().unwrap();
        assert!(e.to_string().contains("/nonexistent/disk.img"));
    }

    #[test]
    fn qcow2_round_trip_and_discard() {
        use imago::FormatCreateBuilder;
        let p = temp("qcow2", 0);
        let storage = ImagoFile::from_open_file(
            OpenOptions::new().read(true).write(true).open(&p).unwrap(),
            StorageOpenOptions::new().filename(&p).write(true),
        )
        .unwrap();
        Qcow2::<ImagoFile>::create_builder(storage).size(4 << 20).create().unwrap();
        let mut c = cfg(&p, false, true);
        c.format = DiskFormat::Qcow2;
        let mut d = open(&c).unwrap();
        assert_eq!(d.size(), 4 << 20);
        assert!(open(&c).is_err(), "locked");
        d.write_at(65536 + 512, &[0x5C; 4096]).unwrap();
        d.flush().unwrap();
        drop(d);
        let mut d = open(&c).unwrap();
        let mut b = vec![0u8; 8192];
        d.read_at(65536, &mut b).unwrap();
        assert_eq!(&b[..512], &[0; 512][..]);
        assert_eq!(&b[512..4608], &[0x5C; 4096][..]);
        d.discard(65536, 65536).unwrap();
        d.read_at(65536, &mut b).unwrap();
        assert_eq!(b, vec![0; 8192]);
        drop(d);
        std::fs::remove_file(p).unwrap();
    }

    #[test]
    fn garbage_is_not_qcow2() {
        let p = temp("notqcow", 65536);
        let mut c = cfg(&p, false, true);
        c.format = DiskFormat::Qcow2;
        assert!(matches!(open(&c), Err(OpenDiskError::Qcow2(..))));
        std::fs::remove_file(p).unwrap();
    }
}
