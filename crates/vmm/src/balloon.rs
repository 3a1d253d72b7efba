//! Host memory behind ballooned-out guest frames: `HostRam` frees it with
//! `madvise(MADV_DONTNEED)` on the guest RAM mapping (anonymous and private,
//! so the pages go back to the host and read as zeros if touched again; KVM
//! drops its mappings of them through its MMU notifier).

use vm_memory::{GuestAddress, GuestMemoryBackend, GuestMemoryMmap};
use xenkvm_xen_core::ports::{RamControl, RamError};

const PAGE: u64 = 4096;

/// The guest's RAM, for releasing frames.
pub struct HostRam {
    ram: GuestMemoryMmap,
}

impl HostRam {
    pub fn new(ram: GuestMemoryMmap) -> Self {
        Self { ram }
    }

    /// The host address of frame `gfn`.
    fn host(&self, gfn: u64, count: u64) -> Result<*mut u8, RamError> {
        let err = |reason: &str| RamError { gfn, count, reason: reason.into() };
        let gpa = gfn.checked_mul(PAGE).ok_or_else(|| err("frame number overflows"))?;
        self.ram.get_host_address(GuestAddress(gpa)).map_err(|_| err("not guest RAM"))
    }
}

impl RamControl for HostRam {
    fn release(&self, gfn: u64, count: u64) -> Result<(), RamError> {
        let err = |reason: String| RamError { gfn, count, reason };
        let last = gfn.checked_add(count).and_then(|e| e.checked_sub(1)).ok_or_else(|| err("empty range".into()))?;
        let (first_host, last_host) = (self.host(gfn, count)?, self.host(last, count)?);
        let len = count * PAGE;
        // One call when the frames are contiguous on the host (one region),
        // else frame by frame.
        if last_host as usize - first_host as usize == (len - PAGE) as usize {
            return madvise(first_host, len).map_err(err);
        }
        for f in gfn..=last {
            madvise(self.host(f, 1)?, PAGE).map_err(err)?;
        }
        Ok(())
    }
}

fn madvise(addr: *mut u8, len: u64) -> Result<(), String> {
    // SAFETY: `addr..addr+len` lies inside the guest RAM mapping, which stays
    // mapped for the VM's lifetime; MADV_DONTNEED only drops its contents.
    let rc = unsafe { libc::madvise(addr.cast(), len as usize, libc::MADV_DONTNEED) };
    if rc == 0 {
        Ok(())
    } else {
        Err(format!("madvise: {}", std::io::Error::last_os_error()))
    }
}

#[cfg(test)]
mod tests {
    use vm_memory::Bytes;

    use super::*;

    /// Resident pages of the range, by mincore.
    fn resident(ram: &GuestMemoryMmap, gpa: u64, pages: usize) -> usize {
        let addr = ram.get_host_address(GuestAddress(gpa)).unwrap();
        let mut vec = vec![0u8; pages];
        // SAFETY: the range is inside the mapping and `vec` has one byte per page.
        let rc = unsafe { libc::mincore(addr.cast(), pages * PAGE as usize, vec.as_mut_ptr()) };
        assert_eq!(rc, 0);
        vec.iter().filter(|b| **b & 1 == 1).count()
    }

    #[test]
    fn released_frames_leave_the_host_and_read_as_zero() {
        let ram = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 4 << 20)]).unwrap();
        ram.write_slice(&vec![0xAB; 1 << 20], GuestAddress(0x100000)).unwrap();
        assert_eq!(resident(&ram, 0x100000, 256), 256);
        let host = HostRam::new(ram.clone());
        host.release(0x100, 128).unwrap();
        assert_eq!(resident(&ram, 0x100000, 256), 128, "half the touched frames went back");
        assert_eq!(ram.read_obj::<u8>(GuestAddress(0x100000)).unwrap(), 0);
        assert_eq!(ram.read_obj::<u8>(GuestAddress(0x180000)).unwrap(), 0xAB);
        assert!(host.release(0x10_0000, 1).is_err(), "beyond RAM");
        assert!(host.release(0x3ff, 2).is_err(), "runs past the end of RAM");
    }
}
