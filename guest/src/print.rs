//! Minimal text output to the serial port, without `core::fmt`.
//!
//! The guest is compiled without SSE (see `build.rs`), but the precompiled
//! `core` is not: its formatting machinery (`Formatter::pad`, integer
//! `Display`, ...) contains SSE instructions, which the host cannot execute
//! for this guest. So the guest formats by hand: `print!`/`println!` take a
//! comma-separated list of values implementing [`Emit`] and write them one
//! after the other:
//!
//! ```ignore
//! println!("returned ", rc, ", expected ", hex(want));
//! ```

use crate::serial::{write_byte, write_bytes};

/// Something that can be written to the serial port.
pub trait Emit {
    fn emit(&self);
}

impl Emit for str {
    #[inline(never)]
    fn emit(&self) {
        write_bytes(self.as_bytes());
    }
}

impl<T: Emit + ?Sized> Emit for &T {
    fn emit(&self) {
        (**self).emit();
    }
}

impl Emit for bool {
    fn emit(&self) {
        write_bytes(if *self { b"true" } else { b"false" });
    }
}

/// Writes `value` in decimal.
#[inline(never)]
pub fn emit_u64(mut value: u64) {
    let mut digits = [0u8; 20];
    let mut n = digits.len();
    loop {
        n -= 1;
        digits[n] = b'0' + (value % 10) as u8;
        value /= 10;
        if value == 0 {
            break;
        }
    }
    write_bytes(&digits[n..]);
}

/// Writes `value` in decimal, with a `-` if negative.
#[inline(never)]
pub fn emit_i64(value: i64) {
    if value < 0 {
        write_byte(b'-');
    }
    emit_u64(value.unsigned_abs());
}

macro_rules! emit_unsigned {
    ($($t:ty),*) => {$(
        impl Emit for $t {
            fn emit(&self) {
                emit_u64(*self as u64);
            }
        }
    )*};
}

macro_rules! emit_signed {
    ($($t:ty),*) => {$(
        impl Emit for $t {
            fn emit(&self) {
                emit_i64(*self as i64);
            }
        }
    )*};
}

emit_unsigned!(u8, u16, u32, u64, usize);
emit_signed!(i8, i16, i32, i64);

/// A number written in hexadecimal with a `0x` prefix.
#[derive(Clone, Copy)]
pub struct Hex(pub u64);

/// Wraps a number for hexadecimal output.
pub fn hex<T: Into<u64>>(value: T) -> Hex {
    Hex(value.into())
}

impl Emit for Hex {
    #[inline(never)]
    fn emit(&self) {
        write_bytes(b"0x");
        let mut started = false;
        for i in (0..16).rev() {
            let nibble = ((self.0 >> (4 * i)) & 0xf) as u8;
            if nibble != 0 || started || i == 0 {
                started = true;
                write_byte(if nibble < 10 { b'0' + nibble } else { b'a' + nibble - 10 });
            }
        }
    }
}

/// The NUL-terminated string at the start of a byte buffer (all of it if
/// there is no NUL), with bytes outside printable ASCII shown as `.`.
#[derive(Clone, Copy)]
pub struct CStr<'a>(pub &'a [u8]);

impl Emit for CStr<'_> {
    #[inline(never)]
    fn emit(&self) {
        for &b in self.0.iter().take_while(|&&b| b != 0) {
            write_byte(if (0x20..0x7f).contains(&b) { b } else { b'.' });
        }
    }
}

impl<T: Emit> Emit for Option<T> {
    fn emit(&self) {
        match self {
            Some(v) => v.emit(),
            None => write_bytes(b"none"),
        }
    }
}

/// Writes each argument (an [`Emit`] value) in turn.
macro_rules! print {
    ($($arg:expr),* $(,)?) => {{
        $( $crate::print::Emit::emit(&$arg); )*
    }};
}

/// [`print!`] followed by `\n`.
macro_rules! println {
    ($($arg:expr),* $(,)?) => {{
        $( $crate::print::Emit::emit(&$arg); )*
        $crate::serial::write_byte(b'\n');
    }};
}

pub(crate) use {print, println};
