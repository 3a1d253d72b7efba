//! The short-run mode of the `pci_platform_io` fuzz target (`fuzz/`): the
//! same harness on deterministic pseudo-random inputs, so that `cargo test`
//! runs it. `XENKVM_FUZZ_RUNS` and `XENKVM_FUZZ_SEED` lengthen or vary a run.

use xenkvm_devices::fuzzing::run;

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

fn env(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

#[test]
fn pci_and_platform_io_replay() {
    let runs = env("XENKVM_FUZZ_RUNS").unwrap_or(3000);
    let mut rng = SplitMix(env("XENKVM_FUZZ_SEED").unwrap_or(0xD0E5));
    let (mut accesses, mut writes, mut unplugs) = (0, 0, 0);
    for i in 0..runs {
        let len = (rng.next() % 600) as usize;
        let data: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        let st = run(&data).unwrap_or_else(|e| panic!("input {i} ({len} bytes, {data:02x?}): {e}"));
        (accesses, writes, unplugs) = (accesses + st.accesses, writes + st.config_writes, unplugs + st.unplug_requests);
    }
    eprintln!("pci_platform_io: {runs} inputs, {accesses} accesses, {writes} config-port writes, {unplugs} unplug requests");
    assert!(writes > 0 && unplugs > 0, "the inputs reach both devices");
}
