//! The server's side of the storm: a thread that reads the server's
//! `/metrics` every `interval` and keeps `tether_connections_accepted_total`,
//! so the report can give the peak accept rate the new server saw.
//!
//! Both servers (the stopped one and its successor) answer on the same
//! address; a sample whose accepted or closed count went down comes from a
//! new process, and no rate is computed across that boundary (nor across a
//! failed scrape: the server was down).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use super::report::AcceptPeak;

/// One scrape: when, connections accepted so far, connections closed so far.
type Sample = (Instant, u64, u64);

/// A running sampler; [`Sampler::finish`] stops it and gives the peak.
pub struct Sampler {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Vec<Option<Sample>>>,
}

impl Sampler {
    /// Starts scraping `http://addr/metrics` every `interval`.
    pub fn start(addr: SocketAddr, interval: Duration) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = thread::spawn(move || {
            let mut samples = Vec::new();
            let mut next = Instant::now();
            while !flag.load(Ordering::Relaxed) {
                samples.push(scrape(addr).map(|(a, c)| (Instant::now(), a, c)));
                next += interval;
                if let Some(wait) = next.checked_duration_since(Instant::now()) {
                    thread::sleep(wait);
                } else {
                    next = Instant::now();
                }
            }
            samples
        });
        Sampler { stop, thread }
    }

    /// Stops the thread; the busiest interval between two samples of one process.
    pub fn finish(self) -> Option<AcceptPeak> {
        self.stop.store(true, Ordering::Relaxed);
        let samples = self.thread.join().ok()?;
        let count = samples.iter().flatten().count();
        let mut best: Option<AcceptPeak> = None;
        for pair in samples.windows(2) {
            let (Some((t0, a0, c0)), Some((t1, a1, c1))) = (pair[0], pair[1]) else {
                continue; // the server was down between them
            };
            if a1 < a0 || c1 < c0 {
                continue; // a new process
            }
            let over = t1.saturating_duration_since(t0);
            if over.is_zero() {
                continue;
            }
            let rate = (a1 - a0) as f64 / over.as_secs_f64();
            if best.as_ref().is_none_or(|b| rate > b.rate_per_s) {
                best = Some(AcceptPeak {
                    rate_per_s: rate,
                    over,
                    samples: count,
                });
            }
        }
        best
    }
}

/// Connections the server at `addr` holds, by its `/metrics`.
pub fn connections_open(addr: SocketAddr) -> Option<u64> {
    metric(&get_metrics(addr)?, "tether_connections_open")
}

/// (accepted, closed) from one GET /metrics; `None` when the server is not there.
fn scrape(addr: SocketAddr) -> Option<(u64, u64)> {
    let body = get_metrics(addr)?;
    Some((
        metric(&body, "tether_connections_accepted_total")?,
        metric(&body, "tether_connections_closed_total").unwrap_or(0),
    ))
}

/// The body of GET /metrics (with its headers, which no metric line matches).
fn get_metrics(addr: SocketAddr) -> Option<String> {
    let timeout = Duration::from_millis(500);
    let mut stream = TcpStream::connect_timeout(&addr, timeout).ok()?;
    stream.set_read_timeout(Some(timeout)).ok()?;
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: tether\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut body = String::new();
    stream.read_to_string(&mut body).ok()?;
    Some(body)
}

/// The value of an unlabelled metric line `NAME VALUE`, or the sum over its labelled lines.
fn metric(body: &str, name: &str) -> Option<u64> {
    let mut found = None;
    for line in body.lines() {
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        if !(rest.starts_with(' ') || rest.starts_with('{')) {
            continue;
        }
        let value = rest.rsplit(' ').next()?.parse::<f64>().ok()?;
        *found.get_or_insert(0) += value as u64;
    }
    found
}
