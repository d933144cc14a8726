//! Failure classification: not TLS, broken handshakes, truncation, corrupt
//! records; and random input never panics.

use std::io::Write;

use proptest::prelude::*;

use super::support::{handshaked, KeyKind, Pair, Pki};
use super::tls::{Eof, FailureKind, ServerSession};
use crate::protocol::Hello;

/// Feeds `bytes` to a fresh session in one read; the failure kind, if any.
fn fresh_session_verdict(pki: &Pki, bytes: &[u8]) -> Option<FailureKind> {
    let mut session = ServerSession::new(pki.server_config()).unwrap();
    let (mut plaintext, mut out) = (Vec::new(), Vec::new());
    let mut input = bytes.to_vec();
    session
        .read_tls(&mut input, &mut plaintext, &mut out)
        .err()
        .map(|f| f.kind())
}

#[test]
fn plaintext_tether_is_not_tls_and_says_so() {
    let pki = Pki::new(KeyKind::EcdsaP256);
    let hello = Hello {
        version: crate::protocol::PROTOCOL_V1,
        heartbeat_ms: 0,
        token: bytes::Bytes::new(),
        resume: None,
    }
    .encode_frame();
    let mut session = ServerSession::new(pki.server_config()).unwrap();
    let (mut plaintext, mut out) = (Vec::new(), Vec::new());
    let failure = session
        .read_tls(&mut hello.to_vec(), &mut plaintext, &mut out)
        .unwrap_err();
    assert_eq!(failure.kind(), FailureKind::NotTls);
    assert!(
        failure.to_string().contains("plaintext tether"),
        "{failure}"
    );
    assert!(
        out.is_empty(),
        "no TLS alert to a peer that does not speak TLS"
    );
    assert!(!session.wants_read());
    assert_eq!(session.failure(), Some(FailureKind::NotTls));
    // Later calls keep reporting the failure.
    let again = session
        .read_tls(&mut [0x16], &mut plaintext, &mut out)
        .unwrap_err();
    assert_eq!(again.kind(), FailureKind::NotTls);
}

#[test]
fn http_and_garbage_are_not_tls_even_byte_by_byte() {
    let pki = Pki::new(KeyKind::EcdsaP256);
    assert_eq!(
        fresh_session_verdict(&pki, b"GET / HTTP/1.1\r\n\r\n"),
        Some(FailureKind::NotTls)
    );
    assert_eq!(
        fresh_session_verdict(&pki, &[0x16, 0x47]),
        Some(FailureKind::NotTls)
    );
    let mut session = ServerSession::new(pki.server_config()).unwrap();
    let (mut plaintext, mut out) = (Vec::new(), Vec::new());
    session
        .read_tls(&mut [0x16], &mut plaintext, &mut out)
        .unwrap();
    let failure = session
        .read_tls(&mut [0x00], &mut plaintext, &mut out)
        .unwrap_err();
    assert_eq!(failure.kind(), FailureKind::NotTls);
}

#[test]
fn a_tls_header_with_a_garbage_body_is_a_handshake_failure() {
    let pki = Pki::new(KeyKind::EcdsaP256);
    let mut bytes = vec![0x16, 0x03, 0x01, 0x00, 0x20];
    bytes.extend_from_slice(&[0xee; 32]);
    assert_eq!(
        fresh_session_verdict(&pki, &bytes),
        Some(FailureKind::Handshake)
    );
}

#[test]
fn eof_in_the_middle_of_the_handshake_is_a_truncated_handshake() {
    let pki = Pki::new(KeyKind::EcdsaP256);
    let mut pair = Pair::new(&pki.client_config(None), &pki.server_config());
    let client_hello = pair.client_bytes();
    pair.deliver_to_server(&client_hello[..client_hello.len() / 2])
        .unwrap();
    assert!(pair.server.pending_input() > 0);
    let failure = pair.server.read_eof().unwrap_err();
    assert_eq!(failure.kind(), FailureKind::TruncatedHandshake);

    // Also after the whole ClientHello, waiting for the client's Finished.
    let mut pair = Pair::new(&pki.client_config(None), &pki.server_config());
    pair.client_to_server().unwrap();
    assert!(!pair.server_out.is_empty(), "the server's flight");
    assert_eq!(pair.server.pending_input(), 0);
    let failure = pair.server.read_eof().unwrap_err();
    assert_eq!(failure.kind(), FailureKind::TruncatedHandshake);
}

#[test]
fn eof_before_any_byte_is_not_a_failure() {
    let pki = Pki::new(KeyKind::EcdsaP256);
    let mut session = ServerSession::new(pki.server_config()).unwrap();
    assert_eq!(session.read_eof().unwrap(), Eof::BeforeAnyData);
    assert!(!session.wants_read());
}

#[test]
fn eof_after_the_handshake_at_a_record_boundary_is_unclean_but_not_a_failure() {
    let pki = Pki::new(KeyKind::EcdsaP256);
    let mut pair = handshaked(&pki.client_config(None), &pki.server_config());
    assert_eq!(pair.server.read_eof().unwrap(), Eof::WithoutCloseNotify);
}

#[test]
fn eof_inside_a_record_after_the_handshake_is_a_corrupt_record() {
    let pki = Pki::new(KeyKind::EcdsaP256);
    let mut pair = handshaked(&pki.client_config(None), &pki.server_config());
    pair.client.writer().write_all(b"cut short").unwrap();
    let bytes = pair.client_bytes();
    pair.deliver_to_server(&bytes[..bytes.len() - 3]).unwrap();
    let failure = pair.server.read_eof().unwrap_err();
    assert_eq!(failure.kind(), FailureKind::CorruptRecord);
}

#[test]
fn a_flipped_bit_after_the_handshake_is_a_corrupt_record_and_alerts_the_peer() {
    let pki = Pki::new(KeyKind::EcdsaP256);
    let mut pair = handshaked(&pki.client_config(None), &pki.server_config());
    pair.client.writer().write_all(b"tamper with me").unwrap();
    let mut bytes = pair.client_bytes();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01; // inside the AEAD tag
    let failure = pair.deliver_to_server(&bytes).unwrap_err();
    assert_eq!(failure.kind(), FailureKind::CorruptRecord);
    assert!(pair.server_received.is_empty());
    assert!(!pair.server_out.is_empty(), "a bad_record_mac alert");
    assert!(matches!(
        pair.server_to_client(),
        Err(rustls::Error::AlertReceived(
            rustls::AlertDescription::BadRecordMac
        ))
    ));
    assert_eq!(pair.server.failure(), Some(FailureKind::CorruptRecord));
    assert!(!pair.server.can_send() && !pair.server.wants_read());
}

/// Feeds `bytes` to `session` in pieces whose sizes cycle through `cuts`;
/// any outcome is fine as long as nothing panics and a failure sticks.
fn feed_in_pieces(session: &mut ServerSession, bytes: &[u8], cuts: &[usize]) {
    let (mut plaintext, mut out) = (Vec::new(), Vec::new());
    let mut rest = bytes;
    let mut sizes = cuts.iter().cycle();
    while !rest.is_empty() {
        let size = (*sizes.next().unwrap_or(&1)).clamp(1, rest.len());
        let mut piece = rest[..size].to_vec();
        rest = &rest[size..];
        if session
            .read_tls(&mut piece, &mut plaintext, &mut out)
            .is_err()
        {
            assert!(session.failure().is_some());
            assert!(session
                .read_tls(&mut [0x16], &mut plaintext, &mut out)
                .is_err());
            return;
        }
    }
    let _ = session.read_eof();
    let _ = session.close(&mut out);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_bytes_never_panic(
        bytes in prop::collection::vec(any::<u8>(), 0..3000),
        tls_prefix in any::<bool>(),
        cuts in prop::collection::vec(1usize..700, 1..5),
    ) {
        thread_local!(static PKI: Pki = Pki::new(KeyKind::EcdsaP256));
        let config = PKI.with(|pki| pki.server_config());
        let mut session = ServerSession::new(config).unwrap();
        let mut input = if tls_prefix { vec![0x16, 0x03, 0x01] } else { Vec::new() };
        input.extend_from_slice(&bytes);
        feed_in_pieces(&mut session, &input, &cuts);
    }

    #[test]
    fn a_mutated_client_hello_never_panics(
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cuts in prop::collection::vec(1usize..400, 1..4),
    ) {
        thread_local!(static HELLO: (Pki, Vec<u8>) = {
            let pki = Pki::new(KeyKind::EcdsaP256);
            let hello = Pair::new(&pki.client_config(None), &pki.server_config()).client_bytes();
            (pki, hello)
        });
        let (config, mut hello) = HELLO.with(|(pki, hello)| (pki.server_config(), hello.clone()));
        for (at, value) in flips {
            let i = at.index(hello.len());
            hello[i] ^= value;
        }
        let mut session = ServerSession::new(config).unwrap();
        feed_in_pieces(&mut session, &hello, &cuts);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn random_records_after_the_handshake_never_panic(
        bytes in prop::collection::vec(any::<u8>(), 0..2000),
        header in any::<bool>(),
        cuts in prop::collection::vec(1usize..700, 1..5),
    ) {
        thread_local!(static PKI: Pki = Pki::new(KeyKind::EcdsaP256));
        let mut pair = PKI.with(|pki| handshaked(&pki.client_config(None), &pki.server_config()));
        let mut input = Vec::new();
        if header {
            // An application-data record header with a plausible length.
            let len = (bytes.len() as u16).to_be_bytes();
            input.extend_from_slice(&[0x17, 0x03, 0x03, len[0], len[1]]);
        }
        input.extend_from_slice(&bytes);
        feed_in_pieces(&mut pair.server, &input, &cuts);
    }
}
