//! Fuzz target: `tether::fuzzing::pubsub_v2_ops` (its doc lists the invariants).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| tether::fuzzing::pubsub_v2_ops(data));
