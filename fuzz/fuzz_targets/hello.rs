//! Fuzz target: `tether::fuzzing::hello` (its doc lists the invariants).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| tether::fuzzing::hello(data));
