//! TLS for the end-to-end tests: certificates made at test time with rcgen
//! (no private key is checked in), client configurations, and the raw test
//! client over TLS.
//!
//! [`TestPki`] holds two unrelated CAs, each with a server certificate for
//! `localhost` and 127.0.0.1 and a client certificate it signed, all written
//! as PEM files into a temporary directory the test owns (removed on drop,
//! like `temp.rs`'s files). The rcgen code is the TLS unit tests' own
//! (`src/tls/tests/support.rs`, included by path), so both issue alike.

use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;

use rustls::{ClientConnection, StreamOwned};
use tether::client::ClientTls;
// support.rs reaches tether's TLS module as `super::tls`.
use tether::tls;
use tether::tls::{ClientCertFiles, ClientTlsOptions, ServerVerification, TlsVersions};

use super::client::{set_test_timeouts, Client};

#[path = "../../src/tls/tests/support.rs"]
mod support;

use support::Ca;
pub use support::{KeyKind, TempDir};

/// The raw test client's stream over TLS.
pub type TlsStream = StreamOwned<ClientConnection, TcpStream>;

/// One CA and what it signed, as PEM files.
pub struct CaFiles {
    /// The CA's certificate (what a client or server trusts).
    pub ca: PathBuf,
    /// A server certificate for `localhost` and 127.0.0.1.
    pub server_cert: PathBuf,
    /// Its private key.
    pub server_key: PathBuf,
    /// A client certificate (CN `tether test client`), for mutual TLS.
    pub client_cert: PathBuf,
    /// Its private key.
    pub client_key: PathBuf,
    /// The client certificate as DER (what a server sees).
    pub client_cert_der: Vec<u8>,
}

/// Two unrelated CAs and their certificates, in one temporary directory.
pub struct TestPki {
    /// The directory holding every file; removed on drop.
    pub dir: TempDir,
    /// The CA the server's certificate comes from by default.
    pub main: CaFiles,
    /// A second CA that has nothing to do with the first.
    pub other: CaFiles,
}

impl Default for TestPki {
    fn default() -> Self {
        TestPki::new()
    }
}

impl TestPki {
    /// ECDSA P-256 keys everywhere.
    pub fn new() -> TestPki {
        TestPki::with_server_keys(KeyKind::EcdsaP256)
    }

    /// Server certificates with keys of `kind` (RSA, Ed25519, ...); the
    /// CAs and the client certificates stay ECDSA P-256.
    pub fn with_server_keys(kind: KeyKind) -> TestPki {
        let dir = TempDir::new("e2e");
        let main = issue(&dir, "main", kind);
        let other = issue(&dir, "other", kind);
        TestPki { dir, main, other }
    }

    /// The `tether` flags that serve `ca`'s server certificate on a TLS
    /// listener at 127.0.0.1:0.
    pub fn server_args(ca: &CaFiles) -> Vec<String> {
        vec![
            "--tls-listen".into(),
            "127.0.0.1:0".into(),
            "--tls-cert".into(),
            path_arg(&ca.server_cert),
            "--tls-key".into(),
            path_arg(&ca.server_key),
        ]
    }
}

/// A CA named after `tag` and its server and client certificates, written
/// as `TAG-ca.pem`, `TAG-server.pem`/`.key` and `TAG-client.pem`/`.key`.
fn issue(dir: &TempDir, tag: &str, server_kind: KeyKind) -> CaFiles {
    // Distinct names, so a client trusting the other CA sees an unknown
    // issuer rather than a bad signature from a namesake.
    let ca = Ca::new(&format!("tether e2e CA {tag} {}", std::process::id()));
    let server = ca.server(server_kind);
    let client = ca.client(KeyKind::EcdsaP256, "tether test client", Vec::new());
    CaFiles {
        ca: dir.write(&format!("{tag}-ca.pem"), &ca.cert_pem),
        server_cert: dir.write(&format!("{tag}-server.pem"), &server.cert_pem),
        server_key: dir.write(&format!("{tag}-server.key"), &server.key_pem),
        client_cert: dir.write(&format!("{tag}-client.pem"), &client.cert_pem),
        client_key: dir.write(&format!("{tag}-client.key"), &client.key_pem),
        client_cert_der: client.cert_der,
    }
}

/// A path as a command-line argument.
pub fn path_arg(path: &std::path::Path) -> String {
    path.to_str().expect("UTF-8 temp path").to_string()
}

/// A client configuration trusting only `trust`'s CA, presenting
/// `client`'s certificate when given.
pub fn client_config(trust: &CaFiles, client: Option<&CaFiles>) -> Arc<rustls::ClientConfig> {
    tls::load_client_config(&ClientTlsOptions {
        verification: ServerVerification::CaFile(trust.ca.clone()),
        client_cert: client.map(|c| ClientCertFiles {
            cert_chain: c.client_cert.clone(),
            private_key: c.client_key.clone(),
        }),
        versions: TlsVersions::default(),
    })
    .expect("client TLS config")
}

/// [`client_config`] for the library client, verifying `name`.
pub fn client_tls(trust: &CaFiles, client: Option<&CaFiles>, name: &str) -> ClientTls {
    ClientTls::new(
        client_config(trust, client),
        tls::server_name(name).expect("server name"),
    )
}

/// A raw test client over TLS to `addr`, verifying `localhost`. The TLS
/// handshake happens with the first write or read.
pub fn tls_connect(addr: SocketAddr, config: Arc<rustls::ClientConfig>) -> Client<TlsStream> {
    let sock = TcpStream::connect(addr).expect("connect to tether's TLS port");
    set_test_timeouts(&sock);
    let name = tls::server_name("localhost").expect("server name");
    let conn = ClientConnection::new(config, name).expect("client connection");
    Client::over(StreamOwned::new(conn, sock))
}

impl Client<TlsStream> {
    /// After a clean end of the TLS stream (the server's close_notify, which
    /// `expect_clean_eof` and `expect_goaway` check), the server's FIN
    /// must follow.
    pub fn expect_fin(&mut self) {
        let mut byte = [0u8; 1];
        match std::io::Read::read(&mut self.stream.sock, &mut byte) {
            Ok(0) => {}
            other => panic!("expected the server's FIN after its close_notify, got {other:?}"),
        }
    }

    /// Our orderly close over TLS: close_notify, then FIN.
    pub fn close_notify_and_fin(&mut self) {
        self.stream.conn.send_close_notify();
        while self.stream.conn.wants_write() {
            self.stream
                .conn
                .write_tls(&mut self.stream.sock)
                .expect("write close_notify");
        }
        self.stream
            .sock
            .shutdown(std::net::Shutdown::Write)
            .expect("shutdown(Write)");
    }
}
