//! The short-run mode of the `virtio_net` fuzz target (`fuzz/`): the same
//! harness on deterministic pseudo-random inputs, so that `cargo test` runs
//! it. `XENKVM_FUZZ_RUNS` and `XENKVM_FUZZ_SEED` lengthen or vary a run.

use xenkvm_fuzz_replay::{SplitMix, env};
use xenkvm_virtio::fuzzing::run;

#[test]
fn virtio_net_replay() {
    let runs = env("XENKVM_FUZZ_RUNS").unwrap_or(4000);
    let mut rng = SplitMix(env("XENKVM_FUZZ_SEED").unwrap_or(0x7172_7469));
    let mut total = xenkvm_virtio::fuzzing::Stats::default();
    for i in 0..runs {
        let data = rng.bytes(1200);
        let len = data.len();
        let st = run(&data).unwrap_or_else(|e| panic!("input {i} ({len} bytes, {data:02x?}): {e}"));
        total.steps += st.steps;
        total.passes += st.passes;
        total.tx_frames += st.tx_frames;
        total.rx_frames += st.rx_frames;
        total.used += st.used;
        total.needs_reset += st.needs_reset;
        total.recoveries += st.recoveries;
    }
    eprintln!("virtio_net: {runs} inputs, {total:?}");
    assert_eq!(total.recoveries as u64, runs, "every input ends with a working device");
    // Before the final clean setup (not counted here).
    assert!(total.tx_frames > 0 && total.rx_frames > 0 && total.used > 0, "the inputs move frames through the queues");
    assert!(total.needs_reset > 0, "the inputs break queues");
}
