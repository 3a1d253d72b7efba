//! Standard input to the guest: bytes typed (or piped) into xenkvm go to COM1's
//! receiver, waiting while its FIFO is full. One reader thread serves every run
//! of the guest (a reboot swaps the target); it is detached, since a read
//! blocked on a terminal must not hold up the VMM's exit.

use std::io::Read;
use std::sync::{Arc, Mutex, Once};
use std::time::Duration;

use crate::builder::Com1;

static TARGET: Mutex<Option<Arc<Mutex<Com1>>>> = Mutex::new(None);
static START: Once = Once::new();

/// Directs stdin to `serial` from now on (starting the reader on first use).
pub fn forward_to_serial(serial: Arc<Mutex<Com1>>) {
    if let Ok(mut t) = TARGET.lock() {
        *t = Some(serial);
    }
    START.call_once(|| {
        if let Err(e) = std::thread::Builder::new().name("stdin".into()).spawn(read_loop) {
            tracing::warn!("no input to the guest: cannot start the stdin thread: {e}");
        }
    });
}

fn deliver(mut rest: &[u8]) {
    while !rest.is_empty() {
        let target = TARGET.lock().ok().and_then(|t| t.clone());
        let Some(serial) = target else { return };
        let taken = serial.lock().map(|mut s| s.receive(rest)).unwrap_or(0);
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
