//! The console ring (`io/console.h`, `struct xencons_interface`): 1 KiB of
//! input (host → guest) and 2 KiB of output (guest → host) in one page, with
//! free-running 32-bit indices. The guest owns `out_prod` and `in_cons`; we own
//! `out_cons` and `in_prod`. Indices come from an untrusted guest: a producer
//! more than a ring's size ahead is treated as a broken ring and nothing is read.

use std::sync::atomic::{fence, Ordering};

use xenkvm_xen_core::page::SharedPage;

pub const IN_OFFSET: usize = 0;
pub const IN_SIZE: u32 = 1024;
pub const OUT_OFFSET: usize = 1024;
pub const OUT_SIZE: u32 = 2048;
pub const IN_CONS: usize = 3072;
pub const IN_PROD: usize = 3076;
pub const OUT_CONS: usize = 3080;
pub const OUT_PROD: usize = 3084;

/// What one pass over the ring did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Progress {
    /// Bytes the guest wrote, in order.
    pub output: Vec<u8>,
    /// Input bytes placed in the ring.
    pub input_written: usize,
    /// The guest's indices were inconsistent (more than a ring ahead).
    pub broken: bool,
}

impl Progress {
    /// Whether the guest should be notified (we consumed or produced something).
    pub fn notify(&self) -> bool {
        !self.output.is_empty() || self.input_written > 0
    }
}

/// A page holding a console ring: the primary console's special page, or a
/// page the guest granted to a xenbus console.
pub trait ConsolePage {
    fn load_u32(&self, offset: usize) -> u32;
    fn store_u32(&self, offset: usize, value: u32);
    fn read(&self, offset: usize, buf: &mut [u8]);
    fn write(&self, offset: usize, buf: &[u8]);
}

impl ConsolePage for SharedPage {
    fn load_u32(&self, offset: usize) -> u32 {
        SharedPage::load_u32(self, offset)
    }
    fn store_u32(&self, offset: usize, value: u32) {
        SharedPage::store_u32(self, offset, value);
    }
    fn read(&self, offset: usize, buf: &mut [u8]) {
        SharedPage::read(self, offset, buf);
    }
    fn write(&self, offset: usize, buf: &[u8]) {
        SharedPage::write(self, offset, buf);
    }
}

/// A frame of guest RAM (a granted ring page); accesses outside RAM read zeros.
pub struct GuestFrame {
    pub ram: vm_memory::GuestMemoryMmap<()>,
    pub gfn: u64,
}

impl ConsolePage for GuestFrame {
    fn load_u32(&self, offset: usize) -> u32 {
        crate::grants::load_u32(&self.ram, self.gfn, offset)
    }
    fn store_u32(&self, offset: usize, value: u32) {
        crate::grants::store_u32(&self.ram, self.gfn, offset, value);
    }
    fn read(&self, offset: usize, buf: &mut [u8]) {
        if !crate::grants::read_frame(&self.ram, self.gfn, offset, buf) {
            buf.fill(0);
        }
    }
    fn write(&self, offset: usize, buf: &[u8]) {
        let _ = crate::grants::write_frame(&self.ram, self.gfn, offset, buf);
    }
}

/// The backend side of one console ring page.
pub struct ConsoleRing<'a, P: ConsolePage + ?Sized = SharedPage> {
    page: &'a P,
}

impl<'a, P: ConsolePage + ?Sized> ConsoleRing<'a, P> {
    pub fn new(page: &'a P) -> Self {
        Self { page }
    }

    /// Takes everything the guest wrote since the last call.
    pub fn read_output(&self, progress: &mut Progress) {
        let cons = self.page.load_u32(OUT_CONS);
        let prod = self.page.load_u32(OUT_PROD);
        fence(Ordering::Acquire);
        let pending = prod.wrapping_sub(cons);
        if pending > OUT_SIZE {
            progress.broken = true;
            return;
        }
        let mut idx = cons;
        for _ in 0..pending {
            let mut b = [0u8; 1];
            self.page.read(OUT_OFFSET + (idx % OUT_SIZE) as usize, &mut b);
            progress.output.extend_from_slice(&b);
            idx = idx.wrapping_add(1);
        }
        fence(Ordering::Release);
        self.page.store_u32(OUT_CONS, prod);
    }

    /// Places as much of `input` as fits; returns how many bytes were taken.
    pub fn write_input(&self, input: &[u8], progress: &mut Progress) -> usize {
        let cons = self.page.load_u32(IN_CONS);
        let prod = self.page.load_u32(IN_PROD);
        fence(Ordering::Acquire);
        let used = prod.wrapping_sub(cons);
        if used > IN_SIZE {
            progress.broken = true;
            return 0;
        }
        let room = (IN_SIZE - used) as usize;
        let n = room.min(input.len());
        let mut idx = prod;
        for b in input.iter().take(n) {
            self.page.write(IN_OFFSET + (idx % IN_SIZE) as usize, &[*b]);
            idx = idx.wrapping_add(1);
        }
        fence(Ordering::Release);
        self.page.store_u32(IN_PROD, idx);
        progress.input_written += n;
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A guest writing `s` into the output ring.
    fn guest_write(page: &SharedPage, s: &[u8]) {
        let mut prod = page.load_u32(OUT_PROD);
        for b in s {
            page.write(OUT_OFFSET + (prod % OUT_SIZE) as usize, &[*b]);
            prod = prod.wrapping_add(1);
        }
        page.store_u32(OUT_PROD, prod);
    }

    #[test]
    fn output_in_order_across_wrap() {
        let page = SharedPage::new().unwrap();
        // Start near the u32 wrap and the ring end.
        page.store_u32(OUT_CONS, u32::MAX - 3);
        page.store_u32(OUT_PROD, u32::MAX - 3);
        let ring = ConsoleRing::new(&page);
        guest_write(&page, b"hello, world\n");
        let mut p = Progress::default();
        ring.read_output(&mut p);
        assert_eq!(p.output, b"hello, world\n");
        assert!(p.notify());
        let mut again = Progress::default();
        ring.read_output(&mut again);
        assert!(again.output.is_empty());
    }

    #[test]
    fn hostile_indices_read_nothing() {
        let page = SharedPage::new().unwrap();
        page.store_u32(OUT_PROD, 100_000);
        let ring = ConsoleRing::new(&page);
        let mut p = Progress::default();
        ring.read_output(&mut p);
        assert!(p.broken && p.output.is_empty());
        page.store_u32(IN_PROD, 5000);
        assert_eq!(ring.write_input(b"x", &mut p), 0);
    }

    #[test]
    fn input_stops_when_full() {
        let page = SharedPage::new().unwrap();
        let ring = ConsoleRing::new(&page);
        let mut p = Progress::default();
        let big = vec![b'a'; 1500];
        assert_eq!(ring.write_input(&big, &mut p), 1024);
        assert_eq!(ring.write_input(b"b", &mut p), 0);
        // The guest consumes 10 bytes: room for 10 more.
        page.store_u32(IN_CONS, 10);
        assert_eq!(ring.write_input(&big, &mut p), 10);
        assert_eq!(page.load_u32(IN_PROD), 1034);
    }
}
