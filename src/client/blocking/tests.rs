//! The blocking client over TLS, against an in-process rustls server: a
//! thread with a `ServerConnection` over a loopback socket that speaks just
//! enough tether (HELLO → WELCOME, PING → PONG, DATA echoed frame by frame,
//! GOAWAY then an orderly close), with certificates made at test time.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rustls::{HandshakeKind, ServerConfig, ServerConnection, StreamOwned};

use super::Client;
use crate::client::{BackoffConfig, ClientConfig, ClientEvent, ClientTls, DisconnectReason};
use crate::client::{Jitter, TlsError};
use crate::protocol::{
    encode_frame, encode_goaway, FrameDecoder, FrameType, Goaway, GoawayCode, Hello, SessionId,
    Welcome,
};
use crate::tls;
// The TLS unit tests' PKI helpers.
use crate::tls::tests::support::{KeyKind, Pki};

/// Bounds every blocking call of the test server, so a broken client fails
/// the test instead of hanging it.
const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// What the test server does with one accepted connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Script {
    /// TLS handshake, WELCOME, echo until the client's GOAWAY and
    /// close_notify, then close politely (close_notify, FIN).
    Echo,
    /// TLS handshake, WELCOME, then close politely at once.
    CloseAfterWelcome,
    /// Never answer: a stalled TLS handshake.
    Silent,
    /// Answer the ClientHello like a plaintext tether port: GOAWAY
    /// PROTOCOL_ERROR in the clear, then close.
    Plaintext,
}

/// What the test server saw on one connection.
#[derive(Debug, Default)]
struct Seen {
    /// Whether the TLS handshake resumed an earlier session.
    resumed: Option<bool>,
    /// The client certificate presented (mutual TLS), DER.
    client_cert: Option<Vec<u8>>,
    /// The client's HELLO.
    hello: Option<Hello>,
    /// DATA frames echoed.
    data_frames: usize,
    /// The client's GOAWAY.
    goaway: Option<GoawayCode>,
    /// The client's close_notify arrived (after its GOAWAY).
    close_notify: bool,
    /// The client's FIN followed its close_notify.
    fin: bool,
    /// Why the connection failed on the server's side, if it did.
    error: Option<String>,
}

/// The in-process server.
struct TestServer {
    addr: SocketAddr,
    thread: JoinHandle<Vec<Seen>>,
}

impl TestServer {
    /// Serves one connection per entry, in order, each with its configuration.
    fn start(connections: Vec<(Arc<ServerConfig>, Script)>) -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let thread = thread::spawn(move || {
            connections
                .into_iter()
                .map(|(config, script)| serve(&listener, &config, script))
                .collect()
        });
        TestServer { addr, thread }
    }

    /// Serves a single connection.
    fn one(config: Arc<ServerConfig>, script: Script) -> TestServer {
        TestServer::start(vec![(config, script)])
    }

    /// Waits for every scripted connection to end; what each saw.
    fn finish(self) -> Vec<Seen> {
        self.thread.join().expect("test server thread")
    }
}

fn accept(listener: &TcpListener) -> TcpStream {
    listener
        .set_nonblocking(true)
        .expect("nonblocking listener");
    let deadline = Instant::now() + IO_TIMEOUT;
    loop {
        match listener.accept() {
            Ok((sock, _)) => {
                sock.set_nonblocking(false).expect("blocking socket");
                sock.set_read_timeout(Some(IO_TIMEOUT))
                    .expect("read timeout");
                sock.set_write_timeout(Some(IO_TIMEOUT))
                    .expect("write timeout");
                return sock;
            }
            Err(_) if Instant::now() < deadline => thread::sleep(Duration::from_millis(5)),
            Err(e) => panic!("no client connected: {e}"),
        }
    }
}

/// Reads and drops everything until the client's EOF (or an error).
fn drain(sock: &mut TcpStream) {
    let mut buf = [0u8; 4096];
    while matches!(sock.read(&mut buf), Ok(n) if n > 0) {}
}

fn serve(listener: &TcpListener, config: &Arc<ServerConfig>, script: Script) -> Seen {
    let mut sock = accept(listener);
    let mut seen = Seen::default();
    match script {
        Script::Silent => {
            drain(&mut sock);
            return seen;
        }
        Script::Plaintext => {
            let mut hello = [0u8; 512];
            let _ = sock.read(&mut hello);
            let _ = sock.write_all(&encode_goaway(GoawayCode::ProtocolError, "bad magic"));
            let _ = sock.shutdown(Shutdown::Write);
            drain(&mut sock);
            return seen;
        }
        Script::Echo | Script::CloseAfterWelcome => {}
    }
    let conn = ServerConnection::new(Arc::clone(config)).expect("server connection");
    let mut tls = StreamOwned::new(conn, sock);
    while tls.conn.is_handshaking() {
        if let Err(e) = tls.conn.complete_io(&mut tls.sock) {
            seen.error = Some(e.to_string());
            // The alert is out; close without a reset so the client reads it.
            let _ = tls.conn.complete_io(&mut tls.sock);
            let _ = tls.sock.shutdown(Shutdown::Write);
            drain(&mut tls.sock);
            return seen;
        }
    }
    seen.resumed = tls
        .conn
        .handshake_kind()
        .map(|k| k == HandshakeKind::Resumed);
    seen.client_cert = tls
        .conn
        .peer_certificates()
        .and_then(|chain| chain.first())
        .map(|cert| cert.to_vec());
    let mut decoder = FrameDecoder::new(u16::MAX as usize);
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match tls.read(&mut buf) {
            Ok(0) => {
                seen.close_notify = true;
                break;
            }
            Ok(n) => n,
            Err(e) => {
                seen.error = Some(e.to_string());
                return seen;
            }
        };
        let mut input = &buf[..n];
        while let Some(frame) = decoder.next_frame(&mut input).expect("client frames") {
            let reply = match frame.kind {
                FrameType::Hello => {
                    seen.hello = Some(Hello::decode(&frame.payload).expect("HELLO"));
                    Some(welcome())
                }
                FrameType::Ping => Some(encode_frame(FrameType::Pong, false, &frame.payload)),
                FrameType::Data => {
                    seen.data_frames += 1;
                    Some(encode_frame(FrameType::Data, frame.more, &frame.payload))
                }
                FrameType::Goaway => {
                    seen.goaway = Some(Goaway::decode(&frame.payload).expect("GOAWAY").code);
                    None
                }
                FrameType::Welcome | FrameType::Pong => None,
            };
            if let Some(reply) = reply {
                tls.write_all(&reply).expect("server write");
            }
            if frame.kind == FrameType::Hello && script == Script::CloseAfterWelcome {
                close_politely(&mut tls);
                drain(&mut tls.sock);
                return seen;
            }
        }
    }
    seen.fin = matches!(tls.sock.read(&mut buf), Ok(0));
    close_politely(&mut tls);
    seen
}

fn close_politely(tls: &mut StreamOwned<ServerConnection, TcpStream>) {
    tls.conn.send_close_notify();
    while tls.conn.wants_write() {
        if tls.conn.write_tls(&mut tls.sock).is_err() {
            break;
        }
    }
    let _ = tls.sock.shutdown(Shutdown::Write);
}

fn welcome() -> Bytes {
    Welcome {
        version: crate::protocol::PROTOCOL_V1,
        resumed: false,
        lost: false,
        heartbeat_ms: 30_000,
        idle_timeout_ms: 90_000,
        max_frame: 16 * 1024,
        max_message: 1 << 20,
        session: SessionId([7; 16]),
    }
    .encode_frame()
}

fn localhost(config: Arc<rustls::ClientConfig>) -> ClientTls {
    ClientTls::new(config, tls::server_name("localhost").expect("name"))
}

fn client_config(tls: ClientTls) -> ClientConfig {
    ClientConfig {
        tls: Some(tls),
        handshake_timeout: Duration::from_secs(5),
        backoff: BackoffConfig {
            base: Duration::from_millis(10),
            jitter: Jitter::None,
            ..BackoffConfig::default()
        },
        ..ClientConfig::default()
    }
}

/// The `TlsError` inside a connect error.
fn tls_error(e: &std::io::Error) -> &TlsError {
    e.get_ref()
        .and_then(|inner| inner.downcast_ref::<TlsError>())
        .unwrap_or_else(|| panic!("not a TLS error: {e:?}"))
}

#[test]
fn handshake_echo_and_polite_close_over_tls() {
    let pki = Pki::new(KeyKind::EcdsaP256);
    let server = TestServer::one(pki.server_config(), Script::Echo);
    let mut client = Client::connect(
        server.addr,
        client_config(localhost(pki.client_config(None))),
    )
    .expect("connect over TLS");
    assert!(client.is_connected());
    for message in [&b"x"[..], &[0x5a; 40_000][..]] {
        client.send(message).expect("send");
        let echo = client
            .recv_timeout(IO_TIMEOUT)
            .expect("recv")
            .expect("echo in time");
        assert_eq!(&echo[..], message);
    }
    client.close().expect("close");
    assert!(client.machine().is_closed());
    let reasons: Vec<DisconnectReason> = client
        .events()
        .filter_map(|e| match e {
            ClientEvent::Disconnected { reason } => Some(reason),
            _ => None,
        })
        .collect();
    // The server's close_notify was our end of stream: no truncation error.
    assert_eq!(reasons, [DisconnectReason::Closed]);
    let seen = server.finish();
    assert_eq!(seen[0].error, None);
    assert_eq!(seen[0].resumed, Some(false));
    assert_eq!(seen[0].client_cert, None);
    assert!(seen[0].hello.is_some());
    // 1 + 3 frames (40,000 bytes at the server's 16 KiB max_frame).
    assert_eq!(seen[0].data_frames, 4);
    // Half-close in order: GOAWAY NORMAL, close_notify, FIN.
    assert_eq!(seen[0].goaway, Some(GoawayCode::Normal));
    assert!(seen[0].close_notify && seen[0].fin, "{:?}", seen[0]);
}

#[test]
fn untrusted_ca_fails_with_a_certificate_error() {
    let pki = Pki::new(KeyKind::EcdsaP256);
    let stranger = Pki::new(KeyKind::EcdsaP256);
    let server = TestServer::one(pki.server_config(), Script::Echo);
    let config = client_config(localhost(stranger.client_config(None)));
    let e = Client::connect(server.addr, config).expect_err("untrusted CA");
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidData);
    assert!(
        matches!(tls_error(&e), TlsError::ServerCertificate(_)),
        "{e}"
    );
    let text = e.to_string();
    assert!(text.starts_with("TLS certificate problem: "), "{text}");
    assert!(text.contains("UnknownIssuer"), "{text}");
    let seen = server.finish();
    // The server learned why from our alert, and got no HELLO (no token leaked).
    assert!(seen[0].error.is_some() && seen[0].hello.is_none());
}

#[test]
fn wrong_server_name_fails_with_a_certificate_error() {
    let pki = Pki::new(KeyKind::EcdsaP256);
    let server = TestServer::one(pki.server_config(), Script::Echo);
    let wrong = ClientTls::new(
        pki.client_config(None),
        tls::server_name("wrong.example").expect("name"),
    );
    let e = Client::connect(server.addr, client_config(wrong)).expect_err("wrong name");
    assert!(
        matches!(tls_error(&e), TlsError::ServerCertificate(_)),
        "{e}"
    );
    assert!(e.to_string().contains("not valid for name"), "{e}");
    assert!(server.finish()[0].hello.is_none());
}

#[test]
fn client_certificate_is_presented_when_configured() {
    let pki = Pki::new(KeyKind::EcdsaP256);
    let mut files = pki.server_files.clone();
    files.client_ca = Some(pki.ca_file.clone());
    let server_config = tls::load_server_config(&files).expect("mTLS server config");
    let issued = pki
        .ca
        .client(KeyKind::Ed25519, "tether test client", Vec::new());
    let server = TestServer::one(server_config.clone(), Script::Echo);
    let config = client_config(localhost(pki.client_config(Some(("client", &issued)))));
    let mut client = Client::connect(server.addr, config).expect("mTLS connect");
    client.close().expect("close");
    let seen = server.finish();
    assert_eq!(seen[0].client_cert.as_deref(), Some(&issued.cert_der[..]));

    // Without one, the server refuses us, and the client says so.
    let server = TestServer::one(server_config, Script::Echo);
    let config = client_config(localhost(pki.client_config(None)));
    let e = Client::connect(server.addr, config).expect_err("no client certificate");
    assert!(
        matches!(tls_error(&e), TlsError::ClientCertificate(_)),
        "{e}"
    );
    assert!(
        e.to_string().starts_with("TLS certificate problem: "),
        "{e}"
    );
    assert!(server.finish()[0].error.is_some());
}

#[test]
fn a_certificate_error_on_a_reconnect_is_final() {
    let pki = Pki::new(KeyKind::EcdsaP256);
    let impostor = Pki::new(KeyKind::EcdsaP256);
    // The first connection closes after WELCOME; the reconnect meets a
    // certificate from a CA the client does not trust.
    let server = TestServer::start(vec![
        (pki.server_config(), Script::CloseAfterWelcome),
        (impostor.server_config(), Script::Echo),
    ]);
    let mut client = Client::connect(
        server.addr,
        client_config(localhost(pki.client_config(None))),
    )
    .expect("first connect");
    let e = client
        .recv_timeout(IO_TIMEOUT)
        .expect_err("the client ends instead of retrying");
    assert!(
        matches!(tls_error(&e), TlsError::ServerCertificate(_)),
        "{e}"
    );
    let events: Vec<ClientEvent> = client.events().collect();
    let disconnects: Vec<&DisconnectReason> = events
        .iter()
        .filter_map(|e| match e {
            ClientEvent::Disconnected { reason } => Some(reason),
            _ => None,
        })
        .collect();
    assert!(
        matches!(
            disconnects[..],
            [
                DisconnectReason::Eof,
                DisconnectReason::Tls(TlsError::ServerCertificate(_))
            ]
        ),
        "{events:?}"
    );
    assert_eq!(events.last(), Some(&ClientEvent::Closed), "{events:?}");
    let seen = server.finish();
    assert!(seen[1].hello.is_none() && seen[1].error.is_some());
}

#[test]
fn reconnect_resumes_the_tls_session() {
    let pki = Pki::new(KeyKind::EcdsaP256);
    // One configuration for both: its ticket key decrypts the first ticket.
    let config = pki.server_config();
    let server = TestServer::start(vec![
        (config.clone(), Script::CloseAfterWelcome),
        (config, Script::Echo),
    ]);
    // tether's own client config, which resumes (the helper's disables it).
    let resuming = tls::load_client_config(&pki.client_options(None)).expect("client config");
    let mut client =
        Client::connect(server.addr, client_config(localhost(resuming))).expect("connect");
    // The server's orderly close (close_notify, FIN) is an EOF: the client
    // reconnects on its own.
    let mut events: Vec<ClientEvent> = client.events().collect();
    let deadline = Instant::now() + IO_TIMEOUT;
    let connected = |events: &[ClientEvent]| {
        events
            .iter()
            .filter(|e| matches!(e, ClientEvent::Connected { .. }))
            .count()
    };
    while connected(&events) < 2 && Instant::now() < deadline {
        assert_eq!(
            client
                .recv_timeout(Duration::from_millis(20))
                .expect("recv"),
            None
        );
        events.extend(client.events());
    }
    assert!(
        events.contains(&ClientEvent::Disconnected {
            reason: DisconnectReason::Eof
        }),
        "{events:?}"
    );
    assert_eq!(connected(&events), 2, "{events:?}");
    client.send(b"after the reconnect").expect("send");
    let echo = client
        .recv_timeout(IO_TIMEOUT)
        .expect("recv")
        .expect("echo after reconnect");
    assert_eq!(&echo[..], b"after the reconnect");
    client.close().expect("close");
    let seen = server.finish();
    assert_eq!(seen[0].resumed, Some(false));
    assert_eq!(
        seen[1].resumed,
        Some(true),
        "the reconnect made a full handshake"
    );
    assert_eq!(
        seen[1].hello.as_ref().and_then(|h| h.resume),
        Some(SessionId([7; 16]))
    );
}

#[test]
fn a_stalled_tls_handshake_ends_at_the_handshake_timeout() {
    let pki = Pki::new(KeyKind::EcdsaP256);
    let server = TestServer::one(pki.server_config(), Script::Silent);
    let mut config = client_config(localhost(pki.client_config(None)));
    config.handshake_timeout = Duration::from_millis(200);
    let e = Client::connect(server.addr, config).expect_err("no ServerHello");
    assert_eq!(e.kind(), std::io::ErrorKind::TimedOut, "{e}");
    server.finish();
}

#[test]
fn a_plaintext_port_is_named_as_such() {
    let pki = Pki::new(KeyKind::EcdsaP256);
    let server = TestServer::one(pki.server_config(), Script::Plaintext);
    let config = client_config(localhost(pki.client_config(None)));
    let e = Client::connect(server.addr, config).expect_err("plaintext server");
    assert!(matches!(tls_error(&e), TlsError::NotTls(_)), "{e}");
    assert!(e.to_string().contains("plaintext port"), "{e}");
    server.finish();
}

#[test]
fn other_key_types_work_too() {
    for kind in [KeyKind::Rsa2048, KeyKind::Ed25519] {
        let pki = Pki::new(kind);
        let server = TestServer::one(pki.server_config(), Script::Echo);
        let mut client = Client::connect(
            server.addr,
            client_config(localhost(pki.client_config(None))),
        )
        .unwrap_or_else(|e| panic!("{kind:?}: {e}"));
        client.send(b"k").expect("send");
        assert!(client.recv_timeout(IO_TIMEOUT).expect("recv").is_some());
        client.close().expect("close");
        assert_eq!(server.finish()[0].error, None, "{kind:?}");
    }
}
