//! A type-0 PCI configuration space: 256 bytes, a write mask, and BARs that
//! answer the sizing protocol (write all ones, read back the size mask).

/// One base address register.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bar {
    /// An I/O port window of `size` bytes (a power of two, at least 4).
    Io { size: u32 },
    /// A 32-bit memory window of `size` bytes (a power of two, at least 16).
    Mem32 { size: u32, prefetchable: bool },
}

impl Bar {
    fn size(&self) -> u32 {
        match *self {
            Bar::Io { size } | Bar::Mem32 { size, .. } => size,
        }
    }

    /// The read-only low bits of the register.
    fn flags(&self) -> u32 {
        match *self {
            Bar::Io { .. } => 0x1,
            Bar::Mem32 { prefetchable, .. } => if prefetchable { 0x8 } else { 0 },
        }
    }
}

/// Number of BARs in a type-0 header.
pub const NUM_BARS: usize = 6;
const BAR0: usize = 0x10;
const COMMAND: usize = 0x04;

/// What identifies a function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PciId {
    pub vendor: u16,
    pub device: u16,
    pub revision: u8,
    /// class << 16 | subclass << 8 | prog-if
    pub class: u32,
    pub subsystem_vendor: u16,
    pub subsystem: u16,
}

/// The configuration space of one function.
#[derive(Debug, Clone)]
pub struct ConfigSpace {
    bytes: [u8; 256],
    writable: [u8; 256],
    bars: [Option<Bar>; NUM_BARS],
}

impl ConfigSpace {
    pub fn new(id: PciId) -> Self {
        let mut c = Self { bytes: [0; 256], writable: [0; 256], bars: [None; NUM_BARS] };
        c.set16(0x00, id.vendor);
        c.set16(0x02, id.device);
        c.set32(0x08, (id.class << 8) | u32::from(id.revision));
        c.set16(0x2C, id.subsystem_vendor);
        c.set16(0x2E, id.subsystem);
        // Command: I/O, memory, bus master, INTx disable; interrupt line.
        c.mask(COMMAND, &[0x07, 0x04]);
        c.mask(0x3C, &[0xFF]);
        c
    }

    fn mask(&mut self, offset: usize, m: &[u8]) {
        for (i, b) in m.iter().enumerate() {
            if let Some(w) = self.writable.get_mut(offset + i) {
                *w = *b;
            }
        }
    }

    fn set16(&mut self, offset: usize, v: u16) {
        self.set_bytes(offset, &v.to_le_bytes());
    }

    fn set32(&mut self, offset: usize, v: u32) {
        self.set_bytes(offset, &v.to_le_bytes());
    }

    fn set_bytes(&mut self, offset: usize, v: &[u8]) {
        if let Some(dst) = self.bytes.get_mut(offset..offset + v.len()) {
            dst.copy_from_slice(v);
        }
    }

    /// Sets the interrupt pin (1 = INTA#).
    pub fn set_interrupt_pin(&mut self, pin: u8) {
        self.set_bytes(0x3D, &[pin]);
    }

    /// Declares BAR `index` and places it at `addr`.
    pub fn set_bar(&mut self, index: usize, bar: Bar, addr: u32) {
        if let Some(slot) = self.bars.get_mut(index) {
            *slot = Some(bar);
            let value = (addr & !(bar.size() - 1)) | bar.flags();
            self.set32(BAR0 + 4 * index, value);
        }
    }

    /// The current address of BAR `index`, if it exists.
    pub fn bar_addr(&self, index: usize) -> Option<u32> {
        let bar = (*self.bars.get(index)?)?;
        let raw = self.read32(BAR0 + 4 * index);
        Some(raw & !(bar.size() - 1) & !0xF)
    }

    /// Sets the command register as firmware leaves it (e.g. decoding on).
    pub fn set_command(&mut self, value: u16) {
        self.set_bytes(COMMAND, &value.to_le_bytes());
    }

    /// Whether decoding of I/O (bit 0) or memory (bit 1) is on.
    pub fn command(&self) -> u16 {
        u16::from_le_bytes([self.read8(COMMAND), self.read8(COMMAND + 1)])
    }

    fn read8(&self, offset: usize) -> u8 {
        self.bytes.get(offset).copied().unwrap_or(0)
    }

    fn read32(&self, offset: usize) -> u32 {
        let mut b = [0u8; 4];
        for (i, d) in b.iter_mut().enumerate() {
            *d = self.read8(offset + i);
        }
        u32::from_le_bytes(b)
    }

    /// Reads `data.len()` bytes at `offset` (out-of-range bytes read as 0xFF).
    pub fn read(&self, offset: u16, data: &mut [u8]) {
        for (i, d) in data.iter_mut().enumerate() {
            *d = self.bytes.get(usize::from(offset) + i).copied().unwrap_or(0xFF);
        }
    }

    /// Writes `data` at `offset`, honouring the write mask and BAR sizing.
    pub fn write(&mut self, offset: u16, data: &[u8]) {
        let offset = usize::from(offset);
        if (BAR0..BAR0 + 4 * NUM_BARS).contains(&offset) {
            return self.write_bar((offset - BAR0) / 4, offset % 4, data);
        }
        for (i, v) in data.iter().enumerate() {
            if let (Some(b), Some(m)) = (self.bytes.get_mut(offset + i), self.writable.get(offset + i)) {
                *b = (*b & !m) | (v & m);
            }
        }
    }

    fn write_bar(&mut self, index: usize, byte: usize, data: &[u8]) {
        let Some(Some(bar)) = self.bars.get(index).copied() else { return };
        let reg = BAR0 + 4 * index;
        let mut value = self.read32(reg).to_le_bytes();
        for (i, v) in data.iter().enumerate() {
            if let Some(b) = value.get_mut(byte + i) {
                *b = *v;
            }
        }
        let addr = u32::from_le_bytes(value) & !(bar.size() - 1) & !0xF;
        self.set32(reg, addr | bar.flags());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn space() -> ConfigSpace {
        let id = PciId { vendor: 0x5853, device: 1, revision: 1, class: 0xFF8000, subsystem_vendor: 0x5853, subsystem: 1 };
        let mut c = ConfigSpace::new(id);
        c.set_bar(0, Bar::Io { size: 0x100 }, 0xC000);
        c.set_bar(1, Bar::Mem32 { size: 16 << 20, prefetchable: true }, 0xF000_0000);
        c
    }

    fn read32(c: &ConfigSpace, off: u16) -> u32 {
        let mut b = [0u8; 4];
        c.read(off, &mut b);
        u32::from_le_bytes(b)
    }

    #[test]
    fn identity_and_class() {
        let c = space();
        assert_eq!(read32(&c, 0), 0x0001_5853);
        assert_eq!(read32(&c, 8), 0xFF80_0001);
        assert_eq!(read32(&c, 0x2C), 0x0001_5853);
    }

    #[test]
    fn bar_sizing_protocol() {
        let mut c = space();
        assert_eq!(read32(&c, 0x10), 0xC001);
        c.write(0x10, &u32::MAX.to_le_bytes());
        assert_eq!(read32(&c, 0x10), 0xFFFF_FF01, "I/O BAR of 256 bytes");
        c.write(0x14, &u32::MAX.to_le_bytes());
        assert_eq!(read32(&c, 0x14), 0xFF00_0008, "16 MiB prefetchable");
        c.write(0x14, &0xE100_0000u32.to_le_bytes());
        assert_eq!(c.bar_addr(1), Some(0xE100_0000));
        c.write(0x18, &u32::MAX.to_le_bytes());
        assert_eq!(read32(&c, 0x18), 0, "absent BAR reads 0");
    }

    #[test]
    fn read_only_fields_ignore_writes() {
        let mut c = space();
        c.write(0, &[0xFF, 0xFF, 0xFF, 0xFF]);
        assert_eq!(read32(&c, 0), 0x0001_5853);
        c.write(4, &[0xFF, 0xFF]);
        assert_eq!(c.command(), 0x0407);
        let mut tail = [0u8; 4];
        c.read(254, &mut tail);
        assert_eq!(&tail[2..], &[0xFF, 0xFF]);
    }
}
