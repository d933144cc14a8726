//! Building the server's `rustls::ServerConfig` from PEM files.
//!
//! [`load_server_config`] is a pure function of the files' contents: it
//! either returns a complete new configuration or an error naming the file,
//! and changes nothing else. That is the shape a SIGHUP reload needs: build
//! the new `Arc<ServerConfig>`, and on error keep serving with the old one.
//! Sessions already open keep the configuration they started with.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{NoServerSessionStorage, WebPkiClientVerifier};
use rustls::sign::{CertifiedKey, SingleCertAndKey};
use rustls::{InconsistentKeys, RootCertStore, ServerConfig};

use super::error::ConfigError;
use super::pem::{load_certificates, load_private_key};
use super::policy::{crypto_provider, ticketer, TlsVersions};

/// Where the server's TLS material lives, and which versions to accept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerTlsFiles {
    /// PEM file with the server's certificate first, then any intermediates.
    pub cert_chain: PathBuf,
    /// PEM file with the matching private key (RSA, ECDSA P-256/P-384 or Ed25519).
    pub private_key: PathBuf,
    /// PEM file of CA certificates for mutual TLS. When set, every client must
    /// present a certificate that chains to one of them; when unset, clients
    /// are not asked for one.
    pub client_ca: Option<PathBuf>,
    /// TLS 1.2 and 1.3, or 1.3 only.
    pub versions: TlsVersions,
}

/// How many TLS 1.3 session tickets to send after a full handshake. One per
/// connection is enough for a client that reconnects one connection at a time;
/// rustls's default of two suits browsers opening parallel connections.
const TLS13_TICKETS: usize = 1;

/// Builds a server configuration from the files (see the module docs).
pub fn load_server_config(files: &ServerTlsFiles) -> Result<Arc<ServerConfig>, ConfigError> {
    let provider = crypto_provider();
    let chain = load_certificates(&files.cert_chain)?;
    let key = load_private_key(&files.private_key)?;
    let certified = certified_key(&provider, chain, key, files)?;

    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(files.versions.rustls_versions())
        .map_err(rustls_refused)?;
    let builder = match &files.client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => builder.with_client_cert_verifier(client_verifier(&provider, ca)?),
    };
    let mut config = builder.with_cert_resolver(Arc::new(SingleCertAndKey::from(certified)));
    config.ticketer = ticketer().map_err(rustls_refused)?;
    config.session_storage = Arc::new(NoServerSessionStorage {});
    config.send_tls13_tickets = TLS13_TICKETS;
    Ok(Arc::new(config))
}

/// Pairs the chain with its key, checking the provider can sign with the key
/// and that the key is the one the end-entity certificate names.
fn certified_key(
    provider: &CryptoProvider,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    files: &ServerTlsFiles,
) -> Result<CertifiedKey, ConfigError> {
    let signing_key =
        provider
            .key_provider
            .load_private_key(key)
            .map_err(|e| ConfigError::UnsupportedKey {
                path: files.private_key.clone(),
                detail: e.to_string(),
            })?;
    let certified = CertifiedKey::new(chain, signing_key);
    match certified.keys_match() {
        // Unknown: the key cannot report its public half, so there is
        // nothing to compare; rustls accepts that too.
        Ok(()) | Err(rustls::Error::InconsistentKeys(InconsistentKeys::Unknown)) => Ok(certified),
        Err(rustls::Error::InconsistentKeys(InconsistentKeys::KeyMismatch)) => {
            Err(ConfigError::KeyMismatch {
                key: files.private_key.clone(),
                cert: files.cert_chain.clone(),
            })
        }
        Err(e) => Err(ConfigError::BadCertificate {
            path: files.cert_chain.clone(),
            detail: e.to_string(),
        }),
    }
}

/// A verifier that requires a client certificate chaining to a CA in `path`.
fn client_verifier(
    provider: &Arc<CryptoProvider>,
    path: &Path,
) -> Result<Arc<dyn rustls::server::danger::ClientCertVerifier>, ConfigError> {
    let roots = root_store(path)?;
    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| ConfigError::BadCertificate {
            path: path.to_path_buf(),
            detail: e.to_string(),
        })
}

/// A trust store of every certificate in `path`; any certificate that cannot
/// be a trust anchor is an error naming the file (not silently skipped).
pub(crate) fn root_store(path: &Path) -> Result<RootCertStore, ConfigError> {
    let mut roots = RootCertStore::empty();
    for (index, cert) in load_certificates(path)?.into_iter().enumerate() {
        roots.add(cert).map_err(|e| ConfigError::BadCertificate {
            path: path.to_path_buf(),
            detail: format!("certificate #{}: {e}", index + 1),
        })?;
    }
    Ok(roots)
}

/// A rustls refusal that no single file explains.
pub(crate) fn rustls_refused(e: rustls::Error) -> ConfigError {
    ConfigError::Rustls {
        detail: e.to_string(),
    }
}
