//! The run's result: collected into a plain [`Report`], then printed either as
//! a human-readable table or as one JSON object (hand-written, no serde);
//! with `--report DIR`, both and the charts are also written there (`report/dir.rs`).

use std::fmt::Write as _;

use hdrhistogram::Histogram;

use crate::engine::Engine;
use crate::stats::ProcSample;

mod dir;
mod storm;
pub use dir::{prepare_dir, write_dir};
pub use storm::StormReport;

/// Latency percentiles, in nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Latency {
    /// Samples recorded.
    pub count: u64,
    /// Median.
    pub p50_ns: u64,
    /// 90th percentile.
    pub p90_ns: u64,
    /// 99th percentile.
    pub p99_ns: u64,
    /// 99.9th percentile.
    pub p999_ns: u64,
    /// Largest sample.
    pub max_ns: u64,
    /// Mean.
    pub mean_ns: f64,
}

impl Latency {
    /// The percentiles of `h`; `None` when it holds no sample.
    pub fn of(h: &Histogram<u64>) -> Option<Latency> {
        (!h.is_empty()).then(|| Latency {
            count: h.len(),
            p50_ns: h.value_at_quantile(0.50),
            p90_ns: h.value_at_quantile(0.90),
            p99_ns: h.value_at_quantile(0.99),
            p999_ns: h.value_at_quantile(0.999),
            max_ns: h.max(),
            mean_ns: h.mean(),
        })
    }

    /// The JSON object of these percentiles, in microseconds.
    fn to_json(self) -> String {
        let us = |ns: u64| json_f64(ns as f64 / 1e3);
        format!(
            "{{\"count\":{},\"p50\":{},\"p90\":{},\"p99\":{},\"p99_9\":{},\"max\":{},\"mean\":{}}}",
            self.count,
            us(self.p50_ns),
            us(self.p90_ns),
            us(self.p99_ns),
            us(self.p999_ns),
            us(self.max_ns),
            json_f64(self.mean_ns / 1e3)
        )
    }
}

/// The TLS handshakes of a run that speaks TLS.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct TlsReport {
    /// Handshakes completed.
    pub handshakes: u64,
    /// Of those, resumed sessions.
    pub resumed: u64,
    /// Handshakes per second from the first to the latest.
    pub per_sec: Option<f64>,
    /// Time from TCP connect to TLS established.
    pub time: Option<Latency>,
}

/// A process's resource use over the measured window.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Usage {
    /// Process id (0 for the generator itself).
    pub pid: u32,
    /// CPU time spent in the window, ns.
    pub cpu_ns: u64,
    /// RSS before any connection was opened, bytes.
    pub rss_baseline_bytes: u64,
    /// RSS at the end of the window, bytes.
    pub rss_end_bytes: u64,
}

/// Everything a run reports.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Report {
    /// Mode name.
    pub mode: &'static str,
    /// Server address.
    pub addr: String,
    /// Whether the run passes (the exit code).
    pub ok: bool,
    /// Why the run failed, when it did.
    pub failure: Option<String>,
    /// Connections the mode aims to hold.
    pub target: u64,
    /// Connects started.
    pub started: u64,
    /// WELCOMEs received.
    pub handshakes: u64,
    /// Most connections open at once.
    pub peak_open: u64,
    /// Open when the window opened.
    pub open_at_start: u64,
    /// Open when the window closed (for idle: the survivors).
    pub open_at_end: u64,
    /// Ramp-up time, s.
    pub ramp_secs: f64,
    /// Measured window, s.
    pub duration_secs: f64,
    /// Replies, deliveries or cycles in the window.
    pub messages: u64,
    /// Latency over the window.
    pub latency: Option<Latency>,
    /// Errors by kind (every kind, zeros included).
    pub errors: Vec<(&'static str, u64)>,
    /// GOAWAYs received, by code name (only codes seen).
    pub goaways: Vec<(&'static str, u64)>,
    /// Requests unanswered after the drain.
    pub unanswered: u64,
    /// Mode-specific counters.
    pub extras: Vec<(&'static str, u64)>,
    /// The first protocol violation seen.
    pub first_protocol_error: Option<String>,
    /// The TLS handshakes, when the run speaks TLS.
    pub tls: Option<TlsReport>,
    /// The first TLS failure seen.
    pub first_tls_error: Option<String>,
    /// The server's resource use, with `--server-pid`.
    pub server: Option<Usage>,
    /// The generator's own CPU use.
    pub load: Option<Usage>,
    /// Storm mode's windows, connect times and outcomes.
    pub storm: Option<StormReport>,
}

impl Report {
    /// Collects the report of a finished run and decides pass or fail.
    pub fn from_engine(e: &Engine, server_baseline: Option<ProcSample>) -> Report {
        let w = &e.window;
        let latency = Latency::of(&e.stats.latency);
        let tls = e.speaks_tls().then(|| TlsReport {
            handshakes: e.stats.tls.handshakes,
            resumed: e.stats.tls.resumed,
            per_sec: e.stats.tls.rate_per_sec(),
            time: Latency::of(&e.stats.tls.time),
        });
        let usage = |pid: u32, pair: Option<(ProcSample, ProcSample)>, base: Option<ProcSample>| {
            pair.map(|(a, b)| Usage {
                pid,
                cpu_ns: b.cpu_ns.saturating_sub(a.cpu_ns),
                rss_baseline_bytes: base.map_or(0, |s| s.rss_bytes),
                rss_end_bytes: b.rss_bytes,
            })
        };
        let mut r = Report {
            mode: e.args.mode.name(),
            addr: e.args.addr.to_string(),
            ok: true,
            failure: None,
            target: e.work.target_connections,
            started: e.started,
            handshakes: e.stats.handshakes,
            peak_open: e.stats.peak_open as u64,
            open_at_start: w.open_at_start as u64,
            open_at_end: w.open_at_end as u64,
            ramp_secs: w.ramp_ns as f64 / 1e9,
            duration_secs: w.end_ns.saturating_sub(w.start_ns) as f64 / 1e9,
            messages: e.stats.messages,
            latency,
            errors: e.stats.error_counts(),
            goaways: e.stats.goaway_counts(),
            unanswered: w.unanswered,
            extras: e.extras(),
            first_protocol_error: e.stats.first_protocol_error.clone(),
            tls,
            first_tls_error: e.stats.first_tls_error.clone(),
            server: usage(e.args.server_pid.unwrap_or(0), w.server, server_baseline),
            load: usage(0, w.load, None),
            storm: e.work.storm.as_ref().map(|s| StormReport::of(s, w)),
        };
        r.failure = if let Some(f) = &e.fatal {
            Some(f.clone())
        } else if r.handshakes == 0 {
            Some(match &r.first_tls_error {
                Some(t) => format!("no connection came up (first TLS error: {t})"),
                None => "no connection came up".to_string(),
            })
        } else {
            let limit = e.args.max_error_pct / 100.0 * r.started.max(1) as f64;
            (r.error_total() as f64 > limit).then(|| {
                format!(
                    "{} errors in {} connection attempts, above --max-error-pct {}",
                    r.error_total(),
                    r.started,
                    e.args.max_error_pct
                )
            })
        };
        r.ok = r.failure.is_none();
        r
    }

    /// Errors of every kind.
    pub fn error_total(&self) -> u64 {
        self.errors.iter().map(|(_, n)| n).sum()
    }

    /// Messages per second over the window.
    pub fn msgs_per_sec(&self) -> f64 {
        if self.duration_secs > 0.0 {
            self.messages as f64 / self.duration_secs
        } else {
            0.0
        }
    }

    /// Server CPU microseconds per message, when known.
    pub fn server_cpu_us_per_msg(&self) -> Option<f64> {
        let s = self.server?;
        (self.messages > 0).then(|| s.cpu_ns as f64 / 1e3 / self.messages as f64)
    }

    /// Server RSS growth per open connection, when known.
    pub fn server_rss_per_conn(&self) -> Option<f64> {
        let s = self.server?;
        (self.open_at_end > 0 && s.rss_baseline_bytes > 0).then(|| {
            s.rss_end_bytes.saturating_sub(s.rss_baseline_bytes) as f64 / self.open_at_end as f64
        })
    }

    /// The human-readable table.
    pub fn to_table(&self) -> String {
        let mut o = String::new();
        let us = |ns: u64| ns as f64 / 1e3;
        let _ = writeln!(o, "tether-load {} -> {}", self.mode, self.addr);
        let _ = writeln!(
            o,
            "  connections  {} target, {} started, {} handshakes, peak {} open, {} open at end, ramp {:.2} s",
            self.target, self.started, self.handshakes, self.peak_open, self.open_at_end, self.ramp_secs
        );
        let _ = writeln!(
            o,
            "  measured     {:.2} s, {} messages, {:.1} msgs/s",
            self.duration_secs,
            self.messages,
            self.msgs_per_sec()
        );
        match &self.latency {
            Some(l) => {
                let _ = writeln!(
                    o,
                    "  latency us   p50 {:.1}  p90 {:.1}  p99 {:.1}  p99.9 {:.1}  max {:.1}  mean {:.1}  (n={})",
                    us(l.p50_ns),
                    us(l.p90_ns),
                    us(l.p99_ns),
                    us(l.p999_ns),
                    us(l.max_ns),
                    l.mean_ns / 1e3,
                    l.count
                );
            }
            None => {
                let _ = writeln!(o, "  latency us   no samples");
            }
        }
        let _ = writeln!(o, "  errors       {}", counts(&self.errors));
        let _ = writeln!(o, "  goaways      {}", counts(&self.goaways));
        if let Some(p) = &self.first_protocol_error {
            let _ = writeln!(o, "  first protocol error: {p}");
        }
        if let Some(t) = &self.tls {
            let _ = write!(
                o,
                "  tls          {} handshakes ({} resumed)",
                t.handshakes, t.resumed
            );
            if let Some(rate) = t.per_sec {
                let _ = write!(o, ", {rate:.1} handshakes/s");
            }
            if let Some(l) = &t.time {
                let _ = write!(
                    o,
                    ", connect->TLS us p50 {:.1}  p99 {:.1}  max {:.1}",
                    us(l.p50_ns),
                    us(l.p99_ns),
                    us(l.max_ns)
                );
            }
            let _ = writeln!(o);
        }
        if let Some(t) = &self.first_tls_error {
            let _ = writeln!(o, "  first TLS error: {t}");
        }
        if let Some(s) = &self.storm {
            o.push_str(&s.to_table());
        }
        let _ = writeln!(o, "  unanswered   {}", self.unanswered);
        if !self.extras.is_empty() {
            let _ = writeln!(o, "  {:<12} {}", self.mode, counts(&self.extras));
        }
        if let Some(s) = &self.server {
            let _ = write!(
                o,
                "  server       pid {}: cpu {:.3} s ({:.0}% of a core)",
                s.pid,
                s.cpu_ns as f64 / 1e9,
                percent(s.cpu_ns, self.duration_secs)
            );
            if let Some(per) = self.server_cpu_us_per_msg() {
                let _ = write!(o, ", {per:.3} us/msg");
            }
            let _ = write!(o, ", rss {} B", s.rss_end_bytes);
            if let Some(per) = self.server_rss_per_conn() {
                let _ = write!(o, " ({per:.0} B/conn over baseline)");
            }
            let _ = writeln!(o);
        }
        if let Some(l) = &self.load {
            let _ = writeln!(
                o,
                "  generator    cpu {:.3} s ({:.0}% of a core)",
                l.cpu_ns as f64 / 1e9,
                percent(l.cpu_ns, self.duration_secs)
            );
        }
        match &self.failure {
            None => {
                let _ = writeln!(o, "  result       ok");
            }
            Some(f) => {
                let _ = writeln!(o, "  result       FAILED: {f}");
            }
        }
        o
    }

    /// One JSON object (no trailing newline).
    pub fn to_json(&self) -> String {
        let mut o = String::from("{");
        let _ = write!(o, "\"mode\":{},", json_str(self.mode));
        let _ = write!(o, "\"addr\":{},", json_str(&self.addr));
        let _ = write!(o, "\"ok\":{},", self.ok);
        let _ = write!(o, "\"failure\":{},", json_opt_str(self.failure.as_deref()));
        let _ = write!(
            o,
            "\"connections\":{{\"target\":{},\"started\":{},\"handshakes\":{},\"peak_open\":{},\"open_at_start\":{},\"open_at_end\":{}}},",
            self.target, self.started, self.handshakes, self.peak_open, self.open_at_start, self.open_at_end
        );
        let _ = write!(o, "\"ramp_s\":{},", json_f64(self.ramp_secs));
        let _ = write!(o, "\"duration_s\":{},", json_f64(self.duration_secs));
        let _ = write!(o, "\"messages\":{},", self.messages);
        let _ = write!(o, "\"msgs_per_sec\":{},", json_f64(self.msgs_per_sec()));
        let latency = self
            .latency
            .map_or_else(|| "null".to_string(), Latency::to_json);
        let _ = write!(o, "\"latency_us\":{latency},");
        let _ = write!(o, "\"errors\":{},", json_counts(&self.errors));
        let _ = write!(o, "\"error_total\":{},", self.error_total());
        let _ = write!(o, "\"goaways\":{},", json_counts(&self.goaways));
        let _ = write!(o, "\"unanswered\":{},", self.unanswered);
        let _ = write!(o, "\"mode_counters\":{},", json_counts(&self.extras));
        let _ = write!(
            o,
            "\"first_protocol_error\":{},",
            json_opt_str(self.first_protocol_error.as_deref())
        );
        match &self.tls {
            Some(t) => {
                let time = t.time.map_or_else(|| "null".to_string(), Latency::to_json);
                let _ = write!(
                    o,
                    "\"tls\":{{\"handshakes\":{},\"resumed\":{},\"handshakes_per_sec\":{},\"handshake_us\":{time}}},",
                    t.handshakes,
                    t.resumed,
                    json_opt_f64(t.per_sec)
                );
            }
            None => o.push_str("\"tls\":null,"),
        }
        let _ = write!(
            o,
            "\"first_tls_error\":{},",
            json_opt_str(self.first_tls_error.as_deref())
        );
        match &self.server {
            Some(s) => {
                let _ = write!(
                    o,
                    "\"server\":{{\"pid\":{},\"cpu_s\":{},\"cpu_us_per_msg\":{},\"rss_bytes\":{},\"rss_baseline_bytes\":{},\"rss_bytes_per_conn\":{}}},",
                    s.pid,
                    json_f64(s.cpu_ns as f64 / 1e9),
                    json_opt_f64(self.server_cpu_us_per_msg()),
                    s.rss_end_bytes,
                    s.rss_baseline_bytes,
                    json_opt_f64(self.server_rss_per_conn())
                );
            }
            None => o.push_str("\"server\":null,"),
        }
        match &self.load {
            Some(l) => {
                let _ = write!(
                    o,
                    "\"load\":{{\"cpu_s\":{}}}",
                    json_f64(l.cpu_ns as f64 / 1e9)
                );
            }
            None => o.push_str("\"load\":null"),
        }
        if let Some(s) = &self.storm {
            let _ = write!(o, ",\"storm\":{}", s.to_json());
        }
        o.push('}');
        o
    }
}

fn percent(cpu_ns: u64, secs: f64) -> f64 {
    if secs > 0.0 {
        cpu_ns as f64 / 1e9 / secs * 100.0
    } else {
        0.0
    }
}

fn counts(items: &[(&str, u64)]) -> String {
    let shown: Vec<String> = items
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(k, n)| format!("{k} {n}"))
        .collect();
    if shown.is_empty() {
        "none".to_string()
    } else {
        shown.join(", ")
    }
}

fn json_counts(items: &[(&str, u64)]) -> String {
    let fields: Vec<String> = items
        .iter()
        .map(|(k, n)| format!("{}:{n}", json_str(k)))
        .collect();
    format!("{{{}}}", fields.join(","))
}

/// A JSON number, or `null` for NaN and infinities (which JSON cannot carry).
fn json_f64(x: f64) -> String {
    if x.is_finite() {
        let s = format!("{x:.3}");
        let s = s.trim_end_matches('0').trim_end_matches('.');
        if s.is_empty() || s == "-" {
            "0".to_string()
        } else {
            s.to_string()
        }
    } else {
        "null".to_string()
    }
}

fn json_opt_f64(x: Option<f64>) -> String {
    x.map_or_else(|| "null".to_string(), json_f64)
}

fn json_opt_str(s: Option<&str>) -> String {
    s.map_or_else(|| "null".to_string(), json_str)
}

/// A JSON string literal with the escapes RFC 8259 requires.
fn json_str(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    o.push('"');
    for ch in s.chars() {
        match ch {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            '\n' => o.push_str("\\n"),
            '\r' => o.push_str("\\r"),
            '\t' => o.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(o, "\\u{:04x}", c as u32);
            }
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

#[cfg(test)]
mod tests;
