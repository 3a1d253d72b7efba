//! The userspace hypercall page: used where the host kernel cannot intercept
//! `vmcall`/`vmmcall` for us. Each 32-byte entry loads the hypercall number and
//! leaves the guest through an `out` to a port the VMM owns; the VMM reads the
//! arguments from the vCPU registers, runs the call and resumes after the `out`,
//! where the stub returns.

use xenkvm_xen_abi::xen::{HYPERCALL_ENTRY_SIZE, HYPERCALL_PAGE_ENTRIES};

/// The I/O port the stubs write to. Unused by PC hardware and by Linux.
pub const HYPERCALL_PORT: u16 = 0xE2;

/// The bytes of a hypercall page whose stubs exit through `port` (< 256).
pub fn build(port: u8) -> [u8; 4096] {
    let mut page = [0xCCu8; 4096]; // int3 between stubs: never reached
    for (nr, entry) in page.chunks_exact_mut(HYPERCALL_ENTRY_SIZE).enumerate().take(HYPERCALL_PAGE_ENTRIES as usize) {
        let n = (nr as u32).to_le_bytes();
        // mov $nr, %eax ; out %eax, $port ; ret
        let stub = [0xB8, n[0], n[1], n[2], n[3], 0xE7, port, 0xC3];
        for (d, s) in entry.iter_mut().zip(stub) {
            *d = s;
        }
    }
    page
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stubs_encode_number_and_port() {
        let page = build(0xE2);
        let e = &page[17 * 32..17 * 32 + 8];
        assert_eq!(e, &[0xB8, 17, 0, 0, 0, 0xE7, 0xE2, 0xC3]);
        assert_eq!(page[17 * 32 + 8], 0xCC);
        assert_eq!(&page[127 * 32..127 * 32 + 2], &[0xB8, 127]);
    }
}

/// The guest's write to the hypercall MSR could not be honoured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HypercallPageError {
    #[error("Hypercall page index {0} requested, only page 0 exists")]
    BadIndex(u64),
    #[error("Hypercall page frame {0:#x} is not guest RAM")]
    NotRam(u64),
}

impl crate::Domain {
    /// Handles a write of `value` to the hypercall MSR: bits 63:12 are the guest
    /// frame, bits 11:0 the page index. `compat` is whether the writer runs in a
    /// 32-bit mode, which Xen samples here to fix the shared_info layout.
    pub fn write_hypercall_page(&mut self, value: u64, compat: bool) -> Result<(), HypercallPageError> {
        let (gfn, index) = (value >> 12, value & 0xFFF);
        if index != 0 {
            return Err(HypercallPageError::BadIndex(index));
        }
        if !self.mem.is_ram(gfn) {
            return Err(HypercallPageError::NotRam(gfn));
        }
        let page = build(HYPERCALL_PORT as u8);
        self.mem.write_in_page(gfn << 12, &page).map_err(|_| HypercallPageError::NotRam(gfn))?;
        self.latch_shared_info_layout(compat);
        Ok(())
    }
}
