//! The network fault-injection cases of `scripts/faults.sh`, one test each:
//! a blackholing router, 30 % packet loss on 1,000 connections, a SIGSTOPped
//! client, and a real NAT whose mappings expire. They need root (network
//! namespaces, iptables) and take from 15 s to about 90 s each, so they are
//! ignored by default:
//!
//! ```text
//! cargo build --example fault_client
//! sudo -E cargo test --test faults -- --ignored --test-threads 1 --nocapture
//! ```
//!
//! (A plain `cargo test -- --ignored` builds the example itself.)
//!
//! Each test runs the script on the binaries this `cargo test` built and
//! asserts that it exits 0 (its table has no FAIL); the table is printed
//! with `--nocapture`.

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::Mutex;

use common::{root, target_dir, TETHER};

/// The script uses fixed namespace names: one case at a time.
static NAMESPACES: Mutex<()> = Mutex::new(());

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
        .env("FAULTS_NO_BUILD", "1");
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
#[ignore = "needs root: network namespaces and iptables (scripts/faults.sh)"]
fn blackhole_is_evicted_and_detected() {
    run_case("blackhole");
}

#[test]
#[ignore = "needs root: network namespaces and iptables (scripts/faults.sh)"]
fn loss30_causes_no_false_eviction() {
    run_case("loss30");
}

#[test]
#[ignore = "needs root: network namespaces and iptables (scripts/faults.sh)"]
fn sigstopped_client_is_evicted_and_its_slot_reclaimed() {
    run_case("sigstop");
}

#[test]
#[ignore = "needs root: network namespaces and iptables (scripts/faults.sh)"]
fn nat_adaptive_heartbeat_resume_and_message_accounting() {
    run_case("nat");
}
