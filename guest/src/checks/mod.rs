//! The self-test: each check prints one line on the serial port,
//!
//! ```text
//! ok <n> - <area>: <what>
//! FAIL <n> - <area>: <what>: <details>
//! ```
//!
//! numbered from 1 in the order they run, with `# ...` lines in between that
//! carry section titles and informational values. The report ends with
//! `guest selftest: N passed, M failed`.

use crate::hypercall::XenCpuid;
use crate::print::{print, println};

mod console;
mod cpuid;
mod hvm;
mod sched;
mod shared_info;
mod vcpu;
mod version;

pub use cpuid::run as run_cpuid;

/// Prints an informational `# ...` line (arguments as for `println!`).
macro_rules! note {
    ($($arg:expr),* $(,)?) => { $crate::print::println!("# ", $($arg),*) };
}
pub(crate) use note;

/// Counts and prints check results.
pub struct Report {
    next: u32,
    passed: u32,
    failed: u32,
}

impl Report {
    pub const fn new() -> Self {
        Self { next: 1, passed: 0, failed: 0 }
    }

    pub fn failed(&self) -> u32 {
        self.failed
    }

    /// Prints a section title (`# title`).
    pub fn section(&self, title: &str) {
        println!("# ", title);
    }

    /// Records one check; `details` prints the explanation, and is only called
    /// if the check failed.
    pub fn check(&mut self, name: &str, ok: bool, details: impl FnOnce()) -> bool {
        let n = self.next;
        self.next += 1;
        if ok {
            self.passed += 1;
            println!("ok ", n, " - ", name);
        } else {
            self.failed += 1;
            print!("FAIL ", n, " - ", name, ": ");
            details();
            println!();
        }
        ok
    }

    /// Records a failed check.
    pub fn fail(&mut self, name: &str, details: impl FnOnce()) {
        self.check(name, false, details);
    }

    /// Checks a hypercall's return value.
    pub fn rc(&mut self, name: &str, got: i64, want: i64) -> bool {
        self.check(name, got == want, || print!("returned ", got, ", expected ", want))
    }

    /// Prints the closing line.
    pub fn summary(&self) {
        println!("guest selftest: ", self.passed, " passed, ", self.failed, " failed");
    }
}

/// Runs every check that needs the hypercall page (installed by the caller).
pub fn run_with_hypercalls(r: &mut Report, xen: &XenCpuid) {
    version::run(r, xen);
    console::run(r);
    shared_info::run(r);
    hvm::run(r);
    vcpu::run(r);
    hvm::run_vm_assist(r);
    sched::run(r);
}

/// Length of the NUL-terminated string at the start of `buf`, `None` if `buf`
/// holds no NUL.
pub fn c_strlen(buf: &[u8]) -> Option<usize> {
    buf.iter().position(|&b| b == 0)
}

/// Whether `haystack` contains `needle`.
pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// Spins for `iterations` PAUSE instructions.
pub fn spin(iterations: u32) {
    for _ in 0..iterations {
        core::hint::spin_loop();
    }
}
