//! The short-run mode of the `blkif_ring`, `netif_ring` and `console_ring`
//! fuzz targets (`fuzz/`): the same harnesses
//! (`xenkvm_xen_pv::fuzzing::{blkif, netif, console}::run`) on deterministic
//! pseudo-random inputs, so that `cargo test` (stable, no libFuzzer) runs them.
//! `XENKVM_FUZZ_RUNS` and `XENKVM_FUZZ_SEED` lengthen or vary a run.

use xenkvm_fuzz_replay::{SplitMix, env};
use std::fmt::Debug;

use xenkvm_xen_pv::fuzzing::{blkif, console, netif};

/// Runs `runs` inputs through `run`; returns every run's statistics.
fn replay<S: Debug>(name: &str, seed: u64, default_runs: usize, run: impl Fn(&[u8]) -> Result<S, String>) -> Vec<S> {
    let runs = env("XENKVM_FUZZ_RUNS").map_or(default_runs, |n| n as usize);
    let mut rng = SplitMix(env("XENKVM_FUZZ_SEED").unwrap_or(seed));
    let start = std::time::Instant::now();
    let mut all = Vec::with_capacity(runs);
    for i in 0..runs {
        let data = rng.skewed(1500);
        match run(&data) {
            Ok(st) => all.push(st),
            Err(e) => panic!("{name}: input {i} ({} bytes, {:02x?}): {e}", data.len(), data),
        }
    }
    eprintln!("{name}: {runs} inputs in {:?}", start.elapsed());
    all
}

fn default_runs(debug: usize) -> usize {
    if cfg!(debug_assertions) {
        debug
    } else {
        debug * 10
    }
}

#[test]
fn blkif_ring_replays_pseudo_random_inputs() {
    let all = replay("blkif_ring", 0x5eed_b1c1_f000_0001, default_runs(300), blkif::run);
    let sum = |f: fn(&blkif::Stats) -> usize| all.iter().map(f).sum::<usize>();
    let (req, ok, err, nosup) = (sum(|s| s.requests), sum(|s| s.ok), sum(|s| s.errors), sum(|s| s.eopnotsupp));
    let (writes, broken) = (sum(|s| s.disk_writes), sum(|s| s.broken));
    let persistent = all.iter().map(|s| s.persistent_max).max().unwrap_or(0);
    eprintln!("requests {req}, ok {ok}, error {err}, eopnotsupp {nosup}, disk writes {writes}, broken {broken}, persistent max {persistent}");
    assert!(req > all.len() * 5 && ok > 0 && err > 0 && nosup > 0 && writes > 0 && broken > 0 && persistent > 0);
}

#[test]
fn netif_ring_replays_pseudo_random_inputs() {
    let all = replay("netif_ring", 0x5eed_0e71_f000_0001, default_runs(300), netif::run);
    let sum = |f: fn(&netif::Stats) -> usize| all.iter().map(f).sum::<usize>();
    let (slots, ok, err, nulls) = (sum(|s| s.slots), sum(|s| s.ok), sum(|s| s.errors), sum(|s| s.nulls));
    let (frames, fatal) = (sum(|s| s.frames), sum(|s| s.fatal));
    eprintln!("slots {slots}, ok {ok}, error {err}, null {nulls}, frames {frames}, fatal {fatal}");
    assert!(slots > all.len() * 5 && ok > 0 && err > 0 && nulls > 0 && frames > 0 && fatal > 0);
}

#[test]
fn console_ring_replays_pseudo_random_inputs() {
    let all = replay("console_ring", 0x5eed_c025_f000_0001, default_runs(1000), console::run);
    let sum = |f: fn(&console::Stats) -> usize| all.iter().map(f).sum::<usize>();
    let (out, inp, broken) = (sum(|s| s.output), sum(|s| s.input), sum(|s| s.broken));
    eprintln!("output {out}, input {inp}, broken {broken}");
    assert!(out > 0 && inp > 0 && broken > 0);
}

/// Inputs libFuzzer found (harness false positives once; kept as regressions).
const NETIF_REGRESSIONS: &[&[u8]] = &[
    // A first slot with NETTXF_more_data and no further slot.
    &[0x00, 0x00, 0xf4, 0x07, 0x1a, 0x45, 0x2f, 0x1a, 0x45, 0x2f, 0x04, 0xff, 0, 0, 0, 0, 0, 0, 0, 0],
];

#[test]
fn fuzz_regressions() {
    for data in NETIF_REGRESSIONS {
        netif::run(data).unwrap_or_else(|e| panic!("netif {data:02x?}: {e}"));
    }
}

#[test]
fn fuzz_harnesses_take_edge_inputs() {
    for data in [&[][..], &[0], &[1], &[0xff; 64], &[0; 4096], &[0x0a; 300]] {
        blkif::run(data).unwrap_or_else(|e| panic!("blkif {data:02x?}: {e}"));
        netif::run(data).unwrap_or_else(|e| panic!("netif {data:02x?}: {e}"));
        console::run(data).unwrap_or_else(|e| panic!("console {data:02x?}: {e}"));
    }
}
