//! `HYPERVISOR_console_io`: the hypervisor console, for early guest output.

use xenkvm_xen_abi::errno::XenErrno;
use xenkvm_xen_abi::xen::{CONSOLEIO_READ, CONSOLEIO_WRITE, HYPERVISOR_CONSOLE_IO};

use crate::domain::Domain;
use crate::guest::GuestView;
use crate::hypercall::HypercallRequest;

/// Bytes copied from the guest per step, so no allocation follows the guest's count.
const CHUNK: usize = 512;

/// Replaces bytes that could drive the host terminal (escape sequences) as Xen
/// filters guest console output.
fn sanitize(buf: &mut [u8]) {
    for b in buf {
        if !(b.is_ascii_graphic() || *b == b' ' || *b == b'\n' || *b == b'\t') {
            *b = b'.';
        }
    }
}

impl Domain {
    pub(crate) fn console_io(&mut self, req: &HypercallRequest) -> Result<i64, XenErrno> {
        let (cmd, count, buffer) = (req.arg(0), req.arg(1) & 0xFFFF_FFFF, req.arg(2));
        match cmd {
            CONSOLEIO_WRITE => {
                let view = GuestView::new(&self.mem, req.paging);
                let mut done = 0u64;
                let mut chunk = [0u8; CHUNK];
                while done < count {
                    let n = (count - done).min(CHUNK as u64) as usize;
                    let part = chunk.get_mut(..n).ok_or(XenErrno::Efault)?;
                    view.read_bytes(buffer.wrapping_add(done), part)?;
                    sanitize(part);
                    self.ports.console.write(part);
                    done += n as u64;
                }
                Ok(0)
            }
            // Reading the hypervisor console is a privileged operation.
            CONSOLEIO_READ => Err(XenErrno::Eperm),
            _ => {
                self.report_unknown(HYPERVISOR_CONSOLE_IO, cmd, "console_io sub-op");
                Err(XenErrno::Enosys)
            }
        }
    }
}
