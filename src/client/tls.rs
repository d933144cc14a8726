//! TLS for the client side: what a connection is configured with
//! ([`ClientTls`]) and what a failed one reports ([`TlsError`]).
//!
//! The configuration itself comes from [`crate::tls::load_client_config`];
//! this module only pairs it with the name to verify and sorts rustls's
//! errors by what the user has to fix. A [`TlsError`] is plain text and a
//! class, so the sans-io [`super::ClientMachine`] can carry it in a
//! [`super::DisconnectReason`] without knowing anything of rustls.

use std::fmt;
use std::sync::Arc;

use rustls::pki_types::ServerName;
use rustls::{AlertDescription, ClientConnection, InvalidMessage};

use crate::tls::{load_client_config, server_name, ClientTlsOptions, ConfigError};

/// TLS settings for a client: the rustls configuration and the name the
/// server's certificate must be valid for.
///
/// Every connection of one `ClientTls` shares its configuration, and with it
/// rustls's session cache: a reconnect resumes the previous TLS session when
/// the server issued a ticket, which saves the server a full handshake.
#[derive(Debug, Clone)]
pub struct ClientTls {
    /// Trust anchors, optional client certificate and protocol versions.
    pub config: Arc<rustls::ClientConfig>,
    /// The DNS name or IP address the server's certificate must name.
    pub server_name: ServerName<'static>,
}

impl ClientTls {
    /// Pairs a configuration with the name to verify.
    pub fn new(config: Arc<rustls::ClientConfig>, server_name: ServerName<'static>) -> ClientTls {
        ClientTls {
            config,
            server_name,
        }
    }

    /// Builds the configuration from its files (see [`load_client_config`])
    /// and parses `server_name` (a DNS name or an IP address).
    pub fn load(options: &ClientTlsOptions, server_name_text: &str) -> Result<Self, ConfigError> {
        let name = server_name(server_name_text)?;
        Ok(ClientTls::new(load_client_config(options)?, name))
    }

    /// A new TLS client session for one connection; its ClientHello is
    /// ready to be written at once.
    pub fn connection(&self) -> Result<ClientConnection, rustls::Error> {
        ClientConnection::new(Arc::clone(&self.config), self.server_name.clone())
    }
}

impl PartialEq for ClientTls {
    /// The same configuration object (rustls configurations are not
    /// comparable) and the same server name.
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.config, &other.config) && self.server_name == other.server_name
    }
}

/// Why TLS failed on a client connection, sorted by what has to be fixed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsError {
    /// We rejected the server's certificate: issued by a CA we do not trust,
    /// not valid for the server name we asked for, expired, and so on.
    ServerCertificate(String),
    /// The server rejected our client certificate, or required one and we
    /// presented none (mutual TLS).
    ClientCertificate(String),
    /// The server answered the ClientHello with something that is not TLS:
    /// most likely a plaintext port.
    NotTls(String),
    /// The server closed the connection without a TLS `close_notify`, so the
    /// stream may have been cut short.
    Truncated {
        /// Whether it happened before the TLS handshake finished.
        during_handshake: bool,
    },
    /// Any other TLS failure: no common version or cipher suite, a record
    /// that fails to decrypt, a fatal alert from the server.
    Other(String),
}

impl TlsError {
    /// Sorts a rustls error; `during_handshake` says whether the TLS
    /// handshake was still under way.
    pub fn from_rustls(error: &rustls::Error, during_handshake: bool) -> TlsError {
        let text = error.to_string();
        match error {
            rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented => {
                TlsError::ServerCertificate(text)
            }
            rustls::Error::AlertReceived(alert) if is_certificate_alert(*alert) => {
                TlsError::ClientCertificate(text)
            }
            rustls::Error::InvalidMessage(InvalidMessage::InvalidContentType)
                if during_handshake =>
            {
                TlsError::NotTls(text)
            }
            _ => TlsError::Other(text),
        }
    }

    /// Whether this is a certificate problem (ours or the server's). Those
    /// end the client for good (see [`super::DisconnectReason::is_final`]).
    pub fn is_certificate(&self) -> bool {
        matches!(
            self,
            TlsError::ServerCertificate(_) | TlsError::ClientCertificate(_)
        )
    }
}

/// The alerts a server sends when it refuses the client's certificate (or
/// the lack of one): RFC 8446 §6.2, and what rustls maps its verifier's errors to.
fn is_certificate_alert(alert: AlertDescription) -> bool {
    matches!(
        alert,
        AlertDescription::BadCertificate
            | AlertDescription::UnsupportedCertificate
            | AlertDescription::CertificateRevoked
            | AlertDescription::CertificateExpired
            | AlertDescription::CertificateUnknown
            | AlertDescription::UnknownCA
            | AlertDescription::CertificateRequired
    )
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsError::ServerCertificate(detail) => write!(
                f,
                "TLS certificate problem: the server's certificate was rejected: {detail}"
            ),
            TlsError::ClientCertificate(detail) => write!(
                f,
                "TLS certificate problem: the server refused our client certificate \
                 (or its absence): {detail}"
            ),
            TlsError::NotTls(detail) => write!(
                f,
                "TLS error: the server did not answer in TLS (is this a plaintext port?): {detail}"
            ),
            TlsError::Truncated {
                during_handshake: true,
            } => {
                f.write_str("TLS error: the server closed the connection during the TLS handshake")
            }
            TlsError::Truncated {
                during_handshake: false,
            } => f.write_str(
                "TLS error: the server closed the connection without a close_notify \
                 (the stream may be truncated)",
            ),
            TlsError::Other(detail) => write!(f, "TLS error: {detail}"),
        }
    }
}

impl std::error::Error for TlsError {}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::CertificateError;

    #[test]
    fn errors_are_sorted_by_what_to_fix() {
        let unknown_ca = rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer);
        let e = TlsError::from_rustls(&unknown_ca, true);
        assert!(matches!(e, TlsError::ServerCertificate(_)));
        assert!(e.is_certificate());
        assert!(e
            .to_string()
            .starts_with("TLS certificate problem: the server's"));
        assert!(e.to_string().contains("UnknownIssuer"), "{e}");

        for alert in [
            AlertDescription::CertificateRequired,
            AlertDescription::UnknownCA,
            AlertDescription::BadCertificate,
        ] {
            let e = TlsError::from_rustls(&rustls::Error::AlertReceived(alert), false);
            assert!(matches!(e, TlsError::ClientCertificate(_)), "{alert:?}");
            assert!(e.is_certificate());
        }

        let plaintext = rustls::Error::InvalidMessage(InvalidMessage::InvalidContentType);
        let e = TlsError::from_rustls(&plaintext, true);
        assert!(matches!(e, TlsError::NotTls(_)));
        assert!(!e.is_certificate());
        assert!(matches!(
            TlsError::from_rustls(&plaintext, false),
            TlsError::Other(_)
        ));

        let e = TlsError::from_rustls(
            &rustls::Error::AlertReceived(AlertDescription::HandshakeFailure),
            true,
        );
        assert!(matches!(e, TlsError::Other(_)));
        assert!(!e.is_certificate());
        assert!(e.to_string().starts_with("TLS error: "));
    }

    #[test]
    fn truncation_says_when() {
        let during = TlsError::Truncated {
            during_handshake: true,
        };
        assert!(during.to_string().contains("during the TLS handshake"));
        let after = TlsError::Truncated {
            during_handshake: false,
        };
        assert!(after.to_string().contains("close_notify"));
        assert!(!after.is_certificate());
    }
}
