//! The HTTP metrics endpoint, served from the reactor's own loop:
//! `GET /metrics` (Prometheus text exposition 0.0.4) and `GET /healthz`.
//!
//! It is deliberately tiny: one request per connection (`Connection: close`),
//! a bounded request size, a bounded number of scrapers and a deadline on the
//! reactor's timing wheel, so a misbehaving scraper cannot cost the
//! connections it reports on anything. Request heads are parsed by
//! `httparse`; reads and writes go through the same [`super::io`] calls as
//! connections. The module reads no clock: the reactor passes the tick in.

use mio::net::{TcpListener, TcpStream};
use mio::{Interest, Registry, Token};
use slab::Slab;
use std::io::ErrorKind;
use std::net::SocketAddr;
use std::time::Duration;

use super::io::{
    accept_once, bind_listener, read_once, send_once, shutdown_write, AcceptOutcome, ReadOutcome,
};
use super::TimerKind;
use crate::time::{Span, Tick};
use crate::wheel::{TimerId, Wheel};

/// Largest request accepted (request line plus headers): scrapers send a few hundred bytes.
pub const MAX_REQUEST_BYTES: usize = 8 * 1024;
/// Most header lines in a request; more is a 400 (scrapers send a handful).
pub const MAX_REQUEST_HEADERS: usize = 32;
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

/// Parses a request head: the route and whether only the head of the answer
/// is wanted (`HEAD`). `Ok(None)`: incomplete, read more. A head that does
/// not fit in [`MAX_REQUEST_BYTES`] is a [`HttpError::BadRequest`]; bytes
/// after the head (a body, a pipelined request) are ignored.
pub fn parse_request(buf: &[u8]) -> Result<Option<(Route, bool)>, HttpError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_REQUEST_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    match request.parse(buf) {
        Ok(httparse::Status::Complete(len)) if len <= MAX_REQUEST_BYTES => {}
        Ok(httparse::Status::Partial) if buf.len() < MAX_REQUEST_BYTES => return Ok(None),
        Ok(_) | Err(_) => return Err(HttpError::BadRequest),
    }
    let (Some(method), Some(target)) = (request.method, request.path) else {
        return Err(HttpError::BadRequest);
    };
    if !target.starts_with('/') {
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

/// A scraper's deadline on the timing wheel: its slab key and the generation
/// of that slot, so a deadline left over from an earlier scraper can never
/// close a later one that reuses the slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct ScraperId {
    key: u32,
    generation: u32,
}

/// Where a scraper's one exchange is.
enum Phase {
    /// Reading the request head: the bytes so far, at most [`MAX_REQUEST_BYTES`].
    Reading(Vec<u8>),
    /// Sending the answer; `sent` bytes of it are gone.
    Answering { response: Vec<u8>, sent: usize },
    /// Answered and our FIN sent: discarding input until the scraper's EOF,
    /// so that closing does not reset an answer it has not read yet.
    Draining,
}

struct HttpConn {
    stream: TcpStream,
    phase: Phase,
    /// The scraper sent FIN.
    peer_eof: bool,
    /// Slot generation, matched against the [`ScraperId`] of a firing deadline.
    generation: u32,
    /// The deadline on the wheel, cancelled when the scraper is done first.
    deadline: TimerId,
}

/// The metrics listener and its few connections.
pub struct MetricsServer {
    listener: TcpListener,
    conns: Slab<HttpConn>,
    /// [`HTTP_DEADLINE`] in ticks.
    deadline: Span,
    next_generation: u32,
}

impl MetricsServer {
    /// Binds `addr` and registers the listener under `token`; `tick_ms` is
    /// the reactor's tick, the unit of the scrapers' deadlines.
    pub fn bind(
        addr: SocketAddr,
        registry: &Registry,
        token: Token,
        tick_ms: u32,
    ) -> std::io::Result<MetricsServer> {
        let mut listener = bind_listener(addr)?;
        registry.register(&mut listener, token, Interest::READABLE)?;
        Ok(MetricsServer {
            listener,
            conns: Slab::new(),
            deadline: Span::from_ms(HTTP_DEADLINE.as_millis() as u64, tick_ms),
            next_generation: 0,
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Accepts waiting scrapers (past [`MAX_HTTP_CONNS`] they are dropped),
    /// each with a deadline [`HTTP_DEADLINE`] after tick `now` on `wheel`.
    pub(super) fn accept(&mut self, registry: &Registry, wheel: &mut Wheel<TimerKind>, now: Tick) {
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
                        .is_err()
                    {
                        continue;
                    }
                    let generation = self.next_generation;
                    self.next_generation = generation.wrapping_add(1);
                    let id = ScraperId {
                        // Below MAX_HTTP_CONNS: slab keys stay under the slab's length cap.
                        key: entry.key() as u32,
                        generation,
                    };
                    let deadline =
                        wheel.insert(self.deadline.deadline_from(now), TimerKind::Scraper(id));
                    entry.insert(HttpConn {
                        stream,
                        phase: Phase::Reading(Vec::new()),
                        peer_eof: false,
                        generation,
                        deadline,
                    });
                }
                AcceptOutcome::Transient(_) => continue,
                AcceptOutcome::WouldBlock | AcceptOutcome::OutOfResources(_) => return,
            }
        }
    }

    /// Reads, answers and closes one scraper connection as far as it can go
    /// now. When the scraper is done and closed, returns its deadline for the
    /// caller to cancel on the wheel.
    #[must_use = "a finished scraper's deadline must be cancelled on the wheel"]
    pub(super) fn handle(
        &mut self,
        token: Token,
        registry: &Registry,
        render: &mut dyn FnMut() -> String,
    ) -> Option<TimerId> {
        let key = token.0 & !HTTP_TOKEN_BIT;
        let c = self.conns.get_mut(key)?;
        if !drive(c, render) {
            return None;
        }
        let mut c = self.conns.remove(key);
        let _ = registry.deregister(&mut c.stream);
        Some(c.deadline)
    }

    /// Closes the scraper whose deadline fired, unless it is already gone and
    /// its slot went to another scraper (a different generation).
    pub(super) fn expire(&mut self, id: ScraperId, registry: &Registry) {
        let key = id.key as usize;
        if self
            .conns
            .get(key)
            .is_some_and(|c| c.generation == id.generation)
        {
            let mut c = self.conns.remove(key);
            let _ = registry.deregister(&mut c.stream);
        }
    }
}

/// Moves one connection along; true when it can be closed.
fn drive(c: &mut HttpConn, render: &mut dyn FnMut() -> String) -> bool {
    let mut buf = [0u8; 2048];
    while !c.peer_eof {
        match read_once(&mut c.stream, &mut buf) {
            ReadOutcome::Data(n) => {
                if let Phase::Reading(request) = &mut c.phase {
                    let room = MAX_REQUEST_BYTES - request.len();
                    request.extend_from_slice(&buf[..n.min(room)]);
                    if let Some(parsed) = parse_request(request).transpose() {
                        c.phase = Phase::Answering {
                            response: answer(parsed, render),
                            sent: 0,
                        };
                    }
                }
                // Past the head, input is discarded (one request per connection).
            }
            ReadOutcome::Eof => c.peer_eof = true,
            ReadOutcome::WouldBlock => break,
            ReadOutcome::Failed(_) => return true,
        }
    }
    if let Phase::Answering { response, sent } = &mut c.phase {
        while *sent < response.len() {
            match send_once(&c.stream, &response[*sent..]) {
                Ok(0) => return true,
                Ok(n) => *sent += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return false,
                Err(_) => return true,
            }
        }
        // Half-close: the scraper reads to EOF, then closes; we drain until then.
        if shutdown_write(&c.stream).is_err() {
            return true;
        }
        c.phase = Phase::Draining;
    }
    // Done once the scraper has closed its side: after our answer, or before
    // it asked anything (it gave up).
    c.peer_eof
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

    /// A head of `len` bytes: `GET /metrics`, padding headers, the blank line.
    fn head_of_len(len: usize) -> Vec<u8> {
        let mut head = b"GET /metrics HTTP/1.1\r\n".to_vec();
        let pad = len - head.len() - "X: \r\n\r\n".len();
        head.extend_from_slice(b"X: ");
        head.resize(head.len() + pad, b'a');
        head.extend_from_slice(b"\r\n\r\n");
        assert_eq!(head.len(), len);
        head
    }

    #[test]
    fn the_head_limit_is_exact_and_trailing_bytes_are_ignored() {
        let ok = Ok(Some((Route::Metrics, false)));
        assert_eq!(parse_request(&head_of_len(MAX_REQUEST_BYTES)), ok);
        assert_eq!(
            parse_request(&head_of_len(MAX_REQUEST_BYTES + 1)),
            Err(HttpError::BadRequest)
        );
        // A head still incomplete at the limit can never fit.
        let unfinished = &head_of_len(MAX_REQUEST_BYTES + 2)[..MAX_REQUEST_BYTES];
        assert_eq!(parse_request(unfinished), Err(HttpError::BadRequest));
        assert_eq!(
            parse_request(&unfinished[..MAX_REQUEST_BYTES - 1]),
            Ok(None)
        );
        // A body or a pipelined second request after the head changes nothing.
        let mut pipelined = b"GET /metrics HTTP/1.1\r\n\r\n".to_vec();
        pipelined.extend_from_slice(b"POST /x HTTP/1.1\r\n\r\n\xff\x00garbage");
        assert_eq!(parse_request(&pipelined), ok);
    }

    #[test]
    fn headers_are_checked_and_counted() {
        let mut many = b"GET /metrics HTTP/1.1\r\n".to_vec();
        for i in 0..MAX_REQUEST_HEADERS {
            many.extend_from_slice(format!("X-{i}: y\r\n").as_bytes());
        }
        let mut too_many = many.clone();
        many.extend_from_slice(b"\r\n");
        assert_eq!(parse_request(&many), Ok(Some((Route::Metrics, false))));
        too_many.extend_from_slice(b"X-last: y\r\n\r\n");
        assert_eq!(parse_request(&too_many), Err(HttpError::BadRequest));
        for bad in [
            &b"GET /metrics HTTP/1.1\r\nno colon\r\n\r\n"[..],
            b"GET /metrics HTTP/1.1\r\nBad Name: x\r\n\r\n",
            b"GET /met\x01rics HTTP/1.1\r\n\r\n",
        ] {
            assert_eq!(
                parse_request(bad),
                Err(HttpError::BadRequest),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        // Bare LF line ends and the trailing query are accepted.
        assert_eq!(
            parse_request(b"HEAD /metrics?a=b&c HTTP/1.0\nHost: x\n\n"),
            Ok(Some((Route::Metrics, true)))
        );
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

    const LISTENER: Token = Token(1);

    /// One poll (at most 5 s) and its events: accepts at tick `now`, drives
    /// scrapers; returns the deadline of one that finished.
    fn turn(
        server: &mut MetricsServer,
        poll: &mut mio::Poll,
        wheel: &mut Wheel<TimerKind>,
        now: Tick,
    ) -> Option<TimerId> {
        let mut events = mio::Events::with_capacity(16);
        poll.poll(&mut events, Some(Duration::from_secs(5)))
            .expect("poll");
        let mut finished = None;
        for event in events.iter() {
            if event.token() == LISTENER {
                server.accept(poll.registry(), wheel, now);
            } else if let Some(d) =
                server.handle(event.token(), poll.registry(), &mut || "m 1\n".into())
            {
                finished = Some(d);
            }
        }
        finished
    }

    fn accept_one(
        server: &mut MetricsServer,
        poll: &mut mio::Poll,
        wheel: &mut Wheel<TimerKind>,
        now: Tick,
    ) -> std::net::TcpStream {
        let before = server.conns.len();
        let client =
            std::net::TcpStream::connect(server.local_addr().expect("addr")).expect("connect");
        for _ in 0..10 {
            if server.conns.len() > before {
                break;
            }
            let _ = turn(server, poll, wheel, now);
        }
        assert_eq!(server.conns.len(), before + 1, "the scraper was accepted");
        client
    }

    fn fire(wheel: &mut Wheel<TimerKind>, now: Tick) -> Vec<ScraperId> {
        let mut expired = Vec::new();
        assert!(!wheel.advance(now, usize::MAX, &mut expired));
        expired
            .into_iter()
            .map(|kind| match kind {
                TimerKind::Scraper(id) => id,
                other => panic!("unexpected timer {other:?}"),
            })
            .collect()
    }

    fn assert_closed(mut client: std::net::TcpStream) {
        use std::io::Read;
        client
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let mut rest = Vec::new();
        client
            .read_to_end(&mut rest)
            .expect("the server closed the scraper (EOF)");
    }

    #[test]
    fn a_deadline_closes_its_own_scraper_and_never_a_later_one_in_its_slot() {
        let mut poll = mio::Poll::new().expect("poll");
        let addr = "127.0.0.1:0".parse().expect("addr");
        // 100 ms ticks: the 5 s deadline is 50 ticks, plus the one that makes it never early.
        let mut server = MetricsServer::bind(addr, poll.registry(), LISTENER, 100).expect("bind");
        let mut wheel = Wheel::new(64, 0);

        let first = accept_one(&mut server, &mut poll, &mut wheel, 0);
        assert!(fire(&mut wheel, 50).is_empty());
        let first_id = fire(&mut wheel, 51);
        assert_eq!(first_id.len(), 1);
        server.expire(first_id[0], poll.registry());
        assert!(server.conns.is_empty());
        assert_closed(first);

        // The next scraper reuses the slot; the old deadline does not touch it.
        let _second = accept_one(&mut server, &mut poll, &mut wheel, 60);
        server.expire(first_id[0], poll.registry());
        assert_eq!(server.conns.len(), 1);
        assert!(fire(&mut wheel, 110).is_empty());
        let second_id = fire(&mut wheel, 111);
        assert_eq!(second_id.len(), 1);
        assert_ne!(second_id, first_id);
        server.expire(second_id[0], poll.registry());
        assert!(server.conns.is_empty());
    }

    #[test]
    fn a_finished_scraper_hands_back_its_deadline() {
        use std::io::{Read, Write};
        let mut poll = mio::Poll::new().expect("poll");
        let addr = "127.0.0.1:0".parse().expect("addr");
        let mut server = MetricsServer::bind(addr, poll.registry(), LISTENER, 10).expect("bind");
        let mut wheel = Wheel::new(64, 0);
        let mut client = accept_one(&mut server, &mut poll, &mut wheel, 0);
        assert_eq!(wheel.len(), 1);
        client
            .write_all(b"GET /metrics HTTP/1.1\r\n\r\n")
            .expect("write");
        client
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let mut answer = Vec::new();
        // The server half-closes after the answer: read to its EOF, then close ours.
        while !answer.ends_with(b"m 1\n") {
            let _ = turn(&mut server, &mut poll, &mut wheel, 0);
            let mut buf = [0u8; 512];
            match client.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
                Err(e) => panic!("reading the answer: {e}"),
            }
        }
        assert!(answer.starts_with(b"HTTP/1.1 200 OK\r\n") && answer.ends_with(b"m 1\n"));
        drop(client);
        let mut finished = None;
        for _ in 0..10 {
            finished = turn(&mut server, &mut poll, &mut wheel, 0);
            if finished.is_some() {
                break;
            }
        }
        let deadline = finished.expect("the scraper finished after its EOF");
        assert!(server.conns.is_empty());
        assert!(matches!(
            wheel.cancel(deadline),
            Some(TimerKind::Scraper(_))
        ));
    }
}
