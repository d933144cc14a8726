//! Fuzz target: `tether::fuzzing::frame_decoder` (its doc lists the invariants).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| tether::fuzzing::frame_decoder(data));
