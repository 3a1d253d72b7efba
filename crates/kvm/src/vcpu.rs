//! A vCPU: set-up from the boot state and one exit at a time, decoded into calls
//! on the VMM's [`ExitHandler`].

use kvm_bindings::{kvm_interrupt, kvm_msr_entry, kvm_segment, Msrs, KVM_EXIT_XEN, KVM_EXIT_XEN_HCALL};
use kvm_ioctls::{SyncReg, VcpuExit, VcpuFd};
use vmm_sys_util::ioctl::ioctl_with_ref;
use xenkvm_boot::{InitialCpuState, Segment};
use xenkvm_xen_core::hcall_page::HYPERCALL_PORT;
use xenkvm_xen_core::hypercall::{uses_time, Abi, CpuMode, HypercallRegs};
use xenkvm_xen_core::{HypercallRequest, PagingState};

use crate::ioctls::KVM_INTERRUPT;
use crate::{Error, Result};

const MSR_IA32_TSC: u32 = 0x10;

/// What the VMM does with exits. Implementations must not panic on guest data.
pub trait ExitHandler {
    /// `in` from `port`: fill `data`.
    fn pio_read(&mut self, port: u16, data: &mut [u8]);
    /// `out` to `port`.
    fn pio_write(&mut self, port: u16, data: &[u8]);
    /// MMIO read at `addr`: fill `data`.
    fn mmio_read(&mut self, addr: u64, data: &mut [u8]);
    /// MMIO write at `addr`.
    fn mmio_write(&mut self, addr: u64, data: &[u8]);
    /// A hypercall: return the value for rax, or `None` to stop this vCPU.
    fn hypercall(&mut self, req: &HypercallRequest) -> Option<i64>;
    /// A trapped `wrmsr`; `false` makes it fail (#GP).
    fn wrmsr(&mut self, index: u32, value: u64, compat: bool) -> bool;
    /// The local APIC got an EOI for a level-triggered I/O APIC `vector`.
    fn ioapic_eoi(&mut self, vector: u8);
}

/// What one `KVM_RUN` ended with, beyond exits the handler absorbed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VcpuEvent {
    /// Handled; run again.
    Continue,
    /// The handler asked this vCPU to stop (guest shutdown).
    Stop,
    /// `hlt`. With interrupts off (`if_flag` false) nothing will wake it.
    Halted { if_flag: bool },
    /// Triple fault (KVM_EXIT_SHUTDOWN): a PC resets.
    TripleFault,
    /// A signal kicked the vCPU out of the guest.
    Interrupted,
    /// KVM_EXIT_IRQ_WINDOW_OPEN: the guest can take the external interrupt
    /// the VMM asked a window for ([`KvmVcpu::set_interrupt_window_request`]).
    InterruptWindow,
    /// Anything else; the VM cannot continue.
    Fatal(String),
}

/// One KVM vCPU.
pub struct KvmVcpu {
    pub id: u32,
    fd: VcpuFd,
}

fn kvm_seg(s: &Segment) -> kvm_segment {
    kvm_segment {
        base: s.base,
        limit: s.limit,
        selector: s.selector,
        type_: s.type_,
        present: u8::from(s.present),
        dpl: s.dpl,
        db: u8::from(s.db),
        s: u8::from(s.s),
        l: u8::from(s.l),
        g: u8::from(s.g),
        avl: 0,
        unusable: u8::from(!s.present),
        padding: 0,
    }
}

impl KvmVcpu {
    pub fn new(vm: &crate::KvmVm, id: u32) -> Result<Self> {
        let mut fd = vm.fd.create_vcpu(u64::from(id)).map_err(|e| Error::CreateVcpu(id, e))?;
        fd.set_sync_valid_reg(SyncReg::Register);
        fd.set_sync_valid_reg(SyncReg::SystemRegister);
        vm.register_vcpu_fd(id, &fd)?;
        Ok(Self { id, fd })
    }

    pub fn set_cpuid(&self, cpuid: &kvm_bindings::CpuId) -> Result<()> {
        self.fd.set_cpuid2(cpuid).map_err(|e| Error::SetCpuid(self.id, e))
    }

    /// Loads the boot register state.
    pub fn set_boot_state(&self, st: &InitialCpuState) -> Result<()> {
        let err = |e| Error::SetRegisters(self.id, e);
        let mut sregs = self.fd.get_sregs().map_err(err)?;
        sregs.cs = kvm_seg(&st.cs);
        sregs.ds = kvm_seg(&st.ds);
        sregs.es = kvm_seg(&st.es);
        sregs.fs = kvm_seg(&st.fs);
        sregs.gs = kvm_seg(&st.gs);
        sregs.ss = kvm_seg(&st.ss);
        sregs.gdt.base = st.gdt.base;
        sregs.gdt.limit = st.gdt.limit;
        sregs.idt.base = st.idt.base;
        sregs.idt.limit = st.idt.limit;
        sregs.cr0 = st.cr0;
        sregs.cr3 = st.cr3;
        sregs.cr4 = st.cr4;
        sregs.efer = st.efer;
        self.fd.set_sregs(&sregs).map_err(err)?;
        let mut regs = self.fd.get_regs().map_err(err)?;
        regs.rip = st.rip;
        regs.rsp = st.rsp;
        regs.rbx = st.rbx;
        regs.rsi = st.rsi;
        regs.rflags = st.rflags;
        self.fd.set_regs(&regs).map_err(err)
    }

    /// The guest TSC now, read through KVM.
    pub fn guest_tsc(&self) -> Result<u64> {
        let mut msrs = Msrs::from_entries(&[kvm_msr_entry { index: MSR_IA32_TSC, ..Default::default() }])
            .map_err(|_| Error::ReadTsc(kvm_ioctls::Error::new(libc::EINVAL)))?;
        self.fd.get_msrs(&mut msrs).map_err(Error::ReadTsc)?;
        Ok(msrs.as_slice().first().map(|e| e.data).unwrap_or(0))
    }

    /// A one-line picture of where the vCPU is (for hang reports).
    pub fn describe(&self) -> String {
        let (Ok(r), Ok(s)) = (self.fd.get_regs(), self.fd.get_sregs()) else {
            return format!("vCPU {}: registers unreadable", self.id);
        };
        let ev = self.fd.get_vcpu_events().ok();
        let pending = ev.map_or(String::new(), |e| {
            format!(" int(inj={} nr={:#x}) nmi_pending={} exc_inj={}", e.interrupt.injected, e.interrupt.nr, e.nmi.pending, e.exception.injected)
        });
        format!(
            "vCPU {}: rip={:#x} rsp={:#x} rflags={:#x} rax={:#x} rdi={:#x} cr0={:#x} cr3={:#x} cr4={:#x}{pending}",
            self.id, r.rip, r.rsp, r.rflags, r.rax, r.rdi, s.cr0, s.cr3, s.cr4
        )
    }

    /// The stack pointer and paging state now (for hang reports).
    pub fn stack_and_paging(&self) -> Option<(u64, PagingState)> {
        let (r, s) = (self.fd.get_regs().ok()?, self.fd.get_sregs().ok()?);
        Some((r.rsp, PagingState { cr0: s.cr0, cr3: s.cr3, cr4: s.cr4, efer: s.efer }))
    }

    /// The guest TSC frequency in kHz.
    pub fn tsc_khz(&self) -> Result<u32> {
        self.fd.get_tsc_khz().map_err(Error::ReadTsc)
    }

    /// The paging registers and execution mode from the last exit's sync regs.
    fn mode_and_paging(&mut self) -> (CpuMode, u8, PagingState) {
        // sync_regs_mut borrows the kvm_run copy; sync_regs() would copy all 2 KiB.
        let sr = self.fd.sync_regs_mut();
        let s = &sr.sregs;
        let mode = CpuMode::detect(s.cr0, sr.regs.rflags, s.efer, s.cs.l != 0, s.cs.db != 0);
        (mode, s.ss.dpl, PagingState { cr0: s.cr0, cr3: s.cr3, cr4: s.cr4, efer: s.efer })
    }

    fn hypercall_request(&mut self) -> HypercallRequest {
        let r = &self.fd.sync_regs_mut().regs;
        let regs = HypercallRegs {
            rax: r.rax,
            rbx: r.rbx,
            rcx: r.rcx,
            rdx: r.rdx,
            rsi: r.rsi,
            rdi: r.rdi,
            rbp: r.rbp,
            r8: r.r8,
            r9: r.r9,
            r10: r.r10,
        };
        let (mode, cpl, paging) = self.mode_and_paging();
        let mut req = HypercallRequest::from_regs(self.id, &regs, mode, cpl, paging);
        req.guest_tsc = self.tsc_for(req.nr);
        req
    }

    /// The exact TSC, for calls that read or arm Xen time (one MSR read).
    fn tsc_for(&self, nr: u64) -> Option<u64> {
        if uses_time(nr) {
            self.guest_tsc().ok()
        } else {
            None
        }
    }

    fn set_rax(&mut self, value: i64) {
        self.fd.sync_regs_mut().regs.rax = value as u64;
        self.fd.set_sync_dirty_reg(SyncReg::Register);
    }

    /// Handles KVM_EXIT_XEN: the kernel decoded the hypercall (number, the six
    /// arguments in the caller's convention, mode and CPL); we run it and leave
    /// the result where KVM puts it into rax on the next KVM_RUN.
    fn xen_exit(&mut self, h: &mut dyn ExitHandler) -> VcpuEvent {
        // SAFETY: the exit reason is KVM_EXIT_XEN, for which the kernel filled
        // the `xen` member of the kvm_run union.
        let xen = unsafe { self.fd.get_kvm_run().__bindgen_anon_1.xen };
        if xen.type_ != KVM_EXIT_XEN_HCALL {
            return VcpuEvent::Fatal(format!("unknown KVM_EXIT_XEN type {}", xen.type_));
        }
        // SAFETY: type HCALL selects the `hcall` member.
        let hc = unsafe { xen.u.hcall };
        let (_, _, paging) = self.mode_and_paging();
        let long = hc.longmode != 0;
        let req = HypercallRequest {
            vcpu: self.id,
            nr: if long { hc.input } else { hc.input & 0xFFFF_FFFF },
            args: hc.params,
            abi: if long { Abi::Native64 } else { Abi::Compat32 },
            cpl: u8::try_from(hc.cpl).unwrap_or(3),
            vm86: false,
            paging,
            guest_tsc: None,
        };
        let req = HypercallRequest { guest_tsc: self.tsc_for(req.nr), ..req };
        let Some(result) = h.hypercall(&req) else { return VcpuEvent::Stop };
        let run = self.fd.get_kvm_run();
        // Writing a union member is safe; KVM reads it back for this exit.
        run.__bindgen_anon_1.xen.u.hcall.result = result as u64;
        VcpuEvent::Continue
    }

    /// Describes a KVM_EXIT_INTERNAL_ERROR with its sub-error and data words.
    fn internal_error(&mut self) -> String {
        let sr = self.fd.sync_regs();
        let rip = sr.regs.rip;
        let ctx = format!("rsp {:#x} cr0 {:#x} cr3 {:#x} cr4 {:#x} efer {:#x}", sr.regs.rsp, sr.sregs.cr0, sr.sregs.cr3, sr.sregs.cr4, sr.sregs.efer);
        let run = self.fd.get_kvm_run();
        // SAFETY: called right after KVM_RUN returned KVM_EXIT_INTERNAL_ERROR,
        // for which the kernel filled the `internal` member of the union.
        let internal = unsafe { run.__bindgen_anon_1.internal };
        let n = (internal.ndata as usize).min(internal.data.len());
        let data: Vec<String> = internal.data.iter().take(n).map(|d| format!("{d:#x}")).collect();
        format!("KVM internal error: suberror {} at rip {rip:#x}, data [{}], {ctx}", internal.suberror, data.join(", "))
    }

    /// Makes the MSR access of the current exit fail with #GP.
    fn fail_msr_access(&mut self) {
        let run = self.fd.get_kvm_run();
        // Only called while the exit reason is KVM_EXIT_X86_WRMSR, for which
        // the kernel uses the `msr` member of the union.
        run.__bindgen_anon_1.msr.error = 1;
    }

    /// Whether KVM can take an ExtINT now ([`Self::inject_external`]): at the
    /// last exit the guest had IF set, no interrupt shadow, LINT0 accepting
    /// ExtINT and no injection still queued.
    pub fn ready_for_interrupt(&mut self) -> bool {
        let run = self.fd.get_kvm_run();
        run.ready_for_interrupt_injection != 0 && run.if_flag != 0
    }

    /// Asks KVM to exit with [`VcpuEvent::InterruptWindow`] as soon as the
    /// guest can take an external interrupt (or stops asking).
    pub fn set_interrupt_window_request(&mut self, on: bool) {
        self.fd.get_kvm_run().request_interrupt_window = u8::from(on);
    }

    /// Queues an ExtINT with `vector` (KVM_INTERRUPT), delivered at the next
    /// `KVM_RUN`. With a split irqchip KVM keeps one such vector and takes
    /// it only through LINT0; call it only when [`Self::ready_for_interrupt`].
    pub fn inject_external(&self, vector: u8) -> Result<()> {
        let irq = kvm_interrupt { irq: u32::from(vector) };
        // SAFETY: KVM_INTERRUPT reads one `struct kvm_interrupt`, which `irq`
        // is and outlives the call; the fd is this vCPU's.
        let ret = unsafe { ioctl_with_ref(&self.fd, KVM_INTERRUPT(), &irq) };
        if ret < 0 {
            return Err(Error::Interrupt(self.id, kvm_ioctls::Error::last()));
        }
        Ok(())
    }

    /// Runs the vCPU until its next exit and handles that exit.
    pub fn run_once(&mut self, h: &mut dyn ExitHandler) -> Result<VcpuEvent> {
        // A kick from now on makes KVM_RUN return at once (kick.rs); after the
        // exit, the VMM re-checks whatever the kick was about.
        crate::kick::arm(self.fd.get_kvm_run());
        let result = self.run_and_handle(h);
        self.fd.set_kvm_immediate_exit(0);
        result
    }

    fn run_and_handle(&mut self, h: &mut dyn ExitHandler) -> Result<VcpuEvent> {
        let mut hypercall = false;
        let mut wrmsr = None;
        let event = match self.fd.run() {
            Ok(VcpuExit::IoOut(port, data)) if port == HYPERCALL_PORT && data.len() == 4 => {
                hypercall = true;
                VcpuEvent::Continue
            }
            Ok(VcpuExit::IoOut(port, data)) => {
                h.pio_write(port, data);
                VcpuEvent::Continue
            }
            Ok(VcpuExit::IoIn(port, data)) => {
                h.pio_read(port, data);
                VcpuEvent::Continue
            }
            Ok(VcpuExit::MmioRead(addr, data)) => {
                h.mmio_read(addr, data);
                VcpuEvent::Continue
            }
            Ok(VcpuExit::MmioWrite(addr, data)) => {
                h.mmio_write(addr, data);
                VcpuEvent::Continue
            }
            Ok(VcpuExit::X86Wrmsr(exit)) => {
                wrmsr = Some((exit.index, exit.data));
                VcpuEvent::Continue
            }
            Ok(VcpuExit::X86Rdmsr(exit)) => {
                *exit.error = 1;
                VcpuEvent::Continue
            }
            Ok(VcpuExit::Unsupported(KVM_EXIT_XEN)) => return Ok(self.xen_exit(h)),
            Ok(VcpuExit::IoapicEoi(vector)) => {
                h.ioapic_eoi(vector);
                VcpuEvent::Continue
            }
            Ok(VcpuExit::Hlt) => VcpuEvent::Halted { if_flag: false },
            Ok(VcpuExit::Shutdown) => VcpuEvent::TripleFault,
            Ok(VcpuExit::Intr) => VcpuEvent::Interrupted,
            Ok(VcpuExit::IrqWindowOpen) => VcpuEvent::InterruptWindow,
            Ok(VcpuExit::InternalError) => VcpuEvent::Fatal(String::new()),
            Ok(VcpuExit::FailEntry(reason, cpu)) => {
                VcpuEvent::Fatal(format!("VM entry failed: reason {reason:#x} on host CPU {cpu}"))
            }
            Ok(other) => VcpuEvent::Fatal(format!("unhandled exit {other:?}")),
            Err(e) if e.errno() == libc::EINTR || e.errno() == libc::EAGAIN => VcpuEvent::Interrupted,
            Err(e) => return Err(Error::Run(self.id, e)),
        };
        if hypercall {
            let req = self.hypercall_request();
            return Ok(match h.hypercall(&req) {
                Some(rax) => {
                    self.set_rax(rax);
                    VcpuEvent::Continue
                }
                None => VcpuEvent::Stop,
            });
        }
        if event == VcpuEvent::Fatal(String::new()) {
            return Ok(VcpuEvent::Fatal(self.internal_error()));
        }
        if let Some((index, value)) = wrmsr {
            let (mode, _, _) = self.mode_and_paging();
            if !h.wrmsr(index, value, mode != CpuMode::Long64) {
                self.fail_msr_access();
            }
            return Ok(event);
        }
        if let VcpuEvent::Halted { .. } = event {
            let if_flag = self.fd.sync_regs().regs.rflags & (1 << 9) != 0;
            return Ok(VcpuEvent::Halted { if_flag });
        }
        Ok(event)
    }
}

impl Drop for KvmVcpu {
    /// The kick handler must not write to the `kvm_run` unmapped with the fd.
    fn drop(&mut self) {
        crate::kick::disarm(self.fd.get_kvm_run());
    }
}

#[cfg(test)]
mod tests;
