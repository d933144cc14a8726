//! tether-load's storm mode against the real server: 50 established clients
//! heartbeating every 100 ms, then 500 more connecting at once from the
//! default four loopback sources. Every storm client gets its WELCOME, and
//! the report has the three round-trip windows, the connect times and the
//! server's CPU over the storm.

mod common;

use std::process::{Command, Stdio};

use common::Server;

const TETHER_LOAD: &str = env!("CARGO_BIN_EXE_tether-load");

/// Runs a small storm against `server`; returns the exit code, stdout, stderr.
fn run_storm(server: &Server, extra: &[&str]) -> (Option<i32>, String, String) {
    let addr = server.addr.to_string();
    let pid = server.pid.to_string();
    let mut args = vec![
        "storm",
        "--addr",
        &addr,
        "--connections",
        "50",
        "--storm",
        "500",
        "--warmup",
        "1",
        "--duration",
        "3",
        "--server-pid",
        &pid,
    ];
    args.extend_from_slice(extra);
    let out = Command::new(TETHER_LOAD)
        .args(&args)
        .stdin(Stdio::null())
        .output()
        .expect("run tether-load");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The text after `"name":` in `json` (the first occurrence), up to its end.
fn after<'a>(json: &'a str, name: &str) -> &'a str {
    json.split_once(&format!("\"{name}\":"))
        .map(|(_, rest)| rest)
        .unwrap_or_else(|| panic!("no {name} in {json}"))
}

/// The number after `"name":` in `json`.
fn counter(json: &str, name: &str) -> u64 {
    let digits: String = after(json, name)
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits
        .parse()
        .unwrap_or_else(|_| panic!("{name} is not a count in {json}"))
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
    let storm = after(&out, "storm");
    assert_eq!(counter(storm, "clients"), 500, "{storm}");
    assert_eq!(counter(storm, "started"), 500, "{storm}");
    assert_eq!(counter(storm, "accepted"), 500, "{storm}");
    assert_eq!(counter(storm, "refused"), 0, "{storm}");
    assert_eq!(counter(storm, "failed_total"), 0, "{storm}");
    assert_eq!(counter(storm, "unresolved"), 0, "{storm}");
    assert!(storm.contains("\"complete\":true"), "{storm}");
    assert_eq!(counter(after(storm, "connect_us"), "count"), 500, "{storm}");
    // Every window is there, in order; the steady state before the storm
    // has its samples (50 clients, 10 PINGs/s each, 1 s).
    let windows = after(storm, "windows");
    let before = after(windows, "before");
    assert!(
        counter(after(before, "rtt_us"), "count") >= 250,
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
        after(storm, "server_cpu_s").starts_with(|c: char| c.is_ascii_digit()),
        "{storm}"
    );
    // 550 connections at the end: the established ones and the storm's.
    assert_eq!(counter(&out, "open_at_end"), 550, "{out}");
    assert_eq!(counter(&out, "error_total"), 0, "{out}");

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
