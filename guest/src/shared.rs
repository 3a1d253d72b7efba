//! Memory shared with the hypervisor: page-aligned static pages, volatile
//! accessors, and where the shared_info page, the `vcpu_info` and the runstate
//! area currently live.
//!
//! The guest runs on an identity map, so the address of a static is both its
//! guest-virtual and its guest-physical address.
//!
//! Records that the hypervisor writes behind the guest's back (pvclock,
//! runstate, shared_info) are only ever read with volatile loads.

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicU64, Ordering};

/// One 4 KiB-aligned page of guest RAM in `.bss`.
#[repr(C, align(4096))]
pub struct Page(UnsafeCell<[u8; 4096]>);

// SAFETY: the guest has a single vCPU and no interrupts; the pages are only
// accessed through raw pointers (volatile where the hypervisor writes them).
unsafe impl Sync for Page {}

impl Page {
    pub const fn new() -> Self {
        Self(UnsafeCell::new([0; 4096]))
    }

    /// Guest-virtual (= guest-physical) address of the page.
    pub fn addr(&self) -> u64 {
        self.0.get() as u64
    }

    /// Guest frame number of the page.
    pub fn gfn(&self) -> u64 {
        self.addr() >> 12
    }
}

/// The hypercall page, filled by the hypervisor on the hypercall MSR write.
pub static HYPERCALL_PAGE: Page = Page::new();
/// Where shared_info is first mapped (XENMEM_add_to_physmap). Once shared_info
/// is moved elsewhere this frame may be a hole: never touch it directly.
pub static SHARED_INFO_PAGE: Page = Page::new();
/// Holds the `vcpu_info` registered with VCPUOP_register_vcpu_info.
pub static VCPU_INFO_PAGE: Page = Page::new();
/// Holds the vcpu time area and the runstate area.
pub static AREA_PAGE: Page = Page::new();
/// Scratch buffers for hypercalls that write guest memory.
pub static SCRATCH_PAGE: Page = Page::new();

/// Offset of the vcpu_info in `VCPU_INFO_PAGE`.
pub const VCPU_INFO_OFFSET: u64 = 64;
/// Offset of the vcpu time area in `AREA_PAGE`.
pub const TIME_AREA_OFFSET: u64 = 0;
/// Offset of the runstate area in `AREA_PAGE`.
pub const RUNSTATE_AREA_OFFSET: u64 = 64;

/// Volatile load of a `u8` at a guest address.
///
/// # Safety
/// `addr` must be mapped and backed (RAM or a page the hypervisor provides).
pub unsafe fn read8(addr: u64) -> u8 {
    // SAFETY: forwarded to the caller.
    unsafe { (addr as *const u8).read_volatile() }
}

/// Volatile load of an aligned `u32`.
///
/// # Safety
/// As for [`read8`]; `addr` 4-byte aligned.
pub unsafe fn read32(addr: u64) -> u32 {
    // SAFETY: forwarded to the caller.
    unsafe { (addr as *const u32).read_volatile() }
}

/// Volatile load of an aligned `u64`.
///
/// # Safety
/// As for [`read8`]; `addr` 8-byte aligned.
pub unsafe fn read64(addr: u64) -> u64 {
    // SAFETY: forwarded to the caller.
    unsafe { (addr as *const u64).read_volatile() }
}

/// Volatile store of a `u8`.
///
/// # Safety
/// As for [`read8`], and the byte must be the guest's to write.
pub unsafe fn write8(addr: u64, value: u8) {
    // SAFETY: forwarded to the caller.
    unsafe { (addr as *mut u8).write_volatile(value) }
}

/// Volatile store of an aligned `u64`.
///
/// # Safety
/// As for [`write8`]; `addr` 8-byte aligned.
pub unsafe fn write64(addr: u64, value: u64) {
    // SAFETY: forwarded to the caller.
    unsafe { (addr as *mut u64).write_volatile(value) }
}

/// Fills `len` bytes at `addr` with `value` (volatile).
///
/// # Safety
/// As for [`write8`], for the whole range.
pub unsafe fn fill(addr: u64, len: usize, value: u8) {
    for i in 0..len as u64 {
        // SAFETY: forwarded to the caller.
        unsafe { write8(addr + i, value) };
    }
}

/// Guest address of shared_info, 0 while it is not mapped.
static SHARED_INFO: AtomicU64 = AtomicU64::new(0);
/// Guest address of the registered vcpu_info, 0 while none is registered.
static VCPU_INFO: AtomicU64 = AtomicU64::new(0);
/// Guest address of the registered runstate area, 0 while none is registered.
static RUNSTATE: AtomicU64 = AtomicU64::new(0);

/// Records that shared_info is now mapped at `addr`.
pub fn set_shared_info(addr: u64) {
    SHARED_INFO.store(addr, Ordering::Relaxed);
}

/// Guest address of the shared_info page, if mapped.
pub fn shared_info() -> Option<u64> {
    match SHARED_INFO.load(Ordering::Relaxed) {
        0 => None,
        a => Some(a),
    }
}

/// Records a successful VCPUOP_register_vcpu_info.
pub fn set_vcpu_info(addr: u64) {
    VCPU_INFO.store(addr, Ordering::Relaxed);
}

/// Guest address of vCPU 0's `vcpu_info`: the registered one, else slot 0 of
/// shared_info (which the hypervisor stops updating once one is registered).
pub fn vcpu_info() -> Option<u64> {
    match VCPU_INFO.load(Ordering::Relaxed) {
        // vCPU 0's slot (vcpu_info[0]) is at offset 0 of shared_info.
        0 => shared_info(),
        a => Some(a),
    }
}

/// Records a successful VCPUOP_register_runstate_memory_area.
pub fn set_runstate(addr: u64) {
    RUNSTATE.store(addr, Ordering::Relaxed);
}

/// Guest address of the registered runstate area, if any.
pub fn runstate() -> Option<u64> {
    match RUNSTATE.load(Ordering::Relaxed) {
        0 => None,
        a => Some(a),
    }
}
