//! The fuzz harness of the `hypercall_dispatch` target (`fuzz/`), shared
//! with the deterministic replay test (`tests/fuzz_replay.rs`).
//!
//! [`run`] builds a small test domain (1 MiB of RAM, recording-free fake
//! ports, 1 to 3 vCPUs, a grant table of 1 to 8 frames, an event-channel cap
//! picked by the input) and runs a sequence of steps from the input: a
//! hypercall through [`Domain::hypercall`] (known or arbitrary number, native
//! or compat ABI, arguments that are small integers, pointers into a scratch
//! area, or arbitrary words; flat or fuzzed paging), arbitrary bytes written
//! into guest memory (the argument structs the pointers name, page tables),
//! the backend side of event channels (as the PV backends use it), the
//! clock advancing with timers firing.
//!
//! Oracles, checked after every step (the first violation is returned as
//! `Err`):
//! * every `Outcome::Return` is 0, positive, or `-errno` of a Xen errno;
//! * no guest port above the configured `max_evtchn_port` (nor the ABI's
//!   4096) is in use, and the port table grows at most one bucket past it;
//!   the backends' table stays within [`MAX_BACKEND_PORTS`];
//! * every VIRQ binding names a port bound to that VIRQ;
//! * the grant table never has more than `max_frames` frames;
//! * a wait ends (`end_wait`) with 0.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};
use xenkvm_xen_abi::errno::XenErrno;
use xenkvm_xen_abi::event_channel::{EVTCHNOP_ALLOC_UNBOUND, EVTCHNOP_BIND_IPI, EVTCHNOP_BIND_VIRQ};
use xenkvm_xen_abi::grant_table::{GnttabSetupTable, GNTTABOP_SETUP_TABLE};
use xenkvm_xen_abi::memory::{XenAddToPhysmap, XENMAPSPACE_GRANT_TABLE, XENMEM_ADD_TO_PHYSMAP};
use xenkvm_xen_abi::xen::*;
use zerocopy::IntoBytes;

use crate::domain::{Domain, DomainConfig, Ports};
use crate::evtchn::{PortState, EVTCHNS_PER_BUCKET, MAX_BACKEND_PORTS};
use crate::hypercall::{CpuMode, HypercallRegs, HypercallRequest, Outcome};
use crate::page::SharedPage;
use crate::paging::PagingState;
use crate::ports::{BackendNotify, CallbackLine, Clock, ConsoleSink, Physmap, PhysmapError, Upcall, UpcallVia};

/// Steps per input.
pub const MAX_STEPS: usize = 256;
/// Guest RAM of the test domain.
pub const RAM_SIZE: u64 = 1 << 20;
/// Where pointer arguments point (and fuzzed bytes go): 64 KiB.
pub const SCRATCH: u64 = 0x8_0000;
const SCRATCH_LEN: u64 = 0x1_0000;
/// Port numbers the ABI can address at most (64-bit shared_info).
const ABI_MAX_PORTS: usize = 4096;

/// What one run did (statistics for the replay test).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    pub steps: usize,
    pub hypercalls: usize,
    pub ok: usize,
    pub errors: usize,
    pub waits: usize,
    pub shutdowns: usize,
    /// Most guest ports in use at once.
    pub max_ports_used: usize,
    /// Most grant-table frames seen.
    pub max_frames: u32,
}

/// The hypercalls the core implements, picked most of the time.
const KNOWN: [u64; 10] = [
    HYPERVISOR_XEN_VERSION,
    HYPERVISOR_CONSOLE_IO,
    HYPERVISOR_SCHED_OP,
    HYPERVISOR_HVM_OP,
    HYPERVISOR_MEMORY_OP,
    HYPERVISOR_GRANT_TABLE_OP,
    HYPERVISOR_VCPU_OP,
    HYPERVISOR_VM_ASSIST,
    HYPERVISOR_EVENT_CHANNEL_OP,
    HYPERVISOR_SET_TIMER_OP,
];

const ERRNOS: [XenErrno; 22] = [
    XenErrno::Eperm,
    XenErrno::Enoent,
    XenErrno::Esrch,
    XenErrno::Eintr,
    XenErrno::Eio,
    XenErrno::Enxio,
    XenErrno::E2big,
    XenErrno::Eagain,
    XenErrno::Enomem,
    XenErrno::Eacces,
    XenErrno::Efault,
    XenErrno::Ebusy,
    XenErrno::Eexist,
    XenErrno::Enodev,
    XenErrno::Einval,
    XenErrno::Enospc,
    XenErrno::Erange,
    XenErrno::Enosys,
    XenErrno::Etime,
    XenErrno::Eoverflow,
    XenErrno::Eopnotsupp,
    XenErrno::Etimedout,
];

/// A cursor over the fuzz input; reads past the end give zeros.
struct Input<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Input<'_> {
    fn done(&self) -> bool {
        self.pos >= self.data.len()
    }
    fn byte(&mut self) -> u8 {
        let b = self.data.get(self.pos).copied().unwrap_or(0);
        self.pos += 1;
        b
    }
    fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.byte(), self.byte()])
    }
    fn u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        for x in &mut b {
            *x = self.byte();
        }
        u64::from_le_bytes(b)
    }
    fn bytes(&mut self, n: usize) -> &[u8] {
        let start = self.pos.min(self.data.len());
        let end = self.pos.saturating_add(n).min(self.data.len());
        self.pos = self.pos.saturating_add(n);
        self.data.get(start..end).unwrap_or(&[])
    }
}

struct Fakes {
    tsc: AtomicU64,
}

impl Clock for Fakes {
    fn guest_tsc(&self) -> u64 {
        self.tsc.load(Ordering::Relaxed)
    }
    fn tsc_khz(&self) -> u32 {
        1_000_000
    }
    fn wall_clock_ns(&self) -> u64 {
        1_700_000_000_000_000_000
    }
}
impl ConsoleSink for Fakes {
    fn write(&self, _: &[u8]) {}
}
impl Physmap for Fakes {
    fn move_overlay(&self, _: Option<u64>, gfn: u64, _: &SharedPage) -> Result<(), PhysmapError> {
        // Refuse a frame the harness reserves, so the error path runs too.
        if gfn == 0xdead {
            return Err(PhysmapError::MapOverlay { gfn, reason: "refused by the harness".into() });
        }
        Ok(())
    }
}
impl Upcall for Fakes {
    fn raise(&self, _: u32, _: UpcallVia) {}
    fn set_line(&self, _: CallbackLine, _: bool) {}
    fn kick(&self, _: u32) {}
    fn timer_changed(&self, _: u32, _: Option<u64>) {}
}
impl BackendNotify for Fakes {
    fn notify(&self, _: u32) {}
}

/// Element `i` (modulo the length) of a non-empty table.
fn pick<T: Copy + Default>(table: &[T], i: u8) -> T {
    table.get(usize::from(i) % table.len().max(1)).copied().unwrap_or_default()
}

/// One argument word from the input.
fn arg(inp: &mut Input) -> u64 {
    let sel = inp.byte();
    match sel % 8 {
        0..=2 => u64::from(sel / 8),
        3 | 4 => SCRATCH + u64::from(inp.u16()) % SCRATCH_LEN,
        5 => u64::from(inp.u16()),
        6 => inp.u64(),
        // Frame numbers: inside RAM, just past it, far away.
        _ => pick(&[0x80, 0x81, 0xff, 0x100, 0xdead, 0xf_ffff], sel / 8),
    }
}

fn paging(inp: &mut Input) -> PagingState {
    let sel = inp.byte();
    if !sel.is_multiple_of(4) {
        return PagingState::flat();
    }
    // Paging on, tables in the scratch area (whose bytes the input wrote).
    let cr3 = SCRATCH + (u64::from(inp.byte()) << 12) % SCRATCH_LEN;
    let (cr4, efer) = match sel / 4 % 4 {
        0 => (0, 0),             // 32-bit
        1 => (1 << 4, 0),        // 32-bit with PSE
        2 => (1 << 5, 0),        // PAE
        _ => (1 << 5, 1 << 10),  // 4-level
    };
    PagingState { cr0: (1 << 31) | 1 | if sel & 0x80 != 0 { 1 << 16 } else { 0 }, cr3, cr4, efer }
}

fn check_return(v: i64) -> Result<(), String> {
    if v >= 0 || ERRNOS.iter().any(|e| e.to_ret() == v) {
        Ok(())
    } else {
        Err(format!("hypercall returned {v}, not an errno"))
    }
}

/// Runs one fuzz input; `Err` names the first oracle violation.
pub fn run(data: &[u8]) -> Result<Stats, String> {
    let mut inp = Input { data, pos: 0 };
    let mut st = Stats::default();
    let cfg_byte = inp.byte();
    let vcpus = u32::from(cfg_byte % 3) + 1;
    let max_frames = u32::from(cfg_byte / 3 % 8) + 1;
    let max_port = pick(&[1023, 63, 64, 100, 5000, 0], inp.byte());
    let ram = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), RAM_SIZE as usize)])
        .map_err(|e| format!("guest RAM: {e}"))?;
    let fakes = Arc::new(Fakes { tsc: AtomicU64::new(5_000) });
    let cfg = DomainConfig { xen_version: 0x40011, domid: 1, vcpus, max_gfn: 0xf_ffff, handle: [7; 16], gnttab_max_frames: max_frames };
    let ports = Ports {
        clock: fakes.clone(),
        console: fakes.clone(),
        physmap: fakes.clone(),
        upcall: fakes.clone(),
        backends: fakes.clone(),
    };
    let mut d = Domain::new(cfg, ram.clone(), ports).map_err(|e| format!("domain: {e}"))?;
    d.set_max_evtchn_port(max_port);
    // A first blob of argument bytes.
    let n = usize::from(inp.byte()) * 4;
    let blob = inp.bytes(n).to_vec();
    let _ = ram.write_slice(&blob, GuestAddress(SCRATCH));

    while !inp.done() && st.steps < MAX_STEPS {
        st.steps += 1;
        let op = inp.byte();
        match op % 16 {
            0 | 1 => {
                // Bytes into guest memory: argument structs, page tables.
                let at = SCRATCH + u64::from(inp.u16()) % SCRATCH_LEN;
                let n = usize::from(inp.byte());
                let b = inp.bytes(n).to_vec();
                let _ = ram.write_slice(&b, GuestAddress(at));
            }
            2 => {
                // A word at an argument pointer (counts, handles, frame numbers).
                let at = SCRATCH + u64::from(inp.u16() & !7) % SCRATCH_LEN;
                let v = arg(&mut inp);
                let _ = ram.write_obj(v, GuestAddress(at));
            }
            3 => {
                // The backends' side of event channels.
                let sel = inp.byte();
                let port = u32::from(inp.u16() % 80);
                let _ = match sel % 5 {
                    0 => d.alloc_unbound_for_backend().map(|_| ()),
                    1 => d.backend_bind_interdomain(port).map(|_| ()),
                    2 => d.backend_alloc_unbound().map(|_| ()),
                    3 => d.backend_send(port),
                    _ => d.backend_close(port),
                };
            }
            4 => {
                // Time passes; due timers fire.
                let ns = u64::from(inp.u16()) << (inp.byte() % 24);
                fakes.tsc.fetch_add(ns, Ordering::Relaxed);
                let now = d.now_ns();
                let _ = d.fire_timers(now);
                let vcpu = u32::from(inp.byte()) % vcpus;
                let _ = d.send_virq(vcpu, u32::from(inp.byte() % 24));
            }
            5 | 6 => {
                // A well-formed argument struct with fuzzed fields, so that
                // short inputs reach the table-growing paths.
                st.hypercalls += 1;
                let at = SCRATCH + u64::from(inp.u16() & 0x7ff8);
                let sel = inp.byte();
                let (nr, a) = match sel % 4 {
                    0 => {
                        // EVTCHNOP_alloc_unbound / bind_ipi / bind_virq.
                        // dom, remote_dom / virq / vcpu, as the three structs lay them out.
                        let mut s = DOMID_SELF.to_le_bytes().to_vec();
                        s.extend(u16::from(inp.byte() % 2).to_le_bytes());
                        s.extend([inp.byte() % 24, 0, 0, 0, inp.byte() % 4, 0, 0, 0]);
                        let _ = ram.write_slice(&s, GuestAddress(at));
                        let cmd = pick(&[EVTCHNOP_ALLOC_UNBOUND, EVTCHNOP_BIND_IPI, EVTCHNOP_BIND_VIRQ], sel / 4);
                        (HYPERVISOR_EVENT_CHANNEL_OP, [u64::from(cmd), at, 0])
                    }
                    1 => {
                        // GNTTABOP_setup_table for nr_frames frames.
                        let t = GnttabSetupTable {
                            dom: DOMID_SELF,
                            nr_frames: u32::from(inp.byte() % 12),
                            frame_list: at + 64,
                            ..Default::default()
                        };
                        let _ = ram.write_slice(t.as_bytes(), GuestAddress(at));
                        (HYPERVISOR_GRANT_TABLE_OP, [u64::from(GNTTABOP_SETUP_TABLE), at, 1])
                    }
                    2 => {
                        // XENMEM_add_to_physmap of a grant-table frame.
                        let x = XenAddToPhysmap {
                            domid: DOMID_SELF,
                            size: 0,
                            space: XENMAPSPACE_GRANT_TABLE | if sel & 0x80 != 0 { 1 << 31 } else { 0 },
                            idx: u64::from(inp.byte() % 12),
                            gpfn: 0x40 + u64::from(inp.byte()),
                        };
                        let _ = ram.write_slice(x.as_bytes(), GuestAddress(at));
                        (HYPERVISOR_MEMORY_OP, [XENMEM_ADD_TO_PHYSMAP, at, 0])
                    }
                    _ => {
                        // EVTCHNOP_close / send / unmask of a small port.
                        let _ = ram.write_obj(u32::from(inp.byte() % 70), GuestAddress(at));
                        (HYPERVISOR_EVENT_CHANNEL_OP, [u64::from(3 + sel / 4 % 7), at, 0])
                    }
                };
                let req = HypercallRequest::from_regs(
                    0,
                    &HypercallRegs { rax: nr, rdi: a[0], rsi: a[1], rdx: a[2], ..Default::default() },
                    CpuMode::Long64,
                    0,
                    PagingState::flat(),
                );
                match d.hypercall(&req) {
                    Outcome::Return(v) => {
                        check_return(v).map_err(|e| format!("{e}: {req:?}"))?;
                        if v < 0 {
                            st.errors += 1;
                        } else {
                            st.ok += 1;
                        }
                    }
                    other => return Err(format!("{req:?} did not return: {other:?}")),
                }
            }
            _ => {
                st.hypercalls += 1;
                let sel = inp.byte();
                let nr = match sel % 8 {
                    0 => u64::from(inp.byte()),
                    1 if sel & 0x80 != 0 => inp.u64(),
                    _ => KNOWN.get(usize::from(sel / 8) % KNOWN.len()).copied().unwrap_or(0),
                };
                let vsel = inp.byte();
                // Now and then an invalid vCPU or a CPL 3 caller.
                let vcpu = if vsel % 32 == 31 { vcpus + u32::from(vsel / 32) } else { u32::from(vsel) % vcpus };
                let cpl = if vsel % 64 == 30 { 3 } else { 0 };
                let mode = if inp.byte().is_multiple_of(4) { CpuMode::Protected32 } else { CpuMode::Long64 };
                let a: [u64; 5] = [arg(&mut inp), arg(&mut inp), arg(&mut inp), arg(&mut inp), arg(&mut inp)];
                let mut regs = HypercallRegs { rax: nr, ..Default::default() };
                if mode == CpuMode::Long64 {
                    (regs.rdi, regs.rsi, regs.rdx, regs.r10, regs.r8) = (a[0], a[1], a[2], a[3], a[4]);
                } else {
                    (regs.rbx, regs.rcx, regs.rdx, regs.rsi, regs.rdi) = (a[0], a[1], a[2], a[3], a[4]);
                }
                let pg = paging(&mut inp);
                let req = HypercallRequest::from_regs(vcpu, &regs, mode, cpl, pg);
                match d.hypercall(&req) {
                    Outcome::Return(v) => {
                        check_return(v).map_err(|e| format!("{e}: {req:?}"))?;
                        if v < 0 {
                            st.errors += 1;
                        } else {
                            st.ok += 1;
                        }
                    }
                    Outcome::Wait(w) => {
                        st.waits += 1;
                        let _ = d.wait_done(vcpu, &w);
                        let _ = d.wait_deadline(vcpu, &w);
                        let v = d.end_wait(vcpu, pg);
                        if v != 0 {
                            return Err(format!("end_wait returned {v} after {req:?}"));
                        }
                    }
                    Outcome::Shutdown(_) => st.shutdowns += 1,
                }
            }
        }
        check(&d, max_port, max_frames, &mut st)?;
    }
    Ok(st)
}

/// The per-step oracles on the domain's event channels and grant table.
fn check(d: &Domain, max_port: u32, max_frames: u32, st: &mut Stats) -> Result<(), String> {
    let ev = &d.events;
    let mut used = 0;
    for (i, p) in ev.ports.iter().enumerate() {
        if matches!(p.state, PortState::Free | PortState::Reserved) {
            continue;
        }
        used += 1;
        if i as u64 > u64::from(max_port) || i >= ABI_MAX_PORTS {
            return Err(format!("port {i} in use ({:?}), max_evtchn_port {max_port}", p.state));
        }
    }
    st.max_ports_used = st.max_ports_used.max(used);
    let bucket = EVTCHNS_PER_BUCKET as usize;
    let table_cap = (max_port as usize + 1).min(ABI_MAX_PORTS).div_ceil(bucket).max(1) * bucket;
    if ev.ports.len() > table_cap {
        return Err(format!("port table of {} entries, cap {table_cap} (max_evtchn_port {max_port})", ev.ports.len()));
    }
    if ev.backend.len() > MAX_BACKEND_PORTS as usize {
        return Err(format!("backend port table of {} entries", ev.backend.len()));
    }
    for (v, vc) in ev.vcpus.iter().enumerate() {
        for (virq, &port) in vc.virq_port.iter().enumerate() {
            if port == 0 {
                continue;
            }
            let state = ev.ports.get(port as usize).map(|p| p.state);
            if state != Some(PortState::Virq(virq as u32)) {
                return Err(format!("vCPU {v}: VIRQ {virq} bound to port {port}, which is {state:?}"));
            }
        }
    }
    let frames = d.grant_table().nr_frames();
    st.max_frames = st.max_frames.max(frames);
    if frames > max_frames || frames > d.grant_table().max_frames() {
        return Err(format!("grant table of {frames} frames, max_frames {max_frames}"));
    }
    Ok(())
}
