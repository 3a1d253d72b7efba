//! The short-run mode of the `hypercall_dispatch` fuzz target (`fuzz/`): the
//! same harness, [`xenkvm_xen_core::fuzzing::run`], on deterministic
//! pseudo-random inputs, so that `cargo test` (stable, no libFuzzer) runs it.

use xenkvm_xen_core::fuzzing::{run, Stats};

/// splitmix64: tiny, seeded, good enough to spread bytes.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// One input: mostly small bytes (the selectors use low values), sometimes
/// a run of raw words.
fn input(rng: &mut SplitMix) -> Vec<u8> {
    let len = (rng.next() % 1200) as usize + 1;
    let mut v = Vec::with_capacity(len);
    while v.len() < len {
        let r = rng.next();
        if r & 15 == 0 {
            v.extend(r.to_le_bytes());
        } else {
            v.push((r >> 8) as u8 % [8, 32, 64, 255][(r >> 16) as usize % 4]);
        }
    }
    v
}

fn runs() -> usize {
    let default = if cfg!(debug_assertions) { 1_000 } else { 10_000 };
    std::env::var("XENKVM_FUZZ_RUNS").ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

#[test]
fn fuzz_harness_replays_pseudo_random_inputs() {
    let runs = runs();
    let seed = std::env::var("XENKVM_FUZZ_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or(0x5eed_4c41_1ca1_1001);
    let mut rng = SplitMix(seed);
    let mut total = Stats::default();
    let start = std::time::Instant::now();
    for i in 0..runs {
        let data = input(&mut rng);
        match run(&data) {
            Ok(st) => {
                total.steps += st.steps;
                total.hypercalls += st.hypercalls;
                total.ok += st.ok;
                total.errors += st.errors;
                total.waits += st.waits;
                total.shutdowns += st.shutdowns;
                total.max_ports_used = total.max_ports_used.max(st.max_ports_used);
                total.max_frames = total.max_frames.max(st.max_frames);
            }
            Err(e) => panic!("input {i} ({} bytes, {:02x?}): {e}", data.len(), data),
        }
    }
    eprintln!("{runs} inputs in {:?}: {total:?}", start.elapsed());
    // The inputs must get past argument checks, not just bounce off them.
    assert!(total.hypercalls > runs * 10, "{total:?}");
    assert!(total.ok > runs, "{total:?}");
    assert!(total.errors > runs, "{total:?}");
    assert!(total.max_ports_used > 1 && total.max_frames > 1, "{total:?}");
}

#[test]
fn fuzz_harness_edge_inputs() {
    for data in [&[][..], &[0], &[1], &[0xff; 64], &[0; 4096], &[5; 300]] {
        if let Err(e) = run(data) {
            panic!("{data:02x?}: {e}");
        }
    }
}
