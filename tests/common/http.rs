//! Raw HTTP over a `TcpStream` for the metrics endpoint (`--metrics ADDR`):
//! a GET, any request bytes, the response parsed, and metric lines read.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use super::client::READ_TIMEOUT;
use super::server::Server;

impl Server {
    /// `GET path` on the metrics endpoint.
    pub fn http_get(&self, path: &str) -> HttpResponse {
        http_get(self.metrics.expect("started with --metrics"), path)
    }

    /// The current value of one metric line (`name` may carry labels).
    pub fn metric(&self, name: &str) -> u64 {
        let r = self.http_get("/metrics");
        assert_eq!(r.status, 200, "GET /metrics: {}", r.head);
        metric_value(&r.body, name).unwrap_or_else(|| panic!("no metric {name} in:\n{}", r.body))
    }

    /// Waits until the metric reads `want`, for what the server does on its
    /// own time (a reset seen, a TTL run out); panics with the last value
    /// after 10 s.
    pub fn wait_metric(&self, name: &str, want: u64) {
        let mut last = 0;
        let ok = super::wait_until(Duration::from_secs(10), || {
            last = self.metric(name);
            last == want
        });
        assert!(ok, "{name} stayed at {last}, expected {want}");
    }
}

/// A parsed HTTP response read to EOF.
#[derive(Debug)]
pub struct HttpResponse {
    /// The status code.
    pub status: u16,
    /// The status line and headers as sent.
    pub head: String,
    /// The body.
    pub body: String,
}

impl HttpResponse {
    /// A header's value (name case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.split("\r\n").skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

/// Sends `request` raw on a new connection, reads until the server's EOF.
pub fn http_raw(addr: SocketAddr, request: &[u8]) -> io::Result<Vec<u8>> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(READ_TIMEOUT))?;
    s.set_write_timeout(Some(READ_TIMEOUT))?;
    s.write_all(request)?;
    let mut out = Vec::new();
    s.read_to_end(&mut out)?;
    Ok(out)
}

/// Splits a raw response into status, head and body.
pub fn parse_http(raw: &[u8]) -> HttpResponse {
    let text = String::from_utf8_lossy(raw).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no end of headers in {text:?}"));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line in {head:?}"));
    HttpResponse {
        status,
        head: head.to_string(),
        body: body.to_string(),
    }
}

/// `GET path HTTP/1.1` over a raw socket.
pub fn http_get(addr: SocketAddr, path: &str) -> HttpResponse {
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: tether-test\r\n\r\n");
    let raw = http_raw(addr, req.as_bytes()).expect("HTTP GET");
    parse_http(&raw)
}

/// The value on the line `name value` of a Prometheus text body.
pub fn metric_value(body: &str, name: &str) -> Option<u64> {
    body.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}
