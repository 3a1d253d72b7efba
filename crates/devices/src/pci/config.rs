//! A type-0 PCI configuration space: 256 bytes, a write mask, BARs that
//! answer the sizing protocol (write all ones, read back the size mask), and
//! a capability list.

/// One base address register.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bar {
    /// An I/O port window of `size` bytes (a power of two, at least 4).
    Io { size: u32 },
    /// A 32-bit memory window of `size` bytes (a power of two, at least 16).
    Mem32 { size: u32, prefetchable: bool },
    /// A 64-bit memory window of `size` bytes (a power of two, at least 16);
    /// it takes its own slot and the next one (the high half of the address).
    Mem64 { size: u64, prefetchable: bool },
}

impl Bar {
    /// The window's size, a power of two (at least 4 ports or 16 bytes).
    fn size(&self) -> u64 {
        match *self {
            Bar::Io { size } => u64::from(size).max(4).next_power_of_two(),
            Bar::Mem32 { size, .. } => u64::from(size).max(16).next_power_of_two(),
            Bar::Mem64 { size, .. } => size.max(16).checked_next_power_of_two().unwrap_or(1 << 63),
        }
    }

    /// The address bits the guest may set.
    fn addr_mask(&self) -> u64 {
        let low_flags = if matches!(self, Bar::Io { .. }) { 0x3 } else { 0xF };
        !(self.size() - 1) & !low_flags & self.limit()
    }

    /// The read-only low bits of the register.
    fn flags(&self) -> u32 {
        let pf = |p: bool| if p { 0x8 } else { 0 };
        match *self {
            Bar::Io { .. } => 0x1,
            Bar::Mem32 { prefetchable, .. } => pf(prefetchable),
            Bar::Mem64 { prefetchable, .. } => 0x4 | pf(prefetchable),
        }
    }

    /// Whether the BAR is the 64-bit kind (two register slots).
    fn wide(&self) -> bool {
        matches!(self, Bar::Mem64 { .. })
    }

    /// Bits of the address the guest cannot change beyond the register's width.
    fn limit(&self) -> u64 {
        if self.wide() {
            u64::MAX
        } else {
            u64::from(u32::MAX)
        }
    }
}

/// Number of BARs in a type-0 header.
pub const NUM_BARS: usize = 6;
const BAR0: usize = 0x10;
const COMMAND: usize = 0x04;
const STATUS: usize = 0x06;
/// Status bit 4: the function has a capability list.
const STATUS_CAP_LIST: u8 = 1 << 4;
/// The capability pointer.
const CAP_PTR: usize = 0x34;
/// Capabilities go after the type-0 header.
const FIRST_CAP: usize = 0x40;
const CONFIG_SIZE: usize = 256;

/// A capability that does not fit in what is left of the configuration space.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CapabilityError {
    #[error("a capability of {0} bytes does not fit in the configuration space")]
    NoRoom(usize),
    #[error("a capability needs at least its ID and next pointer (2 bytes), and a mask no longer than itself")]
    Malformed,
}

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
    bytes: [u8; CONFIG_SIZE],
    writable: [u8; CONFIG_SIZE],
    bars: [Option<Bar>; NUM_BARS],
    /// Where the next capability goes, and the last one's offset.
    next_cap: usize,
    last_cap: Option<usize>,
}

impl ConfigSpace {
    pub fn new(id: PciId) -> Self {
        let mut c = Self {
            bytes: [0; CONFIG_SIZE],
            writable: [0; CONFIG_SIZE],
            bars: [None; NUM_BARS],
            next_cap: FIRST_CAP,
            last_cap: None,
        };
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

    /// Declares BAR `index` and places it at `addr`. A [`Bar::Mem64`] also
    /// takes slot `index + 1` (an index of 5 cannot hold one: ignored).
    pub fn set_bar(&mut self, index: usize, bar: Bar, addr: impl Into<u64>) {
        if index >= NUM_BARS || (bar.wide() && index + 1 >= NUM_BARS) {
            return;
        }
        if let Some(slot) = self.bars.get_mut(index) {
            *slot = Some(bar);
        }
        if bar.wide() {
            if let Some(high) = self.bars.get_mut(index + 1) {
                *high = None;
            }
        }
        self.store_bar(index, bar, addr.into());
    }

    /// Writes BAR `index`'s register(s) for address `addr`.
    fn store_bar(&mut self, index: usize, bar: Bar, addr: u64) {
        let addr = addr & bar.addr_mask();
        self.set32(BAR0 + 4 * index, addr as u32 | bar.flags());
        if bar.wide() {
            self.set32(BAR0 + 4 * (index + 1), (addr >> 32) as u32);
        }
    }

    /// The BAR that register slot `index` belongs to: its first slot and kind.
    fn bar_of_slot(&self, index: usize) -> Option<(usize, Bar)> {
        if let Some(Some(bar)) = self.bars.get(index) {
            return Some((index, *bar));
        }
        let low = index.checked_sub(1)?;
        match self.bars.get(low) {
            Some(Some(bar)) if bar.wide() => Some((low, *bar)),
            _ => None,
        }
    }

    /// The current address of the BAR starting at slot `index`, if it exists.
    pub fn bar_addr64(&self, index: usize) -> Option<u64> {
        let bar = (*self.bars.get(index)?)?;
        let mut raw = u64::from(self.read32(BAR0 + 4 * index));
        if bar.wide() {
            raw |= u64::from(self.read32(BAR0 + 4 * (index + 1))) << 32;
        }
        Some(raw & bar.addr_mask())
    }

    /// The current address of BAR `index`, if it exists and is below 4 GiB.
    pub fn bar_addr(&self, index: usize) -> Option<u32> {
        self.bar_addr64(index).and_then(|a| u32::try_from(a).ok())
    }

    /// The size of the BAR starting at slot `index`, if it exists.
    pub fn bar_size(&self, index: usize) -> Option<u64> {
        Some((*self.bars.get(index)?)?.size())
    }

    /// Sets the command register as firmware leaves it (e.g. decoding on).
    pub fn set_command(&mut self, value: u16) {
        self.set_bytes(COMMAND, &value.to_le_bytes());
    }

    /// Whether decoding of I/O (bit 0) or memory (bit 1) is on.
    pub fn command(&self) -> u16 {
        u16::from_le_bytes([self.read8(COMMAND), self.read8(COMMAND + 1)])
    }

    /// Appends a capability: `body` is the whole structure from its ID byte
    /// (its next-pointer byte is filled in here), `writable` the guest-writable
    /// bits of its first bytes. Returns the capability's offset.
    pub fn add_capability(&mut self, body: &[u8], writable: &[u8]) -> Result<u8, CapabilityError> {
        if body.len() < 2 || writable.len() > body.len() {
            return Err(CapabilityError::Malformed);
        }
        let offset = self.next_cap;
        let end = offset + body.len();
        let (Ok(at), true) = (u8::try_from(offset), end <= CONFIG_SIZE) else {
            return Err(CapabilityError::NoRoom(body.len()));
        };
        self.set_bytes(offset, body);
        self.set_bytes(offset + 1, &[0]);
        self.mask(offset, writable);
        // Nobody writes the ID and next pointer.
        self.mask(offset, &[0, 0]);
        let link = self.last_cap.map_or(CAP_PTR, |last| last + 1);
        self.set_bytes(link, &[at]);
        let status = self.read8(STATUS) | STATUS_CAP_LIST;
        self.set_bytes(STATUS, &[status]);
        self.last_cap = Some(offset);
        self.next_cap = (end + 3) & !3;
        Ok(at)
    }

    /// Sets bytes the device owns (e.g. inside one of its capabilities),
    /// whatever the write mask says.
    pub fn set_device_bytes(&mut self, offset: u8, v: &[u8]) {
        self.set_bytes(usize::from(offset), v);
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

    fn write_bar(&mut self, slot: usize, byte: usize, data: &[u8]) {
        let Some((index, bar)) = self.bar_of_slot(slot) else { return };
        let mut raw = [0u8; 8];
        self.read(u16::try_from(BAR0 + 4 * index).unwrap_or(0), &mut raw);
        // Bytes of the 64-bit value, starting at the written slot and byte.
        let start = (slot - index) * 4 + byte;
        for (i, v) in data.iter().enumerate() {
            if let Some(b) = raw.get_mut(start + i) {
                *b = *v;
            }
        }
        self.store_bar(index, bar, u64::from_le_bytes(raw));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn space() -> ConfigSpace {
        let id = PciId { vendor: 0x5853, device: 1, revision: 1, class: 0xFF8000, subsystem_vendor: 0x5853, subsystem: 1 };
        let mut c = ConfigSpace::new(id);
        c.set_bar(0, Bar::Io { size: 0x100 }, 0xC000u32);
        c.set_bar(1, Bar::Mem32 { size: 16 << 20, prefetchable: true }, 0xF000_0000u32);
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

    #[test]
    fn mem64_bar_takes_two_slots_and_sizes_both_halves() {
        let mut c = space();
        c.set_bar(2, Bar::Mem64 { size: 0x4000, prefetchable: false }, 0xE100_0000u64);
        assert_eq!(read32(&c, 0x18), 0xE100_0004, "64-bit, not prefetchable");
        assert_eq!(read32(&c, 0x1C), 0);
        assert_eq!(c.bar_addr64(2), Some(0xE100_0000));
        assert_eq!(c.bar_addr64(3), None, "the high half is no BAR of its own");
        assert_eq!(c.bar_size(2), Some(0x4000));
        // Linux sizes each half: all ones in, the mask out, the value back.
        c.write(0x18, &u32::MAX.to_le_bytes());
        assert_eq!(read32(&c, 0x18), 0xFFFF_C004);
        c.write(0x1C, &u32::MAX.to_le_bytes());
        assert_eq!(read32(&c, 0x1C), 0xFFFF_FFFF);
        c.write(0x18, &0xE100_0000u32.to_le_bytes());
        c.write(0x1C, &0x0000_0001u32.to_le_bytes());
        assert_eq!(c.bar_addr64(2), Some(0x1_E100_0000));
        assert_eq!(c.bar_addr(2), None, "above 4 GiB");
        // A byte write to the high half lands in bits 40-47.
        c.write(0x1D, &[0x02]);
        assert_eq!(c.bar_addr64(2), Some(0x201_E100_0000));
        // Unaligned low bits never stick.
        c.write(0x18, &0x1234_5678u32.to_le_bytes());
        assert_eq!(read32(&c, 0x18), 0x1234_4004);
    }

    #[test]
    fn mem64_bar_cannot_start_in_the_last_slot() {
        let mut c = space();
        c.set_bar(5, Bar::Mem64 { size: 0x1000, prefetchable: true }, 0xE000_0000u64);
        assert_eq!(c.bar_addr64(5), None);
        assert_eq!(read32(&c, 0x24), 0);
    }

    #[test]
    fn capabilities_chain_from_the_pointer() {
        let mut c = space();
        let mut status = [0u8; 2];
        c.read(0x06, &mut status);
        assert_eq!(status[0] & 0x10, 0, "no list yet");
        let first = c.add_capability(&[0x09, 0xAA, 5, 1, 2], &[0, 0, 0, 0xFF]).unwrap();
        let second = c.add_capability(&[0x11, 0, 0, 0], &[0, 0, 0, 0xC0]).unwrap();
        assert_eq!(first, 0x40);
        assert_eq!(second, 0x48, "dword aligned after the first");
        c.read(0x06, &mut status);
        assert_eq!(status[0] & 0x10, 0x10);
        let mut b = [0u8; 1];
        c.read(0x34, &mut b);
        assert_eq!(b[0], 0x40);
        c.read(0x41, &mut b);
        assert_eq!(b[0], 0x48, "first links to second, whatever the body said");
        c.read(0x49, &mut b);
        assert_eq!(b[0], 0, "end of the list");
        // Only the masked bits are writable; IDs and links never are.
        c.write(0x40, &[0xFF, 0xFF, 0xFF, 0x7E, 0xFF]);
        let mut cap = [0u8; 5];
        c.read(0x40, &mut cap);
        assert_eq!(cap, [0x09, 0x48, 5, 0x7E, 2]);
        c.write(0x4B, &[0xFF]);
        c.read(0x4B, &mut b);
        assert_eq!(b[0], 0xC0);
        c.set_device_bytes(0x44, &[9]);
        c.read(0x44, &mut b);
        assert_eq!(b[0], 9);
    }

    #[test]
    fn capabilities_that_do_not_fit_are_refused() {
        let mut c = space();
        assert_eq!(c.add_capability(&[0x09], &[]), Err(CapabilityError::Malformed));
        assert_eq!(c.add_capability(&[0x09, 0], &[0, 0, 0]), Err(CapabilityError::Malformed));
        assert_eq!(c.add_capability(&[0x09; 180], &[]), Ok(0x40));
        assert_eq!(c.add_capability(&[0x09; 20], &[]), Err(CapabilityError::NoRoom(20)));
        assert_eq!(c.add_capability(&[0x09; 12], &[]), Ok(0xF4), "exactly to the end");
        assert_eq!(c.add_capability(&[0x09; 2], &[]), Err(CapabilityError::NoRoom(2)));
    }
}
