//! The C example, built and run for real: `examples/c/echo_upper.c` is
//! compiled with `cc` against `libtether.a` and `include/tether.h`, started
//! with short timers, and driven over loopback by the Rust clients.
//!
//! `cargo test` builds the crate as an rlib for the tests, not necessarily
//! the static library, so this test runs `cargo build --lib` itself into its
//! own target directory (`<target>/c-example`, so it never waits on the lock
//! of the build running it). It is skipped, loudly, only when no C compiler
//! is installed.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{fast_heartbeat_with, root, target_dir, Server};
use tether::client::{Client, ClientConfig, ClientEvent};
use tether::protocol::GoawayCode;

/// Whether a C compiler is on the PATH.
fn have_cc() -> bool {
    Command::new("cc")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Builds `libtether.a` (debug) into its own target dir and compiles the C
/// example against it; returns the executable.
fn build_example() -> PathBuf {
    let dir = target_dir().join("c-example");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let out = Command::new(cargo)
        .args(["build", "--lib", "--quiet", "--manifest-path"])
        .arg(root().join("Cargo.toml"))
        .env("CARGO_TARGET_DIR", &dir)
        .output()
        .expect("run cargo build --lib");
    assert!(
        out.status.success(),
        "cargo build --lib failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lib = dir.join("debug/libtether.a");
    assert!(lib.exists(), "{} was not built", lib.display());

    let exe = dir.join("echo_upper");
    let out = Command::new("cc")
        .args(["-std=c11", "-O1", "-g", "-Wall", "-Wextra", "-Werror", "-I"])
        .arg(root().join("include"))
        .arg("-o")
        .arg(&exe)
        .arg(root().join("examples/c/echo_upper.c"))
        .arg(&lib)
        .args(["-lpthread", "-ldl", "-lm", "-lgcc_s", "-lrt", "-lutil"])
        .output()
        .expect("run cc");
    assert!(
        out.status.success(),
        "cc failed to build examples/c/echo_upper.c:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    exe
}

/// Starts the C program on a free port with timers short enough to see
/// eviction quickly (idle timeout = 100 ms × 2) and a 1 s handshake timeout
/// and linger.
fn start_example(exe: &Path) -> Server {
    let mut command = Command::new(exe);
    command
        .args(["--listen", "127.0.0.1:0"])
        .args(fast_heartbeat_with(&[
            ("--handshake-timeout-ms", "1000"),
            ("--linger-ms", "1000"),
        ]));
    Server::spawn(command)
}

fn client_config() -> ClientConfig {
    ClientConfig {
        heartbeat_ms: 100,
        reconnect: false,
        ..ClientConfig::default()
    }
}

#[test]
fn c_host_nests_tether_in_its_poll_loop() {
    if !have_cc() {
        eprintln!("SKIPPED c_example: no C compiler (`cc`) on the PATH; install gcc to run it");
        return;
    }
    let exe = build_example();
    let mut service = start_example(&exe);

    // Handshake and uppercased echoes, including a message split across frames.
    let mut client = Client::connect(service.addr, client_config()).expect("handshake");
    client.send(b"hello from rust").expect("send");
    let reply = client.recv_timeout(Duration::from_secs(5)).expect("recv");
    assert_eq!(reply.as_deref(), Some(&b"HELLO FROM RUST"[..]));
    let big: Vec<u8> = (0..150_000u32)
        .map(|i| b"abcxyz019 "[i as usize % 10])
        .collect();
    client.send(&big).expect("send big");
    let reply = client
        .recv_timeout(Duration::from_secs(5))
        .expect("recv big");
    assert_eq!(reply.as_deref(), Some(&big.to_ascii_uppercase()[..]));

    // Heartbeats keep a quiet client alive well past the 200 ms idle timeout.
    assert_eq!(
        client
            .recv_timeout(Duration::from_millis(1200))
            .expect("quiet"),
        None
    );
    assert!(client.is_connected(), "evicted despite heartbeats");
    client.send(b"still here").expect("send");
    let reply = client.recv_timeout(Duration::from_secs(5)).expect("recv");
    assert_eq!(reply.as_deref(), Some(&b"STILL HERE"[..]));

    // (The blocking client heartbeats only inside its calls: close it before
    // leaving it alone longer than the idle timeout.)
    client.close().expect("close");

    // A raw socket that goes quiet after its handshake is evicted.
    let mut idle = common::Client::connect(service.addr);
    let welcome = idle.handshake(100);
    assert_eq!(welcome.idle_timeout_ms, 200);
    idle.expect_goaway(GoawayCode::IdleTimeout);

    // SIGTERM: GOAWAY SHUTTING_DOWN to everyone, then exit 0.
    let slow = ClientConfig {
        heartbeat_ms: 5_000,
        ..client_config()
    };
    let mut client = Client::connect(service.addr, slow).expect("handshake");
    let mut raw = common::Client::connect(service.addr);
    raw.handshake(5_000);
    service.signal(libc::SIGTERM);
    raw.expect_goaway(GoawayCode::ShuttingDown);
    assert!(client.recv_timeout(Duration::from_secs(5)).is_err());
    let goaway = client.events().find_map(|e| match e {
        ClientEvent::Goaway(g) => Some(g.code),
        _ => None,
    });
    assert_eq!(goaway, Some(GoawayCode::ShuttingDown));
    let status = service.wait_exit(Duration::from_secs(5));
    let log = service.stderr_text();
    assert!(
        status.is_some_and(|s| s.success()),
        "echo_upper exit: {status:?}\n{log}"
    );
    // Its own timerfd ticked inside the same poll loop.
    assert!(log.contains("tick 1:"), "no timer tick logged:\n{log}");
    assert!(
        log.contains("sent GOAWAY 8"),
        "idle eviction not reported:\n{log}"
    );
    assert!(
        log.contains("peer sent GOAWAY 0"),
        "polite close not reported:\n{log}"
    );
}
