//! The shared_info page: wallclock, the legacy `vcpu_info` slots, event-channel
//! pending and mask bitmaps. Written with the version protocol the guest expects
//! (odd while an update is in progress).

use std::sync::atomic::{fence, Ordering};

use xenkvm_xen_abi::shared_info::*;
use xenkvm_xen_abi::xen::XEN_LEGACY_MAX_VCPUS;
use zerocopy::IntoBytes;

use crate::domain::Domain;

impl Domain {
    fn shinfo_layout(&self) -> SharedInfoLayout {
        if self.shared_info_compat {
            SHARED_INFO_COMPAT
        } else {
            SHARED_INFO_64
        }
    }

    /// Fills the page as the guest first finds it: wallclock and the pvclock of
    /// every legacy vCPU slot.
    pub(crate) fn init_shared_info(&self) {
        self.shared_info.clear();
        self.write_wallclock();
        for vcpu in 0..self.cfg.vcpus.min(XEN_LEGACY_MAX_VCPUS) {
            self.write_slot_pvclock(vcpu);
        }
    }

    /// Writes `wc_sec`, `wc_nsec` and `wc_sec_hi` under `wc_version`.
    pub(crate) fn write_wallclock(&self) {
        let l = self.shinfo_layout();
        let page = &self.shared_info;
        let (sec, nsec) = self.time.wallclock();
        let version = page.load_u32(l.wc_version as usize);
        page.store_u32(l.wc_version as usize, version.wrapping_add(1) | 1);
        fence(Ordering::SeqCst);
        page.store_u32(l.wc_sec as usize, sec as u32);
        page.store_u32(l.wc_nsec as usize, nsec);
        page.store_u32(l.wc_sec_hi as usize, (sec >> 32) as u32);
        fence(Ordering::SeqCst);
        page.store_u32(l.wc_version as usize, (version | 1).wrapping_add(1));
    }

    /// Writes a fresh pvclock into `vcpu`'s legacy slot in shared_info.
    pub(crate) fn write_slot_pvclock(&self, vcpu: u32) {
        if vcpu >= XEN_LEGACY_MAX_VCPUS {
            return;
        }
        let off = u64::from(vcpu) * VCPU_INFO_SIZE + VCPU_INFO_TIME;
        let page = &self.shared_info;
        let rec = self.time.pvclock();
        write_pvclock(rec, |o, b| page.write(off as usize + o, b), page.load_u32(off as usize));
    }

    /// Whether event-channel port `port` is pending in shared_info.
    pub fn port_pending(&self, port: u32) -> bool {
        let l = self.shinfo_layout();
        let bits = l.word_bytes * 8;
        let word = u64::from(port) / bits;
        let off = l.evtchn_pending + word * l.word_bytes;
        if off + l.word_bytes > l.evtchn_mask {
            return false;
        }
        let byte = self.shared_info.load_u8((off + (u64::from(port) % bits) / 8) as usize);
        byte & (1 << (port % 8)) != 0
    }

    /// Clears `port`'s pending bit, as the guest does when it handles the
    /// event (tests play the guest).
    #[cfg(test)]
    pub(crate) fn clear_port_pending(&self, port: u32) {
        let l = self.shinfo_layout();
        let off = (l.evtchn_pending + u64::from(port) / 8) as usize;
        let mut byte = [0u8];
        if self.shared_info.read(off, &mut byte) {
            byte[0] &= !(1 << (port % 8));
            self.shared_info.write(off, &byte);
        }
    }

    /// Number of event-channel ports the 2-level ABI addresses in this layout.
    pub fn max_ports(&self) -> u32 {
        let l = self.shinfo_layout();
        (l.word_bytes * 8 * l.word_bytes * 8) as u32
    }
}

/// Writes `rec` with the version protocol through `write(offset, bytes)`;
/// `old_version` is the version currently in the record.
pub(crate) fn write_pvclock(mut rec: VcpuTimeInfo, write: impl Fn(usize, &[u8]) -> bool, old_version: u32) -> bool {
    let odd = (old_version | 1).wrapping_add(2);
    let ok = write(0, &odd.to_le_bytes());
    fence(Ordering::SeqCst);
    rec.version = odd;
    let ok = ok && write(4, rec.as_bytes().get(4..).unwrap_or(&[]));
    fence(Ordering::SeqCst);
    ok && write(0, &odd.wrapping_add(1).to_le_bytes())
}
