//! Mutual TLS: the server requires a client certificate from its client CA.

use rcgen::SanType;

use super::support::{Ca, KeyKind, Pair, Pki};
use super::tls::{FailureKind, PeerIdentity};

/// A PKI whose server requires client certificates issued by its CA.
fn mtls_pki() -> Pki {
    let mut pki = Pki::new(KeyKind::EcdsaP256);
    pki.server_files.client_ca = Some(pki.ca_file.clone());
    pki
}

#[test]
fn a_good_client_certificate_is_accepted_and_its_names_are_reported() {
    let pki = mtls_pki();
    let client = pki.ca.client(
        KeyKind::EcdsaP256,
        "device-42",
        vec![
            SanType::DnsName("device-42.fleet.example".try_into().unwrap()),
            SanType::URI("spiffe://fleet.example/device/42".try_into().unwrap()),
            SanType::Rfc822Name("ops@fleet.example".try_into().unwrap()),
            SanType::IpAddress([10, 1, 2, 3].into()),
            SanType::IpAddress("fd00::42".parse().unwrap()),
        ],
    );
    let mut pair = Pair::new(
        &pki.client_config(Some(("client", &client))),
        &pki.server_config(),
    );
    assert_eq!(
        pair.server.peer_identity(),
        None,
        "not before the handshake"
    );
    pair.run().unwrap();
    assert!(pair.outcome.handshake_completed);
    assert_eq!(
        pair.server.peer_identity(),
        Some(PeerIdentity {
            common_name: Some("device-42".to_owned()),
            sans: vec![
                "DNS:device-42.fleet.example".to_owned(),
                "URI:spiffe://fleet.example/device/42".to_owned(),
                "email:ops@fleet.example".to_owned(),
                "IP:10.1.2.3".to_owned(),
                "IP:fd00::42".to_owned(),
            ],
        })
    );
}

#[test]
fn a_missing_client_certificate_fails_the_handshake() {
    let pki = mtls_pki();
    let mut pair = Pair::new(&pki.client_config(None), &pki.server_config());
    let failure = pair.server_failure();
    assert_eq!(failure.kind(), FailureKind::Handshake);
    assert_eq!(
        failure.rustls_error(),
        Some(&rustls::Error::NoCertificatesPresented)
    );
    assert!(!pair.server.can_send());
    // The server's alert told the client why (delivered by `run`).
    assert!(matches!(
        pair.client.process_new_packets(),
        Err(rustls::Error::AlertReceived(_))
    ));
}

#[test]
fn a_client_certificate_from_another_ca_fails_the_handshake() {
    let pki = mtls_pki();
    let impostor_ca = Ca::new("impostor CA");
    let client = impostor_ca.client(KeyKind::EcdsaP256, "device-42", Vec::new());
    let mut pair = Pair::new(
        &pki.client_config(Some(("client", &client))),
        &pki.server_config(),
    );
    let failure = pair.server_failure();
    assert_eq!(failure.kind(), FailureKind::Handshake);
    assert!(
        matches!(
            failure.rustls_error(),
            Some(rustls::Error::InvalidCertificate(
                rustls::CertificateError::UnknownIssuer
            ))
        ),
        "{failure:?}"
    );
    assert_eq!(pair.server.peer_identity(), None);
}

#[test]
fn an_intermediate_issued_client_certificate_with_its_chain_is_accepted() {
    let pki = mtls_pki();
    let intermediate = pki.ca.intermediate("devices intermediate");
    let mut client = intermediate.client(KeyKind::Ed25519, "device-7", Vec::new());
    client.cert_pem.push_str(&intermediate.cert_pem);
    let mut pair = Pair::new(
        &pki.client_config(Some(("client", &client))),
        &pki.server_config(),
    );
    pair.run().unwrap();
    let identity = pair.server.peer_identity().unwrap();
    assert_eq!(identity.common_name.as_deref(), Some("device-7"));
    assert!(identity.sans.is_empty());
}

#[test]
fn a_client_certificate_spanning_several_records_is_reassembled_at_any_split() {
    let pki = mtls_pki();
    // ~1500 SANs make a ~40 KB Certificate message: three records, which the
    // server must join while holding them as pending input.
    let sans = (0..1500)
        .map(|i| SanType::DnsName(format!("host-{i:04}.fleet.example").try_into().unwrap()))
        .collect();
    let client = pki.ca.client(KeyKind::EcdsaP256, "big", sans);
    assert!(
        client.cert_der.len() > 2 * 16384,
        "{}",
        client.cert_der.len()
    );
    let client_config = pki.client_config(Some(("client", &client)));
    for chunk in [1, 999, 16_384, 65_536] {
        let mut pair = Pair::new(&client_config, &pki.server_config());
        pair.chunk = chunk;
        pair.run().unwrap();
        assert_eq!(pair.server.pending_input(), 0, "chunk {chunk}");
        let identity = pair.server.peer_identity().unwrap();
        assert_eq!(identity.sans.len(), 1500);
        assert_eq!(identity.sans[1499], "DNS:host-1499.fleet.example");
        assert_eq!(pair.server_sends(b"ok"), b"ok");
    }
}
