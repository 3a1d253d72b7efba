//! The short-run mode of the `xenstore_wire` fuzz target (`fuzz/`): the same
//! harness, [`xenkvm_xenstore::fuzzing::run`], on deterministic pseudo-random
//! inputs, so that `cargo test` (stable, no libFuzzer) exercises it in CI.

use xenkvm_xenstore::fuzzing::{run, Stats};

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

/// One input: mostly small bytes (the harness's selectors use low values and
/// moduli), sometimes a run of raw garbage.
fn input(rng: &mut SplitMix) -> Vec<u8> {
    let len = (rng.next() % 1500) as usize + 1;
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

#[test]
fn fuzz_harness_replays_pseudo_random_inputs() {
    let runs = if cfg!(debug_assertions) { 1_000 } else { 10_000 };
    let mut rng = SplitMix(0x5eed_0f7e_57c0_de01);
    let mut total = Stats::default();
    for i in 0..runs {
        let data = input(&mut rng);
        match run(&data) {
            Ok(st) => {
                total.steps += st.steps;
                total.requests += st.requests;
                total.ok_replies += st.ok_replies;
                total.errors += st.errors;
                total.events += st.events;
                total.protocol_errors += st.protocol_errors;
            }
            Err(e) => panic!("input {i} ({} bytes, {:02x?}): {e}", data.len(), data),
        }
    }
    // The inputs must reach the engine, not just bounce off the decoder.
    assert!(total.requests > runs * 10, "{total:?}");
    assert!(total.ok_replies > runs / 2, "{total:?}");
    assert!(total.errors > runs, "{total:?}");
    assert!(total.events > 0 && total.protocol_errors > 0, "{total:?}");
}

#[test]
fn fuzz_harness_edge_inputs() {
    for data in [&[][..], &[0], &[1], &[0xff; 64], &[0; 4096]] {
        if let Err(e) = run(data) {
            panic!("{data:02x?}: {e}");
        }
    }
}
