//! Full handshakes and application data in both directions.

use std::io::Write;
use std::sync::Arc;

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, ProtocolVersion};

use super::support::{handshaked, KeyKind, Pair, PairError, Pki};
use super::tls::{policy, Eof, FailureKind, TlsVersions};

/// A rustls client that only speaks TLS 1.2, trusting `pki`'s CA.
fn tls12_only_client(pki: &Pki) -> Arc<ClientConfig> {
    pki.rustls_client(
        (*policy::crypto_provider()).clone(),
        &[&rustls::version::TLS12],
    )
}

/// Bytes that differ at every position, so a misplaced byte shows.
fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
}

#[test]
fn tls13_handshake_completes_and_reports_it_once() {
    let pki = Pki::new(KeyKind::EcdsaP256);
    let mut pair = Pair::new(&pki.client_config(None), &pki.server_config());
    assert!(pair.server.is_handshaking() && !pair.server.can_send());
    pair.run().unwrap();
    assert!(pair.outcome.handshake_completed);
    assert!(pair.server.can_send() && pair.server.wants_read());
    assert_eq!(
        pair.server.protocol_version(),
        Some(ProtocolVersion::TLSv1_3)
    );
    assert_eq!(pair.server.pending_input(), 0);
    assert_eq!(pair.server.peer_identity(), None, "no client certificate");
}

#[test]
fn tls12_handshake_completes() {
    let pki = Pki::new(KeyKind::EcdsaP256);
    let pair = handshaked(&tls12_only_client(&pki), &pki.server_config());
    assert_eq!(
        pair.server.protocol_version(),
        Some(ProtocolVersion::TLSv1_2)
    );
    assert!(pair.server.can_send());
}

#[test]
fn data_both_ways_one_byte_at_a_time() {
    let pki = Pki::new(KeyKind::EcdsaP256);
    let mut pair = Pair::new(&pki.client_config(None), &pki.server_config());
    pair.chunk = 1;
    pair.run().unwrap();
    pair.client.writer().write_all(b"hello over TLS").unwrap();
    pair.client_to_server().unwrap();
    assert_eq!(pair.server_received, b"hello over TLS");
    assert_eq!(pair.server_sends(b"and back"), b"and back");
}

#[test]
fn many_records_in_one_read() {
    let pki = Pki::new(KeyKind::EcdsaP256);
    let mut pair = handshaked(&pki.client_config(None), &pki.server_config());
    let mut expected = Vec::new();
    for i in 0..200u32 {
        let message = format!("message {i};");
        pair.client.writer().write_all(message.as_bytes()).unwrap();
        expected.extend_from_slice(message.as_bytes());
    }
    let bytes = pair.client_bytes();
    assert!(bytes.len() > 200 * 22, "one record per write");
    pair.deliver_to_server(&bytes).unwrap();
    assert_eq!(pair.server_received, expected);
    assert_eq!(pair.server.pending_input(), 0);
}

#[test]
fn a_partial_record_is_held_only_until_it_completes() {
    let pki = Pki::new(KeyKind::EcdsaP256);
    let mut pair = handshaked(&pki.client_config(None), &pki.server_config());
    pair.client.writer().write_all(&pattern(3000)).unwrap();
    let bytes = pair.client_bytes();
    let (head, tail) = bytes.split_at(1000);
    pair.deliver_to_server(head).unwrap();
    assert_eq!(pair.server.pending_input(), 1000);
    assert!(pair.server_received.is_empty());
    pair.deliver_to_server(tail).unwrap();
    assert_eq!(pair.server.pending_input(), 0);
    assert_eq!(pair.server_received, pattern(3000));
}

#[test]
fn one_mebibyte_each_way_at_awkward_splits() {
    let pki = Pki::new(KeyKind::EcdsaP256);
    let data = pattern(1 << 20);
    for chunk in [65536, 16_389, 1000, 7] {
        let mut pair = handshaked(&pki.client_config(None), &pki.server_config());
        pair.chunk = chunk;
        pair.client_sends(&data).unwrap();
        assert_eq!(pair.server_received.len(), data.len(), "chunk {chunk}");
        assert!(pair.server_received == data, "chunk {chunk}");
        assert_eq!(pair.server.pending_input(), 0);
        assert!(pair.server_sends(&data) == data, "chunk {chunk}");
    }
}

#[test]
fn server_close_notify_reaches_the_client_and_the_reply_is_the_peers_eof() {
    let pki = Pki::new(KeyKind::EcdsaP256);
    let mut pair = handshaked(&pki.client_config(None), &pki.server_config());
    pair.server
        .encrypt(b"GOAWAY", &mut pair.server_out)
        .unwrap();
    pair.server.close(&mut pair.server_out).unwrap();
    assert!(!pair.server.can_send(), "no data after close_notify");
    assert!(
        pair.server.wants_read(),
        "still reads until the peer closes"
    );
    let out_len = pair.server_out.len();
    pair.server.close(&mut pair.server_out).unwrap();
    assert_eq!(pair.server_out.len(), out_len, "close is idempotent");
    pair.server_to_client().unwrap();
    assert_eq!(pair.client_received, b"GOAWAY");
    let mut rest = Vec::new();
    let read = std::io::Read::read_to_end(&mut pair.client.reader(), &mut rest);
    assert_eq!(read.unwrap(), 0, "the client reader sees a clean EOF");
    let failure = pair
        .server
        .encrypt(b"late", &mut pair.server_out)
        .unwrap_err();
    assert_eq!(failure.kind(), FailureKind::Internal);
}

#[test]
fn client_close_notify_is_the_peers_eof() {
    let pki = Pki::new(KeyKind::EcdsaP256);
    let mut pair = handshaked(&pki.client_config(None), &pki.server_config());
    pair.client.writer().write_all(b"bye").unwrap();
    pair.client.send_close_notify();
    pair.client_to_server().unwrap();
    assert!(pair.outcome.peer_closed);
    assert!(pair.server.peer_closed() && !pair.server.wants_read());
    assert_eq!(pair.server_received, b"bye");
    // Anything after close_notify is ignored; the server may still send.
    pair.deliver_to_server(&[0x17, 0x03, 0x03, 0, 1, 0])
        .unwrap();
    assert_eq!(pair.server_sends(b"last words"), b"last words");
    pair.server.close(&mut pair.server_out).unwrap();
    assert!(!pair.server_out.is_empty());
    assert_eq!(pair.server.read_eof().unwrap(), Eof::AfterCloseNotify);
}

#[test]
fn data_before_the_handshake_is_refused() {
    let pki = Pki::new(KeyKind::EcdsaP256);
    let mut pair = Pair::new(&pki.client_config(None), &pki.server_config());
    let failure = pair
        .server
        .encrypt(b"too early", &mut pair.server_out)
        .unwrap_err();
    assert_eq!(failure.kind(), FailureKind::Internal);
    assert!(
        failure.to_string().contains("before the handshake"),
        "{failure}"
    );
    assert!(pair.server_out.is_empty());
}

#[test]
fn tls13_only_server_refuses_a_tls12_only_client() {
    let mut pki = Pki::new(KeyKind::EcdsaP256);
    pki.server_files.versions = TlsVersions::Tls13Only;
    let mut pair = Pair::new(&tls12_only_client(&pki), &pki.server_config());
    assert_eq!(pair.server_failure().kind(), FailureKind::Handshake);
    assert!(matches!(
        pair.client.process_new_packets(),
        Err(rustls::Error::AlertReceived(_))
    ));
}

#[test]
fn no_common_cipher_suite_is_a_handshake_failure() {
    let pki = Pki::new(KeyKind::EcdsaP256);
    // The client offers only RSA-authenticated TLS 1.2 suites; the server's key is ECDSA.
    let provider = rustls::crypto::CryptoProvider {
        cipher_suites: vec![
            rustls::crypto::aws_lc_rs::cipher_suite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        ],
        ..(*policy::crypto_provider()).clone()
    };
    let client = pki.rustls_client(provider, &[&rustls::version::TLS12]);
    let mut pair = Pair::new(&client, &pki.server_config());
    let failure = pair.server_failure();
    assert_eq!(failure.kind(), FailureKind::Handshake);
    assert!(
        matches!(
            failure.rustls_error(),
            Some(rustls::Error::PeerIncompatible(_))
        ),
        "{failure:?}"
    );
}

#[test]
fn a_client_trusting_another_ca_fails_with_unknown_issuer() {
    let pki = Pki::new(KeyKind::EcdsaP256);
    let other = Pki::new(KeyKind::EcdsaP256);
    let mut pair = Pair::new(&other.client_config(None), &pki.server_config());
    match pair.run() {
        Err(PairError::Client(rustls::Error::InvalidCertificate(e))) => {
            assert_eq!(e, rustls::CertificateError::UnknownIssuer)
        }
        other => panic!("expected the client to reject the certificate, got {other:?}"),
    }
    // The client's alert then fails the server's handshake.
    let failure = pair.client_to_server().unwrap_err();
    assert_eq!(failure.kind(), FailureKind::Handshake);
}

#[test]
fn a_wrong_server_name_fails_on_the_client() {
    let pki = Pki::new(KeyKind::EcdsaP256);
    let name = ServerName::try_from("db.internal.example").unwrap();
    let mut pair = Pair::new(&pki.client_config(None), &pki.server_config());
    pair.client = ClientConnection::new(pki.client_config(None), name).unwrap();
    match pair.run() {
        Err(PairError::Client(rustls::Error::InvalidCertificate(e))) => {
            let text = e.to_string();
            assert!(text.contains("not valid for name"), "{text}");
        }
        other => panic!("expected a name mismatch, got {other:?}"),
    }
}

#[test]
fn an_ip_address_server_name_is_verified_against_ip_sans() {
    let pki = Pki::new(KeyKind::EcdsaP256);
    let mut pair = Pair::new(&pki.client_config(None), &pki.server_config());
    let name = super::tls::server_name("127.0.0.1").unwrap();
    pair.client = ClientConnection::new(pki.client_config(None), name).unwrap();
    pair.run().unwrap();
    assert!(super::tls::server_name("not a host").is_err());
}

#[test]
fn a_ticket_resumes_the_session_without_a_full_handshake() {
    let pki = Pki::new(KeyKind::EcdsaP256);
    let client = super::tls::load_client_config(&pki.client_options(None)).unwrap();
    let server = pki.server_config();
    let mut first = handshaked(&client, &server);
    assert_eq!(first.server_sends(b"x"), b"x", "delivers the ticket too");
    assert_eq!(
        first.client.handshake_kind(),
        Some(rustls::HandshakeKind::Full)
    );
    let second = handshaked(&client, &server);
    assert_eq!(
        second.client.handshake_kind(),
        Some(rustls::HandshakeKind::Resumed)
    );
    // A new configuration (a reload) has a new ticket key: full handshake again.
    let third = handshaked(&client, &pki.server_config());
    assert_eq!(
        third.client.handshake_kind(),
        Some(rustls::HandshakeKind::Full)
    );
}
