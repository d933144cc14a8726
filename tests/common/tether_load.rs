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
