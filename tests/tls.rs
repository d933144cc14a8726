//! TLS end to end, against the real binary (`--tls-listen`, `--tls-cert`,
//! `--tls-key`, `--tls-client-ca`, `--tls13-only`, `--listen none`, SIGHUP
//! reload), with certificates made at test time: echo over TLS, certificate
//! failures as the client reports them, mutual TLS, the wrong protocol on
//! either port, a stalled handshake, graceful stop, reload, and tether-load
//! in every mode. Every server's descriptors must come back.

mod common;

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::tls::{client_config, client_tls, path_arg, tls_connect, CaFiles, TestPki, TlsStream};
use common::{pattern, wait_until, Client, Server};
use tether::client::{Client as LibClient, ClientConfig, ClientTls};
use tether::protocol::{decode_frame, FrameType, Goaway, GoawayCode, Status};

/// `tether` with the echo app, a plaintext listener and a TLS listener
/// serving `pki.main`'s server certificate, plus `extra`.
fn start(pki: &TestPki, extra: &[&str]) -> Server {
    let mut args = TestPki::server_args(&pki.main);
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Server::start(&args)
}

fn tls_addr(server: &Server) -> SocketAddr {
    server.tls_addr.expect("the TLS listener's address")
}

/// A raw client over TLS, trusting `trust`, that has done the handshake.
fn open_tls(server: &Server, trust: &CaFiles) -> Client<TlsStream> {
    let mut c = tls_connect(tls_addr(server), client_config(trust, None));
    c.handshake(0);
    c
}

/// The library client's configuration over `tls`, without reconnects.
fn lib_config(tls: ClientTls) -> ClientConfig {
    ClientConfig {
        tls: Some(tls),
        reconnect: false,
        ..ClientConfig::default()
    }
}

/// The library client's connect error, which must be a TLS one.
fn tls_connect_error(addr: SocketAddr, tls: ClientTls) -> io::Error {
    let e = LibClient::connect(addr, lib_config(tls)).expect_err("the TLS connect must fail");
    assert!(e.to_string().contains("TLS"), "not reported as TLS: {e}");
    e
}

/// Sends one message with the library client and expects its echo.
fn lib_echo(client: &mut LibClient, message: &[u8]) {
    client.send(message).expect("send");
    let echo = client
        .recv_timeout(Duration::from_secs(10))
        .expect("recv")
        .expect("echo within 10 s");
    assert!(echo == message, "echo of {} bytes differs", message.len());
}

/// Waits for the server to hold no more descriptors than `baseline`.
fn assert_fds_back(server: &Server, baseline: usize) {
    let now = server.wait_fd_count(baseline, Duration::from_secs(5));
    assert!(now <= baseline, "server holds {now} fds, {baseline} before");
}

#[test]
fn echo_over_tls_empty_one_byte_and_a_fragmented_mebibyte_with_pings() {
    let pki = TestPki::new();
    let server = start(&pki, &[]);
    let baseline = server.settled_fd_count();
    let mut c = open_tls(&server, &pki.main);
    c.send_message(b"", 65535);
    let f = c.recv_frame();
    assert_eq!(
        (f.kind, f.more, f.payload.len()),
        (FrameType::Data, false, 0)
    );
    c.send_message(b"x", 65535);
    assert_eq!(c.recv_message(), b"x");
    c.echo_fragmented_with_pings(1 << 20, 16 * 1024);
    // Our orderly close over TLS: GOAWAY NORMAL, close_notify, FIN; the
    // server's answer is its close_notify, then its FIN.
    c.goaway_normal();
    c.close_notify_and_fin();
    c.expect_clean_eof();
    c.expect_fin();
    drop(c);

    // The library client too, verifying the IP address this time.
    let tls = client_tls(&pki.main, None, "127.0.0.1");
    let mut client = LibClient::connect(tls_addr(&server), lib_config(tls)).expect("connect");
    for len in [0, 1, 1 << 20] {
        lib_echo(&mut client, &pattern(len, len as u32));
    }
    client.close().expect("close");
    assert_fds_back(&server, baseline);
}

#[test]
fn untrusted_ca_fails_on_the_client_with_a_certificate_error() {
    let pki = TestPki::new();
    let server = start(&pki, &[]);
    let e = tls_connect_error(tls_addr(&server), client_tls(&pki.other, None, "localhost"));
    let text = e.to_string();
    assert!(text.starts_with("TLS certificate problem: "), "{text}");
    assert!(text.contains("UnknownIssuer"), "{text}");
}

#[test]
fn wrong_server_name_fails_on_the_client_with_a_certificate_error() {
    let pki = TestPki::new();
    let server = start(&pki, &[]);
    let e = tls_connect_error(
        tls_addr(&server),
        client_tls(&pki.main, None, "wrong.example"),
    );
    let text = e.to_string();
    assert!(text.starts_with("TLS certificate problem: "), "{text}");
    assert!(text.contains("not valid for name"), "{text}");
}

#[test]
fn mutual_tls_with_a_good_a_missing_and_a_wrongly_signed_client_certificate() {
    let pki = TestPki::new();
    let client_ca = path_arg(&pki.main.ca);
    let server = start(&pki, &["--tls-client-ca", &client_ca]);
    let baseline = server.settled_fd_count();
    let addr = tls_addr(&server);

    let good = client_tls(&pki.main, Some(&pki.main), "localhost");
    let mut client = LibClient::connect(addr, lib_config(good)).expect("good client cert");
    lib_echo(&mut client, b"mutual");
    client.close().expect("close");
    let mut raw = tls_connect(addr, client_config(&pki.main, Some(&pki.main)));
    raw.handshake(0);
    raw.sync();
    drop(raw);

    // No certificate, or one from a CA the server does not trust: the TLS
    // handshake fails and the client says it was TLS.
    let missing = tls_connect_error(addr, client_tls(&pki.main, None, "localhost"));
    let wrong = tls_connect_error(addr, client_tls(&pki.main, Some(&pki.other), "localhost"));
    eprintln!("missing: {missing}\nwrongly signed: {wrong}");
    assert_fds_back(&server, baseline);
}

#[test]
fn plaintext_client_on_the_tls_port_gets_a_clean_close() {
    let pki = TestPki::new();
    let server = start(&pki, &[]);
    let baseline = server.settled_fd_count();
    let mut c = Client::connect(tls_addr(&server));
    c.send_hello(0);
    // Whatever comes (a GOAWAY PROTOCOL_ERROR in the clear, a TLS alert, or
    // nothing), the stream must end with a clean EOF, not a hang or a reset.
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match c.stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => panic!("expected a clean close after {got:?}, got {e}"),
        }
    }
    // The server recognises the frame magic and says, in the clear, what is wrong.
    assert_eq!(
        got.first(),
        Some(&0xA5),
        "expected a plaintext GOAWAY, got {got:?}"
    );
    match decode_frame(&got, 65535) {
        Ok(Status::Complete((f, _))) => {
            assert_eq!(f.kind, FrameType::Goaway);
            let g = Goaway::decode(&f.payload).expect("GOAWAY");
            assert_eq!(g.code, GoawayCode::ProtocolError);
            assert!(g.reason.contains("TLS"), "reason: {:?}", g.reason);
        }
        other => panic!("undecodable answer {got:?}: {other:?}"),
    }
    drop(c);
    assert_fds_back(&server, baseline);
}

#[test]
fn tls_client_on_the_plaintext_port_fails_cleanly() {
    let pki = TestPki::new();
    let server = start(&pki, &[]);
    let e = tls_connect_error(server.addr, client_tls(&pki.main, None, "localhost"));
    assert_ne!(e.kind(), io::ErrorKind::TimedOut, "{e}");
}

#[test]
fn a_stalled_tls_handshake_is_closed_at_the_handshake_timeout() {
    let pki = TestPki::new();
    let server = start(&pki, &["--handshake-timeout-ms", "300"]);
    let baseline = server.settled_fd_count();
    let mut hello = Vec::new();
    let name = tether::tls::server_name("localhost").expect("name");
    rustls::ClientConnection::new(client_config(&pki.main, None), name)
        .expect("client connection")
        .write_tls(&mut hello)
        .expect("ClientHello");
    let mut sock = TcpStream::connect(tls_addr(&server)).expect("connect");
    common::set_test_timeouts(&sock);
    sock.write_all(&hello[..hello.len() / 2])
        .expect("half a ClientHello");
    let sent = Instant::now();
    let mut buf = [0u8; 1024];
    let closed = loop {
        match sock.read(&mut buf) {
            Ok(0) => break "EOF",
            Ok(_) => {} // an alert, perhaps
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => break "reset",
            Err(e) => panic!("the stalled handshake was not closed: {e}"),
        }
    };
    let after = sent.elapsed();
    assert!(
        after >= Duration::from_millis(250),
        "closed ({closed}) after {after:?}, before the 300 ms handshake timeout"
    );
    drop(sock);
    assert_fds_back(&server, baseline);
}

#[test]
fn sigterm_with_100_tls_connections_sends_goaway_then_close_notify_then_eof() {
    let pki = TestPki::new();
    let mut server = start(&pki, &[]);
    let mut clients: Vec<Client<TlsStream>> =
        (0..100).map(|_| open_tls(&server, &pki.main)).collect();
    for (i, c) in clients.iter_mut().enumerate() {
        c.ping(&(i as u32).to_be_bytes());
        c.expect_pong(&(i as u32).to_be_bytes());
    }
    server.signal(libc::SIGTERM);
    for c in clients.iter_mut() {
        // GOAWAY over TLS, then the server's close_notify (a clean end of
        // the TLS stream), then its FIN.
        c.expect_goaway(GoawayCode::ShuttingDown);
        c.expect_fin();
    }
    drop(clients);
    server.expect_clean_exit("SIGTERM with every peer gone");
}

#[test]
fn sighup_reloads_the_certificate_and_open_connections_stay() {
    let pki = TestPki::new();
    let server = start(&pki, &[]);
    let baseline = server.settled_fd_count();
    let addr = tls_addr(&server);
    let mut clients: Vec<Client<TlsStream>> =
        (0..100).map(|_| open_tls(&server, &pki.main)).collect();

    // The files the server was started with now hold the other CA's
    // certificate and key.
    std::fs::copy(&pki.other.server_cert, &pki.main.server_cert).expect("replace cert");
    std::fs::copy(&pki.other.server_key, &pki.main.server_key).expect("replace key");
    server.signal(libc::SIGHUP);
    let trusts_new =
        || LibClient::connect(addr, lib_config(client_tls(&pki.other, None, "localhost")));
    assert!(
        wait_until(Duration::from_secs(10), || trusts_new().is_ok()),
        "no client trusting only the new CA got in after SIGHUP; stderr:\n{}",
        server.stderr_text()
    );
    let mut fresh = trusts_new().expect("the new certificate");
    lib_echo(&mut fresh, b"new certificate");
    fresh.close().expect("close");

    // The 100 opened under the old certificate are still there and echo.
    for (i, c) in clients.iter_mut().enumerate() {
        let message = pattern(100 + i, i as u32);
        c.send_message(&message, 65535);
        assert_eq!(c.recv_message(), message, "client {i} after the reload");
    }
    // A client trusting only the old CA is refused now.
    let e = tls_connect_error(addr, client_tls(&pki.main, None, "localhost"));
    assert!(
        e.to_string().starts_with("TLS certificate problem: "),
        "{e}"
    );

    drop(clients);
    assert_fds_back(&server, baseline);
}

#[test]
fn a_bad_key_file_on_sighup_keeps_the_old_certificate_and_names_the_file() {
    let pki = TestPki::new();
    let server = start(&pki, &[]);
    let baseline = server.settled_fd_count();
    let key = std::fs::read(&pki.main.server_key).expect("key");
    std::fs::write(&pki.main.server_key, &key[..key.len() / 2]).expect("truncate key");
    server.signal(libc::SIGHUP);
    let key_path = path_arg(&pki.main.server_key);
    assert!(
        wait_until(Duration::from_secs(10), || !server
            .stderr_lines_with(&key_path)
            .is_empty()),
        "no error naming {key_path} after SIGHUP; stderr:\n{}",
        server.stderr_text()
    );
    let tls = client_tls(&pki.main, None, "localhost");
    let mut client =
        LibClient::connect(tls_addr(&server), lib_config(tls)).expect("the old certificate");
    lib_echo(&mut client, b"still the old certificate");
    client.close().expect("close");
    assert_fds_back(&server, baseline);
}

#[test]
fn listen_none_serves_tls_only() {
    let pki = TestPki::new();
    let mut command = Command::new(common::TETHER);
    command
        .args(["--listen", "none", "--app", "echo"])
        .args(TestPki::server_args(&pki.main))
        .env("RUST_LOG", "error");
    let server = Server::spawn(command);
    assert_eq!(
        server.tls_addr,
        Some(server.addr),
        "the only listener is TLS"
    );
    let tls = client_tls(&pki.main, None, "localhost");
    let mut client = LibClient::connect(server.addr, lib_config(tls)).expect("connect");
    lib_echo(&mut client, b"tls only");
    client.close().expect("close");
}

#[test]
fn tls13_only_refuses_a_tls12_client() {
    let pki = TestPki::new();
    let mut roots = rustls::RootCertStore::empty();
    for cert in tether::tls::load_certificates(&pki.main.ca).expect("CA") {
        roots.add(cert).expect("root");
    }
    let tls12 = Arc::new(
        rustls::ClientConfig::builder_with_provider(tether::tls::policy::crypto_provider())
            .with_protocol_versions(&[&rustls::version::TLS12])
            .expect("TLS 1.2")
            .with_root_certificates(roots)
            .with_no_client_auth(),
    );
    let name = || tether::tls::server_name("localhost").expect("name");

    let both = start(&pki, &[]);
    let tls = ClientTls::new(tls12.clone(), name());
    let mut client = LibClient::connect(tls_addr(&both), lib_config(tls)).expect("TLS 1.2");
    lib_echo(&mut client, b"1.2");
    client.close().expect("close");

    let only13 = start(&pki, &["--tls13-only"]);
    tls_connect_error(tls_addr(&only13), ClientTls::new(tls12, name()));
}

/// The load generator under test.
const TETHER_LOAD: &str = env!("CARGO_BIN_EXE_tether-load");

/// Runs tether-load with `args` and `--json`; (exit code, stdout, stderr).
fn run_load(args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(TETHER_LOAD)
        .args(args)
        .arg("--json")
        .stdin(Stdio::null())
        .output()
        .expect("run tether-load");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The number after `"tls":{"handshakes":` in a tether-load JSON report.
fn tls_handshakes(json: &str) -> u64 {
    let rest = json
        .split("\"tls\":{\"handshakes\":")
        .nth(1)
        .unwrap_or_else(|| panic!("no TLS section in {json}"));
    rest.split(',')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("bad TLS section in {json}"))
}

#[test]
fn tether_load_speaks_tls_in_every_mode() {
    let pki = TestPki::new();
    let ca = path_arg(&pki.main.ca);
    let echo = start(&pki, &[]);
    let pubsub = start(&pki, &["--app", "pubsub"]);
    for (mode, server) in [
        ("pingpong", &echo),
        ("echo", &echo),
        ("idle", &echo),
        ("churn", &echo),
        ("fanout", &pubsub),
    ] {
        let addr = tls_addr(server).to_string();
        let (code, stdout, stderr) = run_load(&[
            mode,
            "--addr",
            &addr,
            "--tls",
            "--tls-ca",
            &ca,
            "--tls-server-name",
            "localhost",
            "--connections",
            "10",
            "--rate",
            "50",
            "--duration",
            "0.5",
            "--heartbeat-ms",
            "1000",
        ]);
        assert_eq!(code, Some(0), "tether-load {mode}: {stdout}\n{stderr}");
        assert!(stdout.contains("\"ok\":true"), "{mode}: {stdout}");
        assert!(tls_handshakes(&stdout) >= 10, "{mode}: {stdout}");
    }

    // A CA the server's certificate does not chain to: no connection, and
    // the report says why.
    let other_ca = path_arg(&pki.other.ca);
    let addr = tls_addr(&echo).to_string();
    let (code, stdout, _) = run_load(&[
        "pingpong",
        "--addr",
        &addr,
        "--tls",
        "--tls-ca",
        &other_ca,
        "--connections",
        "2",
        "--duration",
        "0.2",
    ]);
    assert_eq!(code, Some(1), "{stdout}");
    assert!(stdout.contains("TLS certificate problem"), "{stdout}");
}

#[test]
fn tls_metrics_count_handshakes_failures_and_plaintext_clients() {
    let pki = TestPki::new();
    let server = start(&pki, &["--metrics", "127.0.0.1:0"]);
    let mut good = open_tls(&server, &pki.main);
    let mut plain = Client::connect(tls_addr(&server));
    plain.send_hello(0);
    let mut rest = Vec::new();
    let _ = plain.stream.read_to_end(&mut rest);
    drop(plain);
    let garbage = {
        let mut s = TcpStream::connect(tls_addr(&server)).expect("connect");
        s.write_all(b"GET / HTTP/1.0\r\n\r\n").expect("write");
        let mut rest = Vec::new();
        let _ = s.read_to_end(&mut rest);
        rest
    };
    assert!(
        !garbage.starts_with(&[0xA5]),
        "no tether GOAWAY for a non-tether peer"
    );
    // Both refused peers have closed their sockets: once the server has seen
    // that, only the good connection is held.
    assert!(wait_until(Duration::from_secs(5), || {
        server.metric("tether_connections_closed_total{reason=\"tls_failed\"}") == 2
            && server.metric("tether_tls_connections") == 1
    }));
    // Each failure counted once (not again at its EOF).
    assert_eq!(
        server.metric("tether_tls_failures_total{reason=\"not_tls\"}"),
        2
    );
    assert_eq!(server.metric("tether_tls_handshakes_total"), 1);
    assert_eq!(server.metric("tether_tls_plaintext_refused_total"), 1);
    assert_eq!(server.metric("tether_tls_handshake_seconds_count"), 1);
    good.send_message(b"still here", 65535);
    assert_eq!(good.recv_message(), b"still here".to_vec());
}

#[test]
fn a_silent_tls_peer_is_evicted_with_goaway_then_close_notify() {
    let pki = TestPki::new();
    let server = start(&pki, common::FAST_HEARTBEAT);
    let baseline = server.settled_fd_count();
    let started = Instant::now();
    let mut c = open_tls(&server, &pki.main);
    // Heartbeat 100 ms × miss 2: evicted after about 200 ms of silence.
    c.expect_goaway(GoawayCode::IdleTimeout);
    assert!(started.elapsed() >= Duration::from_millis(190));
    // close_notify reads as a clean end of the TLS stream.
    c.expect_clean_eof();
    drop(c);
    assert_fds_back(&server, baseline);
}
