//! Output on the 16550 UART at I/O port 0x3f8 (COM1), polled.
//!
//! No initialisation is done: the VMM's emulated UART accepts bytes as they
//! come. Before each byte the Line Status Register is polled for "transmitter
//! holding register empty" with a bounded number of retries, so that a UART
//! that never reports ready slows the guest down instead of hanging it.

use core::arch::asm;

const COM1: u16 = 0x3f8;
/// Line Status Register.
const LSR: u16 = COM1 + 5;
/// LSR bit 5: transmitter holding register empty.
const LSR_THRE: u8 = 1 << 5;
/// How many times LSR is polled before writing anyway.
const MAX_POLLS: u32 = 100_000;

/// Writes one byte to an I/O port.
pub fn outb(port: u16, value: u8) {
    // SAFETY: port I/O has no memory effects; the VMM emulates every port the
    // guest touches (an unhandled port is still an exit, never an exception).
    unsafe { asm!("out dx, al", in("dx") port, in("al") value, options(nomem, nostack, preserves_flags)) };
}

/// Reads one byte from an I/O port.
pub fn inb(port: u16) -> u8 {
    let value: u8;
    // SAFETY: as for `outb`.
    unsafe { asm!("in al, dx", in("dx") port, out("al") value, options(nomem, nostack, preserves_flags)) };
    value
}

/// Sends one byte to COM1.
#[inline(never)]
pub fn write_byte(byte: u8) {
    let mut polls = 0;
    while inb(LSR) & LSR_THRE == 0 && polls < MAX_POLLS {
        core::hint::spin_loop();
        polls += 1;
    }
    outb(COM1, byte);
}

/// Sends a byte string to COM1.
pub fn write_bytes(bytes: &[u8]) {
    for &b in bytes {
        write_byte(b);
    }
}
