//! `console_ring`: the console ring (`xencons_interface`) with arbitrary
//! indices and bytes, on a shared page (the primary console) or a guest
//! frame (a xenbus console; sometimes one outside RAM).
//!
//! Steps: the guest writes output honestly or scribbles indices and ring
//! bytes; the backend reads the output or places input. Oracles, per pass:
//! * a pass reads at most the ring size (2 KiB), exactly the bytes between
//!   `out_cons` and `out_prod` in ring order, and moves `out_cons` to
//!   `out_prod`; an impossible producer (more than a ring ahead) is flagged
//!   broken, reads nothing and leaves the indices alone;
//! * input placement takes at most the free room and the bytes offered,
//!   puts them in ring order and moves `in_prod` by as many; an impossible
//!   `in_cons` is flagged broken and nothing is written.

use vm_memory::{GuestAddress, GuestMemoryMmap};
use xenkvm_xen_core::page::SharedPage;

use super::{pick, Input};
use crate::console::*;

/// Steps per input.
pub const MAX_STEPS: usize = 512;

/// What one run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    pub steps: usize,
    pub output: usize,
    pub input: usize,
    pub broken: usize,
}

/// Runs one fuzz input; `Err` names the first oracle violation.
pub fn run(data: &[u8]) -> Result<Stats, String> {
    let mut inp = Input::new(data);
    match inp.byte() % 4 {
        0 => {
            let ram = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), 0x4000)]).map_err(|e| format!("RAM: {e}"))?;
            // A frame in RAM, or one past its end (reads zeros, writes vanish).
            let gfn = if inp.byte().is_multiple_of(8) { 0x10 } else { 2 };
            let frame = GuestFrame { ram, gfn };
            steps(&frame, &mut inp, gfn < 4)
        }
        _ => {
            let page = SharedPage::new().map_err(|e| format!("page: {e}"))?;
            steps(&page, &mut inp, true)
        }
    }
}

fn steps<P: ConsolePage>(page: &P, inp: &mut Input, backed: bool) -> Result<Stats, String> {
    let mut st = Stats::default();
    let ring = ConsoleRing::new(page);
    while !inp.done() && st.steps < MAX_STEPS {
        st.steps += 1;
        match inp.byte() % 8 {
            0 | 1 => {
                // An honest guest writes output (as much as fits).
                let n = usize::from(inp.byte());
                let bytes = inp.bytes(n).to_vec();
                let (cons, mut prod) = (page.load_u32(OUT_CONS), page.load_u32(OUT_PROD));
                let room = OUT_SIZE.saturating_sub(prod.wrapping_sub(cons)) as usize;
                for b in bytes.iter().take(room) {
                    page.write(OUT_OFFSET + (prod % OUT_SIZE) as usize, &[*b]);
                    prod = prod.wrapping_add(1);
                }
                page.store_u32(OUT_PROD, prod);
            }
            2 => {
                // A hostile index.
                let off = pick(&[OUT_CONS, OUT_PROD, IN_CONS, IN_PROD], inp.byte());
                let v = match inp.byte() % 4 {
                    0 => inp.u32(),
                    1 => page.load_u32(off).wrapping_add(u32::from(inp.u16())),
                    2 => page.load_u32(off).wrapping_sub(u32::from(inp.byte())),
                    _ => u32::MAX - u32::from(inp.byte()),
                };
                page.store_u32(off, v);
            }
            3 => {
                // Raw bytes anywhere in the page.
                let at = usize::from(inp.u16() % 4096);
                let n = usize::from(inp.byte()).min(4096 - at);
                let b = inp.bytes(n).to_vec();
                page.write(at, &b);
            }
            4 => {
                // The guest consumes some input.
                let (cons, prod) = (page.load_u32(IN_CONS), page.load_u32(IN_PROD));
                let n = u32::from(inp.u16()).min(prod.wrapping_sub(cons));
                page.store_u32(IN_CONS, cons.wrapping_add(n));
            }
            5 => {
                let n = usize::from(inp.u16() % 2048);
                let bytes: Vec<u8> = (0..n).map(|i| i as u8 ^ 0x5a).collect();
                input(page, &ring, &bytes, backed, &mut st)?;
            }
            _ => output(page, &ring, backed, &mut st)?,
        }
    }
    output(page, &ring, backed, &mut st)?;
    Ok(st)
}

fn output<P: ConsolePage>(page: &P, ring: &ConsoleRing<'_, P>, backed: bool, st: &mut Stats) -> Result<(), String> {
    let (cons, prod) = (page.load_u32(OUT_CONS), page.load_u32(OUT_PROD));
    let pending = prod.wrapping_sub(cons);
    let expect: Vec<u8> = if pending <= OUT_SIZE {
        (0..pending)
            .map(|i| {
                let mut b = [0u8];
                page.read(OUT_OFFSET + (cons.wrapping_add(i) % OUT_SIZE) as usize, &mut b);
                b[0]
            })
            .collect()
    } else {
        Vec::new()
    };
    let mut p = Progress::default();
    ring.read_output(&mut p);
    if p.output.len() > OUT_SIZE as usize {
        return Err(format!("{} bytes of output in one pass", p.output.len()));
    }
    if p.broken != (pending > OUT_SIZE) {
        return Err(format!("broken {} with cons {cons}, prod {prod}", p.broken));
    }
    if p.broken {
        st.broken += 1;
        if !p.output.is_empty() || page.load_u32(OUT_CONS) != cons {
            return Err("a broken ring was read".into());
        }
        return Ok(());
    }
    if p.output != expect {
        return Err(format!("output {:02x?}, ring held {:02x?}", p.output, expect));
    }
    if backed && page.load_u32(OUT_CONS) != prod {
        return Err(format!("out_cons {} after reading up to {prod}", page.load_u32(OUT_CONS)));
    }
    st.output += p.output.len();
    Ok(())
}

fn input<P: ConsolePage>(page: &P, ring: &ConsoleRing<'_, P>, bytes: &[u8], backed: bool, st: &mut Stats) -> Result<(), String> {
    let (cons, prod) = (page.load_u32(IN_CONS), page.load_u32(IN_PROD));
    let used = prod.wrapping_sub(cons);
    let mut p = Progress::default();
    let n = ring.write_input(bytes, &mut p);
    if used > IN_SIZE {
        if !p.broken || n != 0 || page.load_u32(IN_PROD) != prod {
            return Err(format!("impossible in indices ({cons}, {prod}): took {n}, broken {}", p.broken));
        }
        st.broken += 1;
        return Ok(());
    }
    let room = (IN_SIZE - used) as usize;
    if p.broken || n != room.min(bytes.len()) || p.input_written != n {
        return Err(format!("room {room}, offered {}, took {n} (broken {})", bytes.len(), p.broken));
    }
    if backed {
        if page.load_u32(IN_PROD) != prod.wrapping_add(n as u32) {
            return Err(format!("in_prod {} after placing {n} at {prod}", page.load_u32(IN_PROD)));
        }
        for (i, b) in bytes.iter().take(n).enumerate() {
            let mut got = [0u8];
            page.read(IN_OFFSET + (prod.wrapping_add(i as u32) % IN_SIZE) as usize, &mut got);
            if got[0] != *b {
                return Err(format!("input byte {i} is {:#x}, placed {b:#x}", got[0]));
            }
        }
    }
    st.input += n;
    Ok(())
}
