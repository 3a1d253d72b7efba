//! Guest pages the backends reach through grants, as domain 0 would map them.
//!
//! [`DomainGrants`] pins grant entries with [`Domain::grant_map`] (which marks
//! them in use and freezes the frame they name) and then reads and writes the
//! pinned frames directly in guest RAM, without the domain lock. The lock is
//! taken once per batch of maps or unmaps. Only ordinary RAM may be granted
//! this way: a grant naming an overlay page (shared_info, a grant-table frame)
//! is refused with `GNTST_bad_page`.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};
use xenkvm_xen_core::gnttab::{GrantAccess, GrantError};
use xenkvm_xen_core::page::PAGE_SIZE;
use xenkvm_xen_core::Domain;

/// A pinned grant: the reference, how it was pinned, and the frame it names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mapped {
    pub gref: u32,
    pub access: GrantAccess,
    pub gfn: u64,
}

/// Why a batch could not be mapped: the first failing entry and its error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("cannot map grant {gref:#x}: {error}")]
pub struct MapGrantError {
    pub gref: u32,
    pub error: GrantError,
}

/// The backends' access to one guest's grants and RAM.
#[derive(Clone)]
pub struct DomainGrants {
    domain: Arc<Mutex<Domain>>,
    ram: GuestMemoryMmap<()>,
}

impl DomainGrants {
    pub fn new(domain: Arc<Mutex<Domain>>) -> Self {
        let ram = domain.lock().map(|d| d.phys().ram().clone()).unwrap_or_default();
        Self { domain, ram }
    }

    /// The domain, for event-channel operations.
    pub fn domain(&self) -> &Arc<Mutex<Domain>> {
        &self.domain
    }

    /// Guest RAM (what pinned frames are read and written through).
    pub fn ram(&self) -> &GuestMemoryMmap<()> {
        &self.ram
    }

    /// Pins every `(gref, access)` under one domain lock. All or nothing: if
    /// one fails, the pins already taken are dropped again.
    pub fn map(&self, refs: &[(u32, GrantAccess)]) -> Result<Vec<Mapped>, MapGrantError> {
        let mut d = self.domain.lock().map_err(|_| MapGrantError { gref: 0, error: GrantError::GeneralError })?;
        let mut done = Vec::with_capacity(refs.len());
        for &(gref, access) in refs {
            let res = d.grant_map(gref, access).and_then(|gfn| {
                if d.phys().is_ram(gfn) {
                    Ok(gfn)
                } else {
                    let _ = d.grant_unmap(gref, access);
                    Err(GrantError::BadPage)
                }
            });
            match res {
                Ok(gfn) => done.push(Mapped { gref, access, gfn }),
                Err(error) => {
                    for m in &done {
                        let _ = d.grant_unmap(m.gref, m.access);
                    }
                    return Err(MapGrantError { gref, error });
                }
            }
        }
        Ok(done)
    }

    /// Drops the pins of `mapped` under one domain lock.
    pub fn unmap(&self, mapped: &[Mapped]) {
        if mapped.is_empty() {
            return;
        }
        if let Ok(mut d) = self.domain.lock() {
            for m in mapped {
                if let Err(e) = d.grant_unmap(m.gref, m.access) {
                    tracing::warn!("unmap of grant {:#x} failed: {e}", m.gref);
                }
            }
        }
    }
}

/// Reads `buf.len()` bytes at `offset` of guest frame `gfn` (within the page).
pub fn read_frame(ram: &GuestMemoryMmap<()>, gfn: u64, offset: usize, buf: &mut [u8]) -> bool {
    frame_addr(gfn, offset, buf.len()).is_some_and(|a| ram.read_slice(buf, a).is_ok())
}

/// Writes `buf` at `offset` of guest frame `gfn` (within the page).
pub fn write_frame(ram: &GuestMemoryMmap<()>, gfn: u64, offset: usize, buf: &[u8]) -> bool {
    frame_addr(gfn, offset, buf.len()).is_some_and(|a| ram.write_slice(buf, a).is_ok())
}

/// Atomically loads the aligned u32 at `offset` of frame `gfn` (0 if unreachable).
pub fn load_u32(ram: &GuestMemoryMmap<()>, gfn: u64, offset: usize) -> u32 {
    frame_addr(gfn, offset, 4).and_then(|a| ram.load(a, Ordering::Acquire).ok()).unwrap_or(0)
}

/// Atomically stores the aligned u32 at `offset` of frame `gfn`.
pub fn store_u32(ram: &GuestMemoryMmap<()>, gfn: u64, offset: usize, value: u32) {
    if let Some(a) = frame_addr(gfn, offset, 4) {
        let _ = ram.store(value, a, Ordering::Release);
    }
}

fn frame_addr(gfn: u64, offset: usize, len: usize) -> Option<GuestAddress> {
    if offset.checked_add(len)? > PAGE_SIZE {
        return None;
    }
    gfn.checked_mul(PAGE_SIZE as u64)?.checked_add(offset as u64).map(GuestAddress)
}
