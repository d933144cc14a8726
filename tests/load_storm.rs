//! tether-load's storm mode against the real server: 50 established clients
//! heartbeating every 100 ms, then 500 more connecting at once from the
//! default four loopback sources. Every storm client gets its WELCOME, and
//! the report has the three round-trip windows, the connect times and the
//! server's CPU over the storm. With `--max-accept-rate`, a storm of 2,000
//! is spread at the rate and no one is refused.

mod common;

use common::{json_after, json_count, run_tether_load, Server};

/// Runs a small storm against `server`; returns the exit code, stdout, stderr.
fn run_storm(server: &Server, extra: &[&str]) -> (Option<i32>, String, String) {
    run_storm_of(server, "500", "3", extra)
}

/// A storm of `size` clients over a run of `duration` seconds.
fn run_storm_of(
    server: &Server,
    size: &str,
    duration: &str,
    extra: &[&str],
) -> (Option<i32>, String, String) {
    let addr = server.addr.to_string();
    let pid = server.pid.to_string();
    let mut args = vec![
        "storm",
        "--addr",
        &addr,
        "--connections",
        "50",
        "--storm",
        size,
        "--warmup",
        "1",
        "--duration",
        duration,
        "--server-pid",
        &pid,
    ];
    args.extend_from_slice(extra);
    run_tether_load(&args)
}

#[test]
fn every_storm_client_is_welcomed_and_the_windows_are_reported() {
    let mut server = Server::start(&[]);
    let (code, out, err) = run_storm(&server, &["--json"]);
    assert_eq!(code, Some(0), "{out}\n{err}");
    assert!(
        out.starts_with('{') && out.trim_end().ends_with('}'),
        "{out}"
    );
    assert!(out.contains("\"mode\":\"storm\""), "{out}");
    assert!(out.contains("\"ok\":true"), "{out}");
    let storm = json_after(&out, "storm");
    assert_eq!(json_count(storm, "clients"), 500, "{storm}");
    assert_eq!(json_count(storm, "started"), 500, "{storm}");
    assert_eq!(json_count(storm, "accepted"), 500, "{storm}");
    assert_eq!(json_count(storm, "refused"), 0, "{storm}");
    assert_eq!(json_count(storm, "failed_total"), 0, "{storm}");
    assert_eq!(json_count(storm, "unresolved"), 0, "{storm}");
    assert!(storm.contains("\"complete\":true"), "{storm}");
    assert_eq!(
        json_count(json_after(storm, "connect_us"), "count"),
        500,
        "{storm}"
    );
    // Every window is there, in order; the steady state before the storm
    // has its samples (50 clients, 10 PINGs/s each, 1 s).
    let windows = json_after(storm, "windows");
    let before = json_after(windows, "before");
    assert!(
        json_count(json_after(before, "rtt_us"), "count") >= 250,
        "{windows}"
    );
    for name in ["\"before\":", "\"during\":", "\"after\":", "\"p99_9\":"] {
        assert!(windows.contains(name), "{name} missing: {windows}");
    }
    let (b, d, a) = (
        windows.find("\"before\"").unwrap(),
        windows.find("\"during\"").unwrap(),
        windows.find("\"after\"").unwrap(),
    );
    assert!(b < d && d < a, "{windows}");
    assert!(
        json_after(storm, "server_cpu_s").starts_with(|c: char| c.is_ascii_digit()),
        "{storm}"
    );
    // 550 connections at the end: the established ones and the storm's.
    assert_eq!(json_count(&out, "open_at_end"), 550, "{out}");
    assert_eq!(json_count(&out, "error_total"), 0, "{out}");

    // The table carries the same sections.
    let (code, table, err) = run_storm(&server, &[]);
    assert_eq!(code, Some(0), "{table}\n{err}");
    for line in [
        "rtt before",
        "rtt during",
        "rtt after",
        "500 accepted",
        "storm connect->WELCOME",
    ] {
        assert!(table.contains(line), "{line} missing:\n{table}");
    }
    server.signal(libc::SIGTERM);
    server.expect_clean_exit("SIGTERM after the storm runs");
}

/// `--max-accept-rate 1000` (burst 100) against a storm of 2,000: every
/// storm client gets its WELCOME, none is refused or fails, and the last
/// ones wait for the rate: the slowest connect takes at least about
/// 1,900 / 1,000 s (bounded loosely below; nothing bounds it above but the
/// run's end, so a slow machine cannot fail it).
#[test]
fn the_accept_rate_spreads_the_storm_and_refuses_no_one() {
    let mut server = Server::start(&["--max-accept-rate", "1000", "--metrics", "127.0.0.1:0"]);
    let (code, out, err) = run_storm_of(&server, "2000", "8", &["--json"]);
    assert_eq!(code, Some(0), "{out}\n{err}");
    let storm = json_after(&out, "storm");
    assert_eq!(json_count(storm, "accepted"), 2000, "{storm}");
    assert_eq!(json_count(storm, "refused"), 0, "{storm}");
    assert_eq!(json_count(storm, "failed_total"), 0, "{storm}");
    assert_eq!(json_count(storm, "unresolved"), 0, "{storm}");
    let connect = json_after(storm, "connect_us");
    let slowest_us = json_count(connect, "max");
    assert!(
        slowest_us >= 1_200_000,
        "2,000 at 1,000/s: the last waits about 1.9 s, got {slowest_us} µs: {connect}"
    );
    assert!(server.metric("tether_accept_waits_total{reason=\"rate\"}") >= 1);
    assert_eq!(
        server.metric("tether_connections_refused_total{reason=\"full\"}"),
        0
    );
    server.signal(libc::SIGTERM);
    server.expect_clean_exit("SIGTERM after the paced storm");
}
