//! The run's result: collected into a plain [`Report`], then printed either as
//! a human-readable table or as one JSON object (hand-written, no serde).

use std::fmt::Write as _;

use crate::engine::Engine;
use crate::stats::ProcSample;

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
    /// The server's resource use, with `--server-pid`.
    pub server: Option<Usage>,
    /// The generator's own CPU use.
    pub load: Option<Usage>,
}

impl Report {
    /// Collects the report of a finished run and decides pass or fail.
    pub fn from_engine(e: &Engine, server_baseline: Option<ProcSample>) -> Report {
        let w = &e.window;
        let h = &e.stats.latency;
        let latency = (!h.is_empty()).then(|| Latency {
            count: h.len(),
            p50_ns: h.value_at_quantile(0.50),
            p90_ns: h.value_at_quantile(0.90),
            p99_ns: h.value_at_quantile(0.99),
            p999_ns: h.value_at_quantile(0.999),
            max_ns: h.max(),
            mean_ns: h.mean(),
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
            server: usage(e.args.server_pid.unwrap_or(0), w.server, server_baseline),
            load: usage(0, w.load, None),
        };
        r.failure = if let Some(f) = &e.fatal {
            Some(f.clone())
        } else if r.handshakes == 0 {
            Some("no connection came up".to_string())
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
        match &self.latency {
            Some(l) => {
                let us = |ns: u64| json_f64(ns as f64 / 1e3);
                let _ = write!(
                    o,
                    "\"latency_us\":{{\"count\":{},\"p50\":{},\"p90\":{},\"p99\":{},\"p99_9\":{},\"max\":{},\"mean\":{}}},",
                    l.count,
                    us(l.p50_ns),
                    us(l.p90_ns),
                    us(l.p99_ns),
                    us(l.p999_ns),
                    us(l.max_ns),
                    json_f64(l.mean_ns / 1e3)
                );
            }
            None => o.push_str("\"latency_us\":null,"),
        }
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
mod tests {
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
}
