//! The PV block backend's ring driven by a hostile frontend. The harness and
//! its oracles live in `xenkvm_xen_pv::fuzzing::blkif` so that `cargo test`
//! replays the same logic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(violation) = xenkvm_xen_pv::fuzzing::blkif::run(data) {
        panic!("oracle violated: {violation}");
    }
});
