//! Access to hypercall pointer arguments: guest-virtual addresses translated page
//! by page through the calling vCPU's page tables, then read from or written to
//! guest-physical memory. Every failure is `-EFAULT` for the guest.

use xenkvm_xen_abi::errno::XenErrno;
use zerocopy::{FromBytes, Immutable, IntoBytes};

use crate::paging::PagingState;
use crate::phys::PhysMem;

/// One vCPU's view of guest memory during a hypercall.
#[derive(Clone, Copy)]
pub struct GuestView<'a> {
    pub mem: &'a PhysMem,
    pub paging: PagingState,
}

const PAGE: u64 = 4096;

impl<'a> GuestView<'a> {
    pub fn new(mem: &'a PhysMem, paging: PagingState) -> Self {
        Self { mem, paging }
    }

    /// Calls `f(gpa, chunk_range)` for each piece of `[gva, gva+len)` that lies in
    /// one guest page.
    fn for_each_page(
        &self,
        gva: u64,
        len: usize,
        write: bool,
        mut f: impl FnMut(u64, std::ops::Range<usize>) -> Result<(), XenErrno>,
    ) -> Result<(), XenErrno> {
        let mut done = 0usize;
        while done < len {
            let addr = gva.checked_add(done as u64).ok_or(XenErrno::Efault)?;
            let in_page = (PAGE - (addr % PAGE)) as usize;
            let n = in_page.min(len - done);
            let gpa = self.paging.translate(self.mem, addr, write).map_err(|_| XenErrno::Efault)?;
            f(gpa, done..done + n)?;
            done += n;
        }
        Ok(())
    }

    /// Copies guest bytes at `gva` into `buf`.
    pub fn read_bytes(&self, gva: u64, buf: &mut [u8]) -> Result<(), XenErrno> {
        let len = buf.len();
        self.for_each_page(gva, len, false, |gpa, r| {
            let chunk = buf.get_mut(r).ok_or(XenErrno::Efault)?;
            self.mem.read_in_page(gpa, chunk).map_err(|_| XenErrno::Efault)
        })
    }

    /// Copies `buf` to the guest at `gva`.
    pub fn write_bytes(&self, gva: u64, buf: &[u8]) -> Result<(), XenErrno> {
        self.for_each_page(gva, buf.len(), true, |gpa, r| {
            let chunk = buf.get(r).ok_or(XenErrno::Efault)?;
            self.mem.write_in_page(gpa, chunk).map_err(|_| XenErrno::Efault)
        })
    }

    /// Reads one ABI record.
    pub fn read_obj<T: FromBytes + IntoBytes>(&self, gva: u64) -> Result<T, XenErrno> {
        let mut val = T::new_zeroed();
        self.read_bytes(gva, val.as_mut_bytes())?;
        Ok(val)
    }

    /// Writes one ABI record.
    pub fn write_obj<T: IntoBytes + Immutable>(&self, gva: u64, val: &T) -> Result<(), XenErrno> {
        self.write_bytes(gva, val.as_bytes())
    }
}
