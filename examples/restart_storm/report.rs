//! The restart storm's figures from the clients' records: how many
//! reconnected and how fast, a histogram of reconnect times (connection end
//! to the next WELCOME), the reconnect WELCOMEs over time since the restart
//! began (what the new server had to accept), as text and JSON.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::fleet::Record;

/// The figures of one restart.
#[derive(Debug, Clone)]
pub struct Summary {
    /// Clients watched.
    pub clients: usize,
    /// Clients whose connection ended after the fleet was ready.
    pub ended: usize,
    /// Clients that got a WELCOME again after that.
    pub reconnected: usize,
    /// Clients the library gave up on (or closed for good).
    pub gave_up: usize,
    /// GOAWAY codes received, by name, with counts.
    pub goaway_codes: BTreeMap<String, usize>,
    /// From the first GOAWAY (or end) received to the last one.
    pub end_spread: Duration,
    /// Every reconnect time (end → WELCOME), sorted.
    pub reconnect_times: Vec<Duration>,
    /// Every reconnect WELCOME since the first connection end, sorted.
    pub welcome_offsets: Vec<Duration>,
    /// TCP connect → WELCOME of the attempts that got in, sorted.
    pub handshake_times: Vec<Duration>,
    /// The TCP connects of the attempts that got in, since the first connection end, sorted.
    pub connect_offsets: Vec<Duration>,
    /// The first retry delays the library chose, sorted.
    pub first_delays: Vec<Duration>,
    /// Clients by connection attempts needed (1: the first retry got in).
    pub attempts: BTreeMap<u32, usize>,
    /// How late the driver fired the clients' timers, sorted.
    pub timer_lag: Vec<Duration>,
    /// Histogram bucket width.
    pub bucket: Duration,
}

impl Summary {
    /// Sums up `records` with histograms of `bucket` width; `timer_lag`
    /// is the driver's, sorted ([`super::fleet::Fleet::timer_lag`]).
    pub fn new(records: &[Record], timer_lag: Vec<Duration>, bucket: Duration) -> Summary {
        let start: Option<Instant> = records
            .iter()
            .filter_map(|r| r.goaway.map(|(t, _)| t).or(r.ended_at))
            .min();
        let last_end = records
            .iter()
            .filter_map(|r| r.goaway.map(|(t, _)| t).or(r.ended_at))
            .max();
        let mut goaway_codes = BTreeMap::new();
        let mut attempts = BTreeMap::new();
        let mut reconnect_times = Vec::new();
        let mut welcome_offsets = Vec::new();
        let mut first_delays = Vec::new();
        let mut handshake_times = Vec::new();
        let mut connect_offsets = Vec::new();
        for r in records {
            handshake_times.extend(r.handshake_time());
            if let (Some(at), Some(start)) = (r.connected_at, start) {
                connect_offsets.push(at.saturating_duration_since(start));
            }
            if let Some((_, code)) = r.goaway {
                *goaway_codes.entry(format!("{code}")).or_insert(0) += 1;
            }
            if let Some((_, d)) = r.first_retry {
                first_delays.push(d);
            }
            if let Some(t) = r.reconnect_time() {
                reconnect_times.push(t);
                *attempts.entry(r.attempts).or_insert(0) += 1;
            }
            if let (Some(at), Some(start)) = (r.rewelcome_at, start) {
                welcome_offsets.push(at.saturating_duration_since(start));
            }
        }
        reconnect_times.sort();
        welcome_offsets.sort();
        first_delays.sort();
        handshake_times.sort();
        connect_offsets.sort();
        Summary {
            clients: records.len(),
            ended: records.iter().filter(|r| r.ended_at.is_some()).count(),
            reconnected: reconnect_times.len(),
            gave_up: records.iter().filter(|r| r.gave_up).count(),
            goaway_codes,
            end_spread: match (start, last_end) {
                (Some(a), Some(b)) => b.saturating_duration_since(a),
                _ => Duration::ZERO,
            },
            reconnect_times,
            welcome_offsets,
            handshake_times,
            connect_offsets,
            first_delays,
            attempts,
            timer_lag,
            bucket,
        }
    }

    /// The most reconnect WELCOMEs that fell within any `window` (a sliding window).
    pub fn max_welcomes_within(&self, window: Duration) -> usize {
        max_within(&self.welcome_offsets, window)
    }

    /// The most successful reconnects' TCP connects that completed within any `window`.
    pub fn max_connects_within(&self, window: Duration) -> usize {
        max_within(&self.connect_offsets, window)
    }

    /// From the first reconnect WELCOME to the last.
    pub fn welcome_spread(&self) -> Duration {
        match (self.welcome_offsets.first(), self.welcome_offsets.last()) {
            (Some(a), Some(b)) => *b - *a,
            _ => Duration::ZERO,
        }
    }

    /// The text report: counts, percentiles and both histograms.
    pub fn text(&self, server_peak: Option<&AcceptPeak>) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "clients {}  connection ended {}  reconnected {}  gave up {}  not reconnected {}",
            self.clients,
            self.ended,
            self.reconnected,
            self.gave_up,
            self.clients - self.reconnected
        );
        let codes: Vec<String> = self
            .goaway_codes
            .iter()
            .map(|(c, n)| format!("{c} x{n}"))
            .collect();
        let _ = writeln!(
            out,
            "GOAWAY received: {}; first to last connection end {}",
            if codes.is_empty() {
                "none".to_string()
            } else {
                codes.join(", ")
            },
            ms(self.end_spread)
        );
        let _ = writeln!(
            out,
            "first retry delay chosen by the library: {}",
            percentiles(&self.first_delays)
        );
        let _ = writeln!(
            out,
            "reconnect time (end -> WELCOME): {}",
            percentiles(&self.reconnect_times)
        );
        let _ = writeln!(
            out,
            "all reconnected within {} of the first connection end; reconnect WELCOMEs spread over {}; \
             at most {} in any 10 ms, {} in any 100 ms",
            ms(self.welcome_offsets.last().copied().unwrap_or_default()),
            ms(self.welcome_spread()),
            self.max_welcomes_within(Duration::from_millis(10)),
            self.max_welcomes_within(Duration::from_millis(100)),
        );
        let _ = writeln!(
            out,
            "TCP connect -> WELCOME of the attempt that got in (the new server's accept and handshake): {}; \
             at most {} of those TCP connects in any 10 ms",
            percentiles(&self.handshake_times),
            self.max_connects_within(Duration::from_millis(10)),
        );
        let _ = writeln!(
            out,
            "fleet's lag firing the clients' timers (its threads' delay on top of the library's schedule): {}",
            percentiles(&self.timer_lag)
        );
        let attempts: Vec<String> = self
            .attempts
            .iter()
            .map(|(a, n)| format!("{a}:{n}"))
            .collect();
        let _ = writeln!(
            out,
            "connection attempts per reconnect (attempts:clients): {}",
            attempts.join(" ")
        );
        if let Some(peak) = server_peak {
            let _ = writeln!(
                out,
                "new server's peak accept rate (/metrics, {} samples): {:.0}/s over {}",
                peak.samples,
                peak.rate_per_s,
                ms(peak.over)
            );
        }
        let _ = writeln!(
            out,
            "\nreconnect time (end -> WELCOME), {} buckets:",
            ms(self.bucket)
        );
        out.push_str(&text_histogram(&self.reconnect_times, self.bucket));
        let _ = writeln!(
            out,
            "\nreconnect WELCOMEs since the first connection end (the new server's accepts), {} buckets:",
            ms(self.bucket)
        );
        out.push_str(&text_histogram(&self.welcome_offsets, self.bucket));
        out
    }

    /// The same figures as JSON.
    pub fn json(&self, server_peak: Option<&AcceptPeak>) -> Value {
        let bucket_ms = self.bucket.as_millis() as u64;
        json!({
            "clients": self.clients,
            "connection_ended": self.ended,
            "reconnected": self.reconnected,
            "gave_up": self.gave_up,
            "goaway_codes": self.goaway_codes,
            "end_spread_ms": millis(self.end_spread),
            "first_delay_ms": percentile_json(&self.first_delays),
            "reconnect_ms": percentile_json(&self.reconnect_times),
            "welcome_spread_ms": millis(self.welcome_spread()),
            "max_welcomes_in_10ms": self.max_welcomes_within(Duration::from_millis(10)),
            "max_welcomes_in_100ms": self.max_welcomes_within(Duration::from_millis(100)),
            "handshake_ms": percentile_json(&self.handshake_times),
            "max_connects_in_10ms": self.max_connects_within(Duration::from_millis(10)),
            "fleet_timer_lag_ms": percentile_json(&self.timer_lag),
            "attempts": self.attempts.iter().map(|(a, n)| (a.to_string(), *n)).collect::<BTreeMap<_, _>>(),
            "bucket_ms": bucket_ms,
            "reconnect_histogram": buckets(&self.reconnect_times, self.bucket),
            "welcome_histogram": buckets(&self.welcome_offsets, self.bucket),
            "server_peak_accept_per_s": server_peak.map(|p| p.rate_per_s),
        })
    }
}

/// The highest accept rate the server reported between two `/metrics` samples.
#[derive(Debug, Clone)]
pub struct AcceptPeak {
    /// Connections accepted per second in the busiest interval.
    pub rate_per_s: f64,
    /// That interval's length.
    pub over: Duration,
    /// Samples taken.
    pub samples: usize,
}

/// The most of the sorted `times` within any `window` (a sliding window).
fn max_within(times: &[Duration], window: Duration) -> usize {
    let mut best = 0;
    let mut lo = 0;
    for hi in 0..times.len() {
        while times[hi] - times[lo] >= window {
            lo += 1;
        }
        best = best.max(hi - lo + 1);
    }
    best
}

/// `[count per bucket]`, from 0 to the last non-empty bucket.
fn buckets(sorted: &[Duration], bucket: Duration) -> Vec<usize> {
    let width = bucket.as_nanos().max(1);
    let Some(last) = sorted.last() else {
        return Vec::new();
    };
    let mut counts = vec![0; (last.as_nanos() / width) as usize + 1];
    for d in sorted {
        counts[(d.as_nanos() / width) as usize] += 1;
    }
    counts
}

/// One line per bucket: its range, its count and a bar scaled to the largest.
fn text_histogram(sorted: &[Duration], bucket: Duration) -> String {
    const BAR: usize = 50;
    let counts = buckets(sorted, bucket);
    let peak = counts.iter().copied().max().unwrap_or(0).max(1);
    let width = bucket.as_millis() as u64;
    let mut out = String::new();
    for (i, n) in counts.iter().enumerate() {
        let from = i as u64 * width;
        let bar = "#".repeat((n * BAR).div_ceil(peak));
        let _ = writeln!(out, "{:>6}-{:<6} ms {:>6} {bar}", from, from + width, n);
    }
    out
}

fn millis(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

/// The `q`-quantile of a sorted list (nearest rank).
fn quantile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn percentiles(sorted: &[Duration]) -> String {
    if sorted.is_empty() {
        return "none".to_string();
    }
    format!(
        "min {} p50 {} p90 {} p99 {} max {}",
        ms(sorted[0]),
        ms(quantile(sorted, 0.5)),
        ms(quantile(sorted, 0.9)),
        ms(quantile(sorted, 0.99)),
        ms(sorted[sorted.len() - 1])
    )
}

fn percentile_json(sorted: &[Duration]) -> Value {
    if sorted.is_empty() {
        return Value::Null;
    }
    json!({
        "min": millis(sorted[0]),
        "p50": millis(quantile(sorted, 0.5)),
        "p90": millis(quantile(sorted, 0.9)),
        "p99": millis(quantile(sorted, 0.99)),
        "max": millis(sorted[sorted.len() - 1]),
    })
}
