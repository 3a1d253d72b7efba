//! Host ends of the guest's text outputs.

use std::io::Write;
use std::sync::Mutex;

use xenkvm_xen_core::ports::ConsoleSink;

/// The hypervisor console (`console_io`): each line prefixed with the domain,
/// as Xen prints guest output in `xl dmesg`.
pub struct HypervisorConsole {
    prefix: String,
    at_line_start: Mutex<bool>,
}

impl HypervisorConsole {
    pub fn new(domid: u16) -> Self {
        Self { prefix: format!("(d{domid}) "), at_line_start: Mutex::new(true) }
    }
}

impl ConsoleSink for HypervisorConsole {
    fn write(&self, bytes: &[u8]) {
        let Ok(mut start) = self.at_line_start.lock() else { return };
        let mut out = std::io::stdout().lock();
        for line in bytes.split_inclusive(|b| *b == b'\n') {
            if *start {
                let _ = out.write_all(self.prefix.as_bytes());
            }
            let _ = out.write_all(line);
            *start = line.ends_with(b"\n");
        }
        let _ = out.flush();
    }
}

/// Standard output, flushed at each newline (for the serial port).
pub struct LineFlushedStdout;

impl Write for LineFlushedStdout {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut out = std::io::stdout().lock();
        out.write_all(buf)?;
        if buf.contains(&b'\n') {
            out.flush()?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stdout().flush()
    }
}
