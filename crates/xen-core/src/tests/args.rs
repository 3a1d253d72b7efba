//! Register decoding by vCPU mode.

use crate::hypercall::{Abi, CpuMode, HypercallRegs};
use crate::{HypercallRequest, PagingState};

fn regs() -> HypercallRegs {
    HypercallRegs {
        rax: 0xFFFF_0000_0000_0011,
        rbx: 0x1_0000_0001,
        rcx: 0x1_0000_0002,
        rdx: 0x1_0000_0003,
        rsi: 0x1_0000_0004,
        rdi: 0x1_0000_0005,
        rbp: 0x1_0000_0006,
        r8: 8,
        r9: 9,
        r10: 10,
    }
}

#[test]
fn long_mode_uses_the_64_bit_registers() {
    let r = HypercallRequest::from_regs(0, &regs(), CpuMode::Long64, 0, PagingState::flat());
    assert_eq!(r.nr, 0xFFFF_0000_0000_0011);
    assert_eq!(r.args, [0x1_0000_0005, 0x1_0000_0004, 0x1_0000_0003, 10, 8, 9]);
    assert_eq!(r.abi, Abi::Native64);
}

#[test]
fn other_modes_use_the_32_bit_registers_truncated() {
    for mode in [CpuMode::Protected32, CpuMode::Protected16, CpuMode::Real] {
        let r = HypercallRequest::from_regs(0, &regs(), mode, 0, PagingState::flat());
        assert_eq!(r.nr, 0x11);
        assert_eq!(r.args, [1, 2, 3, 4, 5, 6]);
        assert_eq!(r.abi, Abi::Compat32);
    }
}

#[test]
fn mode_detection() {
    assert_eq!(CpuMode::detect(0, 0, 0, false, false), CpuMode::Real);
    assert_eq!(CpuMode::detect(1, 1 << 17, 0, false, false), CpuMode::Vm86);
    assert_eq!(CpuMode::detect(1, 0, 1 << 10, true, false), CpuMode::Long64);
    assert_eq!(CpuMode::detect(1, 0, 1 << 10, false, true), CpuMode::Protected32, "compat mode");
    assert_eq!(CpuMode::detect(1, 0, 0, false, true), CpuMode::Protected32);
    assert_eq!(CpuMode::detect(1, 0, 0, false, false), CpuMode::Protected16);
}
