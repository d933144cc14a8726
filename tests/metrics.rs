//! The HTTP metrics endpoint (`--metrics ADDR`) end to end: a real HTTP
//! client (`curl`) for `GET /metrics`, `/healthz` and a 404, raw sockets for
//! the malformed and oversized requests, and the wire port serving all along.

mod common;

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use common::{delivery, http_raw, metric_value, parse_http, Client, HttpResponse, Server};
use tether::protocol::GoawayCode;

/// `curl -i URL`, parsed; `None` when curl is not installed.
fn curl(addr: SocketAddr, path: &str) -> Option<HttpResponse> {
    let out = Command::new("curl")
        .args(["-sS", "-i", "--max-time", "10"])
        .arg(format!("http://{addr}{path}"))
        .output();
    match out {
        Ok(out) => {
            assert!(
                out.status.success(),
                "curl {path} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            Some(parse_http(&out.stdout))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => panic!("running curl: {e}"),
    }
}

fn has_curl() -> bool {
    let ok = Command::new("curl")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!(
            "SKIPPED: `curl` is not installed (CI installs it); the raw-socket checks still run"
        );
    }
    ok
}

/// GET /metrics through curl, checked for status and content type.
fn scrape(addr: SocketAddr) -> String {
    let r = curl(addr, "/metrics").expect("curl present");
    assert_eq!(r.status, 200, "{}", r.head);
    let ct = r.header("content-type").unwrap_or_default();
    assert!(
        ct.starts_with("text/plain; version=0.0.4"),
        "Content-Type {ct:?}"
    );
    r.body
}

fn value(body: &str, name: &str) -> u64 {
    metric_value(body, name).unwrap_or_else(|| panic!("no metric line `{name} N` in:\n{body}"))
}

#[test]
fn metrics_healthz_and_not_found_over_curl() {
    let server = Server::start(&[
        "--app",
        "pubsub",
        "--metrics",
        "127.0.0.1:0",
        "--tick-ms",
        "10",
        "--min-heartbeat-ms",
        "50",
    ]);
    let addr = server.metrics.expect("metrics address");
    if !has_curl() {
        return;
    }
    let before = scrape(addr);
    for name in [
        "tether_connections_open",
        "tether_connections_accepted_total",
        "tether_goaway_sent_total{code=\"IDLE_TIMEOUT\"}",
        "tether_sessions",
        "tether_channels",
        "tether_subscriptions",
        "tether_deliveries_total",
        "tether_wheel_entries",
        "tether_loop_turns_total",
    ] {
        value(&before, name);
    }
    assert_eq!(value(&before, "tether_connections_open"), 0);
    assert_eq!(value(&before, "tether_connections_accepted_total"), 0);
    assert_eq!(value(&before, "tether_subscriptions"), 0);

    let mut a = server.open(0);
    let mut b = server.open(0);
    let mut publisher = server.open(0);
    a.subscribe(b"m");
    b.subscribe(b"m");
    a.sync();
    b.sync();
    let subscribed = scrape(addr);
    assert_eq!(value(&subscribed, "tether_connections_accepted_total"), 3);
    assert_eq!(value(&subscribed, "tether_connections_open"), 3);
    assert_eq!(value(&subscribed, "tether_subscriptions"), 2);
    assert_eq!(value(&subscribed, "tether_channels"), 1);
    assert_eq!(value(&subscribed, "tether_sessions"), 2);
    assert!(value(&subscribed, "tether_wheel_entries") >= 3);
    assert!(
        value(&subscribed, "tether_loop_turns_total") > value(&before, "tether_loop_turns_total")
    );

    publisher.publish(b"m", b"hi");
    assert_eq!(a.recv_message(), delivery(b"m", b"hi"));
    assert_eq!(b.recv_message(), delivery(b"m", b"hi"));
    let published = scrape(addr);
    assert_eq!(
        value(&published, "tether_deliveries_total")
            - value(&subscribed, "tether_deliveries_total"),
        2
    );

    // An idle eviction shows up under its code.
    let mut idle = server.connect();
    idle.handshake(100);
    idle.expect_goaway(GoawayCode::IdleTimeout);
    // Counted when the connection is closed: after our EOF ends its linger.
    drop(idle);
    let idle_code = "tether_goaway_sent_total{code=\"IDLE_TIMEOUT\"}";
    let mut evicted = String::new();
    let counted = common::wait_until(Duration::from_secs(10), || {
        evicted = scrape(addr);
        value(&evicted, idle_code) == 1
    });
    assert!(counted, "{idle_code} did not reach 1:\n{evicted}");
    assert_eq!(value(&evicted, "tether_connections_accepted_total"), 4);

    let health = curl(addr, "/healthz").expect("curl");
    assert_eq!(health.status, 200, "{}", health.head);
    assert_eq!(health.body.trim(), "ok");
    let missing = curl(addr, "/nope").expect("curl");
    assert_eq!(missing.status, 404, "{}", missing.head);

    // The wire port kept serving.
    a.publish(b"m", b"still");
    assert_eq!(a.recv_message(), delivery(b"m", b"still"));
    assert_eq!(b.recv_message(), delivery(b"m", b"still"));
}

/// Writes `request`, then reads the whole answer: the server must answer and
/// close (read → EOF), never hang (the read timeout would fail the test).
fn raw_exchange(addr: SocketAddr, request: &[u8]) -> String {
    let out = http_raw(addr, request)
        .expect("connect, send, and the server answers and closes (EOF) within 10 s");
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn malformed_and_oversized_requests_get_400_and_a_close() {
    let server = Server::start(&["--app", "echo", "--metrics", "127.0.0.1:0"]);
    let addr = server.metrics.expect("metrics address");
    let mut wire = server.open(0);
    let echo_round_trip = |c: &mut Client, text: &[u8]| {
        c.send_message(text, common::SPLIT);
        assert_eq!(c.recv_message(), text);
    };
    echo_round_trip(&mut wire, b"before");

    let garbage = raw_exchange(addr, b"garbage\r\n\r\n");
    assert!(
        garbage.starts_with("HTTP/1.1 400"),
        "garbage got: {garbage:?}"
    );
    echo_round_trip(&mut wire, b"after garbage");

    // Over 8 KiB of headers and never the blank line that ends them.
    let mut big = b"GET /metrics HTTP/1.1\r\n".to_vec();
    while big.len() <= 9 * 1024 {
        big.extend_from_slice(b"X-Padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
    }
    let oversized = raw_exchange(addr, &big);
    assert!(
        oversized.starts_with("HTTP/1.1 400"),
        "oversized request got: {:?}",
        &oversized[..oversized.len().min(200)]
    );
    echo_round_trip(&mut wire, b"after oversized");

    // And the endpoint still answers properly.
    let ok = common::http_get(addr, "/healthz");
    assert_eq!((ok.status, ok.body.trim()), (200, "ok"));
    let m = common::http_get(addr, "/metrics");
    assert_eq!(m.status, 200);
    assert!(metric_value(&m.body, "tether_connections_open").is_some());
    echo_round_trip(&mut wire, b"at the end");
}
