//! Sections 4 and 5: HYPERVISOR_console_io, and hypercall numbers that Xen
//! does not implement.

use super::Report;
use crate::abi::*;
use crate::entry::UNMAPPED_VA;
use crate::hypercall::{console_io, hypercall5};
use crate::shared::SCRATCH_PAGE;

/// The line written through the hypervisor console.
pub const HELLO: &[u8] = b"xenkvm test guest: hello through console_io\n";

pub fn run(r: &mut Report) {
    r.section("console_io");
    let rc = console_io(CONSOLEIO_WRITE, HELLO.len() as u64, HELLO.as_ptr() as u64);
    r.rc("console_io: CONSOLEIO_write of a line", rc, 0);

    let rc = console_io(CONSOLEIO_WRITE, 0, HELLO.as_ptr() as u64);
    r.rc("console_io: CONSOLEIO_write of 0 bytes", rc, 0);

    let rc = console_io(CONSOLEIO_WRITE, 16, UNMAPPED_VA);
    r.rc("console_io: CONSOLEIO_write from an unmapped address is -EFAULT", rc, -EFAULT);

    let rc = console_io(CONSOLEIO_READ, 16, SCRATCH_PAGE.addr());
    r.rc("console_io: CONSOLEIO_read is -EPERM", rc, -EPERM);

    let rc = console_io(7, 16, SCRATCH_PAGE.addr());
    r.rc("console_io: unknown command 7 is -ENOSYS", rc, -ENOSYS);

    r.section("unknown hypercalls");
    let rc = hypercall5(60, 0, 0, 0, 0, 0);
    r.rc("hypercall: number 60 is -ENOSYS", rc, -ENOSYS);
    let rc = hypercall5(127, 0, 0, 0, 0, 0);
    r.rc("hypercall: number 127 is -ENOSYS", rc, -ENOSYS);
}
