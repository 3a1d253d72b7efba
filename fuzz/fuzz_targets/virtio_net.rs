//! The virtio-pci transport and the virtio-net worker driven by a hostile
//! driver (registers, rings, descriptors, notifies, tap frames, passes). The
//! harness and its oracles live in `xenkvm_virtio::fuzzing` so that `cargo
//! test` replays the same logic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(violation) = xenkvm_virtio::fuzzing::run(data) {
        panic!("oracle violated: {violation}");
    }
});
