//! The guest-physical address space as the Xen core sees it: guest RAM plus the
//! overlay page (shared_info) that hides whatever is at its frame.

use std::collections::BTreeMap;
use std::sync::Arc;
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use crate::page::SharedPage;

/// An access that hit no RAM and no overlay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("Guest-physical address {0:#x} is not backed")]
pub struct Unbacked(pub u64);

/// Guest RAM and the overlay on top of it.
#[derive(Debug, Clone)]
pub struct PhysMem {
    ram: GuestMemoryMmap<()>,
    overlays: BTreeMap<u64, Arc<SharedPage>>,
}

const PAGE_MASK: u64 = 0xFFF;

impl PhysMem {
    pub fn new(ram: GuestMemoryMmap<()>) -> Self {
        Self { ram, overlays: BTreeMap::new() }
    }

    /// The RAM under the overlays.
    pub fn ram(&self) -> &GuestMemoryMmap<()> {
        &self.ram
    }

    /// Places `page` at guest frame `gfn`, hiding what was there.
    pub fn set_overlay(&mut self, gfn: u64, page: Arc<SharedPage>) {
        self.overlays.insert(gfn, page);
    }

    /// Removes the overlay at `gfn`, uncovering the RAM (if any) under it.
    pub fn remove_overlay(&mut self, gfn: u64) {
        self.overlays.remove(&gfn);
    }

    /// Whether guest frame `gfn` is ordinary RAM (not hidden by the overlay).
    pub fn is_ram(&self, gfn: u64) -> bool {
        let Some(gpa) = gfn.checked_mul(4096) else { return false };
        !self.is_overlay(gfn) && self.ram.read_obj::<u8>(GuestAddress(gpa)).is_ok()
    }

    fn is_overlay(&self, gfn: u64) -> bool {
        self.overlays.contains_key(&gfn)
    }

    fn overlay_for(&self, gpa: u64) -> Option<&SharedPage> {
        self.overlays.get(&(gpa >> 12)).map(|p| p.as_ref())
    }

    /// Reads RAM only (page-table walks never look at overlays).
    pub fn read_ram(&self, gpa: u64, buf: &mut [u8]) -> Result<(), Unbacked> {
        self.ram.read_slice(buf, GuestAddress(gpa)).map_err(|_| Unbacked(gpa))
    }

    /// Reads `buf.len()` bytes at `gpa`; the range must not cross a page.
    pub fn read_in_page(&self, gpa: u64, buf: &mut [u8]) -> Result<(), Unbacked> {
        if let Some(page) = self.overlay_for(gpa) {
            return page.read((gpa & PAGE_MASK) as usize, buf).then_some(()).ok_or(Unbacked(gpa));
        }
        self.read_ram(gpa, buf)
    }

    /// Writes `buf` at `gpa`; the range must not cross a page.
    pub fn write_in_page(&self, gpa: u64, buf: &[u8]) -> Result<(), Unbacked> {
        if let Some(page) = self.overlay_for(gpa) {
            return page.write((gpa & PAGE_MASK) as usize, buf).then_some(()).ok_or(Unbacked(gpa));
        }
        self.ram.write_slice(buf, GuestAddress(gpa)).map_err(|_| Unbacked(gpa))
    }
}
