//! The virtio-pci modern transport (virtio 1.x, section 4.1) as a PCI
//! function: vendor capabilities point the driver at four regions of one
//! 64-bit memory BAR (common configuration, notifications, ISR, device
//! configuration), which also holds the MSI-X table and pending bits.
//!
//! BAR layout (16 KiB):
//!
//! | offset | region |
//! |---|---|
//! | 0x0000 | common configuration (`virtio_pci_common_cfg`) |
//! | 0x1000 | ISR status |
//! | 0x2000 | device configuration |
//! | 0x3000 | notifications: queue N at N × 4 |
//! | 0x3800 | MSI-X table |
//! | 0x3C00 | MSI-X pending bits |

use std::sync::{Arc, Mutex};

use xenkvm_devices::acpi_pm::IrqLevel;
use xenkvm_devices::ioapic::MsiSink;
use xenkvm_devices::pci::msix::BarOffset;
use xenkvm_devices::pci::{Bar, ConfigSpace, PciFunction, PciId};

use crate::common::{DeviceState, Effect, COMMON_LEN};
use crate::{Interrupts, Kick, VirtioError};

/// The BAR holding every region (a 64-bit BAR: slots 0 and 1).
pub const BAR_INDEX: usize = 0;
/// Its size.
pub const BAR_SIZE: u64 = 0x4000;

const COMMON: u64 = 0x0000;
const ISR: u64 = 0x1000;
const ISR_LEN: u64 = 4;
const DEVICE: u64 = 0x2000;
const DEVICE_MAX: u64 = 0x1000;
const NOTIFY: u64 = 0x3000;
const NOTIFY_LEN: u64 = 0x400;
/// Bytes between two queues' notification addresses.
pub const NOTIFY_MULTIPLIER: u32 = 4;
const MSIX_TABLE: u64 = 0x3800;
const MSIX_PBA: u64 = 0x3C00;
/// Most queues a device may have here (their notification addresses and
/// one vector each, plus the config vector, fit the layout).
pub const MAX_QUEUES: usize = 63;

const VIRTIO_VENDOR: u16 = 0x1AF4;
/// Modern device IDs are 0x1040 + the virtio device type.
const MODERN_DEVICE_BASE: u16 = 0x1040;
const CAP_VENDOR: u8 = 0x09;

/// `cfg_type` of the virtio capabilities.
const CAP_COMMON: u8 = 1;
const CAP_NOTIFY: u8 = 2;
const CAP_ISR: u8 = 3;
const CAP_DEVICE: u8 = 4;
const CAP_PCI_CFG: u8 = 5;
/// Bytes of `struct virtio_pci_cap`, of the notify one, of the PCI-config one.
const CAP_LEN: usize = 16;
const NOTIFY_CAP_LEN: usize = 20;
const PCI_CFG_CAP_LEN: usize = 20;

/// What the transport needs from a device type.
pub trait VirtioDevice: Send {
    /// The virtio device type (1: network card).
    fn device_type(&self) -> u16;
    /// PCI class, subclass and programming interface.
    fn pci_class(&self) -> u32;
    /// Device feature bits (VIRTIO_F_VERSION_1 is added by the transport).
    fn features(&self) -> u64;
    /// Each queue's maximum size (powers of two).
    fn queue_max_sizes(&self) -> Vec<u16>;
    /// Bytes of the device configuration structure.
    fn config_len(&self) -> u64;
    /// A driver read of the device configuration.
    fn read_config(&self, offset: u64, data: &mut [u8]);
    /// A driver write to the device configuration (default: ignored).
    fn write_config(&mut self, offset: u64, data: &[u8]) {
        let _ = (offset, data);
    }
}

/// What the transport shares with the device's worker thread.
pub struct Shared {
    pub state: Mutex<DeviceState>,
    pub interrupts: Interrupts,
    /// Written by notifications; the worker waits on it.
    pub kick: Kick,
}

/// One virtio device as a PCI function.
pub struct VirtioPci {
    config: ConfigSpace,
    device: Box<dyn VirtioDevice>,
    shared: Arc<Shared>,
    msix_cap: u8,
    pci_cfg_cap: u8,
}

/// A `struct virtio_pci_cap` of `len` bytes for `cfg_type` at `offset`+`length` of the BAR.
fn virtio_cap(len: usize, cfg_type: u8, offset: u64, length: u64) -> Vec<u8> {
    let mut cap = vec![0u8; len];
    let head = [CAP_VENDOR, 0, len as u8, cfg_type, BAR_INDEX as u8, 0, 0, 0];
    let tail = [(offset as u32).to_le_bytes(), (length as u32).to_le_bytes()].concat();
    for (dst, src) in cap.iter_mut().zip(head.iter().chain(tail.iter())) {
        *dst = *src;
    }
    cap
}

impl VirtioPci {
    /// The function for `device`, its BAR at `bar_addr` (memory decoding
    /// on, as firmware leaves a placed device), interrupts to `msi` (MSI-X)
    /// or `intx` (INTA#).
    pub fn new(
        device: Box<dyn VirtioDevice>,
        bar_addr: u64,
        msi: Arc<dyn MsiSink>,
        intx: Box<dyn IrqLevel>,
    ) -> Result<Self, VirtioError> {
        let sizes = device.queue_max_sizes();
        if sizes.is_empty() || sizes.len() > MAX_QUEUES {
            return Err(VirtioError::QueueCount);
        }
        if let Some(bad) = sizes.iter().copied().find(|s| !s.is_power_of_two() || *s > 32768) {
            return Err(VirtioError::QueueSize(bad));
        }
        let vectors = sizes.len() as u16 + 1;
        let interrupts = Interrupts::new(vectors, msi, intx);
        let state = DeviceState::new(device.features(), &sizes, vectors)?;
        let shared = Arc::new(Shared { state: Mutex::new(state), interrupts, kick: Kick::new()? });
        let mut config = ConfigSpace::new(PciId {
            vendor: VIRTIO_VENDOR,
            device: MODERN_DEVICE_BASE + device.device_type(),
            revision: 1,
            class: device.pci_class(),
            subsystem_vendor: VIRTIO_VENDOR,
            subsystem: 0x1100,
        });
        config.set_interrupt_pin(1);
        config.set_bar(BAR_INDEX, Bar::Mem64 { size: BAR_SIZE, prefetchable: false }, bar_addr);
        config.set_command(0x2);
        let mut f = Self { config, device, shared, msix_cap: 0, pci_cfg_cap: 0 };
        f.add_capabilities()?;
        Ok(f)
    }

    fn add_capabilities(&mut self) -> Result<(), VirtioError> {
        let c = &mut self.config;
        let device_len = self.device.config_len().min(DEVICE_MAX);
        c.add_capability(&virtio_cap(CAP_LEN, CAP_COMMON, COMMON, COMMON_LEN), &[])?;
        let mut notify = virtio_cap(NOTIFY_CAP_LEN, CAP_NOTIFY, NOTIFY, NOTIFY_LEN);
        if let Some(m) = notify.get_mut(CAP_LEN..) {
            m.copy_from_slice(&NOTIFY_MULTIPLIER.to_le_bytes());
        }
        c.add_capability(&notify, &[])?;
        c.add_capability(&virtio_cap(CAP_LEN, CAP_ISR, ISR, ISR_LEN), &[])?;
        c.add_capability(&virtio_cap(CAP_LEN, CAP_DEVICE, DEVICE, device_len), &[])?;
        // VIRTIO_PCI_CAP_PCI_CFG: bar, offset, length and the data window are the driver's.
        let mut writable = [0u8; PCI_CFG_CAP_LEN];
        writable[4] = 0xFF;
        writable[8..].fill(0xFF);
        self.pci_cfg_cap = c.add_capability(&virtio_cap(PCI_CFG_CAP_LEN, CAP_PCI_CFG, 0, 0), &writable)?;
        let table = BarOffset { bar: BAR_INDEX as u8, offset: MSIX_TABLE as u32 };
        let pba = BarOffset { bar: BAR_INDEX as u8, offset: MSIX_PBA as u32 };
        let (body, mask) = self.shared.interrupts.with_msix(|m| m.capability(table, pba)).unwrap_or_default();
        self.msix_cap = c.add_capability(&body, &mask)?;
        Ok(())
    }

    /// What the worker thread shares with this function.
    pub fn shared(&self) -> Arc<Shared> {
        self.shared.clone()
    }

    fn read_region(&self, offset: u64, data: &mut [u8]) {
        data.fill(0);
        let in_range = |base: u64, len: u64| offset >= base && offset < base + len;
        let s = &self.shared;
        if in_range(COMMON, COMMON_LEN) {
            if let Ok(st) = s.state.lock() {
                st.read(offset - COMMON, data);
            }
        } else if in_range(ISR, ISR_LEN) {
            let isr = s.interrupts.read_isr();
            if let Some(b) = data.first_mut() {
                *b = if offset == ISR { isr } else { 0 };
            }
        } else if in_range(DEVICE, DEVICE_MAX) {
            self.device.read_config(offset - DEVICE, data);
        } else if in_range(MSIX_TABLE, MSIX_PBA - MSIX_TABLE) {
            s.interrupts.with_msix(|m| m.read_table(offset - MSIX_TABLE, data));
        } else if in_range(MSIX_PBA, BAR_SIZE - MSIX_PBA) {
            s.interrupts.with_msix(|m| m.read_pba(offset - MSIX_PBA, data));
        }
    }

    fn write_region(&mut self, offset: u64, data: &[u8]) {
        let in_range = |base: u64, len: u64| offset >= base && offset < base + len;
        if in_range(COMMON, COMMON_LEN) {
            let effect = self.shared.state.lock().map(|mut st| st.write(offset - COMMON, data)).unwrap_or(Effect::None);
            self.apply(effect);
        } else if in_range(NOTIFY, NOTIFY_LEN) {
            // The queue index written does not matter: the worker looks at every queue.
            self.shared.kick.notify();
        } else if in_range(DEVICE, DEVICE_MAX) {
            self.device.write_config(offset - DEVICE, data);
        } else if in_range(MSIX_TABLE, MSIX_PBA - MSIX_TABLE) {
            self.shared.interrupts.with_msix(|m| m.write_table(offset - MSIX_TABLE, data));
        }
    }

    fn apply(&mut self, effect: Effect) {
        match effect {
            Effect::None => {}
            Effect::Reset => {
                self.shared.interrupts.reset();
                self.shared.kick.notify();
            }
            Effect::DriverOk => self.shared.kick.notify(),
        }
    }

    /// The BAR window of the VIRTIO_PCI_CAP_PCI_CFG capability: (bar, offset, length).
    fn pci_cfg_window(&self) -> (u8, u64, usize) {
        let mut b = [0u8; 12];
        self.config.read(u16::from(self.pci_cfg_cap) + 4, &mut b);
        let word = |i: usize| b.get(i..i + 4).and_then(|w| w.try_into().ok()).map_or(0, u32::from_le_bytes);
        (b.first().copied().unwrap_or(0xFF), u64::from(word(4)), word(8) as usize)
    }

    /// Whether a config access at `offset` of `len` bytes is the PCI-config data window.
    fn is_pci_cfg_data(&self, offset: u16, len: usize) -> bool {
        let data = u16::from(self.pci_cfg_cap) + CAP_LEN as u16;
        offset == data && matches!(len, 1 | 2 | 4)
    }
}

impl PciFunction for VirtioPci {
    fn config(&self) -> &ConfigSpace {
        &self.config
    }

    fn config_mut(&mut self) -> &mut ConfigSpace {
        &mut self.config
    }

    fn config_read(&self, offset: u16, data: &mut [u8]) {
        self.config.read(offset, data);
        if self.is_pci_cfg_data(offset, data.len()) {
            let (bar, at, len) = self.pci_cfg_window();
            if usize::from(bar) == BAR_INDEX && len == data.len() {
                self.read_region(at, data);
            }
        }
    }

    fn config_write(&mut self, offset: u16, data: &[u8]) {
        self.config.write(offset, data);
        let cap = self.msix_cap;
        let config = &self.config;
        self.shared.interrupts.with_msix(|m| m.sync_control(config, cap));
        if self.is_pci_cfg_data(offset, data.len()) {
            let (bar, at, len) = self.pci_cfg_window();
            if usize::from(bar) == BAR_INDEX && len == data.len() {
                self.write_region(at, data);
            }
        }
    }

    fn bar_read(&mut self, bar: usize, offset: u64, data: &mut [u8]) {
        if bar != BAR_INDEX || data.len() > 8 {
            return data.fill(0xFF);
        }
        self.read_region(offset, data);
    }

    fn bar_write(&mut self, bar: usize, offset: u64, data: &[u8]) {
        if bar == BAR_INDEX && data.len() <= 8 {
            self.write_region(offset, data);
        }
    }
}
