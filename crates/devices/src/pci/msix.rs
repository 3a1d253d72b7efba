//! MSI-X: the capability (message control with enable and function mask),
//! the vector table (address, data and a mask bit per vector) and the
//! pending-bit array, in one of the function's memory BARs.
//!
//! A vector raised while it (or the whole function) is masked sets its
//! pending bit; it is sent when unmasked. Messages go to an [`MsiSink`].

use std::sync::Arc;

use super::ConfigSpace;
use crate::ioapic::MsiSink;

/// The MSI-X capability ID.
pub const CAP_ID_MSIX: u8 = 0x11;
/// Bytes of the capability structure.
pub const CAP_LEN: usize = 12;
/// Bytes of one table entry.
pub const ENTRY_SIZE: u64 = 16;
/// Most vectors a function can have.
pub const MAX_VECTORS: u16 = 2048;

const CONTROL_ENABLE: u16 = 1 << 15;
const CONTROL_FUNCTION_MASK: u16 = 1 << 14;
/// Byte of an entry holding the vector-control mask bit.
const VECTOR_CONTROL: usize = 12;
const VECTOR_MASKED: u8 = 1;

/// Where a structure lives: BAR index (BIR) and offset in that BAR (8-aligned).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BarOffset {
    pub bar: u8,
    pub offset: u32,
}

impl BarOffset {
    fn encode(self) -> u32 {
        (self.offset & !0x7) | u32::from(self.bar & 0x7)
    }
}

/// The table, pending bits and control state of one function.
pub struct Msix {
    /// 16 bytes per vector, as the guest wrote them.
    table: Vec<u8>,
    pending: Vec<bool>,
    enabled: bool,
    function_masked: bool,
    sink: Arc<dyn MsiSink>,
}

impl Msix {
    /// A function with `vectors` vectors (1 to 2048), all masked, MSI-X off.
    pub fn new(vectors: u16, sink: Arc<dyn MsiSink>) -> Self {
        let n = usize::from(vectors.clamp(1, MAX_VECTORS));
        let mut table = vec![0u8; n * ENTRY_SIZE as usize];
        for entry in table.chunks_mut(ENTRY_SIZE as usize) {
            if let Some(b) = entry.get_mut(VECTOR_CONTROL) {
                *b = VECTOR_MASKED;
            }
        }
        Self { table, pending: vec![false; n], enabled: false, function_masked: false, sink }
    }

    /// Number of vectors.
    pub fn vectors(&self) -> u16 {
        u16::try_from(self.pending.len()).unwrap_or(MAX_VECTORS)
    }

    /// Bytes of the table in its BAR.
    pub fn table_len(&self) -> u64 {
        u64::from(self.vectors()) * ENTRY_SIZE
    }

    /// Bytes of the pending-bit array in its BAR (whole quadwords).
    pub fn pba_len(&self) -> u64 {
        u64::from(self.vectors()).div_ceil(64) * 8
    }

    /// The capability body for [`ConfigSpace::add_capability`] and its
    /// writable bits (enable and function mask).
    pub fn capability(&self, table: BarOffset, pba: BarOffset) -> ([u8; CAP_LEN], [u8; 4]) {
        let mut body = [0u8; CAP_LEN];
        let control = self.vectors() - 1;
        body[0] = CAP_ID_MSIX;
        body[2..4].copy_from_slice(&control.to_le_bytes());
        body[4..8].copy_from_slice(&table.encode().to_le_bytes());
        body[8..12].copy_from_slice(&pba.encode().to_le_bytes());
        let writable = (CONTROL_ENABLE | CONTROL_FUNCTION_MASK).to_le_bytes();
        (body, [0, 0, writable[0], writable[1]])
    }

    /// Whether MSI-X is enabled (the function then sends no INTx).
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Whether the whole function is masked.
    pub fn function_masked(&self) -> bool {
        self.function_masked
    }

    /// Takes the message control word the guest left in configuration
    /// space at capability offset `cap`.
    pub fn sync_control(&mut self, config: &ConfigSpace, cap: u8) {
        let mut control = [0u8; 2];
        config.read(u16::from(cap) + 2, &mut control);
        self.set_control(u16::from_le_bytes(control));
    }

    /// Applies a message control word: enabling or unmasking sends what was pending.
    pub fn set_control(&mut self, control: u16) {
        self.enabled = control & CONTROL_ENABLE != 0;
        self.function_masked = control & CONTROL_FUNCTION_MASK != 0;
        self.flush_pending();
    }

    fn entry(&self, vector: usize) -> Option<&[u8]> {
        let start = vector.checked_mul(ENTRY_SIZE as usize)?;
        self.table.get(start..start + ENTRY_SIZE as usize)
    }

    fn vector_masked(&self, vector: usize) -> bool {
        self.entry(vector).and_then(|e| e.get(VECTOR_CONTROL)).is_none_or(|c| c & VECTOR_MASKED != 0)
    }

    /// Whether `vector` is masked, by itself or by the function (unless the
    /// sink takes its message regardless: [`MsiSink::bypasses_mask`]).
    pub fn masked(&self, vector: u16) -> bool {
        let held = self.function_masked || self.vector_masked(usize::from(vector));
        held && !self.message(usize::from(vector)).is_some_and(|(a, d)| self.sink.bypasses_mask(a, d))
    }

    fn message(&self, vector: usize) -> Option<(u64, u32)> {
        let e = self.entry(vector)?;
        let word = |i: usize| e.get(i..i + 4).and_then(|b| b.try_into().ok()).map_or(0, u32::from_le_bytes);
        Some((u64::from(word(0)) | (u64::from(word(4)) << 32), word(8)))
    }

    /// Whether `vector`'s pending bit is set.
    pub fn pending(&self, vector: u16) -> bool {
        self.pending.get(usize::from(vector)).copied().unwrap_or(false)
    }

    fn send(&self, vector: usize) {
        if let Some((address, data)) = self.message(vector) {
            self.sink.send_msi(address, data);
        }
    }

    /// Raises `vector`: sent now, or left pending while masked. False for a
    /// vector the function does not have (or with MSI-X disabled: the
    /// caller then uses INTx).
    pub fn notify(&mut self, vector: u16) -> bool {
        let v = usize::from(vector);
        if !self.enabled || v >= self.pending.len() {
            return false;
        }
        if self.masked(vector) {
            if let Some(p) = self.pending.get_mut(v) {
                *p = true;
            }
        } else {
            self.send(v);
        }
        true
    }

    /// Sends every pending vector that is no longer masked.
    fn flush_pending(&mut self) {
        if !self.enabled || self.function_masked {
            return;
        }
        for v in 0..self.pending.len() {
            let masked = u16::try_from(v).map_or(true, |v| self.masked(v));
            if self.pending.get(v).copied().unwrap_or(false) && !masked {
                if let Some(p) = self.pending.get_mut(v) {
                    *p = false;
                }
                self.send(v);
            }
        }
    }

    /// A read of the table at `offset` (beyond it: zeros).
    pub fn read_table(&self, offset: u64, data: &mut [u8]) {
        for (i, d) in data.iter_mut().enumerate() {
            let at = usize::try_from(offset).ok().and_then(|o| o.checked_add(i));
            *d = at.and_then(|a| self.table.get(a)).copied().unwrap_or(0);
        }
    }

    /// A write to the table at `offset`: address and data as written, only
    /// the mask bit of vector control; unmasking sends a pending vector.
    pub fn write_table(&mut self, offset: u64, data: &[u8]) {
        let Ok(offset) = usize::try_from(offset) else { return };
        for (i, v) in data.iter().enumerate() {
            let Some(at) = offset.checked_add(i) else { return };
            let value = match at % ENTRY_SIZE as usize {
                VECTOR_CONTROL => v & VECTOR_MASKED,
                13..=15 => 0,
                _ => *v,
            };
            if let Some(b) = self.table.get_mut(at) {
                *b = value;
            }
        }
        self.flush_pending();
    }

    /// A read of the pending-bit array at `offset` (read-only to the guest).
    pub fn read_pba(&self, offset: u64, data: &mut [u8]) {
        for (i, d) in data.iter_mut().enumerate() {
            let byte = offset.saturating_add(i as u64);
            *d = (0..8u64).fold(0u8, |acc, bit| {
                let v = byte.saturating_mul(8).saturating_add(bit);
                let set = usize::try_from(v).ok().and_then(|v| self.pending.get(v)).copied().unwrap_or(false);
                acc | (u8::from(set) << bit)
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    #[derive(Default)]
    struct Sent(Mutex<Vec<(u64, u32)>>);
    impl MsiSink for Sent {
        fn send_msi(&self, address: u64, data: u32) {
            self.0.lock().unwrap().push((address, data));
        }
    }

    fn msix(n: u16) -> (Msix, Arc<Sent>) {
        let sent = Arc::new(Sent::default());
        (Msix::new(n, sent.clone()), sent)
    }

    fn program(m: &mut Msix, v: u64, address: u64, data: u32) {
        m.write_table(v * 16, &(address as u32).to_le_bytes());
        m.write_table(v * 16 + 4, &((address >> 32) as u32).to_le_bytes());
        m.write_table(v * 16 + 8, &data.to_le_bytes());
    }

    fn unmask(m: &mut Msix, v: u64) {
        m.write_table(v * 16 + 12, &0u32.to_le_bytes());
    }

    #[test]
    fn capability_layout() {
        let (m, _) = msix(3);
        let (body, mask) = m.capability(BarOffset { bar: 0, offset: 0x4000 }, BarOffset { bar: 2, offset: 0x5000 });
        assert_eq!(body, [0x11, 0, 2, 0, 0x00, 0x40, 0, 0, 0x02, 0x50, 0, 0]);
        assert_eq!(mask, [0, 0, 0, 0xC0]);
        assert_eq!((m.table_len(), m.pba_len()), (48, 8));
        assert_eq!(msix(65).0.pba_len(), 16);
        assert_eq!(msix(0).0.vectors(), 1, "at least one vector");
        assert_eq!(msix(u16::MAX).0.vectors(), 2048);
    }

    #[test]
    fn vectors_start_masked_and_disabled() {
        let (mut m, sent) = msix(2);
        assert!(!m.notify(0), "MSI-X off: the caller uses INTx");
        m.set_control(0x8000);
        assert!(m.notify(0));
        assert!(m.pending(0), "masked at reset");
        let mut ctl = [0u8; 4];
        m.read_table(12, &mut ctl);
        assert_eq!(ctl, [1, 0, 0, 0]);
        program(&mut m, 0, 0xFEE0_1000, 0x41);
        assert!(sent.0.lock().unwrap().is_empty());
        unmask(&mut m, 0);
        assert_eq!(*sent.0.lock().unwrap(), vec![(0xFEE0_1000, 0x41)], "pending sent at unmask");
        assert!(!m.pending(0));
        assert!(m.notify(0));
        assert_eq!(sent.0.lock().unwrap().len(), 2);
    }

    #[test]
    fn function_mask_holds_every_vector() {
        let (mut m, sent) = msix(2);
        program(&mut m, 1, 0x1_FEE0_0000, 7);
        unmask(&mut m, 1);
        m.set_control(0xC000);
        assert!(m.notify(1));
        let mut pba = [0u8; 8];
        m.read_pba(0, &mut pba);
        assert_eq!(pba[0], 0b10);
        assert!(sent.0.lock().unwrap().is_empty());
        m.set_control(0x8000);
        assert_eq!(*sent.0.lock().unwrap(), vec![(0x1_FEE0_0000, 7)]);
        m.read_pba(0, &mut pba);
        assert_eq!(pba[0], 0);
    }

    #[test]
    fn control_is_taken_from_config_space() {
        use crate::pci::{ConfigSpace, PciId};
        let id = PciId { vendor: 0x1af4, device: 0x1041, revision: 1, class: 0x020000, subsystem_vendor: 0, subsystem: 0 };
        let mut c = ConfigSpace::new(id);
        let (mut m, _) = msix(4);
        let (body, mask) = m.capability(BarOffset { bar: 0, offset: 0 }, BarOffset { bar: 0, offset: 0x800 });
        let at = c.add_capability(&body, &mask).unwrap();
        c.write(u16::from(at) + 2, &[0xFF, 0xFF]);
        let mut ctl = [0u8; 2];
        c.read(u16::from(at) + 2, &mut ctl);
        assert_eq!(u16::from_le_bytes(ctl), 0xC003, "table size read-only");
        m.sync_control(&c, at);
        assert!(m.enabled() && m.function_masked());
    }

    #[test]
    fn hostile_accesses_are_contained() {
        let (mut m, sent) = msix(1);
        m.set_control(0x8000);
        assert!(!m.notify(1), "no such vector");
        assert!(!m.notify(u16::MAX));
        m.write_table(u64::MAX, &[1, 2, 3, 4]);
        m.write_table(16, &[1, 2, 3, 4]);
        m.write_table(13, &[0xFF, 0xFF, 0xFF]);
        let mut b = [0xAAu8; 8];
        m.read_table(u64::MAX - 2, &mut b);
        assert_eq!(b, [0; 8]);
        m.read_table(12, &mut b[..4]);
        assert_eq!(&b[..4], &[1, 0, 0, 0], "reserved control bits stay zero");
        m.read_pba(u64::MAX, &mut b);
        assert_eq!(b, [0; 8]);
        assert!(sent.0.lock().unwrap().is_empty());
    }
}

#[cfg(test)]
mod pirq_tests {
    use std::sync::Mutex;

    use super::*;

    /// A sink that, like the VMM's under Xen, takes vector-0 messages masked or not.
    #[derive(Default)]
    struct XenSink(Mutex<Vec<(u64, u32)>>);
    impl MsiSink for XenSink {
        fn send_msi(&self, address: u64, data: u32) {
            self.0.lock().unwrap().push((address, data));
        }
        fn bypasses_mask(&self, _address: u64, data: u32) -> bool {
            data & 0xFF == 0
        }
    }

    #[test]
    fn a_message_the_sink_takes_regardless_ignores_the_masks() {
        let sink = Arc::new(XenSink::default());
        let mut m = Msix::new(2, sink.clone());
        m.set_control(CONTROL_ENABLE | CONTROL_FUNCTION_MASK);
        // Vector 0: a PIRQ-form message (vector 0); vector 1: an ordinary one. Both stay masked.
        m.write_table(0, &0xFEE2_8000u32.to_le_bytes());
        m.write_table(16, &0xFEE0_0000u32.to_le_bytes());
        m.write_table(16 + 8, &0x4031u32.to_le_bytes());
        assert!(m.notify(0) && m.notify(1));
        assert_eq!(*sink.0.lock().unwrap(), vec![(0xFEE2_8000, 0)], "only the PIRQ message went out");
        assert!(m.pending(1) && !m.pending(0));
        assert!(!m.masked(0) && m.masked(1));
    }
}
