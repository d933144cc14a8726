//! Runs of the `tether-load` binary and the numbers read from its `--json`
//! report.

use std::process::{Command, Stdio};

/// The `tether-load` binary Cargo built for these tests.
pub const TETHER_LOAD: &str = env!("CARGO_BIN_EXE_tether-load");

/// Runs `tether-load ARGS` to its end: exit code, stdout, stderr.
pub fn run_tether_load(args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(TETHER_LOAD)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run tether-load");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The text after `"name":` in `json` (the first occurrence), up to its end.
pub fn json_after<'a>(json: &'a str, name: &str) -> &'a str {
    json.split_once(&format!("\"{name}\":"))
        .map(|(_, rest)| rest)
        .unwrap_or_else(|| panic!("no {name} in {json}"))
}

/// The count after `"name":` in `json` (the first occurrence).
pub fn json_count(json: &str, name: &str) -> u64 {
    let digits: String = json_after(json, name)
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits
        .parse()
        .unwrap_or_else(|_| panic!("{name} is not a count in {json}"))
}

/// Checks that `path` is a drawn chart: a well-formed SVG document (parsed
/// as XML) with at least one line of more than two points. Grid lines, the
/// legend's samples and marks are two-point polylines, so a chart whose
/// series were all empty fails.
pub fn assert_drawn_svg(path: &std::path::Path) {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let doc = roxmltree::Document::parse(&text)
        .unwrap_or_else(|e| panic!("{} is not well-formed XML: {e}", path.display()));
    assert_eq!(
        doc.root_element().tag_name().name(),
        "svg",
        "{}",
        path.display()
    );
    let longest = doc
        .descendants()
        .filter(|n| n.has_tag_name("polyline"))
        .filter_map(|n| n.attribute("points"))
        .map(|p| p.split_whitespace().count())
        .max()
        .unwrap_or(0);
    assert!(
        longest > 2,
        "{}: no drawn line (longest has {longest} points)",
        path.display()
    );
}
