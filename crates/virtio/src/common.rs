//! The common configuration structure (`struct virtio_pci_common_cfg`):
//! feature negotiation, device status and reset, and the selected queue's
//! size, vector, enable bit and ring addresses.

use virtio_queue::{Queue, QueueT};

use crate::{status, NO_VECTOR, VIRTIO_F_VERSION_1};

/// Register offsets in the common configuration structure.
mod reg {
    pub const DEVICE_FEATURE_SELECT: u64 = 0x00;
    pub const DEVICE_FEATURE: u64 = 0x04;
    pub const DRIVER_FEATURE_SELECT: u64 = 0x08;
    pub const DRIVER_FEATURE: u64 = 0x0C;
    pub const CONFIG_MSIX_VECTOR: u64 = 0x10;
    pub const NUM_QUEUES: u64 = 0x12;
    pub const DEVICE_STATUS: u64 = 0x14;
    pub const CONFIG_GENERATION: u64 = 0x15;
    pub const QUEUE_SELECT: u64 = 0x16;
    pub const QUEUE_SIZE: u64 = 0x18;
    pub const QUEUE_MSIX_VECTOR: u64 = 0x1A;
    pub const QUEUE_ENABLE: u64 = 0x1C;
    pub const QUEUE_NOTIFY_OFF: u64 = 0x1E;
    pub const QUEUE_DESC: u64 = 0x20;
    pub const QUEUE_DRIVER: u64 = 0x28;
    pub const QUEUE_DEVICE: u64 = 0x30;
}

/// Bytes of the structure (Linux 6.1's `virtio_pci_common_cfg` is 0x38).
pub const COMMON_LEN: u64 = 0x40;

/// One virtqueue as the driver configured it.
pub struct QueueSlot {
    pub queue: Queue,
    /// Its MSI-X vector (or [`NO_VECTOR`]).
    pub vector: u16,
    /// The device found it unusable (bad rings or descriptors) and stopped it.
    pub broken: bool,
}

/// What a register write asks the transport to do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    None,
    /// Status 0: reset the device.
    Reset,
    /// DRIVER_OK was set: the queues go live.
    DriverOk,
}

/// Feature negotiation, status and queues: shared by the transport (vCPU
/// threads) and the worker, under one lock.
pub struct DeviceState {
    device_features: u64,
    driver_features: u64,
    device_feature_select: u32,
    driver_feature_select: u32,
    status: u8,
    generation: u8,
    config_vector: u16,
    queue_select: u16,
    queues: Vec<QueueSlot>,
    /// Vectors the MSI-X table has (vector numbers beyond are refused).
    vectors: u16,
    /// Resets since power-on.
    resets: u64,
}

impl DeviceState {
    /// Queues of `sizes` (each a valid maximum, checked by the caller).
    pub(crate) fn new(device_features: u64, sizes: &[u16], vectors: u16) -> Result<Self, crate::VirtioError> {
        let queues = sizes
            .iter()
            .map(|&s| Queue::new(s).map(|queue| QueueSlot { queue, vector: NO_VECTOR, broken: false }))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| crate::VirtioError::QueueSize(sizes.iter().copied().find(|s| !s.is_power_of_two()).unwrap_or(0)))?;
        Ok(Self {
            device_features: device_features | VIRTIO_F_VERSION_1,
            driver_features: 0,
            device_feature_select: 0,
            driver_feature_select: 0,
            status: 0,
            generation: 0,
            config_vector: NO_VECTOR,
            queue_select: 0,
            queues,
            vectors,
            resets: 0,
        })
    }

    /// The features both sides agreed on (valid once FEATURES_OK is set).
    pub fn driver_features(&self) -> u64 {
        self.driver_features
    }

    pub fn status(&self) -> u8 {
        self.status
    }

    /// Whether the driver set DRIVER_OK (and the device did not ask for a reset).
    pub fn live(&self) -> bool {
        self.status & status::DRIVER_OK != 0 && self.status & status::DEVICE_NEEDS_RESET == 0
    }

    pub fn config_vector(&self) -> u16 {
        self.config_vector
    }

    /// Queue `index`, if the device has it.
    pub fn queue_mut(&mut self, index: usize) -> Option<&mut QueueSlot> {
        self.queues.get_mut(index)
    }

    pub fn num_queues(&self) -> usize {
        self.queues.len()
    }

    /// Resets since power-on: a worker that saw the device live under
    /// another count must set it up again (features, rings).
    pub fn resets(&self) -> u64 {
        self.resets
    }

    /// The device gives up until the driver resets it (spec 2.1.2).
    pub fn needs_reset(&mut self) {
        self.status |= status::DEVICE_NEEDS_RESET;
        self.generation = self.generation.wrapping_add(1);
    }

    /// The device configuration changed (the driver re-reads it).
    pub fn config_changed(&mut self) {
        self.generation = self.generation.wrapping_add(1);
    }

    /// Back to the state after power-on (features, status, queues).
    fn reset(&mut self) {
        self.resets = self.resets.wrapping_add(1);
        self.driver_features = 0;
        self.device_feature_select = 0;
        self.driver_feature_select = 0;
        self.status = 0;
        self.config_vector = NO_VECTOR;
        self.queue_select = 0;
        for q in &mut self.queues {
            q.queue.reset();
            q.vector = NO_VECTOR;
            q.broken = false;
        }
    }

    fn selected(&self) -> Option<&QueueSlot> {
        self.queues.get(usize::from(self.queue_select))
    }

    fn selected_mut(&mut self) -> Option<&mut QueueSlot> {
        self.queues.get_mut(usize::from(self.queue_select))
    }

    /// The value of the register at `offset` (0 for none), in its width.
    fn register(&self, offset: u64) -> u64 {
        let q = self.selected();
        let select_word = |features: u64, select: u32| match select {
            0 => features & 0xFFFF_FFFF,
            1 => features >> 32,
            _ => 0,
        };
        match offset {
            reg::DEVICE_FEATURE_SELECT => u64::from(self.device_feature_select),
            reg::DEVICE_FEATURE => select_word(self.device_features, self.device_feature_select),
            reg::DRIVER_FEATURE_SELECT => u64::from(self.driver_feature_select),
            reg::DRIVER_FEATURE => select_word(self.driver_features, self.driver_feature_select),
            reg::CONFIG_MSIX_VECTOR => u64::from(self.config_vector),
            reg::NUM_QUEUES => self.queues.len() as u64,
            reg::DEVICE_STATUS => u64::from(self.status),
            reg::CONFIG_GENERATION => u64::from(self.generation),
            reg::QUEUE_SELECT => u64::from(self.queue_select),
            // Size 0 tells the driver the selected queue does not exist.
            reg::QUEUE_SIZE => q.map_or(0, |q| u64::from(q.queue.size())),
            reg::QUEUE_MSIX_VECTOR => q.map_or(u64::from(NO_VECTOR), |q| u64::from(q.vector)),
            reg::QUEUE_ENABLE => q.map_or(0, |q| u64::from(q.queue.ready())),
            reg::QUEUE_NOTIFY_OFF => u64::from(self.queue_select),
            reg::QUEUE_DESC => q.map_or(0, |q| q.queue.desc_table()),
            reg::QUEUE_DRIVER => q.map_or(0, |q| q.queue.avail_ring()),
            reg::QUEUE_DEVICE => q.map_or(0, |q| q.queue.used_ring()),
            _ => 0,
        }
    }

    /// The start and width of the register holding byte `offset`.
    fn field(offset: u64) -> Option<(u64, u64)> {
        let fields: [(u64, u64); 16] = [
            (reg::DEVICE_FEATURE_SELECT, 4),
            (reg::DEVICE_FEATURE, 4),
            (reg::DRIVER_FEATURE_SELECT, 4),
            (reg::DRIVER_FEATURE, 4),
            (reg::CONFIG_MSIX_VECTOR, 2),
            (reg::NUM_QUEUES, 2),
            (reg::DEVICE_STATUS, 1),
            (reg::CONFIG_GENERATION, 1),
            (reg::QUEUE_SELECT, 2),
            (reg::QUEUE_SIZE, 2),
            (reg::QUEUE_MSIX_VECTOR, 2),
            (reg::QUEUE_ENABLE, 2),
            (reg::QUEUE_NOTIFY_OFF, 2),
            (reg::QUEUE_DESC, 8),
            (reg::QUEUE_DRIVER, 8),
            (reg::QUEUE_DEVICE, 8),
        ];
        fields.into_iter().find(|(start, width)| (*start..start + width).contains(&offset))
    }

    /// A driver read of `data.len()` bytes at `offset` (any width; bytes of
    /// no register read as zero).
    pub fn read(&self, offset: u64, data: &mut [u8]) {
        for (i, d) in data.iter_mut().enumerate() {
            let at = offset.saturating_add(i as u64);
            *d = Self::field(at).map_or(0, |(start, _)| {
                let shift = (at - start) * 8;
                (self.register(start) >> shift) as u8
            });
        }
    }

    /// A driver write. Registers take whole-width writes at their start;
    /// 64-bit addresses also take 32-bit halves. Anything else is ignored.
    pub fn write(&mut self, offset: u64, data: &[u8]) -> Effect {
        let mut raw = [0u8; 8];
        let Some(dst) = raw.get_mut(..data.len()) else { return Effect::None };
        dst.copy_from_slice(data);
        let value = u64::from_le_bytes(raw);
        match (offset, data.len()) {
            (reg::DEVICE_STATUS, 1) => return self.write_status(value as u8),
            (reg::DEVICE_FEATURE_SELECT, 4) => self.device_feature_select = value as u32,
            (reg::DRIVER_FEATURE_SELECT, 4) => self.driver_feature_select = value as u32,
            (reg::DRIVER_FEATURE, 4) => self.write_driver_features(value as u32),
            (reg::CONFIG_MSIX_VECTOR, 2) => self.config_vector = self.checked_vector(value as u16),
            (reg::QUEUE_SELECT, 2) => self.queue_select = value as u16,
            (reg::QUEUE_MSIX_VECTOR, 2) => {
                let v = self.checked_vector(value as u16);
                if let Some(q) = self.selected_mut() {
                    q.vector = v;
                }
            }
            _ => self.write_queue(offset, data.len(), value),
        }
        Effect::None
    }

    /// A vector number the table has, else "no vector" (which the driver
    /// reads back as the mapping's failure).
    fn checked_vector(&self, v: u16) -> u16 {
        if v < self.vectors {
            v
        } else {
            NO_VECTOR
        }
    }

    fn write_driver_features(&mut self, word: u32) {
        if self.status & status::FEATURES_OK != 0 {
            return;
        }
        let word = u64::from(word);
        self.driver_features = match self.driver_feature_select {
            0 => (self.driver_features & !0xFFFF_FFFF) | word,
            1 => (self.driver_features & 0xFFFF_FFFF) | (word << 32),
            _ => self.driver_features,
        };
    }

    fn write_status(&mut self, value: u8) -> Effect {
        if value == 0 {
            self.reset();
            return Effect::Reset;
        }
        let mut value = value;
        let newly = value & !self.status;
        if newly & status::FEATURES_OK != 0 {
            let offered = self.driver_features & !self.device_features == 0;
            if !offered || self.driver_features & VIRTIO_F_VERSION_1 == 0 {
                // The driver reads FEATURES_OK back and gives up.
                value &= !status::FEATURES_OK;
            }
        }
        if newly & status::DRIVER_OK != 0 && self.status & status::FEATURES_OK == 0 && value & status::FEATURES_OK == 0 {
            value &= !status::DRIVER_OK;
        }
        // The driver cannot clear bits (only a reset does), nor set NEEDS_RESET.
        self.status |= value & !status::DEVICE_NEEDS_RESET;
        if newly & status::DRIVER_OK != 0 && self.status & status::DRIVER_OK != 0 {
            return Effect::DriverOk;
        }
        Effect::None
    }

    /// Size, enable and ring addresses of the selected queue: only before
    /// it is enabled (and before DRIVER_OK).
    fn write_queue(&mut self, offset: u64, len: usize, value: u64) {
        let frozen = self.status & status::DRIVER_OK != 0;
        let Some(q) = self.selected_mut() else { return };
        if q.queue.ready() || frozen {
            return;
        }
        let low = Some(value as u32);
        let high = Some((value >> 32) as u32);
        let queue = &mut q.queue;
        match (offset, len) {
            // Not a power of two, zero or beyond the maximum: ignored.
            (reg::QUEUE_SIZE, 2) => {
                let _ = queue.try_set_size(value as u16);
            }
            (reg::QUEUE_ENABLE, 2) if value == 1 => queue.set_ready(true),
            (reg::QUEUE_DESC, 8) => queue.set_desc_table_address(low, high),
            (reg::QUEUE_DESC, 4) => queue.set_desc_table_address(low, None),
            (o, 4) if o == reg::QUEUE_DESC + 4 => queue.set_desc_table_address(None, low),
            (reg::QUEUE_DRIVER, 8) => queue.set_avail_ring_address(low, high),
            (reg::QUEUE_DRIVER, 4) => queue.set_avail_ring_address(low, None),
            (o, 4) if o == reg::QUEUE_DRIVER + 4 => queue.set_avail_ring_address(None, low),
            (reg::QUEUE_DEVICE, 8) => queue.set_used_ring_address(low, high),
            (reg::QUEUE_DEVICE, 4) => queue.set_used_ring_address(low, None),
            (o, 4) if o == reg::QUEUE_DEVICE + 4 => queue.set_used_ring_address(None, low),
            _ => {}
        }
    }
}
