use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use super::*;
use crate::bus::PioBus;

/// Linux's `init_8259A`: ICW1 edge+ICW4, vectors 0x30/0x38, cascade on
/// IRQ2, 8086 mode (with `auto_eoi` as asked), then every IRQ masked.
fn init_linux(pic: &mut Pic, auto_eoi: bool) {
    let icw4 = if auto_eoi { 0x03 } else { 0x01 };
    for (cmd, data, base, icw3) in [(0x20, 0x21, 0x30, 0x04), (0xA0, 0xA1, 0x38, 0x02)] {
        pic.write_port(cmd, 0x11);
        pic.write_port(data, base);
        pic.write_port(data, icw3);
        pic.write_port(data, icw4);
    }
    pic.write_port(0x21, 0xFF);
    pic.write_port(0xA1, 0xFF);
}

/// Unmasks `irq` (and the cascade for slave IRQs), as Linux's unmask does.
fn unmask(pic: &mut Pic, irq: u8) {
    if irq < 8 {
        let imr = pic.read_port(0x21) & !(1 << irq);
        pic.write_port(0x21, imr);
    } else {
        let imr = pic.read_port(0xA1) & !(1 << (irq - 8));
        pic.write_port(0xA1, imr);
        let imr = pic.read_port(0x21) & !(1 << 2);
        pic.write_port(0x21, imr);
    }
}

fn linux_pic() -> Pic {
    let mut pic = Pic::new();
    init_linux(&mut pic, false);
    pic
}

fn isr(pic: &mut Pic, cmd: u16) -> u8 {
    pic.write_port(cmd, 0x0B);
    let v = pic.read_port(cmd);
    pic.write_port(cmd, 0x0A);
    v
}

#[test]
fn powers_up_masked_with_firmware_vectors() {
    let mut pic = Pic::new();
    pic.set_irq(4, true);
    assert_eq!(pic.pending_vector(), None);
    pic.write_port(0x21, 0xEF);
    assert_eq!(pic.pending_vector(), Some(0x0C));
    assert!(pic.output());
}

#[test]
fn edge_irq_is_latched_acknowledged_and_ended() {
    let mut pic = linux_pic();
    unmask(&mut pic, 0);
    // A pulse: the request stays after the line falls.
    pic.set_irq(0, true);
    pic.set_irq(0, false);
    assert_eq!(pic.pending_vector(), Some(0x30));
    assert_eq!(pic.acknowledge(), Some(0x30));
    assert!(!pic.output());
    assert_eq!(isr(&mut pic, 0x20), 0x01);
    assert_eq!(pic.read_port(0x20), 0, "IRR cleared by INTA");
    pic.write_port(0x20, 0x20);
    assert_eq!(isr(&mut pic, 0x20), 0);
    assert_eq!(pic.acknowledge(), None);
}

#[test]
fn edge_irq_needs_a_new_rising_edge() {
    let mut pic = linux_pic();
    unmask(&mut pic, 1);
    pic.set_irq(1, true);
    assert_eq!(pic.acknowledge(), Some(0x31));
    pic.write_port(0x20, 0x61);
    pic.set_irq(1, true);
    assert_eq!(pic.pending_vector(), None, "still high: no new edge");
    pic.set_irq(1, false);
    pic.set_irq(1, true);
    assert_eq!(pic.pending_vector(), Some(0x31));
}

#[test]
fn level_irq_follows_the_line_and_refires_after_eoi() {
    let mut pic = linux_pic();
    pic.write_port(0x4D1, 0x0C); // IRQ 10 and 11 level-triggered
    assert!(pic.is_level(10) && pic.is_level(11) && !pic.is_level(9));
    unmask(&mut pic, 10);
    pic.set_irq(10, true);
    assert_eq!(pic.pending_vector(), Some(0x3A));
    pic.set_irq(10, false);
    assert_eq!(pic.pending_vector(), None, "level request withdrawn");
    pic.set_irq(10, true);
    assert_eq!(pic.acknowledge(), Some(0x3A));
    assert_eq!(isr(&mut pic, 0xA0), 0x04);
    assert_eq!(isr(&mut pic, 0x20), 0x04, "the cascade is in service on the master");
    // Linux: specific EOI to the slave, then to the master's IRQ2.
    pic.write_port(0xA0, 0x62);
    pic.write_port(0x20, 0x62);
    assert_eq!(pic.pending_vector(), Some(0x3A), "line still high");
    pic.set_irq(10, false);
    assert_eq!(pic.pending_vector(), None);
}

#[test]
fn elcr_keeps_the_always_edge_irqs() {
    let mut pic = Pic::new();
    pic.write_port(0x4D0, 0xFF);
    pic.write_port(0x4D1, 0xFF);
    assert_eq!(pic.read_port(0x4D0), 0xF8);
    assert_eq!(pic.read_port(0x4D1), 0xDE);
    pic.set_level_triggered(0);
    pic.set_level_triggered(13);
    pic.set_level_triggered(200);
    assert!(!pic.is_level(0) && !pic.is_level(13) && !pic.is_level(200));
}

#[test]
fn priority_and_nesting() {
    let mut pic = linux_pic();
    for irq in [1, 3, 4] {
        unmask(&mut pic, irq);
    }
    pic.set_irq(4, true);
    pic.set_irq(3, true);
    assert_eq!(pic.acknowledge(), Some(0x33));
    // IRQ 4 waits behind IRQ 3 in service; IRQ 1 preempts it.
    assert_eq!(pic.pending_vector(), None);
    pic.set_irq(1, true);
    assert_eq!(pic.acknowledge(), Some(0x31));
    // Non-specific EOIs end the highest priority first.
    pic.write_port(0x20, 0x20);
    assert_eq!(isr(&mut pic, 0x20), 0x08);
    pic.write_port(0x20, 0x20);
    assert_eq!(pic.acknowledge(), Some(0x34));
}

#[test]
fn slave_irq_goes_through_the_cascade() {
    let mut pic = linux_pic();
    unmask(&mut pic, 14);
    unmask(&mut pic, 0);
    pic.set_irq(14, true);
    pic.set_irq(0, true);
    // IRQ 0 outranks the whole slave.
    assert_eq!(pic.acknowledge(), Some(0x30));
    pic.write_port(0x20, 0x20);
    assert_eq!(pic.acknowledge(), Some(0x3E));
    // The master IRR shows the cascade while the slave requests.
    pic.set_irq(12, true);
    unmask(&mut pic, 12);
    assert_eq!(pic.read_port(0xA0), 0x10);
}

#[test]
fn special_fully_nested_lets_a_better_slave_irq_through() {
    let mut pic = Pic::new();
    pic.write_port(0x20, 0x11);
    pic.write_port(0x21, 0x08);
    pic.write_port(0x21, 0x04);
    pic.write_port(0x21, 0x11); // SFNM
    pic.write_port(0x21, 0x00);
    pic.write_port(0xA1, 0x00);
    pic.set_irq(12, true);
    assert_eq!(pic.acknowledge(), Some(0x74));
    pic.set_irq(9, true);
    assert_eq!(pic.acknowledge(), Some(0x71));
}

#[test]
fn auto_eoi_leaves_nothing_in_service() {
    let mut pic = Pic::new();
    init_linux(&mut pic, true);
    unmask(&mut pic, 0);
    pic.set_irq(0, true);
    assert_eq!(pic.acknowledge(), Some(0x30));
    assert_eq!(isr(&mut pic, 0x20), 0);
    pic.set_irq(0, false);
    pic.set_irq(0, true);
    assert_eq!(pic.acknowledge(), Some(0x30));
}

#[test]
fn rotation_moves_the_lowest_priority() {
    let mut pic = linux_pic();
    pic.write_port(0x21, 0x00);
    // Set priority: IRQ 4 lowest, so IRQ 5 is the highest.
    pic.write_port(0x20, 0xC4);
    pic.set_irq(3, true);
    pic.set_irq(5, true);
    assert_eq!(pic.acknowledge(), Some(0x35));
    // Rotate on non-specific EOI: IRQ 5 becomes the lowest; IRQ 3 next.
    pic.write_port(0x20, 0xA0);
    pic.set_irq(6, true);
    assert_eq!(pic.acknowledge(), Some(0x36));
    pic.write_port(0x20, 0xE6); // rotate on specific EOI of IRQ 6
    assert_eq!(pic.acknowledge(), Some(0x33));
}

#[test]
fn poll_acknowledges_through_the_port() {
    let mut pic = linux_pic();
    unmask(&mut pic, 5);
    pic.write_port(0x20, 0x0C);
    assert_eq!(pic.read_port(0x20), 0, "nothing requested");
    pic.set_irq(5, true);
    pic.write_port(0x20, 0x0C);
    assert_eq!(pic.read_port(0x20), 0x85);
    assert!(!pic.output());
    assert_eq!(isr(&mut pic, 0x20), 0x20);
    // The next read is a register read again (IRR).
    assert_eq!(pic.read_port(0x20), 0);
}

#[test]
fn special_mask_mode_allows_lower_priorities() {
    let mut pic = linux_pic();
    pic.write_port(0x21, 0x00);
    pic.set_irq(3, true);
    assert_eq!(pic.acknowledge(), Some(0x33));
    pic.set_irq(6, true);
    assert_eq!(pic.pending_vector(), None);
    pic.write_port(0x21, 0x08);
    pic.write_port(0x20, 0x68); // OCW3: set special mask
    assert_eq!(pic.pending_vector(), Some(0x36));
    pic.write_port(0x20, 0x48); // reset special mask
    assert_eq!(pic.pending_vector(), None);
}

#[test]
fn reinitialisation_clears_state_but_keeps_level_requests() {
    let mut pic = linux_pic();
    pic.write_port(0x4D1, 0x08);
    unmask(&mut pic, 11);
    unmask(&mut pic, 1);
    pic.set_irq(11, true);
    pic.set_irq(1, true);
    assert_eq!(pic.acknowledge(), Some(0x31));
    init_linux(&mut pic, false);
    assert_eq!(isr(&mut pic, 0x20), 0);
    assert_eq!(pic.read_port(0x20), 0, "edge request dropped");
    assert_eq!(pic.read_port(0xA0), 0x08, "level request kept");
    unmask(&mut pic, 11);
    assert_eq!(pic.acknowledge(), Some(0x3B));
}

#[test]
fn single_mode_has_no_cascade() {
    let mut pic = Pic::new();
    pic.write_port(0x20, 0x13); // single, ICW4
    pic.write_port(0x21, 0x50);
    pic.write_port(0x21, 0x01); // no ICW3: this is ICW4
    pic.write_port(0x21, 0x00); // the mask
    pic.write_port(0xA1, 0x00);
    pic.set_irq(9, true);
    assert_eq!(pic.pending_vector(), None);
    pic.set_irq(7, true);
    assert_eq!(pic.acknowledge(), Some(0x57));
}

#[test]
fn output_hook_sees_each_change_once() {
    let rises = Arc::new(AtomicUsize::new(0));
    let falls = Arc::new(AtomicUsize::new(0));
    let (r, f) = (rises.clone(), falls.clone());
    let mut pic = Pic::with_output_hook(Box::new(move |up| {
        let c = if up { &r } else { &f };
        c.fetch_add(1, Ordering::SeqCst);
    }));
    init_linux(&mut pic, false);
    pic.set_irq(0, true);
    unmask(&mut pic, 0);
    assert_eq!(rises.load(Ordering::SeqCst), 1);
    pic.set_irq(3, true);
    assert_eq!(rises.load(Ordering::SeqCst), 1, "already up");
    pic.acknowledge();
    assert_eq!(falls.load(Ordering::SeqCst), 1);
}

#[test]
fn bus_ranges_reach_both_chips_and_the_elcr() {
    let pic = Arc::new(Mutex::new(Pic::new()));
    let mut bus = PioBus::new();
    for r in PicPorts::ranges(&pic) {
        let base = r.base;
        bus.insert(base.into(), RANGE_LEN.into(), Arc::new(Mutex::new(r))).unwrap();
    }
    bus.write(0xA1, &[0x5A]);
    bus.write(0x4D0, &[0x08, 0x04]); // a word: both ELCR bytes
    let mut b = [0u8; 2];
    bus.read(0xA1, &mut b[..1]);
    assert_eq!(b[0], 0x5A);
    bus.read(0x4D0, &mut b);
    assert_eq!(b, [0x08, 0x04]);
    // A word at the range's last port: the byte past it reads as ones.
    bus.read(0x21, &mut b);
    assert_eq!(b, [0xFF, 0xFF]);
    let imr = pic.lock().unwrap().read_port(0x21);
    assert_eq!(imr, 0xFF);
}

#[test]
fn hostile_writes_never_panic_and_keep_invariants() {
    let mut pic = Pic::new();
    let mut x: u32 = 0x1234_5678;
    for _ in 0..20_000 {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        let [a, b, c, _] = x.to_le_bytes();
        let port = [0x20, 0x21, 0xA0, 0xA1, 0x4D0, 0x4D1, 0x22, 0xFFFF][usize::from(a & 7)];
        match b % 4 {
            0 => {
                pic.read_port(port);
            }
            1 | 2 => pic.write_port(port, c),
            _ => pic.set_irq(c, c & 0x80 != 0),
        }
        if let Some(v) = pic.pending_vector() {
            assert_eq!(pic.acknowledge(), Some(v), "acknowledge gives the pending vector");
        }
        assert_eq!(pic.output(), pic.pending_vector().is_some());
        assert_eq!(pic.read_port(0x4D0) & 0x07, 0);
        assert_eq!(pic.read_port(0x4D1) & 0x21, 0);
    }
}
