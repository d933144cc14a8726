//! The report's table and JSON, on hand-made reports.

use super::*;

fn sample() -> Report {
    Report {
        mode: "pingpong",
        addr: "127.0.0.1:7600".to_string(),
        ok: true,
        target: 10,
        started: 10,
        handshakes: 10,
        peak_open: 10,
        open_at_start: 10,
        open_at_end: 10,
        ramp_secs: 0.5,
        duration_secs: 2.0,
        messages: 1000,
        latency: Some(Latency {
            count: 1000,
            p50_ns: 45_500,
            p90_ns: 60_000,
            p99_ns: 99_000,
            p999_ns: 120_000,
            max_ns: 1_000_000,
            mean_ns: 50_250.0,
        }),
        errors: vec![("reset", 0), ("timeout", 2)],
        goaways: vec![("IDLE_TIMEOUT", 2)],
        server: Some(Usage {
            pid: 7,
            cpu_ns: 500_000_000,
            rss_baseline_bytes: 1_000_000,
            rss_end_bytes: 1_100_000,
        }),
        ..Report::default()
    }
}

#[test]
fn json_has_the_fields_scripts_read() {
    let j = sample().to_json();
    assert!(j.starts_with('{') && j.ends_with('}'));
    for needle in [
        "\"mode\":\"pingpong\"",
        "\"ok\":true",
        "\"failure\":null",
        "\"msgs_per_sec\":500,",
        "\"p50\":45.5,",
        "\"p99\":99,",
        "\"p99_9\":120,",
        "\"max\":1000,",
        "\"errors\":{\"reset\":0,\"timeout\":2}",
        "\"error_total\":2",
        "\"goaways\":{\"IDLE_TIMEOUT\":2}",
        "\"cpu_us_per_msg\":500,",
        "\"rss_bytes_per_conn\":10000}",
        "\"load\":null",
        "\"mode_counters\":{}",
    ] {
        assert!(j.contains(needle), "{needle} missing from {j}");
    }
}

#[test]
fn json_nulls_for_missing_parts() {
    let r = Report {
        mode: "idle",
        failure: Some("no connection came up".to_string()),
        ..Report::default()
    };
    let j = r.to_json();
    assert!(j.contains("\"latency_us\":null"));
    assert!(j.contains("\"server\":null"));
    assert!(j.contains("\"tls\":null,\"first_tls_error\":null,"));
    assert!(j.contains("\"failure\":\"no connection came up\""));
    assert!(j.contains("\"msgs_per_sec\":0,"));
}

#[test]
fn json_strings_are_escaped() {
    assert_eq!(json_str("a\"b\\c\nd\u{1}"), "\"a\\\"b\\\\c\\nd\\u0001\"");
    assert_eq!(json_f64(f64::NAN), "null");
    assert_eq!(json_f64(1.5), "1.5");
    assert_eq!(json_f64(2.0), "2");
    assert_eq!(json_f64(0.0), "0");
    assert_eq!(json_f64(0.0004), "0");
}

#[test]
fn tls_handshakes_are_reported() {
    let mut r = sample();
    r.tls = Some(TlsReport {
        handshakes: 10,
        resumed: 4,
        per_sec: Some(2500.0),
        time: Some(Latency {
            count: 10,
            p50_ns: 800_000,
            p99_ns: 1_500_000,
            max_ns: 2_000_000,
            ..Latency::default()
        }),
    });
    let t = r.to_table();
    assert!(
        t.contains("tls          10 handshakes (4 resumed), 2500.0 handshakes/s, connect->TLS us p50 800.0  p99 1500.0  max 2000.0"),
        "{t}"
    );
    let j = r.to_json();
    assert!(
        j.contains("\"tls\":{\"handshakes\":10,\"resumed\":4,\"handshakes_per_sec\":2500,\"handshake_us\":{\"count\":10,\"p50\":800,"),
        "{j}"
    );
    r.tls = None;
    r.first_tls_error = Some("TLS certificate problem: x".to_string());
    assert!(r
        .to_table()
        .contains("  first TLS error: TLS certificate problem: x"));
    assert!(r
        .to_json()
        .contains("\"first_tls_error\":\"TLS certificate problem: x\""));
}

#[test]
fn table_shows_percentiles_errors_and_result() {
    let t = sample().to_table();
    assert!(t.contains("p50 45.5  p90 60.0  p99 99.0  p99.9 120.0  max 1000.0"));
    assert!(t.contains("500.0 msgs/s"));
    assert!(t.contains("errors       timeout 2"));
    assert!(t.contains("goaways      IDLE_TIMEOUT 2"));
    assert!(t.contains("500.000 us/msg"));
    assert!(t.contains("(10000 B/conn over baseline)"));
    assert!(t.contains("result       ok"));
    let mut failed = sample();
    failed.failure = Some("boom".to_string());
    failed.errors = vec![("reset", 0)];
    let t = failed.to_table();
    assert!(t.contains("errors       none"));
    assert!(t.contains("result       FAILED: boom"));
}

#[test]
fn storm_windows_are_bounded_by_the_storm_and_the_measurement() {
    use crate::engine::Window;
    use crate::storm::Storm;
    use tether::protocol::GoawayCode;
    let mut s = Storm::new(2).expect("histograms");
    s.record_rtt(100_000, 1_000_000_000);
    s.on_started(2_000_000_000);
    s.record_rtt(30_000_000, 2_100_000_000);
    s.on_started(2_000_000_000);
    s.on_welcome(5_000_000);
    s.on_goaway(GoawayCode::ServerFull);
    assert!(s.settle(2_500_000_000));
    let w = Window {
        ramp_ns: 500_000_000,
        start_ns: 2_000_000_000,
        end_ns: 5_000_000_000,
        ..Window::default()
    };
    let r = StormReport::of(&s, &w);
    let secs: Vec<f64> = r.windows.iter().map(|w| w.secs).collect();
    assert_eq!(secs, [1.5, 0.5, 2.5]);
    assert!(r.windows[2].rtt.is_none(), "no sample after the storm");
    assert_eq!((r.accepted, r.refused, r.unresolved), (1, 1, 0));
    assert!(r.complete);
    let j = r.to_json();
    for needle in [
        "\"clients\":2,",
        "\"refused\":1,",
        "\"complete\":true",
        "\"before\":{\"secs\":1.5,\"rtt_us\":{\"count\":1,",
        "\"after\":{\"secs\":2.5,\"rtt_us\":null}",
        "\"server_cpu_s\":null",
    ] {
        assert!(j.contains(needle), "{needle} missing from {j}");
    }
    let t = r.to_table();
    assert!(t.contains("1 accepted, 1 refused (SERVER_FULL)"), "{t}");
    assert!(!t.contains("not over"), "{t}");
    // A storm still going when the measurement ends: during runs to its end.
    let mut open = Storm::new(3).expect("histograms");
    open.on_started(2_000_000_000);
    let r = StormReport::of(&open, &w);
    assert!(!r.complete);
    assert_eq!(r.unresolved, 1);
    assert_eq!(r.windows[1].secs, 3.0);
    assert!(r.to_table().contains("(storm not over within --duration)"));
}
