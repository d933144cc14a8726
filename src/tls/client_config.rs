//! Building a `rustls::ClientConfig` for tether's client library and load
//! generator: how to verify the server, and an optional client certificate
//! for mutual TLS.
//!
//! The server's name is checked against its certificate by rustls on every
//! connection; callers pass it to `rustls::ClientConnection::new` (see
//! [`server_name`] to parse a host name or IP address).
//!
//! System roots come from `rustls-native-certs`, i.e. the operating system's
//! trust store (on Linux the distribution's CA bundle, honouring
//! `SSL_CERT_FILE`/`SSL_CERT_DIR`), rather than from a bundle compiled into
//! the binary (`webpki-roots`): the OS store gets CA removals with security
//! updates instead of at our next release, and includes the private CAs that
//! administrators add there, which is the usual home of a private CA in a
//! fleet that runs tether.

use std::path::PathBuf;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use super::error::ConfigError;
use super::pem::{load_certificates, load_private_key};
use super::policy::{crypto_provider, TlsVersions};
use super::server_config::{root_store, rustls_refused};

/// How the client decides whether to trust the server's certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerVerification {
    /// Trust only CAs in this PEM file (a private CA, the usual case).
    CaFile(PathBuf),
    /// Trust the operating system's root store.
    SystemRoots,
    /// Trust any certificate, checking only that the server holds its key.
    /// For load tests against throwaway certificates: it gives no protection
    /// against an attacker in the middle. Never use it in production.
    InsecureAcceptAny,
}

/// A client certificate for mutual TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCertFiles {
    /// PEM file with the client's certificate first, then any intermediates.
    pub cert_chain: PathBuf,
    /// PEM file with its private key.
    pub private_key: PathBuf,
}

/// Everything a client configuration is built from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientTlsOptions {
    /// How to verify the server.
    pub verification: ServerVerification,
    /// The certificate to present when the server asks for one.
    pub client_cert: Option<ClientCertFiles>,
    /// TLS 1.2 and 1.3, or 1.3 only.
    pub versions: TlsVersions,
}

/// Builds a client configuration; like the server's, a pure function of the
/// files that either succeeds or names what is wrong.
pub fn load_client_config(options: &ClientTlsOptions) -> Result<Arc<ClientConfig>, ConfigError> {
    let provider = crypto_provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(options.versions.rustls_versions())
        .map_err(rustls_refused)?;
    let builder = match &options.verification {
        ServerVerification::CaFile(path) => builder.with_root_certificates(root_store(path)?),
        ServerVerification::SystemRoots => builder.with_root_certificates(system_roots()?),
        ServerVerification::InsecureAcceptAny => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyServerCert(provider))),
    };
    let config = match &options.client_cert {
        None => builder.with_no_client_auth(),
        Some(files) => {
            let chain = load_certificates(&files.cert_chain)?;
            let key = load_private_key(&files.private_key)?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| client_cert_error(files, e))?
        }
    };
    Ok(Arc::new(config))
}

/// Parses the name to verify the server against: a DNS name or an IP address.
pub fn server_name(host: &str) -> Result<ServerName<'static>, ConfigError> {
    ServerName::try_from(host.to_owned()).map_err(|e| ConfigError::Rustls {
        detail: format!("{host:?} is not a valid server name: {e}"),
    })
}

/// Attributes a rejected client certificate/key pair to the right file.
fn client_cert_error(files: &ClientCertFiles, e: rustls::Error) -> ConfigError {
    match e {
        rustls::Error::InconsistentKeys(_) => ConfigError::KeyMismatch {
            key: files.private_key.clone(),
            cert: files.cert_chain.clone(),
        },
        rustls::Error::InvalidCertificate(_) => ConfigError::BadCertificate {
            path: files.cert_chain.clone(),
            detail: e.to_string(),
        },
        other => ConfigError::UnsupportedKey {
            path: files.private_key.clone(),
            detail: other.to_string(),
        },
    }
}

/// The operating system's trust store; certificates it cannot parse are
/// skipped (system bundles carry a few odd ones), but an empty result is an error.
fn system_roots() -> Result<RootCertStore, ConfigError> {
    let loaded = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    let (added, _ignored) = roots.add_parsable_certificates(loaded.certs);
    if added == 0 {
        let detail = loaded
            .errors
            .iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join("; ");
        return Err(ConfigError::NoSystemRoots { detail });
    }
    Ok(roots)
}

/// [`ServerVerification::InsecureAcceptAny`]: accepts every certificate but
/// still checks the handshake signature, so the server must hold the key of
/// the certificate it sent (this keeps the handshake's CPU cost realistic for
/// load tests).
#[derive(Debug)]
struct AcceptAnyServerCert(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyServerCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
