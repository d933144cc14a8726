//! `--report DIR`: the run's table (`report.txt`), its JSON (`report.json`,
//! the same object `--json` prints), one SVG per chart, and `index.html`
//! showing the parameters, the summary and the charts: a static page, no
//! script, nothing fetched from the network.

use std::fs;
use std::path::Path;

use super::*;
use crate::args::Args;
use crate::charts::{render_svg, Chart};

/// The report's table, in the directory.
pub const TABLE_FILE: &str = "report.txt";
/// The report's JSON object, in the directory.
pub const JSON_FILE: &str = "report.json";
/// The page that shows it all.
pub const INDEX_FILE: &str = "index.html";

/// Creates `dir` (and its parents) before the run, so that a directory that
/// cannot be written is a usage error rather than a lost run.
pub fn prepare_dir(dir: &Path) -> Result<(), String> {
    fs::create_dir_all(dir).map_err(|e| format!("--report: cannot create {}: {e}", dir.display()))
}

/// Writes the report files and charts of a finished run into `dir`.
pub fn write_dir(dir: &Path, args: &Args, report: &Report, charts: &[Chart]) -> Result<(), String> {
    let write = |name: &str, text: &str| {
        let path = dir.join(name);
        fs::write(&path, text)
            .map_err(|e| format!("--report: cannot write {}: {e}", path.display()))
    };
    write(TABLE_FILE, &report.to_table())?;
    write(JSON_FILE, &(report.to_json() + "\n"))?;
    for chart in charts {
        write(chart.file, &render_svg(chart)?)?;
    }
    write(INDEX_FILE, &index_html(args, report, charts))
}

/// The run's parameters as `(flag, value)`, the ones that matter for its mode.
pub fn parameters(a: &Args) -> Vec<(&'static str, String)> {
    use crate::args::Mode;
    let mut p = vec![
        ("mode", a.mode.name().to_string()),
        ("--addr", a.addr.to_string()),
    ];
    if a.mode != Mode::Churn {
        p.push(("--connections", a.connections.to_string()));
    }
    p.push(("--warmup", format!("{} s", a.warmup_secs)));
    p.push(("--duration", format!("{} s", a.duration_secs)));
    match a.mode {
        Mode::PingPong => {
            p.push(("--depth", a.depth.to_string()));
            p.push(("--payload", format!("{} B", a.payload)));
        }
        Mode::Echo => {
            p.push(("--depth", a.depth.to_string()));
            p.push(("--size", format!("{} B", a.size)));
        }
        Mode::Churn => p.push(("--rate", format!("{} connections/s", a.rate))),
        Mode::Fanout => {
            p.push(("--rate", format!("{} publishes/s", a.rate)));
            p.push(("--size", format!("{} B", a.size)));
            p.push(("--channel", a.channel.clone()));
        }
        Mode::Storm => p.push(("--storm", format!("{} clients", a.storm))),
        Mode::Idle => {}
    }
    p.push(("--heartbeat-ms", a.heartbeat_ms.to_string()));
    p.push(("--protocol", a.protocol.to_string()));
    p.push(("--connect-concurrency", a.connect_concurrency.to_string()));
    if !a.sources.is_empty() {
        let s: Vec<String> = a.sources.iter().map(ToString::to_string).collect();
        let shown = match s.as_slice() {
            [one] => one.clone(),
            [first, .., last] => format!("{} addresses, {first} .. {last}", s.len()),
            [] => String::new(),
        };
        p.push(("--sources", shown));
    }
    p.push(("TLS", if a.tls.enabled { "yes" } else { "no" }.to_string()));
    if let Some(pid) = a.server_pid {
        p.push(("--server-pid", pid.to_string()));
    }
    p
}

/// The key figures of the summary table, as `(what, value)`.
fn summary(r: &Report) -> Vec<(&'static str, String)> {
    let mut s = vec![(
        "result",
        match &r.failure {
            None => "ok".to_string(),
            Some(f) => format!("FAILED: {f}"),
        },
    )];
    s.push((
        "connections",
        format!(
            "{} handshakes, peak {} open, {} open at the end, ramp-up {:.2} s",
            r.handshakes, r.peak_open, r.open_at_end, r.ramp_secs
        ),
    ));
    s.push((
        "measured",
        format!(
            "{:.2} s, {} messages, {:.1} per second",
            r.duration_secs,
            r.messages,
            r.msgs_per_sec()
        ),
    ));
    if let Some(l) = &r.latency {
        let ms = |ns: u64| ns as f64 / 1e6;
        s.push((
            "latency (ms)",
            format!(
                "p50 {:.3} · p99 {:.3} · p99.9 {:.3} · max {:.3}",
                ms(l.p50_ns),
                ms(l.p99_ns),
                ms(l.p999_ns),
                ms(l.max_ns)
            ),
        ));
    }
    if let Some(st) = &r.storm {
        let windows: Vec<String> = st
            .windows
            .iter()
            .filter_map(|w| {
                let l = w.rtt?;
                Some(format!("{} {:.3}", w.name, l.p999_ns as f64 / 1e6))
            })
            .collect();
        s.push((
            "storm",
            format!(
                "{} clients: {} accepted, {} refused, {} failed, {} unresolved; \
                 round-trip p99.9 (ms) {}",
                st.clients,
                st.accepted,
                st.refused + st.goaway_other,
                st.failed_total(),
                st.unresolved,
                windows.join(" · ")
            ),
        ));
    }
    s.push(("errors", counts(&r.errors)));
    if let Some(u) = &r.server {
        s.push((
            "server",
            format!(
                "CPU {:.3} s ({:.0}% of a core), RSS {:.1} MiB at the end",
                u.cpu_ns as f64 / 1e9,
                percent(u.cpu_ns, r.duration_secs),
                u.rss_end_bytes as f64 / (1u64 << 20) as f64
            ),
        ));
    }
    s
}

/// Text made safe for HTML.
fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

fn rows(items: &[(&str, String)]) -> String {
    items
        .iter()
        .map(|(k, v)| format!("<tr><th>{}</th><td>{}</td></tr>\n", esc(k), esc(v)))
        .collect()
}

/// The report's page: parameters, summary, charts, the full table.
pub fn index_html(args: &Args, r: &Report, charts: &[Chart]) -> String {
    let title = format!("tether-load {} -> {}", r.mode, r.addr);
    let mut o = String::new();
    let _ = write!(
        o,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <title>{t}</title>\n<style>\n\
         body {{ font-family: sans-serif; margin: 2em; color: #222; }}\n\
         table {{ border-collapse: collapse; margin-bottom: 1.5em; }}\n\
         th, td {{ text-align: left; padding: 0.2em 1em 0.2em 0; vertical-align: top; }}\n\
         img {{ display: block; max-width: 100%; margin-bottom: 1em; }}\n\
         pre {{ background: #f4f4f4; padding: 1em; overflow-x: auto; }}\n\
         </style>\n</head>\n<body>\n<h1>{t}</h1>\n",
        t = esc(&title)
    );
    let _ = write!(
        o,
        "<h2>Parameters</h2>\n<table>\n{}</table>\n",
        rows(&parameters(args))
    );
    let _ = write!(
        o,
        "<h2>Summary</h2>\n<table>\n{}</table>\n",
        rows(&summary(r))
    );
    o.push_str("<h2>Over time</h2>\n");
    for c in charts {
        let _ = writeln!(
            o,
            "<img src=\"{}\" alt=\"{}\" width=\"900\" height=\"420\">",
            esc(c.file),
            esc(&c.title)
        );
    }
    let _ = write!(
        o,
        "<h2>Full report</h2>\n<pre>{}</pre>\n<p>Also as <a href=\"{JSON_FILE}\">{JSON_FILE}</a> \
         and <a href=\"{TABLE_FILE}\">{TABLE_FILE}</a>.</p>\n</body>\n</html>\n",
        esc(&r.to_table())
    );
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::Mode;
    use crate::charts::Line;

    fn chart(file: &'static str) -> Chart {
        Chart {
            file,
            title: "a <title>".to_string(),
            y_label: "y".to_string(),
            lines: vec![Line {
                name: "l",
                points: vec![(1.0, 1.0), (2.0, 2.0)],
            }],
            marks: vec![],
        }
    }

    #[test]
    fn the_page_shows_parameters_summary_and_every_chart() {
        let args = Args {
            mode: Mode::Storm,
            server_pid: Some(42),
            token: b"secret".to_vec(),
            ..Args::default()
        };
        let r = Report {
            mode: "storm",
            addr: "127.0.0.1:7600".to_string(),
            failure: Some("1 < 2".to_string()),
            storm: Some(StormReport {
                clients: 10,
                accepted: 9,
                refused: 1,
                windows: vec![crate::report::storm::RttWindow {
                    name: "during",
                    secs: 1.0,
                    rtt: Some(Latency {
                        p999_ns: 12_500_000,
                        ..Latency::default()
                    }),
                }],
                ..StormReport::default()
            }),
            ..Report::default()
        };
        let page = index_html(&args, &r, &[chart("a.svg"), chart("b.svg")]);
        assert!(page.starts_with("<!DOCTYPE html>"));
        for needle in [
            "<img src=\"a.svg\" alt=\"a &lt;title&gt;\"",
            "<img src=\"b.svg\"",
            "<th>--storm</th><td>10000 clients</td>",
            "<th>--server-pid</th><td>42</td>",
            "FAILED: 1 &lt; 2",
            "10 clients: 9 accepted, 1 refused, 0 failed, 0 unresolved; round-trip p99.9 (ms) during 12.500",
            "href=\"report.json\"",
        ] {
            assert!(page.contains(needle), "{needle} missing from {page}");
        }
        // Static: no script, nothing from the network; the token is not shown.
        for absent in ["<script", "http://", "https://", "secret"] {
            assert!(!page.contains(absent), "{absent} in {page}");
        }
    }

    #[test]
    fn sources_are_summarised() {
        let args = Args {
            sources: crate::args::parse_sources("127.0.0.1-127.0.0.4").expect("range"),
            ..Args::default()
        };
        let p = parameters(&args);
        assert!(p.contains(&(
            "--sources",
            "4 addresses, 127.0.0.1 .. 127.0.0.4".to_string()
        )));
    }

    #[test]
    fn the_directory_gets_every_file() {
        let dir = std::env::temp_dir().join(format!("tether-load-report-{}", std::process::id()));
        prepare_dir(&dir.join("nested")).expect("create");
        let dir = dir.join("nested");
        let r = Report {
            mode: "idle",
            ..Report::default()
        };
        write_dir(&dir, &Args::default(), &r, &[chart("throughput.svg")]).expect("write");
        for f in [TABLE_FILE, JSON_FILE, INDEX_FILE, "throughput.svg"] {
            let text = fs::read_to_string(dir.join(f)).expect(f);
            assert!(!text.is_empty(), "{f}");
        }
        let json = fs::read_to_string(dir.join(JSON_FILE)).expect("json");
        assert_eq!(json.trim_end(), r.to_json());
        let _ = fs::remove_dir_all(dir.parent().expect("parent"));
    }
}
