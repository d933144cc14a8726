//! Shared by the TLS unit tests and `examples/tls_idle_mem.rs` (which
//! includes this file by path): a throwaway PKI made with rcgen at run time,
//! PEM files in a temporary directory, and an in-memory pipe between a rustls
//! client and a [`ServerSession`] that does what the reactor does with
//! sockets. The parent module must have `tls` (tether's `tls` module) in scope.

#![allow(dead_code)] // each includer uses a different part

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, RsaKeySize, SanType,
};
use rustls::client::Resumption;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::ServerName;
use rustls::{
    ClientConfig, ClientConnection, RootCertStore, ServerConfig, SupportedProtocolVersion,
};

use super::tls::{ReadOutcome, ServerSession, TlsFailure};

/// A directory under the system temp dir, removed when dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    /// A fresh, empty directory whose name includes `tag`.
    pub fn new(tag: &str) -> TempDir {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("tether-tls-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }

    /// The path of `name` in this directory (which need not exist).
    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    /// Writes `contents` to `name` and returns its path.
    pub fn write(&self, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let path = self.path(name);
        std::fs::write(&path, contents).expect("write temp file");
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The key algorithms the tests issue certificates for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    EcdsaP256,
    EcdsaP384,
    Ed25519,
    Rsa2048,
}

impl KeyKind {
    fn generate(self) -> KeyPair {
        match self {
            KeyKind::EcdsaP256 => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256),
            KeyKind::EcdsaP384 => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384),
            KeyKind::Ed25519 => KeyPair::generate_for(&rcgen::PKCS_ED25519),
            KeyKind::Rsa2048 => {
                KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, RsaKeySize::_2048)
            }
        }
        .expect("generate key")
    }
}

/// A certificate and its private key, as PEM.
pub struct Issued {
    pub cert_pem: String,
    pub key_pem: String,
    pub cert_der: Vec<u8>,
}

/// A certificate authority that issues leaf certificates.
pub struct Ca {
    params: CertificateParams,
    key: KeyPair,
    pub cert_pem: String,
}

impl Ca {
    /// A self-signed ECDSA P-256 root named `common_name`.
    pub fn new(common_name: &str) -> Ca {
        Ca::make(common_name, None)
    }

    /// An intermediate CA issued by this one.
    pub fn intermediate(&self, common_name: &str) -> Ca {
        Ca::make(common_name, Some(self))
    }

    /// An ECDSA P-256 CA signed by `parent`, or by itself.
    fn make(common_name: &str, parent: Option<&Ca>) -> Ca {
        let key = KeyKind::EcdsaP256.generate();
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        let cert = match parent {
            None => params.self_signed(&key),
            Some(parent) => {
                params.signed_by(&key, &Issuer::from_params(&parent.params, &parent.key))
            }
        }
        .expect("sign ca");
        Ca {
            cert_pem: cert.pem(),
            params,
            key,
        }
    }

    /// A server certificate for `localhost` (DNS) and 127.0.0.1.
    pub fn server(&self, kind: KeyKind) -> Issued {
        self.issue(
            kind,
            "localhost",
            vec![
                SanType::DnsName("localhost".try_into().expect("dns name")),
                SanType::IpAddress([127, 0, 0, 1].into()),
            ],
            ExtendedKeyUsagePurpose::ServerAuth,
        )
    }

    /// A client certificate with this CN and these SANs.
    pub fn client(&self, kind: KeyKind, common_name: &str, sans: Vec<SanType>) -> Issued {
        self.issue(kind, common_name, sans, ExtendedKeyUsagePurpose::ClientAuth)
    }

    fn issue(
        &self,
        kind: KeyKind,
        common_name: &str,
        sans: Vec<SanType>,
        usage: ExtendedKeyUsagePurpose,
    ) -> Issued {
        let key = kind.generate();
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("leaf params");
        params.subject_alt_names = sans;
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.extended_key_usages = vec![usage];
        let issuer = Issuer::from_params(&self.params, &self.key);
        let cert = params.signed_by(&key, &issuer).expect("sign leaf");
        Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            cert_der: cert.der().to_vec(),
        }
    }
}

/// A CA, a server certificate and their files, ready to build configs from.
pub struct Pki {
    pub dir: TempDir,
    pub ca: Ca,
    pub ca_file: PathBuf,
    pub server_files: super::tls::ServerTlsFiles,
}

impl Pki {
    /// A CA and a server certificate of `kind`, written as `ca.pem`,
    /// `server.pem` and `server.key`; no client authentication.
    pub fn new(kind: KeyKind) -> Pki {
        let dir = TempDir::new("pki");
        // Distinct names, so that a client trusting another test CA sees an
        // unknown issuer rather than a bad signature from a namesake.
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let ca = Ca::new(&format!(
            "tether test CA {}",
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let server = ca.server(kind);
        let ca_file = dir.write("ca.pem", &ca.cert_pem);
        let server_files = super::tls::ServerTlsFiles {
            cert_chain: dir.write("server.pem", &server.cert_pem),
            private_key: dir.write("server.key", &server.key_pem),
            client_ca: None,
            versions: super::tls::TlsVersions::default(),
        };
        Pki {
            dir,
            ca,
            ca_file,
            server_files,
        }
    }

    /// The server configuration for [`Pki::server_files`].
    pub fn server_config(&self) -> Arc<ServerConfig> {
        super::tls::load_server_config(&self.server_files).expect("server config")
    }

    /// The options for a client trusting this CA, with an optional client
    /// certificate (written to the temp dir under `name`).
    pub fn client_options(
        &self,
        client_cert: Option<(&str, &Issued)>,
    ) -> super::tls::ClientTlsOptions {
        let client_cert = client_cert.map(|(name, issued)| super::tls::ClientCertFiles {
            cert_chain: self.dir.write(&format!("{name}.pem"), &issued.cert_pem),
            private_key: self.dir.write(&format!("{name}.key"), &issued.key_pem),
        });
        super::tls::ClientTlsOptions {
            verification: super::tls::ServerVerification::CaFile(self.ca_file.clone()),
            client_cert,
            versions: super::tls::TlsVersions::default(),
        }
    }

    /// A client configuration from [`Pki::client_options`], with session
    /// resumption off so that every handshake is a full one.
    pub fn client_config(&self, client_cert: Option<(&str, &Issued)>) -> Arc<ClientConfig> {
        let config = super::tls::load_client_config(&self.client_options(client_cert))
            .expect("client config");
        without_resumption(&config)
    }

    /// A client trusting this CA built with rustls directly, for clients
    /// tether's builder does not make (TLS 1.2 only, other suites or
    /// groups); no resumption.
    pub fn rustls_client(
        &self,
        provider: CryptoProvider,
        versions: &[&'static SupportedProtocolVersion],
    ) -> Arc<ClientConfig> {
        let mut roots = RootCertStore::empty();
        for cert in super::tls::load_certificates(&self.ca_file).expect("ca file") {
            roots.add(cert).expect("ca certificate");
        }
        let config = ClientConfig::builder_with_provider(Arc::new(provider))
            .with_protocol_versions(versions)
            .expect("versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        without_resumption(&config)
    }
}

/// A copy of `config` that never resumes a session.
pub fn without_resumption(config: &ClientConfig) -> Arc<ClientConfig> {
    let mut config = config.clone();
    config.resumption = Resumption::disabled();
    Arc::new(config)
}

/// Which side of a [`Pair`] failed.
#[derive(Debug)]
pub enum PairError {
    Server(TlsFailure),
    Client(rustls::Error),
}

/// A rustls client and a [`ServerSession`] connected by in-memory byte
/// vectors, with the client's bytes delivered in chunks of `chunk` bytes.
pub struct Pair {
    pub client: ClientConnection,
    pub server: ServerSession,
    /// Plaintext the server has decrypted so far.
    pub server_received: Vec<u8>,
    /// Ciphertext the server produced that the client has not read yet.
    pub server_out: Vec<u8>,
    /// Plaintext the client has read so far.
    pub client_received: Vec<u8>,
    /// How many bytes each server `read_tls` call gets.
    pub chunk: usize,
    /// Every outcome the server reported, merged.
    pub outcome: ReadOutcome,
}

impl Pair {
    /// A fresh client for `localhost` and a fresh server session.
    pub fn new(client: &Arc<ClientConfig>, server: &Arc<ServerConfig>) -> Pair {
        let name = ServerName::try_from("localhost").expect("server name");
        Pair {
            client: ClientConnection::new(client.clone(), name).expect("client connection"),
            server: ServerSession::new(server.clone()).expect("server session"),
            server_received: Vec::new(),
            server_out: Vec::new(),
            client_received: Vec::new(),
            chunk: usize::MAX,
            outcome: ReadOutcome::default(),
        }
    }

    /// The client's pending ciphertext.
    pub fn client_bytes(&mut self) -> Vec<u8> {
        let mut bytes = Vec::new();
        while self.client.wants_write() {
            self.client.write_tls(&mut bytes).expect("write to a Vec");
        }
        bytes
    }

    /// Delivers `bytes` to the server in chunks of [`Pair::chunk`].
    pub fn deliver_to_server(&mut self, bytes: &[u8]) -> Result<(), TlsFailure> {
        for piece in bytes.chunks(self.chunk.max(1)) {
            let mut piece = piece.to_vec();
            let outcome = self.server.read_tls(
                &mut piece,
                &mut self.server_received,
                &mut self.server_out,
            )?;
            self.outcome.handshake_completed |= outcome.handshake_completed;
            self.outcome.peer_closed |= outcome.peer_closed;
        }
        Ok(())
    }

    /// Moves the client's pending ciphertext to the server.
    pub fn client_to_server(&mut self) -> Result<(), TlsFailure> {
        let bytes = self.client_bytes();
        self.deliver_to_server(&bytes)
    }

    /// Moves the server's output to the client and lets it process it,
    /// collecting the plaintext in [`Pair::client_received`].
    pub fn server_to_client(&mut self) -> Result<(), rustls::Error> {
        let bytes = std::mem::take(&mut self.server_out);
        let mut rest = &bytes[..];
        while !rest.is_empty() {
            self.client.read_tls(&mut rest).expect("read from a slice");
            self.client.process_new_packets()?;
            let _ =
                std::io::Read::read_to_end(&mut self.client.reader(), &mut self.client_received);
        }
        Ok(())
    }

    /// Sends `data` from the client to the server, as many records as it
    /// takes (rustls's client accepts 64 KiB at a time).
    pub fn client_sends(&mut self, data: &[u8]) -> Result<(), TlsFailure> {
        let mut rest = data;
        while !rest.is_empty() {
            let n = std::io::Write::write(&mut self.client.writer(), rest).expect("client write");
            rest = &rest[n..];
            self.client_to_server()?;
        }
        Ok(())
    }

    /// Runs both directions until neither side has anything to say, or one
    /// fails. (The server's last alert, if any, is delivered to the client.)
    pub fn run(&mut self) -> Result<(), PairError> {
        for _ in 0..32 {
            let client_had = self.client.wants_write();
            if let Err(e) = self.client_to_server() {
                let _ = self.server_to_client();
                return Err(PairError::Server(e));
            }
            let server_had = !self.server_out.is_empty();
            self.server_to_client().map_err(PairError::Client)?;
            if !client_had && !server_had {
                return Ok(());
            }
        }
        panic!("handshake did not settle in 32 rounds");
    }

    /// Runs the handshake expecting the server to fail it; returns the
    /// failure after delivering the server's alert to the client.
    pub fn server_failure(&mut self) -> TlsFailure {
        match self.run() {
            Err(PairError::Server(failure)) => failure,
            other => panic!("expected the server to fail the handshake, got {other:?}"),
        }
    }

    /// Sends `data` from the server to the client; returns what the client read.
    pub fn server_sends(&mut self, data: &[u8]) -> Vec<u8> {
        self.server
            .encrypt(data, &mut self.server_out)
            .expect("server encrypt");
        self.server_to_client().expect("client reads");
        std::mem::take(&mut self.client_received)
    }
}

/// A new connected, handshaked pair.
pub fn handshaked(client: &Arc<ClientConfig>, server: &Arc<ServerConfig>) -> Pair {
    let mut pair = Pair::new(client, server);
    pair.run().expect("handshake");
    assert!(!pair.server.is_handshaking() && !pair.client.is_handshaking());
    pair
}

/// Reads a PEM file back (for tests that edit one).
pub fn read(path: &Path) -> String {
    std::fs::read_to_string(path).expect("read back")
}
