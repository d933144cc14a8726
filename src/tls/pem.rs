//! Reading certificates and private keys from PEM files, with errors that
//! name the file and say what is missing or wrong in it.

use std::path::Path;

use rustls::pki_types::pem::{PemObject, SectionKind};
use rustls::pki_types::{
    CertificateDer, PrivateKeyDer, PrivatePkcs1KeyDer, PrivatePkcs8KeyDer, PrivateSec1KeyDer,
};

use super::error::ConfigError;

/// The largest PEM file we read: a long chain is a few tens of KiB, a trust
/// bundle a few hundred; anything bigger is not what the flag should point at.
const MAX_PEM_FILE: u64 = 16 << 20;

/// Reads the whole file, refusing one over [`MAX_PEM_FILE`].
fn read_file(path: &Path) -> Result<Vec<u8>, ConfigError> {
    let len = std::fs::metadata(path)
        .map_err(|e| ConfigError::read(path, e))?
        .len();
    if len > MAX_PEM_FILE {
        return Err(ConfigError::BadPem {
            path: path.to_path_buf(),
            detail: format!("{len} bytes is too large for a PEM file (limit {MAX_PEM_FILE})"),
        });
    }
    std::fs::read(path).map_err(|e| ConfigError::read(path, e))
}

/// Every PEM section of a known kind in `bytes`, in file order.
fn sections(path: &Path, bytes: &[u8]) -> Result<Vec<(SectionKind, Vec<u8>)>, ConfigError> {
    <(SectionKind, Vec<u8>)>::pem_slice_iter(bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ConfigError::BadPem {
            path: path.to_path_buf(),
            detail: e.to_string(),
        })
}

/// Whether the file has a PEM section with this exact label (one that the
/// PEM parser skips as unknown, such as `ENCRYPTED PRIVATE KEY`).
fn has_label(bytes: &[u8], label: &str) -> bool {
    let marker = format!("-----BEGIN {label}-----");
    bytes.windows(marker.len()).any(|w| w == marker.as_bytes())
}

/// All certificates in the file, in order (a chain: the end-entity
/// certificate first, then its issuers; or a set of trust anchors).
pub fn load_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, ConfigError> {
    let bytes = read_file(path)?;
    let certs: Vec<CertificateDer<'static>> = sections(path, &bytes)?
        .into_iter()
        .filter(|(kind, _)| *kind == SectionKind::Certificate)
        .map(|(_, der)| CertificateDer::from(der))
        .collect();
    if certs.is_empty() {
        return Err(ConfigError::NoCertificate {
            path: path.to_path_buf(),
        });
    }
    Ok(certs)
}

/// The one private key in the file: PKCS#8 (`PRIVATE KEY`), PKCS#1
/// (`RSA PRIVATE KEY`) or SEC1 (`EC PRIVATE KEY`). Certificates in the same
/// file are ignored, so a combined cert+key file works.
pub fn load_private_key(path: &Path) -> Result<PrivateKeyDer<'static>, ConfigError> {
    let bytes = read_file(path)?;
    let mut keys = sections(path, &bytes)?
        .into_iter()
        .filter_map(|(kind, der)| match kind {
            SectionKind::PrivateKey => Some(PrivateKeyDer::from(PrivatePkcs8KeyDer::from(der))),
            SectionKind::RsaPrivateKey => Some(PrivateKeyDer::from(PrivatePkcs1KeyDer::from(der))),
            SectionKind::EcPrivateKey => Some(PrivateKeyDer::from(PrivateSec1KeyDer::from(der))),
            _ => None,
        });
    let path_buf = || path.to_path_buf();
    match (keys.next(), keys.next()) {
        (Some(key), None) => Ok(key),
        (Some(_), Some(_)) => Err(ConfigError::SeveralPrivateKeys { path: path_buf() }),
        (None, _) if has_label(&bytes, "ENCRYPTED PRIVATE KEY") => {
            Err(ConfigError::EncryptedPrivateKey { path: path_buf() })
        }
        (None, _) => match ["DSA PRIVATE KEY", "OPENSSH PRIVATE KEY"]
            .into_iter()
            .find(|label| has_label(&bytes, label))
        {
            Some(label) => Err(ConfigError::UnsupportedKey {
                path: path_buf(),
                detail: format!("a {label} section"),
            }),
            None => Err(ConfigError::NoPrivateKey { path: path_buf() }),
        },
    }
}
