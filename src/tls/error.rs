//! The two ways TLS goes wrong: a configuration that cannot be built from its
//! files ([`ConfigError`], at startup or on reload), and a connection that
//! fails ([`TlsFailure`], classified by [`FailureKind`] for the counters).

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// Why a TLS configuration could not be built. Every variant that concerns a
/// file names it, so an operator can tell which of several files to fix.
#[derive(Debug)]
pub enum ConfigError {
    /// The file could not be read (missing, unreadable, a directory...).
    Read {
        /// The file.
        path: PathBuf,
        /// The operating system's reason.
        source: io::Error,
    },
    /// The file is not valid PEM (bad base64, a section without its end line...).
    BadPem {
        /// The file.
        path: PathBuf,
        /// What the PEM parser said.
        detail: String,
    },
    /// The file holds no `CERTIFICATE` section.
    NoCertificate {
        /// The file.
        path: PathBuf,
    },
    /// The file holds no private key (PKCS#8, PKCS#1 RSA or SEC1 EC section).
    NoPrivateKey {
        /// The file.
        path: PathBuf,
    },
    /// The file holds more than one private key, so which to use is ambiguous.
    SeveralPrivateKeys {
        /// The file.
        path: PathBuf,
    },
    /// The private key is encrypted; the server takes unencrypted keys only.
    EncryptedPrivateKey {
        /// The file.
        path: PathBuf,
    },
    /// The crypto provider cannot sign with this key (e.g. DSA, Ed448, or a
    /// malformed key).
    UnsupportedKey {
        /// The file.
        path: PathBuf,
        /// What the provider said.
        detail: String,
    },
    /// The private key is not the one the first certificate of the chain
    /// was issued for.
    KeyMismatch {
        /// The key file.
        key: PathBuf,
        /// The certificate chain file.
        cert: PathBuf,
    },
    /// A certificate in the file could not be parsed or used.
    BadCertificate {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        detail: String,
    },
    /// The system trust store yielded no usable root certificate.
    NoSystemRoots {
        /// What the platform loader reported, if anything.
        detail: String,
    },
    /// rustls refused the assembled configuration (a version/suite
    /// combination it cannot use, for instance).
    Rustls {
        /// What rustls said.
        detail: String,
    },
}

impl ConfigError {
    /// The file the error is about, if it is about one (the key file for a
    /// mismatch).
    pub fn path(&self) -> Option<&Path> {
        match self {
            ConfigError::Read { path, .. }
            | ConfigError::BadPem { path, .. }
            | ConfigError::NoCertificate { path }
            | ConfigError::NoPrivateKey { path }
            | ConfigError::SeveralPrivateKeys { path }
            | ConfigError::EncryptedPrivateKey { path }
            | ConfigError::UnsupportedKey { path, .. }
            | ConfigError::BadCertificate { path, .. } => Some(path),
            ConfigError::KeyMismatch { key, .. } => Some(key),
            ConfigError::NoSystemRoots { .. } | ConfigError::Rustls { .. } => None,
        }
    }

    /// Builds a [`ConfigError::Read`] for `path`.
    pub(crate) fn read(path: &Path, source: io::Error) -> ConfigError {
        ConfigError::Read {
            path: path.to_path_buf(),
            source,
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Read { path, source } => {
                write!(f, "cannot read {}: {source}", path.display())
            }
            ConfigError::BadPem { path, detail } => {
                write!(f, "{}: not valid PEM: {detail}", path.display())
            }
            ConfigError::NoCertificate { path } => {
                write!(f, "{}: no CERTIFICATE found in it", path.display())
            }
            ConfigError::NoPrivateKey { path } => write!(
                f,
                "{}: no private key found in it (expected a PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY section)",
                path.display()
            ),
            ConfigError::SeveralPrivateKeys { path } => write!(
                f,
                "{}: more than one private key in it; keep only the one that matches the certificate",
                path.display()
            ),
            ConfigError::EncryptedPrivateKey { path } => write!(
                f,
                "{}: the private key is encrypted; decrypt it first (openssl pkcs8 -in KEY -out PLAIN)",
                path.display()
            ),
            ConfigError::UnsupportedKey { path, detail } => write!(
                f,
                "{}: unsupported private key type (RSA, ECDSA P-256/P-384 and Ed25519 are supported): {detail}",
                path.display()
            ),
            ConfigError::KeyMismatch { key, cert } => write!(
                f,
                "{}: the private key does not match the certificate in {}",
                key.display(),
                cert.display()
            ),
            ConfigError::BadCertificate { path, detail } => {
                write!(f, "{}: unusable certificate: {detail}", path.display())
            }
            ConfigError::NoSystemRoots { detail } => {
                write!(f, "no usable root certificate in the system trust store")?;
                if !detail.is_empty() {
                    write!(f, ": {detail}")?;
                }
                Ok(())
            }
            ConfigError::Rustls { detail } => write!(f, "TLS configuration refused: {detail}"),
        }
    }
}

impl std::error::Error for ConfigError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ConfigError::Read { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// What kind of failure ended a TLS connection, for counting: each kind is a
/// different operational story (misconfigured client, attack, flaky network).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailureKind {
    /// The peer does not speak TLS at all: its first bytes are not a TLS
    /// handshake record (e.g. the plaintext tether protocol, HTTP, a scanner).
    NotTls,
    /// The handshake was refused: a missing, invalid or untrusted client
    /// certificate, no common version, cipher suite or group, a malformed
    /// handshake message, or a fatal alert from the peer during the handshake.
    Handshake,
    /// The peer closed the connection in the middle of the handshake.
    TruncatedHandshake,
    /// After the handshake, a record failed to decrypt or parse, the stream
    /// ended inside a record, or the peer sent a fatal alert.
    CorruptRecord,
    /// A failure on our side, not the peer's: data offered before the
    /// handshake finished or after close, or the record sequence exhausted.
    Internal,
}

impl FailureKind {
    /// A short stable name, for metric labels and log fields.
    pub fn label(self) -> &'static str {
        match self {
            FailureKind::NotTls => "not_tls",
            FailureKind::Handshake => "handshake",
            FailureKind::TruncatedHandshake => "truncated_handshake",
            FailureKind::CorruptRecord => "corrupt_record",
            FailureKind::Internal => "internal",
        }
    }
}

impl fmt::Display for FailureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// A TLS connection failed; it is finished. Any alert for the peer has
/// already been appended to the caller's output.
#[derive(Debug, Clone, PartialEq)]
pub struct TlsFailure {
    kind: FailureKind,
    detail: String,
    /// The rustls error behind it, when there is one.
    rustls: Option<rustls::Error>,
}

impl TlsFailure {
    /// A failure with a detail of our own.
    pub(crate) fn new(kind: FailureKind, detail: impl Into<String>) -> TlsFailure {
        TlsFailure {
            kind,
            detail: detail.into(),
            rustls: None,
        }
    }

    /// A failure reported by rustls.
    pub(crate) fn from_rustls(kind: FailureKind, error: rustls::Error) -> TlsFailure {
        TlsFailure {
            kind,
            detail: error.to_string(),
            rustls: Some(error),
        }
    }

    /// The class of failure, for counting.
    pub fn kind(&self) -> FailureKind {
        self.kind
    }

    /// The rustls error behind this failure, if rustls reported it.
    pub fn rustls_error(&self) -> Option<&rustls::Error> {
        self.rustls.as_ref()
    }
}

impl fmt::Display for TlsFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TLS {}: {}", self.kind, self.detail)
    }
}

impl std::error::Error for TlsFailure {}
