//! Hypercall dispatch with arbitrary numbers, arguments and argument bytes in
//! a small test guest's memory. The harness and its oracles live in
//! `xenkvm_xen_core::fuzzing` so that `cargo test` replays the same logic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(violation) = xenkvm_xen_core::fuzzing::run(data) {
        panic!("oracle violated: {violation}");
    }
});
