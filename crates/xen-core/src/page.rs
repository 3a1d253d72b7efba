//! A host page that the hypervisor shares with the guest (shared_info).
//!
//! The page is an anonymous mapping: the accelerator maps it into the guest-physical
//! space as an overlay and the core reads and writes it with volatile and atomic
//! accesses, since vCPUs touch it concurrently.

use std::sync::atomic::Ordering;
use vm_memory::{Bytes, MmapRegion, VolatileMemory};

/// One 4 KiB host page shared with the guest.
#[derive(Debug)]
pub struct SharedPage {
    region: MmapRegion<()>,
}

/// Size of a shared page.
pub const PAGE_SIZE: usize = 4096;

/// Failure to create a shared page.
#[derive(Debug, thiserror::Error)]
#[error("Cannot allocate a shared page: {0}")]
pub struct AllocPageError(String);

impl SharedPage {
    /// Allocates a zeroed page.
    pub fn new() -> Result<Self, AllocPageError> {
        let region = MmapRegion::new(PAGE_SIZE).map_err(|e| AllocPageError(e.to_string()))?;
        Ok(Self { region })
    }

    /// Host virtual address of the page, for the accelerator's memory slot.
    pub fn host_addr(&self) -> u64 {
        self.region.as_ptr() as u64
    }

    /// Copies `buf.len()` bytes at `offset` out of the page. Out-of-range reads fail.
    pub fn read(&self, offset: usize, buf: &mut [u8]) -> bool {
        self.region.as_volatile_slice().read_slice(buf, offset).is_ok()
    }

    /// Copies `buf` into the page at `offset`. Out-of-range writes fail.
    pub fn write(&self, offset: usize, buf: &[u8]) -> bool {
        self.region.as_volatile_slice().write_slice(buf, offset).is_ok()
    }

    /// Atomically reads a naturally aligned u32.
    pub fn load_u32(&self, offset: usize) -> u32 {
        self.region.as_volatile_slice().load(offset, Ordering::Acquire).unwrap_or(0)
    }

    /// Atomically writes a naturally aligned u32.
    pub fn store_u32(&self, offset: usize, val: u32) {
        let _ = self.region.as_volatile_slice().store(val, offset, Ordering::Release);
    }

    /// Atomically reads a naturally aligned u8.
    pub fn load_u8(&self, offset: usize) -> u8 {
        self.region.as_volatile_slice().load(offset, Ordering::Acquire).unwrap_or(0)
    }

    /// Atomically reads a naturally aligned u64.
    pub fn load_u64(&self, offset: usize) -> u64 {
        self.region.as_volatile_slice().load(offset, Ordering::Acquire).unwrap_or(0)
    }

    /// Zeroes the whole page.
    pub fn clear(&self) {
        let _ = self.write(0, &[0u8; PAGE_SIZE]);
    }

    /// Bytes of the page as a slice view, for accesses the guest races with.
    pub fn volatile(&self) -> vm_memory::VolatileSlice<'_> {
        self.region.as_volatile_slice()
    }
}
