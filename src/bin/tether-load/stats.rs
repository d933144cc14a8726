//! What a run counts: the latency histogram, messages, errors by kind and
//! GOAWAYs by code, plus CPU and memory samples of a process from `/proc`.

use hdrhistogram::Histogram;
use std::fs;
use tether::protocol::GoawayCode;

/// Why a connection failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The server refused the connect (nothing listening, or backlog overrun).
    ConnectRefused,
    /// Any other connect failure (no local port, no descriptor, unreachable).
    ConnectFailed,
    /// The connection was reset (ECONNRESET, EPIPE, other I/O errors).
    Reset,
    /// The server closed without a GOAWAY while we were not closing.
    Eof,
    /// No WELCOME, no heartbeat reply, or no EOF after our close, in time.
    Timeout,
    /// The server sent bytes that break the protocol (bad frame, wrong reply).
    Protocol,
    /// The server sent a GOAWAY we did not ask for (codes counted separately).
    Goaway,
    /// TLS failed: a rejected certificate, a server that does not speak TLS,
    /// a corrupt record, an end of stream without close_notify.
    Tls,
}

impl ErrorKind {
    /// Every kind, in report order.
    pub const ALL: [ErrorKind; 8] = [
        ErrorKind::ConnectRefused,
        ErrorKind::ConnectFailed,
        ErrorKind::Reset,
        ErrorKind::Eof,
        ErrorKind::Timeout,
        ErrorKind::Protocol,
        ErrorKind::Goaway,
        ErrorKind::Tls,
    ];

    /// The kind's label in reports.
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::ConnectRefused => "connect_refused",
            ErrorKind::ConnectFailed => "connect_failed",
            ErrorKind::Reset => "reset",
            ErrorKind::Eof => "unexpected_eof",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Protocol => "protocol",
            ErrorKind::Goaway => "goaway",
            ErrorKind::Tls => "tls",
        }
    }

    fn index(self) -> usize {
        ErrorKind::ALL.iter().position(|k| *k == self).unwrap_or(0)
    }
}

/// GOAWAY slots: the known codes plus one for unknown codes.
const GOAWAY_SLOTS: usize = GoawayCode::ALL.len() + 1;

/// Counters for one run.
pub struct Stats {
    /// Latency in nanoseconds, recorded only during the measured window.
    pub latency: Histogram<u64>,
    /// Latency since the timeline's last sample, over the whole run (the
    /// charts' and the progress line's per-interval percentiles); emptied
    /// at each sample.
    pub interval_latency: Histogram<u64>,
    /// Whether samples are being recorded (the measured window).
    pub recording: bool,
    /// Replies, deliveries or churn cycles completed in the measured window.
    pub messages: u64,
    /// The same, over the whole run (for the progress line).
    pub messages_total: u64,
    errors: [u64; ErrorKind::ALL.len()],
    goaways: [u64; GOAWAY_SLOTS],
    /// Handshakes completed.
    pub handshakes: u64,
    /// Most connections open at once.
    pub peak_open: usize,
    /// First protocol error seen, for the report.
    pub first_protocol_error: Option<String>,
    /// First TLS error seen, for the report.
    pub first_tls_error: Option<String>,
    /// TLS handshakes, when the run speaks TLS.
    pub tls: TlsStats,
}

/// The TLS handshakes of a run: how many, how fast, how long each took.
pub struct TlsStats {
    /// Handshakes completed.
    pub handshakes: u64,
    /// Of those, how many resumed an earlier session (no certificate
    /// exchange, no signature: cheaper for the server).
    pub resumed: u64,
    /// When the first and the latest handshake completed (ns since start).
    pub first_ns: u64,
    /// See `first_ns`.
    pub last_ns: u64,
    /// Time from TCP connect to TLS established, ns, over the whole run
    /// (most handshakes happen during the ramp-up, before the window).
    pub time: Histogram<u64>,
}

impl TlsStats {
    fn new() -> Result<TlsStats, hdrhistogram::CreationError> {
        Ok(TlsStats {
            handshakes: 0,
            resumed: 0,
            first_ns: 0,
            last_ns: 0,
            time: Histogram::new_with_bounds(1, 100_000_000_000, 3)?,
        })
    }

    /// A handshake completed at `now_ns` after `took_ns`.
    pub fn handshake(&mut self, now_ns: u64, took_ns: u64, resumed: bool) {
        if self.handshakes == 0 {
            self.first_ns = now_ns;
        }
        self.last_ns = now_ns;
        self.handshakes += 1;
        self.resumed += u64::from(resumed);
        self.time.saturating_record(took_ns.max(1));
    }

    /// Handshakes completed per second between the first and the latest:
    /// the rate the generator and the server achieved together.
    pub fn rate_per_sec(&self) -> Option<f64> {
        let span = self.last_ns.saturating_sub(self.first_ns);
        (self.handshakes > 1 && span > 0).then(|| (self.handshakes - 1) as f64 * 1e9 / span as f64)
    }
}

impl Stats {
    /// Empty counters; the histogram covers 1 ns ..= 100 s at 3 significant digits.
    pub fn new() -> Result<Stats, hdrhistogram::CreationError> {
        let latency = Histogram::new_with_bounds(1, 100_000_000_000, 3)?;
        Ok(Stats {
            latency,
            interval_latency: Histogram::new_with_bounds(1, 100_000_000_000, 2)?,
            recording: false,
            messages: 0,
            messages_total: 0,
            errors: [0; ErrorKind::ALL.len()],
            goaways: [0; GOAWAY_SLOTS],
            handshakes: 0,
            peak_open: 0,
            first_protocol_error: None,
            first_tls_error: None,
            tls: TlsStats::new()?,
        })
    }

    /// One reply (or delivery, or cycle) arrived; `latency_ns` when known.
    pub fn message(&mut self, latency_ns: Option<u64>) {
        self.messages_total += 1;
        if let Some(ns) = latency_ns {
            self.interval_latency.saturating_record(ns.max(1));
        }
        if self.recording {
            self.messages += 1;
            if let Some(ns) = latency_ns {
                self.latency.saturating_record(ns.max(1));
            }
        }
    }

    /// Counts one failed connection.
    pub fn error(&mut self, kind: ErrorKind) {
        self.errors[kind.index()] += 1;
    }

    /// Counts one GOAWAY received.
    pub fn goaway(&mut self, code: GoawayCode) {
        let slot = (code.as_u16() as usize).min(GOAWAY_SLOTS - 1);
        self.goaways[slot] += 1;
    }

    /// Failed connections of one kind.
    pub fn errors_of(&self, kind: ErrorKind) -> u64 {
        self.errors[kind.index()]
    }

    /// Failed connections of every kind.
    pub fn error_total(&self) -> u64 {
        self.errors.iter().sum()
    }

    /// Every error kind and its count, in report order.
    pub fn error_counts(&self) -> Vec<(&'static str, u64)> {
        ErrorKind::ALL
            .iter()
            .map(|k| (k.name(), self.errors_of(*k)))
            .collect()
    }

    /// GOAWAY codes received at least once, with counts.
    pub fn goaway_counts(&self) -> Vec<(&'static str, u64)> {
        let mut out: Vec<(&'static str, u64)> = GoawayCode::ALL
            .iter()
            .zip(self.goaways.iter())
            .filter(|(_, n)| **n > 0)
            .map(|(c, n)| (c.name(), *n))
            .collect();
        if self.goaways[GOAWAY_SLOTS - 1] > 0 {
            out.push(("UNKNOWN", self.goaways[GOAWAY_SLOTS - 1]));
        }
        out
    }
}

/// CPU time and resident memory of a process at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ProcSample {
    /// CPU time consumed so far, user + system, in nanoseconds.
    pub cpu_ns: u64,
    /// Resident set size in bytes.
    pub rss_bytes: u64,
}

/// Samples `/proc/<pid>` (`pid` may be `"self"`). CPU time comes from each
/// thread's `schedstat` (nanoseconds, so short windows are still accurate),
/// falling back to `stat` ticks (assumed 100 per second) where schedstat is
/// missing; RSS from `status`. `None` when the process is gone.
pub fn sample_proc(pid: &str) -> Option<ProcSample> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss_kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let cpu_ns = schedstat_cpu_ns(pid).or_else(|| stat_cpu_ns(pid))?;
    Some(ProcSample {
        cpu_ns,
        rss_bytes: rss_kb * 1024,
    })
}

fn schedstat_cpu_ns(pid: &str) -> Option<u64> {
    let mut total = 0u64;
    let mut any = false;
    for entry in fs::read_dir(format!("/proc/{pid}/task")).ok()?.flatten() {
        let text = fs::read_to_string(entry.path().join("schedstat")).ok()?;
        total += text.split_whitespace().next()?.parse::<u64>().ok()?;
        any = true;
    }
    any.then_some(total)
}

fn stat_cpu_ns(pid: &str) -> Option<u64> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 overall: 12 and 13 after the name.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) * 10_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_window_is_recorded() {
        let mut s = Stats::new().expect("histogram");
        s.message(Some(5));
        s.recording = true;
        s.message(Some(1_000));
        s.message(None);
        assert_eq!(s.messages, 2);
        assert_eq!(s.messages_total, 3);
        assert_eq!(s.latency.len(), 1);
        // The timeline's interval histogram sees the whole run.
        assert_eq!(s.interval_latency.len(), 2);
    }

    #[test]
    fn errors_and_goaways_are_labelled() {
        let mut s = Stats::new().expect("histogram");
        s.error(ErrorKind::Reset);
        s.error(ErrorKind::Reset);
        s.goaway(GoawayCode::IdleTimeout);
        s.goaway(GoawayCode::Unknown(99));
        assert_eq!(s.error_total(), 2);
        assert!(s.error_counts().contains(&("reset", 2)));
        assert_eq!(s.goaway_counts(), vec![("IDLE_TIMEOUT", 1), ("UNKNOWN", 1)]);
    }

    #[test]
    fn tls_handshake_rate_spans_first_to_latest() {
        let mut s = Stats::new().expect("histogram");
        assert_eq!(s.tls.rate_per_sec(), None);
        s.tls.handshake(1_000_000_000, 500_000, false);
        assert_eq!(s.tls.rate_per_sec(), None);
        s.tls.handshake(1_500_000_000, 700_000, true);
        s.tls.handshake(2_000_000_000, 600_000, true);
        assert_eq!(s.tls.rate_per_sec(), Some(2.0));
        assert_eq!((s.tls.handshakes, s.tls.resumed), (3, 2));
        assert_eq!(s.tls.time.len(), 3);
        s.error(ErrorKind::Tls);
        assert!(s.error_counts().contains(&("tls", 1)));
    }

    #[test]
    fn samples_this_process() {
        let s = sample_proc("self").expect("/proc/self");
        assert!(s.rss_bytes > 0);
    }
}
