//! The short-run mode of the `hypercall_dispatch` fuzz target (`fuzz/`): the
//! same harness, [`xenkvm_xen_core::fuzzing::run`], on deterministic
//! pseudo-random inputs, so that `cargo test` (stable, no libFuzzer) runs it.

use xenkvm_fuzz_replay::SplitMix;
use xenkvm_xen_core::fuzzing::{run, Stats};

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
        let data = rng.skewed(1200);
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
