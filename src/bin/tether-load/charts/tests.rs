//! Which charts a timeline gives, with what lines, units and marks.

use super::*;
use crate::stats::ProcSample;
use crate::timeline::{Percentiles, Snapshot, StormCounts};

const S: u64 = 1_000_000_000;

/// Three one-second intervals of 100 messages; latency `lat_us` when given.
fn timeline(server: bool, lat_us: Option<u64>, storm: bool) -> Timeline {
    let mut t = Timeline::new(S, 100);
    for i in 0..4u64 {
        let snap = Snapshot {
            now_ns: i * S,
            messages: 100 * i,
            open: 10 * i,
            server: server.then_some(ProcSample {
                cpu_ns: i * S / 2,
                rss_bytes: (i + 1) << 20,
            }),
            storm: storm.then_some(StormCounts {
                accepted: i,
                ..StormCounts::default()
            }),
            ..Snapshot::default()
        };
        let lat = lat_us.map(|us| Percentiles {
            p50_ns: us * 1_000,
            p99_ns: 2 * us * 1_000,
            p999_ns: 3 * us * 1_000,
        });
        t.record(snap, lat);
    }
    t
}

fn run(mode: Mode) -> RunInfo {
    RunInfo {
        mode,
        storm: (None, None),
    }
}

fn files(charts: &[Chart]) -> Vec<&'static str> {
    charts.iter().map(|c| c.file).collect()
}

#[test]
fn a_run_with_a_server_gets_every_chart() {
    let c = charts(&timeline(true, Some(50), false), run(Mode::PingPong));
    assert_eq!(
        files(&c),
        [
            "throughput.svg",
            "latency.svg",
            "connections.svg",
            "server-cpu.svg",
            "server-rss.svg"
        ]
    );
    let throughput = &c[0];
    assert!(throughput.title.contains("pingpong"));
    assert_eq!(
        throughput.lines[0].points,
        vec![(1.0, 100.0), (2.0, 100.0), (3.0, 100.0)]
    );
    assert_eq!(c[3].lines[0].points[0], (1.0, 50.0));
    assert_eq!(c[3].y_label, "CPU (% of one core)");
    assert_eq!(c[4].lines[0].points[0], (1.0, 2.0));
    assert_eq!(c[4].y_label, "RSS (MiB)");
    assert!(c.iter().all(|c| c.marks.is_empty()));
}

#[test]
fn latency_is_in_microseconds_below_a_millisecond_else_milliseconds() {
    let c = charts(&timeline(false, Some(50), false), run(Mode::Idle));
    let lat = &c[1];
    assert_eq!(lat.y_label, "latency (µs)");
    let names: Vec<_> = lat.lines.iter().map(|l| l.name).collect();
    assert_eq!(names, ["p50", "p99", "p99.9"]);
    assert_eq!(lat.lines[2].points[0], (1.0, 150.0));
    let c = charts(&timeline(false, Some(2_000), false), run(Mode::Idle));
    assert_eq!(c[1].y_label, "latency (ms)");
    assert_eq!(c[1].lines[0].points[0], (1.0, 2.0));
}

#[test]
fn charts_without_data_are_left_out() {
    let c = charts(&timeline(false, None, false), run(Mode::Churn));
    assert_eq!(files(&c), ["throughput.svg", "connections.svg"]);
    assert!(c[0].title.contains("connect-close cycles"));
}

#[test]
fn a_storm_is_marked_on_every_chart_and_has_its_own() {
    let info = RunInfo {
        mode: Mode::Storm,
        storm: (Some(1_500_000_000), Some(2_500_000_000)),
    };
    let c = charts(&timeline(true, Some(100), true), info);
    assert_eq!(c.last().map(|c| c.file), Some("storm-clients.svg"));
    for chart in &c {
        assert_eq!(
            chart.marks,
            vec![
                Mark {
                    at_secs: 1.5,
                    label: "storm start"
                },
                Mark {
                    at_secs: 2.5,
                    label: "storm end"
                }
            ],
            "{}",
            chart.file
        );
    }
    let storm = c.last().expect("storm chart");
    assert_eq!(storm.lines[0].name, "accepted");
    assert_eq!(storm.lines[0].points[2], (3.0, 3.0));
}

#[test]
fn a_storm_that_never_ended_has_only_its_start() {
    let info = RunInfo {
        mode: Mode::Storm,
        storm: (Some(S), None),
    };
    let c = charts(&timeline(false, Some(100), true), info);
    assert_eq!(c[0].marks.len(), 1);
    assert_eq!(c[0].x_max(), 3.0);
}

#[test]
fn extremes_cover_lines_and_marks() {
    let chart = Chart {
        file: "x.svg",
        title: String::new(),
        y_label: String::new(),
        lines: vec![Line {
            name: "a",
            points: vec![(1.0, 5.0), (2.0, 7.0)],
        }],
        marks: vec![Mark {
            at_secs: 4.0,
            label: "m",
        }],
    };
    assert_eq!((chart.x_max(), chart.y_max()), (4.0, 7.0));
}
