//! XenStore wire parser + engine + transports, driven by arbitrary bytes from
//! a dom0 socket client and two guest rings. The harness and its oracles live
//! in `xenkvm_xenstore::fuzzing` so that `cargo test` replays the same logic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(violation) = xenkvm_xenstore::fuzzing::run(data) {
        panic!("oracle violated: {violation}");
    }
});
