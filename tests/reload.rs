//! SIGHUP with the real binary: the configuration file and the token file
//! read anew without dropping a connection; new connections get the new
//! tokens and limits, open ones stay; a bad file keeps the whole old
//! configuration and says why; the log level follows the file.

mod common;

use std::time::Duration;

use common::{wait_until, Client, Server, TempFile};
use tether::protocol::GoawayCode;

/// How long a reload may take to show in the log.
const RELOAD_TIMEOUT: Duration = Duration::from_secs(10);

/// A server started with `--config` on `config` (the test's flags after it).
fn start(config: &TempFile, flags: &[&str]) -> Server {
    let mut args = vec!["--config", config.arg()];
    args.extend_from_slice(flags);
    Server::start(&args)
}

/// Sends SIGHUP and waits for the `count`-th stderr line containing `needle`.
fn reload_and_wait(server: &Server, needle: &str, count: usize) -> String {
    server.signal(libc::SIGHUP);
    assert!(
        wait_until(RELOAD_TIMEOUT, || server.stderr_lines_with(needle).len()
            >= count),
        "no {needle:?} line after SIGHUP; stderr:\n{}",
        server.stderr_text()
    );
    server.stderr_lines_with(needle)[count - 1].1.clone()
}

/// The configuration the tests start from: info logs (the reload lines), tokens from `tokens`.
fn config_text(tokens: &TempFile, extra: &str) -> String {
    format!(
        "log-level = \"info\"\nauth-token-file = \"{}\"\n{extra}",
        tokens.arg()
    )
}

#[test]
fn sighup_with_1000_connections_drops_none_and_swaps_the_tokens() {
    let tokens = TempFile::new("tokens", b"alpha\nbeta\n");
    let config = TempFile::new("tether.toml", config_text(&tokens, "").as_bytes());
    let server = start(&config, &[]);
    let mut clients: Vec<Client> = (0..1000)
        .map(|i| {
            let mut c = server.connect();
            c.handshake_token(0, if i % 2 == 0 { b"alpha" } else { b"beta" });
            c
        })
        .collect();
    tokens.rewrite(b"beta\ngamma\n");
    config.rewrite(config_text(&tokens, "heartbeat-ms = 20000\n").as_bytes());
    let line = reload_and_wait(&server, "configuration reloaded", 1);
    assert!(
        line.contains("heartbeat-ms 30000 → 20000")
            && line.contains("auth tokens replaced (2 → 2)"),
        "{line}"
    );
    for (i, c) in clients.iter_mut().enumerate() {
        let payload = format!("after reload {i}");
        c.ping(payload.as_bytes());
        c.expect_pong(payload.as_bytes());
    }
    // The new token is accepted and the new heartbeat granted, for new connections.
    let mut fresh = server.connect();
    assert_eq!(fresh.handshake_token(0, b"gamma").heartbeat_ms, 20_000);
    // The removed token is refused for new connections (UNAUTHORIZED, §4.3)...
    let mut refused = server.connect();
    refused.send_hello_token(0, b"alpha");
    refused.expect_goaway(GoawayCode::Unauthorized);
    // ...while the connections opened with it stay.
    clients[0].ping(b"still here");
    clients[0].expect_pong(b"still here");
    assert!(server.stderr_lines_with("closed").is_empty());
}

#[test]
fn a_bad_file_on_sighup_keeps_the_whole_old_configuration() {
    let tokens = TempFile::new("tokens", b"alpha\n");
    let config = TempFile::new("tether.toml", config_text(&tokens, "").as_bytes());
    let server = start(&config, &[]);
    let mut open = server.connect();
    open.handshake_token(0, b"alpha");
    // A wrong type in the file (and the token file changed too): nothing changes.
    tokens.rewrite(b"omega\n");
    config.rewrite(config_text(&tokens, "\nheartbeat-ms = \"fast\"\n").as_bytes());
    let line = reload_and_wait(&server, "keeping the old configuration", 1);
    assert!(
        line.contains(&format!(
            "{}:4: heartbeat-ms: expected a number, got a string",
            config.arg()
        )),
        "{line}"
    );
    let mut c = server.connect();
    assert_eq!(c.handshake_token(0, b"alpha").heartbeat_ms, 30_000);
    // An invalid value, then an unreadable token file: the same.
    config.rewrite(config_text(&tokens, "tick-ms = 0\n").as_bytes());
    let line = reload_and_wait(&server, "keeping the old configuration", 2);
    assert!(line.contains(":3: tick-ms: must be at least 1"), "{line}");
    config.rewrite(config_text(&tokens, "").as_bytes());
    let missing = tokens.path.with_file_name("gone");
    std::fs::rename(&tokens.path, &missing).expect("move the token file away");
    let line = reload_and_wait(&server, "keeping the old configuration", 3);
    assert!(
        line.contains(&format!("--auth-token-file: cannot read {}", tokens.arg())),
        "{line}"
    );
    server.connect().handshake_token(0, b"alpha");
    open.ping(b"old");
    open.expect_pong(b"old");
    // A good file again applies.
    std::fs::rename(&missing, &tokens.path).expect("put the token file back");
    reload_and_wait(&server, "configuration reloaded", 1);
    server.connect().handshake_token(0, b"omega");
}

#[test]
fn what_needs_a_restart_is_logged_and_left_alone() {
    let tokens = TempFile::new("tokens", b"alpha\n");
    let config = TempFile::new("tether.toml", config_text(&tokens, "").as_bytes());
    let server = start(&config, &[]);
    config.rewrite(
        config_text(
            &tokens,
            "tick-ms = 50\nmax-heartbeat-ms = 40000\nmetrics = \"127.0.0.1:0\"\n",
        )
        .as_bytes(),
    );
    let line = reload_and_wait(&server, "configuration reloaded", 1);
    assert!(line.contains("max-heartbeat-ms 600000 → 40000"), "{line}");
    assert!(!line.contains("tick-ms"), "{line}");
    for key in ["tick-ms", "metrics"] {
        assert_eq!(
            server
                .stderr_lines_with(&format!("{key} changed: needs a restart"))
                .len(),
            1,
            "{key}"
        );
    }
    // The new heartbeat cap for a new connection, still on the same loop.
    let mut c = server.connect();
    assert_eq!(c.handshake_token(60_000, b"alpha").heartbeat_ms, 40_000);
    c.send_message(b"echo?", 65535);
    assert_eq!(c.recv_message(), b"echo?");
}

#[test]
fn the_log_level_follows_the_file() {
    let tokens = TempFile::new("tokens", b"alpha\n");
    let config = TempFile::new("tether.toml", config_text(&tokens, "").as_bytes());
    let server = start(&config, &[]);
    server.connect().handshake_token(0, b"alpha");
    assert!(server.stderr_lines_with("accepted from").is_empty());
    config.rewrite(
        format!(
            "auth-token-file = \"{}\"\nlog-level = \"debug\"\n",
            tokens.arg()
        )
        .as_bytes(),
    );
    reload_and_wait(&server, "log-level \"info\" → \"debug\"", 1);
    server.connect().handshake_token(0, b"alpha");
    assert!(
        wait_until(RELOAD_TIMEOUT, || !server
            .stderr_lines_with("accepted from")
            .is_empty()),
        "no debug line after the reload to debug"
    );
}
