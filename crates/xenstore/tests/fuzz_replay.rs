//! The short-run mode of the `xenstore_wire` fuzz target (`fuzz/`): the same
//! harness, [`xenkvm_xenstore::fuzzing::run`], on deterministic pseudo-random
//! inputs, so that `cargo test` (stable, no libFuzzer) exercises it in CI.

use xenkvm_fuzz_replay::SplitMix;
use xenkvm_xenstore::fuzzing::{run, Stats};

#[test]
fn fuzz_harness_replays_pseudo_random_inputs() {
    let runs = if cfg!(debug_assertions) { 1_000 } else { 10_000 };
    let mut rng = SplitMix(0x5eed_0f7e_57c0_de01);
    let mut total = Stats::default();
    for i in 0..runs {
        let data = rng.skewed(1500);
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
