//! Fuzz target: `tether::fuzzing::conn_machine` (its doc lists the invariants).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| tether::fuzzing::conn_machine(data));
