//! Hypercall decoding and dispatch, shared by every transport.

use xenkvm_xen_abi::errno::XenErrno;
use xenkvm_xen_abi::xen::*;

use crate::domain::Domain;
use crate::paging::PagingState;

/// Hypercalls that read or arm Xen time, for which a transport should read
/// the caller's TSC exactly (see [`HypercallRequest::guest_tsc`]).
pub fn uses_time(nr: u64) -> bool {
    matches!(nr, HYPERVISOR_VCPU_OP | HYPERVISOR_SET_TIMER_OP | HYPERVISOR_SCHED_OP | HYPERVISOR_HVM_OP)
}

/// Which argument convention the calling vCPU uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Abi {
    /// 64-bit mode: rdi, rsi, rdx, r10, r8, r9; 64-bit structure layouts.
    Native64,
    /// Any other mode: ebx, ecx, edx, esi, edi, ebp; compat layouts.
    Compat32,
}

/// The general-purpose registers a transport hands over.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HypercallRegs {
    pub rax: u64,
    pub rbx: u64,
    pub rcx: u64,
    pub rdx: u64,
    pub rsi: u64,
    pub rdi: u64,
    pub rbp: u64,
    pub r8: u64,
    pub r9: u64,
    pub r10: u64,
}

/// The execution mode of the calling vCPU, as Xen's `hvm_guest_x86_mode` sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CpuMode {
    Real,
    Vm86,
    Protected16,
    Protected32,
    Long64,
}

impl CpuMode {
    /// Derives the mode from CR0.PE, RFLAGS.VM, EFER.LMA and the CS L/D bits.
    pub fn detect(cr0: u64, rflags: u64, efer: u64, cs_l: bool, cs_db: bool) -> Self {
        if cr0 & 1 == 0 {
            Self::Real
        } else if rflags & (1 << 17) != 0 {
            Self::Vm86
        } else if efer & (1 << 10) != 0 && cs_l {
            Self::Long64
        } else if cs_db {
            Self::Protected32
        } else {
            Self::Protected16
        }
    }
}

/// One hypercall as the core sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HypercallRequest {
    pub vcpu: u32,
    pub nr: u64,
    pub args: [u64; 6],
    pub abi: Abi,
    /// Privilege level of the caller (SS.DPL); Xen refuses calls from CPL > 0.
    pub cpl: u8,
    /// Whether the caller runs in virtual-8086 mode (refused like CPL > 0).
    pub vm86: bool,
    pub paging: PagingState,
    /// The caller's TSC read at the exit, where the transport read it (for
    /// time-related calls); it corrects the domain clock's estimate.
    pub guest_tsc: Option<u64>,
}

impl HypercallRequest {
    /// Decodes registers by the caller's mode: 64-bit callers pass arguments in
    /// rdi, rsi, rdx, r10, r8, r9; all others in ebx, ecx, edx, esi, edi, ebp,
    /// truncated to 32 bits, with the number in eax.
    pub fn from_regs(vcpu: u32, regs: &HypercallRegs, mode: CpuMode, cpl: u8, paging: PagingState) -> Self {
        let (nr, args, abi) = if mode == CpuMode::Long64 {
            (regs.rax, [regs.rdi, regs.rsi, regs.rdx, regs.r10, regs.r8, regs.r9], Abi::Native64)
        } else {
            let t = |v: u64| v & 0xFFFF_FFFF;
            let args = [t(regs.rbx), t(regs.rcx), t(regs.rdx), t(regs.rsi), t(regs.rdi), t(regs.rbp)];
            (t(regs.rax), args, Abi::Compat32)
        };
        Self { vcpu, nr, args, abi, cpl, vm86: mode == CpuMode::Vm86, paging, guest_tsc: None }
    }

    pub(crate) fn arg(&self, i: usize) -> u64 {
        self.args.get(i).copied().unwrap_or(0)
    }

    pub(crate) fn compat(&self) -> bool {
        self.abi == Abi::Compat32
    }
}

/// Why the guest asked to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShutdownReason {
    Poweroff,
    Reboot,
    Crash,
    Watchdog,
    SoftReset,
    /// A code Xen passes to the toolstack without meaning of its own.
    Other(u8),
}

/// A vCPU that must wait before its hypercall completes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wait {
    /// Absolute Xen system time at which to give up waiting.
    pub deadline_ns: Option<u64>,
    /// Event-channel ports that end the wait when pending (empty: any event).
    pub ports: Vec<u32>,
}

/// What the transport must do after a hypercall.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Put this value in rax and resume the vCPU.
    Return(i64),
    /// Block the vCPU (SCHEDOP_block / poll), then call [`Domain::end_wait`].
    Wait(Wait),
    /// Stop the domain.
    Shutdown(ShutdownReason),
}

impl From<Result<i64, XenErrno>> for Outcome {
    fn from(r: Result<i64, XenErrno>) -> Self {
        Outcome::Return(r.unwrap_or_else(XenErrno::to_ret))
    }
}

impl Domain {
    /// Runs one hypercall for vCPU `req.vcpu`.
    pub fn hypercall(&mut self, req: &HypercallRequest) -> Outcome {
        if let Some(tsc) = req.guest_tsc {
            self.ports.clock.observe_guest_tsc(tsc);
        }
        if req.cpl != 0 || req.vm86 {
            return Outcome::Return(XenErrno::Eperm.to_ret());
        }
        if req.vcpu as usize >= self.vcpus.len() {
            return Outcome::Return(XenErrno::Einval.to_ret());
        }
        match req.nr {
            HYPERVISOR_XEN_VERSION => self.xen_version(req).into(),
            HYPERVISOR_CONSOLE_IO => self.console_io(req).into(),
            HYPERVISOR_SCHED_OP => self.sched_op(req),
            HYPERVISOR_HVM_OP => self.hvm_op(req).into(),
            HYPERVISOR_MEMORY_OP => self.memory_op(req).into(),
            HYPERVISOR_GRANT_TABLE_OP => self.grant_table_op(req).into(),
            HYPERVISOR_VCPU_OP => self.vcpu_op(req).into(),
            HYPERVISOR_VM_ASSIST => self.vm_assist(req).into(),
            HYPERVISOR_EVENT_CHANNEL_OP => self.event_channel_op(req).into(),
            HYPERVISOR_SET_TIMER_OP => self.set_timer_op(req).into(),
            HYPERVISOR_PHYSDEV_OP => self.physdev_op(req).into(),
            nr => {
                self.report_unknown(nr, 0, "hypercall");
                Outcome::Return(XenErrno::Enosys.to_ret())
            }
        }
    }

    /// `HYPERVISOR_vm_assist`: only the runstate update flag means anything to
    /// an HVM guest; Xen accepts it and refuses every other type.
    fn vm_assist(&mut self, req: &HypercallRequest) -> Result<i64, XenErrno> {
        let (cmd, kind) = (req.arg(0), req.arg(1));
        if kind != VMASST_TYPE_RUNSTATE_UPDATE_FLAG {
            return Err(XenErrno::Einval);
        }
        match cmd {
            VMASST_CMD_ENABLE => self.vm_assist |= 1 << kind,
            VMASST_CMD_DISABLE => self.vm_assist &= !(1 << kind),
            _ => return Err(XenErrno::Einval),
        }
        if let Some(kt) = &self.kernel_time {
            kt.runstate_update_flag(self.runstate_update_flag());
        }
        Ok(0)
    }

    pub(crate) fn runstate_update_flag(&self) -> bool {
        self.vm_assist & (1 << VMASST_TYPE_RUNSTATE_UPDATE_FLAG) != 0
    }
}
