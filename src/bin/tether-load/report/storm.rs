//! Storm mode's part of the report: the established clients' round trips in
//! the three windows, the storm clients' connect times and outcomes, and the
//! server's CPU over the storm.

use super::*;
use crate::engine::Window;
use crate::storm::{Storm, StormWindow};

/// One window of the established clients' round trips.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RttWindow {
    /// `before`, `during` or `after`.
    pub name: &'static str,
    /// The window's length, s.
    pub secs: f64,
    /// Round trips completed in it.
    pub rtt: Option<Latency>,
}

/// What the storm did.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StormReport {
    /// Storm clients asked for.
    pub clients: u64,
    /// Storm connects started.
    pub started: u64,
    /// Storm clients that got their WELCOME.
    pub accepted: u64,
    /// Refused with GOAWAY SERVER_FULL.
    pub refused: u64,
    /// Sent another GOAWAY before their WELCOME.
    pub goaway_other: u64,
    /// Failed before their WELCOME, by kind.
    pub failed: Vec<(&'static str, u64)>,
    /// Started but without an outcome when the measurement ended.
    pub unresolved: u64,
    /// Whether every storm client was resolved within `--duration`.
    pub complete: bool,
    /// Time from a storm client's connect to its WELCOME.
    pub connect: Option<Latency>,
    /// Established clients' round trips before, during and after the storm.
    pub windows: Vec<RttWindow>,
    /// Server CPU during the storm, s (with `--server-pid`).
    pub server_cpu_secs: Option<f64>,
}

impl StormReport {
    /// The report of `storm`, its windows bounded by the run's `window`
    /// (before: end of ramp-up to the first storm connect; during: to the
    /// storm's end, or the measurement's end if it never ended; after: to
    /// the measurement's end).
    pub fn of(storm: &Storm, window: &Window) -> StormReport {
        let measure_end = window.end_ns.max(window.start_ns);
        let start = storm.start_ns.unwrap_or(measure_end);
        let end = storm.end_ns.unwrap_or(measure_end).max(start);
        let bounds = [
            (window.ramp_ns, start),
            (start, end),
            (end, measure_end.max(end)),
        ];
        let windows = StormWindow::ALL
            .iter()
            .zip(bounds)
            .map(|(w, (a, b))| RttWindow {
                name: w.name(),
                secs: b.saturating_sub(a) as f64 / 1e9,
                rtt: Latency::of(storm.rtt(*w)),
            })
            .collect();
        StormReport {
            clients: storm.size,
            started: storm.started,
            accepted: storm.accepted,
            refused: storm.refused,
            goaway_other: storm.goaway_other,
            failed: storm.failed_counts(),
            unresolved: storm.started.saturating_sub(storm.resolved()),
            complete: storm.end_ns.is_some(),
            connect: Latency::of(&storm.connect_time),
            windows,
            server_cpu_secs: storm
                .server
                .map(|(a, b)| b.cpu_ns.saturating_sub(a.cpu_ns) as f64 / 1e9),
        }
    }

    /// Failures of every kind.
    pub fn failed_total(&self) -> u64 {
        self.failed.iter().map(|(_, n)| n).sum()
    }

    /// The table's storm lines.
    pub fn to_table(&self) -> String {
        let mut o = String::new();
        let ms = |ns: u64| ns as f64 / 1e6;
        for w in &self.windows {
            let _ = write!(o, "  rtt {:<8} {:>6.2} s ", w.name, w.secs);
            match &w.rtt {
                Some(l) => {
                    let _ = writeln!(
                        o,
                        " ms p50 {:.3}  p99 {:.3}  p99.9 {:.3}  max {:.3}  (n={})",
                        ms(l.p50_ns),
                        ms(l.p99_ns),
                        ms(l.p999_ns),
                        ms(l.max_ns),
                        l.count
                    );
                }
                None => {
                    let _ = writeln!(o, " no samples");
                }
            }
        }
        let _ = write!(
            o,
            "  storm        {} clients, {} started, {} accepted, {} refused (SERVER_FULL), {} other GOAWAY, {} failed ({}), {} unresolved{}",
            self.clients,
            self.started,
            self.accepted,
            self.refused,
            self.goaway_other,
            self.failed_total(),
            counts(&self.failed),
            self.unresolved,
            if self.complete { "" } else { " (storm not over within --duration)" }
        );
        let _ = writeln!(o);
        if let Some(l) = &self.connect {
            let _ = write!(
                o,
                "  storm connect->WELCOME ms p50 {:.3}  p99 {:.3}  max {:.3}",
                ms(l.p50_ns),
                ms(l.p99_ns),
                ms(l.max_ns)
            );
            if let Some(cpu) = self.server_cpu_secs {
                let _ = write!(o, "; server cpu during the storm {cpu:.3} s");
            }
            let _ = writeln!(o);
        }
        o
    }

    /// The JSON object (latencies in microseconds, like the rest).
    pub fn to_json(&self) -> String {
        let windows: Vec<String> = self
            .windows
            .iter()
            .map(|w| {
                let rtt = w.rtt.map_or_else(|| "null".to_string(), Latency::to_json);
                format!(
                    "{}:{{\"secs\":{},\"rtt_us\":{rtt}}}",
                    json_str(w.name),
                    json_f64(w.secs)
                )
            })
            .collect();
        let connect = self
            .connect
            .map_or_else(|| "null".to_string(), Latency::to_json);
        format!(
            "{{\"clients\":{},\"started\":{},\"accepted\":{},\"refused\":{},\"goaway_other\":{},\"failed\":{},\"failed_total\":{},\"unresolved\":{},\"complete\":{},\"connect_us\":{connect},\"windows\":{{{}}},\"server_cpu_s\":{}}}",
            self.clients,
            self.started,
            self.accepted,
            self.refused,
            self.goaway_other,
            json_counts(&self.failed),
            self.failed_total(),
            self.unresolved,
            self.complete,
            windows.join(","),
            json_opt_f64(self.server_cpu_secs)
        )
    }
}
