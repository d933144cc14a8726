//! Running under systemd, with the real binary and real sockets standing in
//! for the service manager: `Type=notify` readiness, stop and reload
//! notifications and watchdog pings on a `NOTIFY_SOCKET` datagram socket,
//! and socket activation (listening sockets passed as fd 3 onwards).

mod common;

use std::fs::File;
use std::net::TcpListener;
use std::os::fd::AsRawFd;
use std::time::Duration;

use common::tls::{client_config, path_arg, tls_connect, TestPki};
use common::{
    notify_field, run_command_to_exit, socket_activated, tether_command,
    tether_command_without_listen, NotifySocket, Server,
};

/// A server with `NOTIFY_SOCKET` (and `env`) set, started and announced.
fn notified_server(notify: &NotifySocket, env: &[(&str, &str)]) -> Server {
    let mut command = tether_command(&[]);
    command.env("NOTIFY_SOCKET", &notify.env_value);
    for (key, value) in env {
        command.env(key, value);
    }
    Server::spawn(command)
}

#[test]
fn ready_after_listening_then_stopping_on_sigterm() {
    let notify = NotifySocket::bind();
    let mut server = notified_server(&notify, &[]);
    // Server::spawn returned after reading the `listening on` line; READY
    // carries the address it printed, so it was sent after the bind.
    let ready = notify.expect("READY=1");
    assert_eq!(
        notify_field(&ready, "STATUS"),
        Some(format!("listening on {}; 0 connections", server.addr).as_str()),
        "{ready:?}"
    );
    let _client = server.open(0);
    server.signal(libc::SIGTERM);
    let stopping = notify.expect("STOPPING=1");
    assert!(
        notify_field(&stopping, "STATUS").is_some_and(|s| s.starts_with("stopping")),
        "{stopping:?}"
    );
    drop(_client);
    server.expect_clean_exit("SIGTERM");
}

#[test]
fn an_abstract_notify_socket_works_too() {
    let notify = NotifySocket::bind_abstract();
    let _server = notified_server(&notify, &[]);
    notify.expect("READY=1");
}

#[test]
fn sighup_sends_reloading_then_ready() {
    let notify = NotifySocket::bind();
    let server = notified_server(&notify, &[]);
    notify.expect("READY=1");
    server.signal(libc::SIGHUP);
    let reloading = notify.expect("RELOADING=1");
    let usec: u64 = notify_field(&reloading, "MONOTONIC_USEC")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no MONOTONIC_USEC in {reloading:?}"));
    assert!(usec > 0);
    notify.expect("READY=1");
    // Still serving.
    server.open(0).sync();
}

#[test]
fn watchdog_pings_at_half_the_timeout_when_asked() {
    let notify = NotifySocket::bind();
    let server = notified_server(&notify, &[("WATCHDOG_USEC", "200000")]);
    notify.expect("READY=1");
    // One every 100 ms; over 1.5 s at least a few, however busy the machine.
    let pings = notify
        .collect_for(Duration::from_millis(1500))
        .into_iter()
        .filter(|m| m.lines().any(|l| l == "WATCHDOG=1"))
        .count();
    assert!(
        pings >= 4,
        "{pings} WATCHDOG=1 in 1.5 s at a 100 ms interval"
    );
    assert!(
        pings <= 20,
        "{pings} WATCHDOG=1 in 1.5 s: more than asked for"
    );
    // A loop that does not turn sends none (at most one already in flight),
    // and pings again once it runs.
    server.signal(libc::SIGSTOP);
    let stopped = notify.collect_for(Duration::from_millis(600));
    server.signal(libc::SIGCONT);
    assert!(
        stopped.len() <= 1,
        "pings from a stopped process: {stopped:?}"
    );
    notify.expect("WATCHDOG=1");
}

#[test]
fn no_watchdog_pings_unless_asked_or_for_another_pid() {
    for env in [
        &[][..],
        &[("WATCHDOG_USEC", "200000"), ("WATCHDOG_PID", "1")][..],
    ] {
        let notify = NotifySocket::bind();
        let _server = notified_server(&notify, env);
        notify.expect("READY=1");
        let rest = notify.collect_for(Duration::from_millis(700));
        assert!(
            rest.iter().all(|m| !m.contains("WATCHDOG=1")),
            "{env:?}: {rest:?}"
        );
    }
}

#[test]
fn socket_activated_listener_serves_a_handshake() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().unwrap();
    let notify = NotifySocket::bind();
    let mut command = tether_command_without_listen(&[]);
    command.env("NOTIFY_SOCKET", &notify.env_value);
    let server = Server::spawn(socket_activated(&command, &[listener.as_raw_fd()], None));
    drop(listener); // the server holds its own copy now
    assert_eq!(
        server.addr, addr,
        "the `listening on` line names the inherited socket"
    );
    // The default --listen is not bound besides it.
    let ready = notify.expect("READY=1");
    assert_eq!(
        notify_field(&ready, "STATUS"),
        Some(format!("listening on {addr}; 0 connections").as_str())
    );
    let mut client = server.open(0);
    client.sync();
}

#[test]
fn socket_activation_with_an_explicit_listen_and_a_named_tls_socket() {
    let pki = TestPki::new();
    let plain = TcpListener::bind("127.0.0.1:0").expect("bind");
    let tls = TcpListener::bind("127.0.0.1:0").expect("bind");
    let (plain_addr, tls_addr) = (plain.local_addr().unwrap(), tls.local_addr().unwrap());
    let cert = path_arg(&pki.main.server_cert);
    let key = path_arg(&pki.main.server_key);
    let notify = NotifySocket::bind();
    let mut command = tether_command_without_listen(&[
        "--listen",
        "127.0.0.1:0",
        "--tls-cert",
        &cert,
        "--tls-key",
        &key,
    ]);
    command.env("NOTIFY_SOCKET", &notify.env_value);
    let fds = [plain.as_raw_fd(), tls.as_raw_fd()];
    let server = Server::spawn(socket_activated(&command, &fds, Some("web:tls")));
    drop((plain, tls));
    let ready = notify.expect("READY=1");
    let status = notify_field(&ready, "STATUS").unwrap_or_default();
    // Plain ones first (the inherited one, then --listen), then TLS.
    let listed: Vec<&str> = status
        .trim_start_matches("listening on ")
        .split("; ")
        .next()
        .unwrap_or_default()
        .split(", ")
        .collect();
    assert_eq!(listed.len(), 3, "{status:?}");
    assert_eq!(listed[0], plain_addr.to_string());
    assert_eq!(listed[2], format!("{tls_addr} tls"));
    assert_eq!(server.addr, plain_addr);
    server.open(0).sync();
    let explicit: std::net::SocketAddr = listed[1].parse().expect("the --listen address");
    common::Client::connect(explicit).handshake(0);
    let mut over_tls = tls_connect(tls_addr, client_config(&pki.main, None));
    over_tls.handshake(0);
}

#[test]
fn a_descriptor_that_is_not_a_socket_is_refused_with_exit_2() {
    let file = File::open("/dev/null").expect("open /dev/null");
    let command = tether_command_without_listen(&[]);
    let (status, _, stderr) = run_command_to_exit(
        socket_activated(&command, &[file.as_raw_fd()], None),
        Duration::from_secs(10),
    );
    assert_eq!(status.and_then(|s| s.code()), Some(2), "stderr: {stderr}");
    assert!(
        stderr.contains("socket activation: fd 3 (unknown): not a socket"),
        "{stderr}"
    );
}

#[test]
fn a_udp_socket_or_a_tls_socket_without_a_certificate_is_refused() {
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind udp");
    let command = tether_command_without_listen(&[]);
    let (status, _, stderr) = run_command_to_exit(
        socket_activated(&command, &[udp.as_raw_fd()], None),
        Duration::from_secs(10),
    );
    assert_eq!(status.and_then(|s| s.code()), Some(2), "stderr: {stderr}");
    assert!(
        stderr.contains("fd 3 (unknown): not a stream socket"),
        "{stderr}"
    );

    let tcp = TcpListener::bind("127.0.0.1:0").expect("bind");
    let (status, _, stderr) = run_command_to_exit(
        socket_activated(&command, &[tcp.as_raw_fd()], Some("tls")),
        Duration::from_secs(10),
    );
    assert_eq!(status.and_then(|s| s.code()), Some(2), "stderr: {stderr}");
    assert!(
        stderr.contains("--tls-cert: needed by an inherited TLS socket"),
        "{stderr}"
    );
}

#[test]
fn listen_fds_for_another_process_are_left_alone() {
    let mut command = tether_command(&[]);
    command.env("LISTEN_PID", "1").env("LISTEN_FDS", "1");
    let server = Server::spawn(command);
    server.open(0).sync();
}
