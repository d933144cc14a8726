//! `tether-load --report DIR` against the real server: the directory holds
//! the table, the same JSON `--json` prints, one well-formed, drawn SVG per
//! chart (server CPU and RSS with `--server-pid`; the storm clients' in
//! storm mode) and an `index.html` that shows each of them.

mod common;

use std::path::Path;

use common::{assert_drawn_svg, run_tether_load, Server, TempFile};

/// The charts every run with `--server-pid` has.
const CHARTS: [&str; 5] = [
    "throughput.svg",
    "latency.svg",
    "connections.svg",
    "server-cpu.svg",
    "server-rss.svg",
];

/// Runs `tether-load MODE_ARGS --json --report DIR --server-pid PID` against
/// `server`; returns the JSON it printed.
fn run_with_report(server: &Server, dir: &Path, mode_args: &[&str]) -> String {
    let addr = server.addr.to_string();
    let pid = server.pid.to_string();
    let dir = dir.to_str().expect("utf-8 path");
    let mut args = mode_args.to_vec();
    args.extend_from_slice(&[
        "--addr",
        &addr,
        "--server-pid",
        &pid,
        "--json",
        "--report",
        dir,
    ]);
    let (code, out, err) = run_tether_load(&args);
    assert_eq!(code, Some(0), "{out}\n{err}");
    // Not a terminal: no progress line.
    assert!(!err.contains('\r'), "{err}");
    out
}

/// Checks the directory's files: every chart drawn and shown on the page,
/// the JSON the same as printed, the table there.
fn check_report_dir(dir: &Path, charts: &[&str], printed_json: &str) {
    for chart in charts {
        assert_drawn_svg(&dir.join(chart));
    }
    let index = std::fs::read_to_string(dir.join("index.html")).expect("index.html");
    for chart in charts {
        assert!(
            index.contains(&format!("<img src=\"{chart}\"")),
            "{chart} not shown in {index}"
        );
    }
    assert!(!index.contains("<script"), "{index}");
    let json = std::fs::read_to_string(dir.join("report.json")).expect("report.json");
    assert_eq!(json.trim_end(), printed_json.trim_end());
    let table = std::fs::read_to_string(dir.join("report.txt")).expect("report.txt");
    assert!(table.contains("result       ok"), "{table}");
}

#[test]
fn a_pingpong_run_writes_its_charts_and_page() {
    let server = Server::start(&[]);
    let tmp = TempFile::new("unused", b"");
    let dir = tmp.dir().join("report/pingpong");
    let out = run_with_report(
        &server,
        &dir,
        &["pingpong", "--connections", "200", "--duration", "2"],
    );
    assert!(out.contains("\"mode\":\"pingpong\""), "{out}");
    check_report_dir(&dir, &CHARTS, &out);
    let throughput = std::fs::read_to_string(dir.join("throughput.svg")).expect("svg");
    assert!(throughput.contains("per second"), "{throughput}");
    assert!(throughput.contains("time since start (s)"), "{throughput}");
}

#[test]
fn a_storm_run_marks_the_storm_on_its_charts() {
    let server = Server::start(&[]);
    let tmp = TempFile::new("unused", b"");
    let dir = tmp.dir().join("storm");
    let out = run_with_report(
        &server,
        &dir,
        &[
            "storm",
            "--connections",
            "50",
            "--storm",
            "300",
            "--warmup",
            "1",
            "--duration",
            "2",
        ],
    );
    assert!(out.contains("\"complete\":true"), "{out}");
    let mut charts = CHARTS.to_vec();
    charts.push("storm-clients.svg");
    check_report_dir(&dir, &charts, &out);
    for chart in &charts {
        let svg = std::fs::read_to_string(dir.join(chart)).expect("svg");
        assert!(svg.contains("storm start"), "{chart}: no storm start");
        assert!(svg.contains("storm end"), "{chart}: no storm end");
    }
}

#[test]
fn an_unwritable_report_directory_is_a_usage_error() {
    let tmp = TempFile::new("a-file", b"");
    let under_a_file = tmp.path.join("report");
    let dir = under_a_file.to_str().expect("utf-8");
    let (code, out, err) = run_tether_load(&["idle", "--report", dir]);
    assert_eq!(code, Some(2), "{out}\n{err}");
    assert!(err.contains("--report: cannot create"), "{err}");
}
