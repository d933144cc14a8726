//! `--report`'s charts as data: which charts a run gets, their titles, axis
//! units, lines and marks, from the [`Timeline`]'s points. No drawing here
//! (that is `charts/svg.rs`), so what a chart shows is unit-tested.
//!
//! Every chart's x axis is the time since the run started, in seconds.

use crate::args::Mode;
use crate::timeline::{Point, Timeline};

mod svg;
pub use svg::render_svg;

/// The x axis of every chart.
pub const TIME_AXIS: &str = "time since start (s)";

/// One line of a chart: its legend and its points `(seconds, value)`.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    /// The legend entry.
    pub name: &'static str,
    /// The points, in time order.
    pub points: Vec<(f64, f64)>,
}

/// A vertical mark at a moment of the run (the storm's start and end).
#[derive(Debug, Clone, PartialEq)]
pub struct Mark {
    /// Seconds since the run started.
    pub at_secs: f64,
    /// What happened then.
    pub label: &'static str,
}

/// One chart: a file name, what it shows, and its lines.
#[derive(Debug, Clone, PartialEq)]
pub struct Chart {
    /// The SVG's file name in the report directory.
    pub file: &'static str,
    /// The title: what is plotted.
    pub title: String,
    /// The y axis label, with its unit.
    pub y_label: String,
    /// The lines (at least one with a point).
    pub lines: Vec<Line>,
    /// Vertical marks.
    pub marks: Vec<Mark>,
}

impl Chart {
    /// The largest value on any line (0 when there is none).
    pub fn y_max(&self) -> f64 {
        self.lines
            .iter()
            .flat_map(|l| l.points.iter().map(|p| p.1))
            .fold(0.0, f64::max)
    }

    /// The last time on any line or mark (0 when there is none).
    pub fn x_max(&self) -> f64 {
        let lines = self.lines.iter().flat_map(|l| l.points.iter().map(|p| p.0));
        lines
            .chain(self.marks.iter().map(|m| m.at_secs))
            .fold(0.0, f64::max)
    }
}

/// What the run is, for the charts' titles and marks.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RunInfo {
    /// The mode.
    pub mode: Mode,
    /// The storm's start and end, ns since the run started (storm mode).
    pub storm: (Option<u64>, Option<u64>),
}

/// What a mode counts as a message, for the throughput chart.
fn what_is_counted(mode: Mode) -> &'static str {
    match mode {
        Mode::PingPong => "round trips (PING->PONG)",
        Mode::Idle | Mode::Storm => "heartbeat round trips",
        Mode::Echo => "echoes",
        Mode::Churn => "connect-close cycles",
        Mode::Fanout => "deliveries",
    }
}

fn secs(ns: u64) -> f64 {
    ns as f64 / 1e9
}

/// A line of `f` over the points where it has a value, at each interval's end.
fn line(name: &'static str, points: &[Point], f: impl Fn(&Point) -> Option<f64>) -> Line {
    Line {
        name,
        points: points
            .iter()
            .filter_map(|p| f(p).map(|v| (secs(p.end_ns), v)))
            .collect(),
    }
}

/// The latency unit that keeps the numbers readable: µs below 1 ms, else ms.
fn latency_unit(points: &[Point]) -> (&'static str, f64) {
    let top = points
        .iter()
        .filter_map(|p| p.latency.map(|l| l.p999_ns))
        .max()
        .unwrap_or(0);
    if top < 1_000_000 {
        ("µs", 1e3)
    } else {
        ("ms", 1e6)
    }
}

/// The run's charts: throughput, latency, connections, and, when there is
/// data for them, server CPU and RSS and the storm clients' outcomes. A
/// chart without a single point (no latency timed, no `--server-pid`) is left out.
pub fn charts(timeline: &Timeline, run: RunInfo) -> Vec<Chart> {
    let pts = timeline.points();
    let mode = run.mode.name();
    let marks: Vec<Mark> = [(run.storm.0, "storm start"), (run.storm.1, "storm end")]
        .into_iter()
        .filter_map(|(at, label)| {
            at.map(|ns| Mark {
                at_secs: secs(ns),
                label,
            })
        })
        .collect();
    let counted = what_is_counted(run.mode);
    let (unit, per) = latency_unit(pts);
    let lat = |name, f: fn(&crate::timeline::Percentiles) -> u64| {
        line(name, pts, move |p| p.latency.map(|l| f(&l) as f64 / per))
    };
    let mut out = vec![
        Chart {
            file: "throughput.svg",
            title: format!("{mode}: {counted} per second"),
            y_label: format!("{counted} / s"),
            lines: vec![line("per second", pts, |p| Some(p.messages_per_sec()))],
            marks: marks.clone(),
        },
        Chart {
            file: "latency.svg",
            title: format!("{mode}: latency of {counted}, per interval"),
            y_label: format!("latency ({unit})"),
            lines: vec![
                lat("p50", |l| l.p50_ns),
                lat("p99", |l| l.p99_ns),
                lat("p99.9", |l| l.p999_ns),
            ],
            marks: marks.clone(),
        },
        Chart {
            file: "connections.svg",
            title: format!("{mode}: connections open and connecting"),
            y_label: "connections".to_string(),
            lines: vec![
                line("open", pts, |p| Some(p.open as f64)),
                line("connecting", pts, |p| Some(p.connecting as f64)),
                line("failed (total)", pts, |p| Some(p.errors as f64)),
            ],
            marks: marks.clone(),
        },
        Chart {
            file: "server-cpu.svg",
            title: format!("{mode}: server CPU"),
            y_label: "CPU (% of one core)".to_string(),
            lines: vec![line("server", pts, Point::server_cpu_pct)],
            marks: marks.clone(),
        },
        Chart {
            file: "server-rss.svg",
            title: format!("{mode}: server resident memory"),
            y_label: "RSS (MiB)".to_string(),
            lines: vec![line("server", pts, |p| {
                p.server_rss_bytes.map(|b| b as f64 / (1u64 << 20) as f64)
            })],
            marks: marks.clone(),
        },
    ];
    if run.mode == Mode::Storm {
        let storm = |name, f: fn(&crate::timeline::StormCounts) -> u64| {
            line(name, pts, move |p| p.storm.map(|s| f(&s) as f64))
        };
        out.push(Chart {
            file: "storm-clients.svg",
            title: "storm: storm clients' outcomes".to_string(),
            y_label: "storm clients".to_string(),
            lines: vec![
                storm("accepted", |s| s.accepted),
                storm("refused", |s| s.refused),
                storm("failed", |s| s.failed),
                storm("pending", |s| s.pending),
            ],
            marks,
        });
    }
    out.retain(|c| c.lines.iter().any(|l| !l.points.is_empty()));
    out
}

#[cfg(test)]
mod tests;
