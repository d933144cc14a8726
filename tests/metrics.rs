//! The HTTP metrics endpoint (`--metrics ADDR`) end to end: a real HTTP
//! client (`curl`) for `GET /metrics`, `/healthz` and a 404, raw sockets for
//! the malformed and oversized requests, and the wire port serving all along.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
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
    // Every turn is timed (the scrape's own turn may not be counted yet),
    // and the process's CPU time is there.
    let timed = value(&subscribed, "tether_loop_turn_seconds_count");
    assert!(
        timed >= value(&before, "tether_loop_turns_total")
            && timed <= value(&subscribed, "tether_loop_turns_total"),
        "{timed} turns timed"
    );
    value(&subscribed, "tether_loop_slow_turns_total");
    value(&subscribed, "tether_process_cpu_milliseconds_total");

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

/// Connects to the metrics endpoint with no delay on small writes, so each
/// write below reaches the server as its own segment.
fn connect_raw(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connect to metrics");
    s.set_nodelay(true).expect("nodelay");
    s.set_read_timeout(Some(Duration::from_secs(15)))
        .expect("timeout");
    s
}

#[test]
fn a_request_split_over_several_writes_is_answered() {
    let server = Server::start(&["--app", "echo", "--metrics", "127.0.0.1:0"]);
    let addr = server.metrics.expect("metrics address");
    let mut s = connect_raw(addr);
    for part in [
        &b"GE"[..],
        b"T /metr",
        b"ics?x=1 HTTP/1.1\r\nHo",
        b"st: x\r\n",
        b"\r\n",
    ] {
        s.write_all(part).expect("write part");
        // Let the server read each part on its own before the next.
        std::thread::sleep(Duration::from_millis(30));
    }
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("answer and EOF");
    let r = parse_http(&raw);
    assert_eq!(r.status, 200, "{}", r.head);
    assert!(metric_value(&r.body, "tether_connections_open").is_some());
}

#[test]
fn a_complete_head_over_the_limit_gets_400() {
    let server = Server::start(&["--app", "echo", "--metrics", "127.0.0.1:0"]);
    let addr = server.metrics.expect("metrics address");
    // Unlike the oversized test above, this head ends (but past 8 KiB).
    let mut big = b"GET /metrics HTTP/1.1\r\n".to_vec();
    while big.len() <= 9 * 1024 {
        big.extend_from_slice(b"X-Padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
    }
    big.extend_from_slice(b"\r\n");
    let r = parse_http(&http_raw(addr, &big).expect("exchange"));
    assert_eq!(r.status, 400, "{}", r.head);
}

#[test]
fn one_answer_per_connection_whatever_follows_the_head() {
    let server = Server::start(&["--app", "echo", "--metrics", "127.0.0.1:0"]);
    let addr = server.metrics.expect("metrics address");

    // A second, pipelined request and garbage after the first head: one answer, then close.
    let raw = http_raw(
        addr,
        b"GET /healthz HTTP/1.1\r\n\r\nGET /metrics HTTP/1.1\r\n\r\n\xff\xfe\x00garbage",
    )
    .expect("exchange");
    let r = parse_http(&raw);
    assert_eq!((r.status, r.body.as_str()), (200, "ok\n"), "{}", r.head);
    assert!(!r.body.contains("HTTP/1.1"), "a second answer: {raw:?}");

    // HEAD: the head of the answer with its length, no body.
    let head = parse_http(&http_raw(addr, b"HEAD /metrics HTTP/1.1\r\n\r\n").expect("exchange"));
    assert_eq!(head.status, 200, "{}", head.head);
    let length: usize = head
        .header("content-length")
        .and_then(|v| v.parse().ok())
        .expect("Content-Length");
    assert!(length > 0);
    assert_eq!(head.body, "");

    for (request, status) in [
        (
            &b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n"[..],
            405,
        ),
        (b"get /metrics HTTP/1.1\r\n\r\n", 400),
        (b"GET /metrics HTTP/2.0\r\n\r\n", 400),
        (b"GET /metrics HTTP/1.1\r\nNo colon here\r\n\r\n", 400),
        (b"GET /metricsx HTTP/1.1\r\n\r\n", 404),
    ] {
        let r = parse_http(&http_raw(addr, request).expect("exchange"));
        assert_eq!(
            r.status,
            status,
            "{} got {}",
            String::from_utf8_lossy(request),
            r.head
        );
        assert!(
            r.head.contains("Connection: close"),
            "{}",
            String::from_utf8_lossy(request)
        );
    }
}

/// A scraper that connects and says nothing is closed at its deadline, which
/// sits on the reactor's timing wheel: the loop does not wake up in between
/// (no polling for deadlines), and other scrapers are served meanwhile.
#[test]
fn a_silent_scraper_is_closed_at_its_deadline_without_waking_the_loop() {
    let server = Server::start(&["--app", "echo", "--metrics", "127.0.0.1:0"]);
    let addr = server.metrics.expect("metrics address");
    let turns = || server.metric("tether_loop_turns_total");
    let before = turns();
    let mut silent = connect_raw(addr);
    let connected = std::time::Instant::now();
    let mut rest = Vec::new();
    silent
        .read_to_end(&mut rest)
        .expect("the silent scraper is closed (EOF) within 15 s");
    let waited = connected.elapsed();
    assert!(rest.is_empty(), "it was sent {rest:?}");
    // Never early: the deadline rounds up to whole ticks (of 100 ms) from the
    // tick of the accept, which is at most one tick before the accept.
    let deadline = tether::reactor::metrics::HTTP_DEADLINE;
    assert!(
        waited + Duration::from_millis(100) >= deadline,
        "closed after {waited:?}, before its deadline {deadline:?}"
    );
    // Turns in between: this scrape and the one before (a few each), the
    // accept and the expiry. Waking every 500 ms for the deadline would add 10.
    let spent = turns() - before;
    assert!(spent <= 8, "{spent} loop turns while a scraper sat silent");

    // And the endpoint still serves others.
    let ok = common::http_get(addr, "/healthz");
    assert_eq!((ok.status, ok.body.trim()), (200, "ok"));
}
