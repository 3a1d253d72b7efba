//! The PV net backend's tx ring driven by a hostile frontend. The harness and
//! its oracles live in `xenkvm_xen_pv::fuzzing::netif` so that `cargo test`
//! replays the same logic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(violation) = xenkvm_xen_pv::fuzzing::netif::run(data) {
        panic!("oracle violated: {violation}");
    }
});
