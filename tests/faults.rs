//! The network fault-injection cases of `scripts/faults.sh`, one test each:
//! a blackholing router, 30 % packet loss on 1,000 connections, a SIGSTOPped
//! client, and a real NAT whose mappings expire. They need root (network
//! namespaces, iptables) and the tools `scripts/test.sh` installs; without
//! them they fail, naming what is missing, rather than skip. They take from
//! about 6 s to about 70 s each and run one at a time (fixed namespace names).
//!
//! Each test runs the script on the binaries this `cargo test` built (the
//! profile's directory is passed as `FAULTS_BIN_DIR`, so `--release` tests the
//! release binaries) and asserts that it exits 0 (its table has no FAIL); the
//! table is printed with `--nocapture`.

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::Mutex;

use common::{root, target_dir, TETHER};

/// The script uses fixed namespace names: one case at a time.
static NAMESPACES: Mutex<()> = Mutex::new(());

/// The script kills itself (and fails) after this many seconds; the longest
/// case, loss30, takes about 70 s.
const CASE_TIME_LIMIT_S: u32 = 300;

fn run_case(case: &str) {
    let _one_at_a_time = NAMESPACES.lock().unwrap_or_else(|e| e.into_inner());
    let root = root();
    let profile_dir = Path::new(TETHER).parent().expect("profile dir");
    let fault_client = profile_dir.join("examples").join("fault_client");
    // `cargo test` builds the examples; `cargo test --test faults` alone does not,
    // and cargo cannot be run from here (the build directory is locked).
    assert!(
        fault_client.exists(),
        "{} is missing: run `cargo build --example fault_client` (or a plain `cargo test`) first",
        fault_client.display()
    );
    let mut command = Command::new(root.join("scripts/faults.sh"));
    command
        .arg(case)
        .current_dir(root)
        .env("CARGO_TARGET_DIR", target_dir())
        .env("FAULTS_BIN_DIR", profile_dir)
        .env("FAULTS_NO_BUILD", "1")
        // A hung case fails in minutes, not after the script's default 15.
        .env("FAULTS_TIME_LIMIT", CASE_TIME_LIMIT_S.to_string());
    let output = command.output().expect("run scripts/faults.sh");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    assert!(
        output.status.success(),
        "scripts/faults.sh {case} failed ({}):\n{stdout}\n--- stderr ---\n{stderr}",
        output.status
    );
}

#[test]
fn blackhole_is_evicted_and_detected() {
    run_case("blackhole");
}

#[test]
fn loss30_causes_no_false_eviction() {
    run_case("loss30");
}

#[test]
fn sigstopped_client_is_evicted_and_its_slot_reclaimed() {
    run_case("sigstop");
}

#[test]
fn nat_adaptive_heartbeat_resume_and_message_accounting() {
    run_case("nat");
}
