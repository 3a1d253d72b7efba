//! The short-run mode of the `pci_platform_io` fuzz target (`fuzz/`): the
//! same harness on deterministic pseudo-random inputs, so that `cargo test`
//! runs it. `XENKVM_FUZZ_RUNS` and `XENKVM_FUZZ_SEED` lengthen or vary a run.

use xenkvm_fuzz_replay::{SplitMix, env};
use xenkvm_devices::fuzzing::run;

#[test]
fn pci_and_platform_io_replay() {
    let runs = env("XENKVM_FUZZ_RUNS").unwrap_or(3000);
    let mut rng = SplitMix(env("XENKVM_FUZZ_SEED").unwrap_or(0xD0E5));
    let (mut accesses, mut writes, mut unplugs) = (0, 0, 0);
    for i in 0..runs {
        let data = rng.bytes(600);
        let len = data.len();
        let st = run(&data).unwrap_or_else(|e| panic!("input {i} ({len} bytes, {data:02x?}): {e}"));
        (accesses, writes, unplugs) = (accesses + st.accesses, writes + st.config_writes, unplugs + st.unplug_requests);
    }
    eprintln!("pci_platform_io: {runs} inputs, {accesses} accesses, {writes} config-port writes, {unplugs} unplug requests");
    assert!(writes > 0 && unplugs > 0, "the inputs reach both devices");
}
