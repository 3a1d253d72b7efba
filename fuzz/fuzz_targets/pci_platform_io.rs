//! Port I/O on PCI configuration mechanism #1 and the Xen platform device's
//! fixed ports, as a hostile guest does it. The harness and its oracles live
//! in `xenkvm_devices::fuzzing` so that `cargo test` replays the same logic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(violation) = xenkvm_devices::fuzzing::run(data) {
        panic!("oracle violated: {violation}");
    }
});
