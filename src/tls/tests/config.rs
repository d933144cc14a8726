//! Loading configurations from PEM files: every key type, chains, and errors
//! that name the file and say what is wrong.

use std::path::Path;

use super::support::{handshaked, read, Ca, KeyKind, Pki};
use super::tls::{
    load_client_config, load_server_config, ClientCertFiles, ClientTlsOptions, ConfigError,
    ServerVerification, TlsVersions,
};

/// The error loading `pki`'s server files gives, with its message checked
/// to name `file`.
fn server_error_naming(pki: &Pki, file: &Path) -> ConfigError {
    let error = load_server_config(&pki.server_files).unwrap_err();
    let text = error.to_string();
    assert!(text.contains(&file.display().to_string()), "{text}");
    error
}

#[test]
fn each_key_type_loads_and_handshakes() {
    for kind in [
        KeyKind::EcdsaP256,
        KeyKind::EcdsaP384,
        KeyKind::Ed25519,
        KeyKind::Rsa2048,
    ] {
        let pki = Pki::new(kind);
        let pair = handshaked(&pki.client_config(None), &pki.server_config());
        assert!(pair.server.can_send(), "{kind:?}");
    }
}

#[test]
fn a_chain_with_an_intermediate_loads_and_verifies_against_the_root() {
    let pki = Pki::new(KeyKind::EcdsaP256);
    let intermediate = pki.ca.intermediate("tether intermediate");
    let server = intermediate.server(KeyKind::EcdsaP256);
    let chain = format!("{}{}", server.cert_pem, intermediate.cert_pem);
    let mut files = pki.server_files.clone();
    files.cert_chain = pki.dir.write("chain.pem", chain);
    files.private_key = pki.dir.write("chain.key", &server.key_pem);
    let config = load_server_config(&files).unwrap();
    handshaked(&pki.client_config(None), &config);
}

#[test]
fn a_combined_certificate_and_key_file_works() {
    let mut pki = Pki::new(KeyKind::EcdsaP256);
    let combined = format!(
        "{}{}",
        read(&pki.server_files.cert_chain),
        read(&pki.server_files.private_key)
    );
    let both = pki.dir.write("both.pem", combined);
    pki.server_files.cert_chain = both.clone();
    pki.server_files.private_key = both;
    handshaked(&pki.client_config(None), &pki.server_config());
}

#[test]
fn a_missing_file_is_named() {
    let mut pki = Pki::new(KeyKind::EcdsaP256);
    let missing = pki.dir.path("nowhere.pem");
    pki.server_files.cert_chain = missing.clone();
    let error = server_error_naming(&pki, &missing);
    assert!(matches!(error, ConfigError::Read { .. }), "{error:?}");

    let mut pki = Pki::new(KeyKind::EcdsaP256);
    let missing = pki.dir.path("no-client-ca.pem");
    pki.server_files.client_ca = Some(missing.clone());
    let error = server_error_naming(&pki, &missing);
    assert!(matches!(error, ConfigError::Read { .. }), "{error:?}");
}

#[test]
fn a_file_without_a_certificate_is_named() {
    let mut pki = Pki::new(KeyKind::EcdsaP256);
    pki.server_files.cert_chain = pki.server_files.private_key.clone();
    let key_file = pki.server_files.private_key.clone();
    let error = server_error_naming(&pki, &key_file);
    assert!(
        matches!(error, ConfigError::NoCertificate { .. }),
        "{error:?}"
    );
    assert!(error.to_string().contains("no CERTIFICATE"), "{error}");

    let mut pki = Pki::new(KeyKind::EcdsaP256);
    let empty = pki.dir.write("empty-ca.pem", "");
    pki.server_files.client_ca = Some(empty.clone());
    let error = server_error_naming(&pki, &empty);
    assert!(
        matches!(error, ConfigError::NoCertificate { .. }),
        "{error:?}"
    );
}

#[test]
fn a_file_without_a_key_is_named() {
    let mut pki = Pki::new(KeyKind::EcdsaP256);
    pki.server_files.private_key = pki.server_files.cert_chain.clone();
    let cert_file = pki.server_files.cert_chain.clone();
    let error = server_error_naming(&pki, &cert_file);
    assert!(
        matches!(error, ConfigError::NoPrivateKey { .. }),
        "{error:?}"
    );
}

#[test]
fn a_key_that_does_not_match_the_certificate_names_both_files() {
    let mut pki = Pki::new(KeyKind::EcdsaP256);
    let other = Ca::new("other").server(KeyKind::EcdsaP256);
    let wrong_key = pki.dir.write("other.key", &other.key_pem);
    pki.server_files.private_key = wrong_key.clone();
    let error = server_error_naming(&pki, &wrong_key);
    assert!(
        matches!(error, ConfigError::KeyMismatch { .. }),
        "{error:?}"
    );
    let text = error.to_string();
    assert!(text.contains("does not match"), "{text}");
    assert!(
        text.contains(&pki.server_files.cert_chain.display().to_string()),
        "{text}"
    );
}

#[test]
fn two_keys_in_one_file_are_ambiguous() {
    let mut pki = Pki::new(KeyKind::EcdsaP256);
    let two = format!(
        "{}{}",
        read(&pki.server_files.private_key),
        Ca::new("x").server(KeyKind::Ed25519).key_pem
    );
    let file = pki.dir.write("two.key", two);
    pki.server_files.private_key = file.clone();
    let error = server_error_naming(&pki, &file);
    assert!(
        matches!(error, ConfigError::SeveralPrivateKeys { .. }),
        "{error:?}"
    );
}

#[test]
fn an_encrypted_key_is_explained() {
    let mut pki = Pki::new(KeyKind::EcdsaP256);
    let file = pki.dir.write(
        "encrypted.key",
        "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMAA=\n-----END ENCRYPTED PRIVATE KEY-----\n",
    );
    pki.server_files.private_key = file.clone();
    let error = server_error_naming(&pki, &file);
    assert!(
        matches!(error, ConfigError::EncryptedPrivateKey { .. }),
        "{error:?}"
    );
}

/// DER of a PKCS#8 `PrivateKeyInfo` for algorithm `oid` wrapping `key`.
fn pkcs8(oid: &[u8], key: &[u8]) -> Vec<u8> {
    fn tlv(tag: u8, body: &[u8]) -> Vec<u8> {
        assert!(body.len() < 128);
        let mut out = vec![tag, body.len() as u8];
        out.extend_from_slice(body);
        out
    }
    let version = tlv(0x02, &[0]);
    let algorithm = tlv(0x30, &tlv(0x06, oid));
    let private_key = tlv(0x04, &tlv(0x04, key));
    tlv(0x30, &[version, algorithm, private_key].concat())
}

/// PEM text of one section.
fn pem(label: &str, der: &[u8]) -> String {
    const B64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut text = String::new();
    for chunk in der.chunks(3) {
        let n =
            chunk.iter().fold(0u32, |acc, &b| acc << 8 | u32::from(b)) << (8 * (3 - chunk.len()));
        for i in 0..4 {
            text.push(if i <= chunk.len() {
                B64[(n >> (18 - 6 * i) & 63) as usize] as char
            } else {
                '='
            });
        }
    }
    format!("-----BEGIN {label}-----\n{text}\n-----END {label}-----\n")
}

#[test]
fn an_unsupported_key_type_is_named() {
    let mut pki = Pki::new(KeyKind::EcdsaP256);
    // An Ed448 key (OID 1.3.101.113) of random bytes: well-formed PKCS#8
    // that no provider here can sign with.
    let ed448 = pkcs8(&[0x2b, 0x65, 0x71], &[0x5a; 57]);
    let file = pki.dir.write("ed448.key", pem("PRIVATE KEY", &ed448));
    pki.server_files.private_key = file.clone();
    let error = server_error_naming(&pki, &file);
    assert!(
        matches!(error, ConfigError::UnsupportedKey { .. }),
        "{error:?}"
    );
    assert!(
        error.to_string().contains("unsupported private key type"),
        "{error}"
    );

    let dsa = pki.dir.write("dsa.key", pem("DSA PRIVATE KEY", &[0x30, 0]));
    pki.server_files.private_key = dsa.clone();
    let error = server_error_naming(&pki, &dsa);
    assert!(
        matches!(error, ConfigError::UnsupportedKey { .. }),
        "{error:?}"
    );
}

#[test]
fn broken_pem_is_named() {
    let mut pki = Pki::new(KeyKind::EcdsaP256);
    let text = read(&pki.server_files.cert_chain);
    let cut = pki.dir.write("cut.pem", &text[..text.len() / 2]);
    pki.server_files.cert_chain = cut.clone();
    let error = server_error_naming(&pki, &cut);
    assert!(matches!(error, ConfigError::BadPem { .. }), "{error:?}");
}

#[test]
fn a_certificate_section_that_is_not_a_certificate_is_named() {
    let mut pki = Pki::new(KeyKind::EcdsaP256);
    let junk = pki.dir.write("junk-ca.pem", pem("CERTIFICATE", b"junk"));
    pki.server_files.client_ca = Some(junk.clone());
    let error = server_error_naming(&pki, &junk);
    assert!(
        matches!(error, ConfigError::BadCertificate { .. }),
        "{error:?}"
    );
}

#[test]
fn a_failed_reload_leaves_the_running_configuration_usable() {
    let pki = Pki::new(KeyKind::EcdsaP256);
    let running = pki.server_config();
    std::fs::write(&pki.server_files.private_key, "garbage").unwrap();
    assert!(load_server_config(&pki.server_files).is_err());
    handshaked(&pki.client_config(None), &running);
}

#[test]
fn client_configuration_errors_name_the_file() {
    let pki = Pki::new(KeyKind::EcdsaP256);
    let missing_ca = pki.dir.path("missing-ca.pem");
    let options = ClientTlsOptions {
        verification: ServerVerification::CaFile(missing_ca.clone()),
        client_cert: None,
        versions: TlsVersions::Tls13Only,
    };
    let error = load_client_config(&options).unwrap_err();
    assert!(
        error
            .to_string()
            .contains(&missing_ca.display().to_string()),
        "{error}"
    );

    let other = Ca::new("other").client(KeyKind::EcdsaP256, "c", Vec::new());
    let mine = pki.ca.client(KeyKind::EcdsaP256, "c", Vec::new());
    let files = ClientCertFiles {
        cert_chain: pki.dir.write("mine.pem", &mine.cert_pem),
        private_key: pki.dir.write("other.key", &other.key_pem),
    };
    let options = ClientTlsOptions {
        verification: ServerVerification::CaFile(pki.ca_file.clone()),
        client_cert: Some(files.clone()),
        versions: TlsVersions::Tls12And13,
    };
    match load_client_config(&options).unwrap_err() {
        ConfigError::KeyMismatch { key, cert } => {
            assert_eq!(key, files.private_key);
            assert_eq!(cert, files.cert_chain);
        }
        other => panic!("expected a key mismatch, got {other:?}"),
    }
}

#[test]
fn the_insecure_verifier_accepts_an_unknown_ca_but_system_roots_do_not() {
    let pki = Pki::new(KeyKind::EcdsaP256);
    let insecure = load_client_config(&ClientTlsOptions {
        verification: ServerVerification::InsecureAcceptAny,
        client_cert: None,
        versions: TlsVersions::Tls12And13,
    })
    .unwrap();
    handshaked(&insecure, &pki.server_config());

    // The system store may be empty on a bare machine: then the error says so.
    match load_client_config(&ClientTlsOptions {
        verification: ServerVerification::SystemRoots,
        client_cert: None,
        versions: TlsVersions::Tls12And13,
    }) {
        Ok(system) => {
            let mut pair = super::support::Pair::new(&system, &pki.server_config());
            assert!(
                pair.run().is_err(),
                "a throwaway CA is not in the system store"
            );
        }
        Err(error) => assert!(
            matches!(error, ConfigError::NoSystemRoots { .. }),
            "{error:?}"
        ),
    }
}
