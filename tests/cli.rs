//! The command line: startup errors exit 2 and name the flag; `--help` and
//! `--version` exit 0.

mod common;

use std::time::Duration;

use common::{run_to_exit, Server, TempFile};

const EXIT_TIMEOUT: Duration = Duration::from_secs(5);

/// Runs with `args` (plus a port-0 listen address, so a server that wrongly
/// starts takes no fixed port) and expects exit code 2 with `needle` in stderr.
fn expect_usage_error(args: &[&str], needle: &str) {
    let mut full = vec!["--listen", "127.0.0.1:0"];
    full.extend_from_slice(args);
    let (status, stdout, stderr) = run_to_exit(&full, EXIT_TIMEOUT);
    let status = status.unwrap_or_else(|| {
        panic!("tether {args:?} did not exit within {EXIT_TIMEOUT:?} (stdout {stdout:?})")
    });
    assert_eq!(
        status.code(),
        Some(2),
        "tether {args:?}: exit status (stderr {stderr:?})"
    );
    assert!(
        stderr.contains(needle),
        "tether {args:?}: stderr should name {needle:?}, got {stderr:?}"
    );
    assert!(
        !stdout.contains("listening on"),
        "tether {args:?} printed `listening on` before failing"
    );
}

#[test]
fn bad_flag_values_name_the_flag_and_exit_2() {
    let table: &[(&[&str], &str)] = &[
        (&["--heartbeat-ms", "abc"], "heartbeat-ms"),
        (&["--min-heartbeat-ms", "1.5"], "min-heartbeat-ms"),
        (&["--max-heartbeat-ms", ""], "max-heartbeat-ms"),
        (&["--miss", "three"], "miss"),
        (&["--handshake-timeout-ms", "soon"], "handshake-timeout-ms"),
        (&["--linger-ms", "x"], "linger-ms"),
        (&["--max-connections", "many"], "max-connections"),
        (&["--max-frame", "big"], "max-frame"),
        (&["--max-message", "1e6"], "max-message"),
        (&["--max-output", "4MB"], "max-output"),
        (&["--session-ttl-ms", "forever"], "session-ttl-ms"),
        (&["--tick-ms", "fast"], "tick-ms"),
        (&["--app", "bogus"], "app"),
    ];
    for (args, flag) in table {
        expect_usage_error(args, flag);
    }
}

#[test]
fn bad_listen_address_exits_2() {
    let (status, _, stderr) = run_to_exit(&["--listen", "not-an-address"], EXIT_TIMEOUT);
    assert_eq!(status.and_then(|s| s.code()), Some(2), "stderr {stderr:?}");
    assert!(stderr.contains("listen"), "stderr {stderr:?}");
}

#[test]
fn missing_flag_value_exits_2() {
    expect_usage_error(&["--tick-ms"], "tick-ms");
}

#[test]
fn unknown_flag_exits_2() {
    expect_usage_error(&["--no-such-flag"], "no-such-flag");
    expect_usage_error(&["stray-positional"], "stray-positional");
}

#[test]
fn auth_token_file_that_is_missing_or_empty_exits_2() {
    let empty = TempFile::new("empty", b"");
    let blank = TempFile::new("blank", b"\n\n");
    let missing = empty.dir().join("does-not-exist");
    let missing = missing.to_str().expect("utf-8 path");
    for path in [empty.arg(), blank.arg(), missing] {
        expect_usage_error(&["--auth-token-file", path], "");
    }
    // A directory is not a readable token file either.
    let dir = empty.dir().to_str().expect("utf-8 path");
    expect_usage_error(&["--auth-token-file", dir], "");
}

#[test]
fn help_and_version_exit_0() {
    let (status, stdout, stderr) = run_to_exit(&["--help"], EXIT_TIMEOUT);
    assert_eq!(status.and_then(|s| s.code()), Some(0), "--help: {stderr:?}");
    let text = format!("{stdout}{stderr}");
    assert!(
        text.contains("--listen"),
        "--help mentions --listen: {text:?}"
    );
    assert!(
        text.contains("--max-output"),
        "--help mentions --max-output: {text:?}"
    );

    let (status, stdout, stderr) = run_to_exit(&["--version"], EXIT_TIMEOUT);
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(0),
        "--version: {stderr:?}"
    );
    let text = format!("{stdout}{stderr}");
    assert!(
        text.contains(env!("CARGO_PKG_VERSION")),
        "--version prints {}: {text:?}",
        env!("CARGO_PKG_VERSION")
    );
}

#[test]
fn explicit_defaults_start_and_serve() {
    // Every flag given with its documented default value is accepted.
    let server = Server::start(&[
        "--app",
        "echo",
        "--heartbeat-ms",
        "30000",
        "--min-heartbeat-ms",
        "1000",
        "--max-heartbeat-ms",
        "600000",
        "--miss",
        "3",
        "--handshake-timeout-ms",
        "5000",
        "--linger-ms",
        "2000",
        "--max-connections",
        "100000",
        "--max-frame",
        "65535",
        "--max-message",
        "1048576",
        "--max-output",
        "4194304",
        "--session-ttl-ms",
        "60000",
        "--tick-ms",
        "100",
    ]);
    let mut c = server.open(0);
    c.send_message(b"defaults", 65535);
    assert_eq!(c.recv_message(), b"defaults");
}

#[test]
fn a_good_token_file_starts_the_server() {
    let tokens = TempFile::new("tokens", b"s3cret\n");
    let server = Server::start(&["--auth-token-file", tokens.arg()]);
    let mut c = server.connect();
    c.handshake_token(0, b"s3cret");
}

/// The server's stderr for a usage error is exactly `tether: ` and the
/// message naming the flag, also for errors found by `Config::validate`
/// (which names the field; the CLI turns it into the flag).
#[test]
fn usage_errors_print_exactly_one_line_naming_the_flag() {
    let table: &[(&[&str], &str)] = &[
        (&["--miss", "0"], "--miss: must be at least 1"),
        (
            &["--heartbeat-ms", "10"],
            "--heartbeat-ms: 10 is outside [--min-heartbeat-ms 1000, --max-heartbeat-ms 600000]",
        ),
        (
            &["--soft-output=5000000"],
            "--soft-output: 5000000 is above --max-output 4194304",
        ),
        (&["--tick-ms"], "--tick-ms: missing value"),
        (&["--bogus=1"], "--bogus=1: unknown flag (see --help)"),
        (&["--"], "--: unknown flag (see --help)"),
        (&["-hV"], "-hV: unknown flag (see --help)"),
    ];
    for (args, message) in table {
        let (status, stdout, stderr) = run_to_exit(args, EXIT_TIMEOUT);
        assert_eq!(status.and_then(|s| s.code()), Some(2), "tether {args:?}");
        assert_eq!(stderr, format!("tether: {message}\n"), "tether {args:?}");
        assert_eq!(stdout, "", "tether {args:?}");
    }
}

/// Runs `binary` with `args` to its exit; every case here ends at once (a
/// usage error or `--help`), before any connection is made.
fn run_quick<S: AsRef<std::ffi::OsStr>>(
    binary: &str,
    args: impl IntoIterator<Item = S>,
) -> (Option<i32>, String, String) {
    let out = std::process::Command::new(binary)
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run the binary");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The load generator under test.
const TETHER_LOAD: &str = env!("CARGO_BIN_EXE_tether-load");

fn run_load(args: &[&str]) -> (Option<i32>, String, String) {
    run_quick(TETHER_LOAD, args)
}

#[test]
fn load_generator_usage_errors_exit_2_naming_the_flag() {
    let table: &[(&[&str], &str)] = &[
        (
            &["--connections", "x"],
            "--connections: expected a number, got \"x\"",
        ),
        (&["--connections"], "--connections: missing value"),
        (&["--duration", "0"], "--duration: must be above 0"),
        (&["--frob=1"], "unknown flag \"--frob\" (see --help)"),
        (&["sprint"], "unknown mode \"sprint\" (see --help)"),
        (&["echo", "idle"], "a second mode \"idle\""),
    ];
    for (args, message) in table {
        let (code, stdout, stderr) = run_load(args);
        assert_eq!(code, Some(2), "tether-load {args:?}: {stderr:?}");
        assert_eq!(
            stderr,
            format!("tether-load: {message}\n"),
            "tether-load {args:?}"
        );
        assert_eq!(stdout, "", "tether-load {args:?}");
    }
}

#[test]
fn load_generator_help_exits_0() {
    for args in [&["--help"][..], &["idle", "-h"]] {
        let (code, stdout, stderr) = run_load(args);
        assert_eq!(code, Some(0), "tether-load {args:?}: {stderr:?}");
        assert!(stdout.starts_with("tether-load: "), "{stdout:?}");
        assert!(stdout.contains("--connect-concurrency"), "{stdout:?}");
    }
}

/// An argument that is not UTF-8 is a usage error naming the flag, not a
/// panic. (A trailing invalid value makes even a wrong parse exit at once.)
#[test]
fn non_utf8_arguments_exit_2_naming_the_flag() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    let bad = OsStr::from_bytes(b"\xff");
    for (binary, name, args, message) in [
        (
            common::TETHER,
            "tether",
            [
                OsStr::new("--miss"),
                bad,
                OsStr::new("--tick-ms"),
                OsStr::new("0"),
            ],
            "--miss: expected UTF-8 text, got \"\u{fffd}\"",
        ),
        (
            TETHER_LOAD,
            "tether-load",
            [
                OsStr::new("--channel"),
                bad,
                OsStr::new("--duration"),
                OsStr::new("0"),
            ],
            "--channel: expected UTF-8 text, got \"\u{fffd}\"",
        ),
    ] {
        let (code, _, stderr) = run_quick(binary, args);
        assert_eq!(code, Some(2), "{name}: {stderr:?}");
        assert_eq!(stderr, format!("{name}: {message}\n"));
    }
}
