//! The HTTP metrics endpoint, served from the reactor's own loop:
//! `GET /metrics` (Prometheus text exposition 0.0.4) and `GET /healthz`.
//!
//! It is deliberately tiny: one request per connection (`Connection: close`),
//! a bounded request size, a bounded number of scrapers and a deadline, so a
//! misbehaving scraper cannot cost the connections it reports on anything.

use mio::net::{TcpListener, TcpStream};
use mio::{Interest, Registry, Token};
use slab::Slab;
use std::io::{ErrorKind, Read};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::io::{accept_once, bind_listener, send_once, shutdown_write, AcceptOutcome};

/// Largest request accepted (request line plus headers): scrapers send a few hundred bytes.
pub const MAX_REQUEST_BYTES: usize = 8 * 1024;
/// Concurrent scrapers; more are dropped at accept.
pub const MAX_HTTP_CONNS: usize = 64;
/// Time a scraper has to send its request and read the answer.
pub const HTTP_DEADLINE: Duration = Duration::from_secs(5);
/// Tokens of HTTP connections: this bit plus the slab key (connection tokens stay below it).
pub const HTTP_TOKEN_BIT: usize = 1 << 62;

/// What a request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// `GET /metrics`
    Metrics,
    /// `GET /healthz`
    Healthz,
}

/// Why a request gets no 200.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpError {
    /// Malformed or oversized: 400.
    BadRequest,
    /// A path we do not serve: 404.
    NotFound,
    /// A method other than GET or HEAD: 405.
    MethodNotAllowed,
}

/// Parses a request head. `Ok(None)`: incomplete, read more.
pub fn parse_request(buf: &[u8]) -> Result<Option<(Route, bool)>, HttpError> {
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        if buf.len() > MAX_REQUEST_BYTES {
            return Err(HttpError::BadRequest);
        }
        return Ok(None);
    };
    if end > MAX_REQUEST_BYTES {
        return Err(HttpError::BadRequest);
    }
    let head = std::str::from_utf8(&buf[..end]).map_err(|_| HttpError::BadRequest)?;
    let line = head.split("\r\n").next().ok_or(HttpError::BadRequest)?;
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(HttpError::BadRequest);
    };
    if !matches!(version, "HTTP/1.0" | "HTTP/1.1") || !target.starts_with('/') {
        return Err(HttpError::BadRequest);
    }
    let head_only = match method {
        "GET" => false,
        "HEAD" => true,
        m if !m.is_empty() && m.bytes().all(|b| b.is_ascii_uppercase()) => {
            return Err(HttpError::MethodNotAllowed)
        }
        _ => return Err(HttpError::BadRequest),
    };
    let path = target.split('?').next().unwrap_or(target);
    match path {
        "/metrics" => Ok(Some((Route::Metrics, head_only))),
        "/healthz" => Ok(Some((Route::Healthz, head_only))),
        _ => Err(HttpError::NotFound),
    }
}

fn response(status: &str, content_type: &str, body: &str, head_only: bool) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    if !head_only {
        out.extend_from_slice(body.as_bytes());
    }
    out
}

/// The answer to a request head (or to a broken one).
pub fn answer(
    parsed: Result<(Route, bool), HttpError>,
    render: &mut dyn FnMut() -> String,
) -> Vec<u8> {
    match parsed {
        Ok((Route::Metrics, head)) => response(
            "200 OK",
            "text/plain; version=0.0.4; charset=utf-8",
            &render(),
            head,
        ),
        Ok((Route::Healthz, head)) => response("200 OK", "text/plain; charset=utf-8", "ok\n", head),
        Err(HttpError::BadRequest) => {
            response("400 Bad Request", "text/plain", "bad request\n", false)
        }
        Err(HttpError::NotFound) => response("404 Not Found", "text/plain", "not found\n", false),
        Err(HttpError::MethodNotAllowed) => response(
            "405 Method Not Allowed",
            "text/plain",
            "method not allowed\n",
            false,
        ),
    }
}

struct HttpConn {
    stream: TcpStream,
    request: Vec<u8>,
    response: Vec<u8>,
    sent: usize,
    answered: bool,
    write_shut: bool,
    deadline: Instant,
}

/// The metrics listener and its few connections.
pub struct MetricsServer {
    listener: TcpListener,
    conns: Slab<HttpConn>,
}

impl MetricsServer {
    /// Binds `addr` and registers the listener under `token`.
    pub fn bind(
        addr: SocketAddr,
        registry: &Registry,
        token: Token,
    ) -> std::io::Result<MetricsServer> {
        let mut listener = bind_listener(addr)?;
        registry.register(&mut listener, token, Interest::READABLE)?;
        Ok(MetricsServer {
            listener,
            conns: Slab::new(),
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Whether scrapers are connected (the loop then wakes to enforce deadlines).
    pub fn has_connections(&self) -> bool {
        !self.conns.is_empty()
    }

    /// Accepts waiting scrapers (past [`MAX_HTTP_CONNS`] they are dropped).
    pub fn accept(&mut self, registry: &Registry, now: Instant) {
        loop {
            match accept_once(&self.listener) {
                AcceptOutcome::Accepted(mut stream, _) => {
                    if self.conns.len() >= MAX_HTTP_CONNS {
                        continue;
                    }
                    let entry = self.conns.vacant_entry();
                    let token = Token(HTTP_TOKEN_BIT | entry.key());
                    if registry
                        .register(&mut stream, token, Interest::READABLE | Interest::WRITABLE)
                        .is_ok()
                    {
                        entry.insert(HttpConn {
                            stream,
                            request: Vec::new(),
                            response: Vec::new(),
                            sent: 0,
                            answered: false,
                            write_shut: false,
                            deadline: now + HTTP_DEADLINE,
                        });
                    }
                }
                AcceptOutcome::Transient(_) => continue,
                AcceptOutcome::WouldBlock | AcceptOutcome::OutOfResources(_) => return,
            }
        }
    }

    /// Reads, answers and closes one scraper connection as far as it can go now.
    pub fn handle(
        &mut self,
        token: Token,
        registry: &Registry,
        render: &mut dyn FnMut() -> String,
    ) {
        let key = token.0 & !HTTP_TOKEN_BIT;
        let Some(c) = self.conns.get_mut(key) else {
            return;
        };
        let finished = drive(c, render);
        if finished {
            let mut c = self.conns.remove(key);
            let _ = registry.deregister(&mut c.stream);
        }
    }

    /// Closes scrapers past their deadline.
    pub fn expire(&mut self, registry: &Registry, now: Instant) {
        let late: Vec<usize> = self
            .conns
            .iter()
            .filter(|(_, c)| c.deadline <= now)
            .map(|(k, _)| k)
            .collect();
        for key in late {
            let mut c = self.conns.remove(key);
            let _ = registry.deregister(&mut c.stream);
        }
    }
}

/// Moves one connection along; true when it can be closed.
fn drive(c: &mut HttpConn, render: &mut dyn FnMut() -> String) -> bool {
    let mut buf = [0u8; 2048];
    loop {
        match c.stream.read(&mut buf) {
            Ok(0) => {
                if !c.answered {
                    return true; // gave up before asking
                }
                if c.write_shut {
                    return true; // answered, and the scraper closed: done
                }
                break;
            }
            Ok(n) => {
                if !c.answered {
                    c.request.extend_from_slice(&buf[..n]);
                    let parsed = parse_request(&c.request);
                    if let Some(parsed) = parsed.transpose() {
                        c.response = answer(parsed, render);
                        c.answered = true;
                        c.request = Vec::new();
                    }
                }
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(_) => return true,
        }
    }
    while c.answered && c.sent < c.response.len() {
        match send_once(&c.stream, &c.response[c.sent..]) {
            Ok(0) => return true,
            Ok(n) => c.sent += n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => return false,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(_) => return true,
        }
    }
    if c.answered && !c.write_shut {
        // Half-close: the scraper reads to EOF, then closes; we drain until then.
        c.write_shut = true;
        if shutdown_write(&c.stream).is_err() {
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_parse_or_get_the_right_error() {
        type Parsed = Result<Option<(Route, bool)>, HttpError>;
        let cases: &[(&[u8], Parsed)] = &[
            (
                b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n",
                Ok(Some((Route::Metrics, false))),
            ),
            (
                b"GET /metrics?x=1 HTTP/1.0\r\n\r\n",
                Ok(Some((Route::Metrics, false))),
            ),
            (
                b"HEAD /healthz HTTP/1.1\r\n\r\n",
                Ok(Some((Route::Healthz, true))),
            ),
            (b"GET /metrics HTTP/1.1\r\n", Ok(None)),
            (b"GET /nope HTTP/1.1\r\n\r\n", Err(HttpError::NotFound)),
            (
                b"POST /metrics HTTP/1.1\r\n\r\n",
                Err(HttpError::MethodNotAllowed),
            ),
            (b"GET /metrics\r\n\r\n", Err(HttpError::BadRequest)),
            (b"GET metrics HTTP/1.1\r\n\r\n", Err(HttpError::BadRequest)),
            (b"GET /metrics HTTP/9\r\n\r\n", Err(HttpError::BadRequest)),
            (
                b"\xff\xfe /metrics HTTP/1.1\r\n\r\n",
                Err(HttpError::BadRequest),
            ),
            (b"get /metrics HTTP/1.1\r\n\r\n", Err(HttpError::BadRequest)),
        ];
        for (req, want) in cases {
            assert_eq!(
                &parse_request(req),
                want,
                "{}",
                String::from_utf8_lossy(req)
            );
        }
        let huge = vec![b'a'; MAX_REQUEST_BYTES + 1];
        assert_eq!(parse_request(&huge), Err(HttpError::BadRequest));
    }

    #[test]
    fn answers_carry_length_and_close() {
        let mut render = || "m 1\n".to_string();
        let ok = String::from_utf8(answer(Ok((Route::Metrics, false)), &mut render)).expect("utf8");
        assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"));
        assert!(ok.contains("Content-Length: 4\r\n") && ok.ends_with("\r\n\r\nm 1\n"));
        let head =
            String::from_utf8(answer(Ok((Route::Metrics, true)), &mut render)).expect("utf8");
        assert!(head.ends_with("\r\n\r\n"));
        let bad = String::from_utf8(answer(Err(HttpError::BadRequest), &mut render)).expect("utf8");
        assert!(bad.starts_with("HTTP/1.1 400 "));
    }
}
