//! The 16550 UART at 0x3f8, over vm-superio. Output goes to any `Write`; the
//! interrupt goes to whatever [`Trigger`] it is given (an I/O APIC pin).

use std::io::Write;

use vm_superio::serial::NoEvents;
use vm_superio::{Serial, Trigger};

use crate::bus::PioDevice;

/// Base port of COM1.
pub const COM1: u16 = 0x3f8;

/// An interrupt line that goes nowhere.
pub struct NoIrq;

impl Trigger for NoIrq {
    type E = std::io::Error;
    fn trigger(&self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A 16550 on the port bus, raising its interrupt through `T`.
pub struct SerialPort<T: Trigger, W: Write + Send> {
    uart: Serial<T, NoEvents, W>,
}

impl<W: Write + Send> SerialPort<NoIrq, W> {
    /// A port whose interrupt goes nowhere.
    pub fn new(out: W) -> Self {
        Self { uart: Serial::new(NoIrq, out) }
    }
}

impl<T: Trigger, W: Write + Send> SerialPort<T, W> {
    /// A port that signals its interrupt line through `irq`.
    pub fn with_irq(irq: T, out: W) -> Self {
        Self { uart: Serial::new(irq, out) }
    }

    pub fn output(&self) -> &W {
        self.uart.writer()
    }

    /// Queues received bytes (up to the FIFO's free space, raising the receive
    /// interrupt); returns how many were taken.
    pub fn receive(&mut self, input: &[u8]) -> usize {
        let room = self.uart.fifo_capacity().min(input.len());
        match input.get(..room) {
            Some(part) if !part.is_empty() => self.uart.enqueue_raw_bytes(part).unwrap_or(0),
            _ => 0,
        }
    }
}

impl<T: Trigger + Send, W: Write + Send> PioDevice for SerialPort<T, W> {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        let v = u8::try_from(offset).map(|o| self.uart.read(o)).unwrap_or(0xFF);
        data.fill(0);
        if let Some(first) = data.first_mut() {
            *first = v;
        }
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        if let (Ok(o), Some(v)) = (u8::try_from(offset), data.first()) {
            // A failed host write (closed stdout) must not stop the guest.
            let _ = self.uart.write(o, *v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transmits_bytes_and_reports_ready() {
        let mut s = SerialPort::new(Vec::new());
        let mut lsr = [0u8];
        s.read(5, &mut lsr);
        assert_ne!(lsr[0] & 0x20, 0, "THR empty");
        for b in b"hi\n" {
            s.write(0, &[*b]);
        }
        assert_eq!(s.output(), b"hi\n");
        let mut wide = [0xAAu8; 4];
        s.read(5, &mut wide);
        assert_eq!(&wide[1..], &[0, 0, 0]);
        s.write(300, &[1]);
    }

    #[test]
    fn receive_fills_the_fifo_and_no_more() {
        let mut s = SerialPort::new(Vec::new());
        assert_eq!(s.receive(&[b'a'; 100]), 64);
        assert_eq!(s.receive(b"b"), 0);
        let mut rbr = [0u8];
        s.read(0, &mut rbr);
        assert_eq!(rbr, [b'a']);
        assert_eq!(s.receive(b"cd"), 1);
    }
}
