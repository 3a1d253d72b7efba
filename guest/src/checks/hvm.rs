//! Sections 8 and 10: HYPERVISOR_hvm_op parameters and HYPERVISOR_vm_assist.

use super::{note, Report};
use crate::print::{hex, print};
use crate::abi::*;
use crate::hypercall::{hvm_op, va, vm_assist};

/// CALLBACK_IRQ value: type 2 (vector) in bits 63:56, vector 0xF3. The guest
/// never enables interrupts, so the vector is never delivered.
const CALLBACK_VECTOR_F3: u64 = 0x0200_0000_0000_00F3;

fn param(index: u32, value: u64) -> XenHvmParam {
    XenHvmParam { domid: DOMID_SELF, pad: 0, index, value }
}

pub fn run(r: &mut Report) {
    r.section("hvm_op");
    let mut p = param(HVM_PARAM_CALLBACK_IRQ, CALLBACK_VECTOR_F3);
    let rc = hvm_op(HVMOP_SET_PARAM, va(&mut p));
    r.rc("hvm_op: set_param CALLBACK_IRQ (vector 0xF3)", rc, 0);

    let mut p = param(HVM_PARAM_CALLBACK_IRQ, 0);
    let rc = hvm_op(HVMOP_GET_PARAM, va(&mut p));
    let value = p.value;
    r.check(
        "hvm_op: get_param CALLBACK_IRQ returns the value set",
        rc == 0 && value == CALLBACK_VECTOR_F3,
        || print!("returned ", rc, ", value ", hex(value), ", expected ", hex(CALLBACK_VECTOR_F3)),
    );

    let mut p = param(HVM_PARAM_STORE_PFN, 0);
    let rc = hvm_op(HVMOP_GET_PARAM, va(&mut p));
    r.rc("hvm_op: get_param STORE_PFN", rc, 0);
    let value = p.value;
    note!("STORE_PFN ", hex(value));

    let mut p = param(HVM_NR_PARAMS, 0);
    let rc = hvm_op(HVMOP_GET_PARAM, va(&mut p));
    r.rc("hvm_op: get_param index 39 is -EINVAL", rc, -EINVAL);

    let mut p = param(HVM_PARAM_STORE_PFN, 0x1234);
    let rc = hvm_op(HVMOP_SET_PARAM, va(&mut p));
    r.rc("hvm_op: set_param STORE_PFN is -EPERM", rc, -EPERM);

    let mut p = param(HVM_PARAM_IDENT_PT, 0);
    let rc = hvm_op(HVMOP_GET_PARAM, va(&mut p));
    r.rc("hvm_op: get_param IDENT_PT is -EPERM", rc, -EPERM);

    let mut p = XenHvmParam { domid: 5, ..param(HVM_PARAM_STORE_PFN, 0) };
    let rc = hvm_op(HVMOP_GET_PARAM, va(&mut p));
    r.rc("hvm_op: get_param for domain 5 is -ESRCH", rc, -ESRCH);

    let mut p = param(HVM_PARAM_STORE_PFN, 0);
    let rc = hvm_op(99, va(&mut p));
    r.rc("hvm_op: unknown op 99 is -ENOSYS", rc, -ENOSYS);

    // struct xen_hvm_pagetable_dying { domid, pad[3], gpa }: same 16-byte shape.
    let mut dying = param(0, 0);
    let rc = hvm_op(HVMOP_PAGETABLE_DYING, va(&mut dying));
    r.rc("hvm_op: pagetable_dying is -ENOSYS", rc, -ENOSYS);
}

pub fn run_vm_assist(r: &mut Report) {
    r.section("vm_assist");
    let rc = vm_assist(VMASST_CMD_ENABLE, VMASST_TYPE_RUNSTATE_UPDATE_FLAG);
    r.rc("vm_assist: enable runstate_update_flag", rc, 0);
    let rc = vm_assist(VMASST_CMD_ENABLE, 31);
    r.rc("vm_assist: enable type 31 is -EINVAL", rc, -EINVAL);
}
