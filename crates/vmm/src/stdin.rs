//! Standard input to the guest: bytes typed (or piped) into xenkvm go to the
//! guest's console, which is the last `console=` of the kernel command line
//! (Linux's `/dev/console`): the PV console for `hvc*`, else COM1's receiver.
//! Delivery waits while the target is full. One reader thread serves every run
//! of the guest (a reboot swaps the target); it is detached, since a read
//! blocked on a terminal must not hold up the VMM's exit.

use std::io::Read;
use std::sync::{Arc, Mutex, Once};
use std::time::Duration;

use crate::builder::Com1;
use crate::pvconsole::ConsoleInput;

/// Where typed bytes go.
#[derive(Clone)]
pub enum InputTarget {
    Serial(Arc<Mutex<Com1>>),
    PvConsole(Arc<ConsoleInput>),
}

impl InputTarget {
    /// Takes what fits of `bytes`; returns how many.
    pub(crate) fn receive(&self, bytes: &[u8]) -> usize {
        match self {
            InputTarget::Serial(s) => s.lock().map(|mut s| s.receive(bytes)).unwrap_or(0),
            InputTarget::PvConsole(c) => c.push(bytes),
        }
    }
}

/// Whether the kernel command line makes an `hvc` device the console.
pub fn console_is_hvc(cmdline: &str) -> bool {
    let last = cmdline.split_whitespace().rev().find_map(|w| w.strip_prefix("console="));
    last.is_some_and(|c| c.starts_with("hvc"))
}

static TARGET: Mutex<Option<InputTarget>> = Mutex::new(None);
static START: Once = Once::new();

/// Directs stdin to `target` from now on (starting the reader on first use).
pub fn forward(target: InputTarget) {
    if let Ok(mut t) = TARGET.lock() {
        *t = Some(target);
    }
    START.call_once(|| {
        if let Err(e) = std::thread::Builder::new().name("stdin".into()).spawn(|| {
            crate::seccomp::enter(crate::seccomp::ThreadKind::Worker);
            read_loop()
        }) {
            tracing::warn!("no input to the guest: cannot start the stdin thread: {e}");
        }
    });
}

fn deliver(mut rest: &[u8]) {
    while !rest.is_empty() {
        let target = TARGET.lock().ok().and_then(|t| t.clone());
        let Some(target) = target else { return };
        let taken = target.receive(rest);
        rest = rest.get(taken..).unwrap_or(&[]);
        if taken == 0 {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

fn read_loop() {
    let mut stdin = std::io::stdin().lock();
    let mut buf = [0u8; 256];
    while let Ok(n) = stdin.read(&mut buf) {
        match buf.get(..n) {
            Some(bytes) if !bytes.is_empty() => deliver(bytes),
            _ => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::console_is_hvc;

    #[test]
    fn the_last_console_is_the_one_that_reads() {
        assert!(console_is_hvc("console=ttyS0 console=hvc0 quiet"));
        assert!(!console_is_hvc("console=hvc0 console=ttyS0"));
        assert!(!console_is_hvc("root=/dev/xvda1"));
        assert!(console_is_hvc("console=hvc0"));
    }
}
