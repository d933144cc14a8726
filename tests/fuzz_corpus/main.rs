//! Replays every committed fuzz corpus file (`fuzz/corpus/<target>/`) through
//! the same harness the fuzz target calls, so on stable `cargo test` every
//! seed and every input once found interesting stays a regression test.
//!
//! The seeds themselves are built here from the crate's own encoders and the
//! docs/protocol.md test vectors; `TETHER_WRITE_SEEDS=1 cargo test --test
//! fuzz_corpus -- --ignored` (re)writes them as `seed-*` files.

mod codec_seeds;
#[path = "../common/mod.rs"]
mod common;
mod pubsub_seeds;
mod random;
mod state_seeds;

use std::fs;
use std::path::PathBuf;

use tether::fuzzing::{self, conn_flags, CONN_TOKEN};

use codec_seeds::{frame_decoder_seeds, hello_seeds, pubsub_op_seeds, pubsub_v2_ops_seeds};
use pubsub_seeds::{pubsub_state_known_bugs, pubsub_state_seeds};
use state_seeds::conn_machine_seeds;

type Harness = fn(&[u8]);

/// Every fuzz target and the harness it calls.
const TARGETS: [(&str, Harness); 6] = [
    ("frame_decoder", fuzzing::frame_decoder),
    ("hello", fuzzing::hello),
    ("pubsub_op", fuzzing::pubsub_op),
    ("conn_machine", fuzzing::conn_machine),
    ("pubsub_state", fuzzing::pubsub_state),
    ("pubsub_v2_ops", fuzzing::pubsub_v2_ops),
];

fn corpus_dir(target: &str) -> PathBuf {
    common::root().join("fuzz/corpus").join(target)
}

#[test]
fn every_committed_corpus_file_passes_its_harness() {
    for (target, harness) in TARGETS {
        let dir = corpus_dir(target);
        let mut files: Vec<PathBuf> = fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|entry| entry.expect("corpus entry").path())
            .filter(|p| p.is_file())
            .collect();
        files.sort();
        assert!(!files.is_empty(), "{}: empty corpus", dir.display());
        for file in files {
            let bytes = fs::read(&file).expect("corpus file");
            let run = std::panic::catch_unwind(|| harness(&bytes));
            assert!(run.is_ok(), "{target}: {} fails", file.display());
        }
    }
}

#[test]
fn every_seed_passes_its_harness() {
    for (target, harness) in TARGETS {
        let seeds = seeds(target);
        assert!(seeds.len() >= 10, "{target}: too few seeds");
        for (name, bytes) in seeds {
            let run = std::panic::catch_unwind(|| harness(&bytes));
            assert!(run.is_ok(), "{target}: seed {name} fails");
        }
    }
}

/// Inputs that make `PubsubState` panic today (the issue-11 report, "a
/// session ended with a batch pending"): not in the corpus, which must pass,
/// until the state is fixed; then this test is un-ignored and they join it.
#[test]
fn known_pubsub_state_bugs_are_fixed() {
    for (name, bytes) in pubsub_state_known_bugs() {
        let run = std::panic::catch_unwind(|| fuzzing::pubsub_state(&bytes));
        assert!(run.is_ok(), "pubsub_state: known bug {name} still fails");
    }
}

/// Writes the seeds into `fuzz/corpus/` (only with `TETHER_WRITE_SEEDS=1`).
#[test]
#[ignore = "writes the seed corpus; run with TETHER_WRITE_SEEDS=1"]
fn write_seed_corpus() {
    if std::env::var_os("TETHER_WRITE_SEEDS").is_none() {
        return;
    }
    for (target, _) in TARGETS {
        let dir = corpus_dir(target);
        fs::create_dir_all(&dir).expect("corpus dir");
        for (name, bytes) in seeds(target) {
            fs::write(dir.join(format!("seed-{name}")), bytes).expect("write seed");
        }
    }
}

fn hex(s: &str) -> Vec<u8> {
    s.split_whitespace()
        .map(|b| u8::from_str_radix(b, 16).expect("hex"))
        .collect()
}

/// The frame test vectors of docs/protocol.md §1.
fn vectors() -> Vec<(&'static str, Vec<u8>)> {
    [
        ("ping", "a5 03 00 00 59 b7 88 72"),
        ("pong", "a5 04 00 00 5c f8 9e f7"),
        ("ping-abc", "a5 03 00 03 d6 bb 66 27 61 62 63"),
        ("data-hello", "a5 05 00 05 a0 25 1d 41 68 65 6c 6c 6f"),
        ("data-more-hel", "a5 85 00 03 ce 7d 21 3b 68 65 6c"),
        ("hello-v1", "a5 01 00 07 df 1d 8c 41 01 00 00 00 27 10 00"),
        ("goaway-bye", "a5 06 00 05 56 ee 03 1f 00 00 62 79 65"),
    ]
    .into_iter()
    .map(|(name, h)| (name, hex(h)))
    .collect()
}

/// The payload of one encoded frame.
fn fuzzing_payload(frame: &[u8]) -> Vec<u8> {
    frame[8..].to_vec()
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

fn seeds(target: &str) -> Vec<(String, Vec<u8>)> {
    let seeds = match target {
        "frame_decoder" => frame_decoder_seeds(),
        "hello" => hello_seeds(),
        "pubsub_op" => pubsub_op_seeds(),
        "conn_machine" => conn_machine_seeds(),
        "pubsub_state" => pubsub_state_seeds(),
        "pubsub_v2_ops" => pubsub_v2_ops_seeds(),
        other => panic!("unknown target {other}"),
    };
    seeds.into_iter().map(|(n, b)| (n.to_string(), b)).collect()
}

/// Keeps `CONN_TOKEN` in use so the flag's meaning is checked here too.
#[test]
fn conn_token_is_what_the_auth_flag_requires() {
    let config = fuzzing::conn_config(conn_flags::AUTH);
    let limits = tether::conn::ConnLimits::from_config(&config);
    assert!(limits.is_authorized(CONN_TOKEN));
    assert!(!limits.is_authorized(b""));
    assert_eq!(config.validate(), Ok(()));
}
