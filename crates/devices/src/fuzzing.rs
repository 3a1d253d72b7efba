//! Fuzz harness of the guest-facing port I/O of the PCI bus and the Xen
//! platform device, shared by the libFuzzer target (`fuzz/`:
//! `pci_platform_io`) and the deterministic replay test
//! (`tests/fuzz_replay.rs`).
//!
//! The input is a sequence of port accesses (5 bytes each: kind, offset,
//! size, and a value) against configuration mechanism #1 (0xCF8..0xCFF) with
//! the host bridge at 00.0 and the platform device at 00.2, and against the
//! platform device's fixed ports. Oracles, checked after every access: the
//! identity registers (vendor, device, class, header type) never change; the
//! BARs keep their type bits and size alignment; the platform log buffer
//! stays bounded; the magic and protocol version still read back.

use std::sync::{Arc, Mutex};

use crate::bus::PioDevice;
use crate::pci::{host_bridge, PciFunction, PciRoot};
use crate::xen_platform::{PlatformPorts, PlatformState, XenPlatform, IO_BAR_SIZE, MMIO_BAR_SIZE};

const PLATFORM_SLOT: u8 = 2;

/// What a run did, for the replay test's coverage report.
#[derive(Debug, Default, Clone, Copy)]
pub struct Stats {
    pub accesses: usize,
    pub config_writes: usize,
    pub unplug_requests: usize,
}

/// Runs the accesses `data` describes; the first broken oracle is `Err`.
pub fn run(data: &[u8]) -> Result<Stats, String> {
    let mut root = PciRoot::new();
    let bridge = Arc::new(Mutex::new(host_bridge()));
    let platform = Arc::new(Mutex::new(XenPlatform::new(0xC000, 0xF000_0000)));
    root.attach(0, bridge.clone()).map_err(|e| e.to_string())?;
    root.attach(PLATFORM_SLOT, platform.clone()).map_err(|e| e.to_string())?;
    let state = Arc::new(Mutex::new(PlatformState::default()));
    let mut ports = PlatformPorts::new(state.clone());
    let ids = (identity(&*lock(&bridge)?), identity(&*lock(&platform)?));
    let mut stats = Stats::default();
    for op in data.chunks_exact(5) {
        let [kind, at, sz, v0, v1] = *op else { continue };
        let size = match sz % 3 {
            0 => 1,
            1 => 2,
            _ => 4,
        };
        let value = [v0, v1, v0 ^ 0x5A, v1 ^ 0xA5];
        let mut buf = [0u8; 4];
        let (Some(bytes), Some(value)) = (buf.get_mut(..size), value.get(..size)) else { continue };
        match kind % 5 {
            0 => {
                bytes.copy_from_slice(value);
                root.write(u64::from(at % 8), bytes);
                stats.config_writes += 1;
            }
            1 => root.read(u64::from(at % 8), bytes),
            2 => {
                // Aim at a function's registers: the address write the guest would do.
                let addr = 0x8000_0000u32 | u32::from(at % 3) << 11 | u32::from(v0) & 0xFC;
                root.write(0, &addr.to_le_bytes());
            }
            3 => {
                bytes.copy_from_slice(value);
                if at % 16 == 0 && size == 2 {
                    stats.unplug_requests += 1;
                }
                ports.write(u64::from(at % 16), bytes);
            }
            _ => ports.read(u64::from(at % 16), bytes),
        }
        stats.accesses += 1;
        check(&bridge, &platform, &ids, &mut ports)?;
    }
    Ok(stats)
}

fn lock<T: ?Sized>(m: &Mutex<T>) -> Result<std::sync::MutexGuard<'_, T>, String> {
    m.lock().map_err(|_| "a function's lock was poisoned".to_string())
}

/// Vendor/device (0x00), class and revision (0x08), header type (0x0E).
fn identity(f: &dyn PciFunction) -> [u8; 9] {
    let mut id = [0u8; 9];
    let (a, b) = id.split_at_mut(4);
    f.config().read(0x00, a);
    let (b, c) = b.split_at_mut(4);
    f.config().read(0x08, b);
    f.config().read(0x0E, c);
    id
}

fn check(
    bridge: &Mutex<crate::pci::PlainFunction>,
    platform: &Mutex<XenPlatform>,
    ids: &([u8; 9], [u8; 9]),
    ports: &mut PlatformPorts,
) -> Result<(), String> {
    if identity(&*lock(bridge)?) != ids.0 || identity(&*lock(platform)?) != ids.1 {
        return Err("an identity register changed".into());
    }
    let p = lock(platform)?;
    let bar = |i: u16| {
        let mut b = [0u8; 4];
        p.config().read(0x10 + 4 * i, &mut b);
        u32::from_le_bytes(b)
    };
    let (io, mem) = (bar(0), bar(1));
    if io & 1 != 1 || (io & !3) % IO_BAR_SIZE != 0 {
        return Err(format!("BAR0 lost its I/O type or alignment: {io:#x}"));
    }
    if mem & 0xF != 0x8 || (mem & !0xF) % MMIO_BAR_SIZE != 0 {
        return Err(format!("BAR1 lost its type bits or alignment: {mem:#x}"));
    }
    drop(p);
    let (mut magic, mut version) = ([0u8; 2], [0u8; 1]);
    ports.read(0, &mut magic);
    ports.read(2, &mut version);
    if u16::from_le_bytes(magic) != 0x49d2 || version[0] != 1 {
        return Err("the platform magic or version changed".into());
    }
    if ports.log_len() > 256 {
        return Err(format!("the platform log grew to {} bytes", ports.log_len()));
    }
    Ok(())
}
