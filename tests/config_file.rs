//! `--config FILE` and `--check-config FILE` with the real binary: file values
//! take effect (seen in WELCOME), flags override them, errors name the file,
//! line and key and exit 2, and the printed configuration reads back the same.

mod common;

use std::net::TcpListener;
use std::time::Duration;

use common::{run_to_exit, Server, TempFile};

const EXIT_TIMEOUT: Duration = Duration::from_secs(5);

/// Heartbeat bounds a WELCOME shows: granted 700 ms for 0, at most 900 ms.
const BOUNDS: &str = "\
# heartbeat bounds, seen in WELCOME
min-heartbeat-ms = 200
heartbeat-ms = 700
max-heartbeat-ms = 900
miss = 2
";

#[test]
fn file_values_take_effect_and_flags_override_them() {
    let file = TempFile::new("tether.toml", BOUNDS.as_bytes());
    let server = Server::start(&["--config", file.arg()]);
    assert_eq!(server.welcome(0).heartbeat_ms, 700);
    let capped = server.welcome(5_000);
    assert_eq!((capped.heartbeat_ms, capped.idle_timeout_ms), (900, 1_800));
    drop(server);
    let server = Server::start(&["--heartbeat-ms", "800", "--config", file.arg()]);
    assert_eq!(server.welcome(0).heartbeat_ms, 800);
    assert_eq!(server.welcome(5_000).heartbeat_ms, 900);
}

/// Runs `tether ARGS` expecting exit 2 and exactly one stderr line, `tether: ` and `message`.
fn expect_error(args: &[&str], message: &str) {
    let (status, stdout, stderr) = run_to_exit(args, EXIT_TIMEOUT);
    assert_eq!(status.and_then(|s| s.code()), Some(2), "{args:?}: {stderr}");
    assert_eq!(stderr, format!("tether: {message}\n"), "{args:?}");
    assert!(!stdout.contains("listening on"), "{args:?}: {stdout}");
}

#[test]
fn file_errors_name_file_line_and_key_and_exit_2() {
    let cases: &[(&str, &str)] = &[
        (
            "miss = 2\n\nbogus = 1\n",
            ":3: bogus: unknown key (the keys are the flags of --help without --)",
        ),
        (
            "heartbeat-ms = \"30000\"\n",
            ":1: heartbeat-ms: expected a number, got a string",
        ),
        (
            "tls13-only = \"yes\"\n",
            ":1: tls13-only: expected true or false, got a string",
        ),
        (
            "max-frame = 70000\n",
            ":1: max-frame: expected a non-negative whole number in range, got \"70000\"",
        ),
        (
            "listen = \"nowhere\"\n",
            ":1: listen: expected IP:PORT, got \"nowhere\"",
        ),
        ("\n\nmiss = 0\n", ":3: miss: must be at least 1"),
        (
            "log-level = \"loud\"\n",
            ":1: log-level: expected error, warn, info, debug or trace, got \"loud\"",
        ),
    ];
    for (text, message) in cases {
        let file = TempFile::new("tether.toml", text.as_bytes());
        let expected = format!("{}{message}", file.arg());
        expect_error(
            &["--listen", "127.0.0.1:0", "--config", file.arg()],
            &expected,
        );
        expect_error(&["--check-config", file.arg()], &expected);
    }
    // Not TOML at all: the parser's message, with the line.
    let file = TempFile::new("tether.toml", b"miss = 2\nmiss 3\n");
    let (status, _, stderr) = run_to_exit(&["--check-config", file.arg()], EXIT_TIMEOUT);
    assert_eq!(status.and_then(|s| s.code()), Some(2));
    assert!(
        stderr.starts_with(&format!("tether: {}:2: ", file.arg())),
        "{stderr}"
    );
    expect_error(
        &["--config", "/nonexistent/tether.toml"],
        "/nonexistent/tether.toml: cannot read the config file: No such file or directory (os error 2)",
    );
    // A flag on the command line is named as a flag.
    let file = TempFile::new("tether.toml", BOUNDS.as_bytes());
    expect_error(
        &["--check-config", file.arg(), "--heartbeat-ms", "100"],
        "--heartbeat-ms: 100 is outside [min-heartbeat-ms 200, max-heartbeat-ms 900]",
    );
}

#[test]
fn check_config_prints_every_key_binds_nothing_and_reads_back_the_same() {
    // A port already taken: checking a file that names it must not try to bind it.
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr");
    let tokens = TempFile::new("tokens", b"s3cret\n");
    let text = format!(
        "{BOUNDS}listen = \"{addr}\"\nmetrics = \"{addr}\"\nauth-token-file = \"{}\"\n\
         log-level = \"debug\"\nrate-limit = 50\n",
        tokens.arg()
    );
    let file = TempFile::new("tether.toml", text.as_bytes());
    let (status, printed, stderr) =
        run_to_exit(&["--check-config", file.arg(), "--miss", "5"], EXIT_TIMEOUT);
    assert_eq!(status.and_then(|s| s.code()), Some(0), "{stderr}");
    for line in [
        "heartbeat-ms = 700\n",
        "miss = 5\n",
        "rate-limit = 50\n",
        "log-level = \"debug\"\n",
        "app = \"pubsub\"\n",
        "tls-listen = []\n",
        "# tls-cert: not set\n",
        &format!("listen = \"{addr}\"\n"),
    ] {
        assert!(printed.contains(line), "{line:?} missing from:\n{printed}");
    }
    // Every flag of --help but --config/--check-config/--help/--version is a key.
    let (_, usage, _) = run_to_exit(&["--help"], EXIT_TIMEOUT);
    for line in usage.lines().filter(|l| l.starts_with("  --")) {
        let flag = line.split_whitespace().next().expect("flag");
        if flag == "--config" || flag == "--check-config" {
            continue;
        }
        let key = &flag[2..];
        assert!(
            printed.contains(&format!("\n{key} = "))
                || printed.contains(&format!("\n# {key}: not set")),
            "--check-config output lacks {key}:\n{printed}"
        );
    }
    // Fed back as a config file, it gives the same configuration.
    let again = TempFile::new("again.toml", printed.as_bytes());
    let (status, reprinted, stderr) = run_to_exit(&["--check-config", again.arg()], EXIT_TIMEOUT);
    assert_eq!(status.and_then(|s| s.code()), Some(0), "{stderr}");
    assert_eq!(reprinted, printed);
    // The token file must load.
    drop(tokens);
    let (status, _, stderr) = run_to_exit(&["--check-config", again.arg()], EXIT_TIMEOUT);
    assert_eq!(status.and_then(|s| s.code()), Some(2));
    assert!(
        stderr.contains("--auth-token-file: cannot read"),
        "{stderr}"
    );
}

#[test]
fn help_and_version_still_work_with_a_config_file() {
    let file = TempFile::new("tether.toml", b"bogus = 1\n");
    let (status, usage, _) = run_to_exit(&["--help", "--config", file.arg()], EXIT_TIMEOUT);
    assert_eq!(status.and_then(|s| s.code()), Some(0));
    assert!(usage.contains("--config FILE"));
    let (status, version, _) = run_to_exit(&["--config", file.arg(), "-V"], EXIT_TIMEOUT);
    assert_eq!(status.and_then(|s| s.code()), Some(0));
    assert!(version.starts_with("tether "));
}
