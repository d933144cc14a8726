//! Reading names out of certificates, including odd string types and junk.

use rcgen::{CertificateParams, DnType, DnValue, KeyPair};

use super::tls::PeerIdentity;

/// A self-signed certificate whose subject has these attributes.
fn cert_with_subject(attributes: Vec<(DnType, DnValue)>) -> Vec<u8> {
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name = rcgen::DistinguishedName::new();
    for (kind, value) in attributes {
        params.distinguished_name.push(kind, value);
    }
    params.self_signed(&key).unwrap().der().to_vec()
}

#[test]
fn common_name_string_types_decode() {
    let cases: Vec<(DnValue, &str)> = vec![
        (DnValue::Utf8String("Zoë".into()), "Zoë"),
        (
            DnValue::PrintableString("plain".try_into().unwrap()),
            "plain",
        ),
        (DnValue::BmpString("Ünïcode".try_into().unwrap()), "Ünïcode"),
        (DnValue::UniversalString("wide".try_into().unwrap()), "wide"),
        (
            DnValue::TeletexString("teletex".try_into().unwrap()),
            "teletex",
        ),
    ];
    for (value, expected) in cases {
        let der = cert_with_subject(vec![
            (DnType::OrganizationName, DnValue::Utf8String("Org".into())),
            (DnType::CommonName, value),
        ]);
        let identity = PeerIdentity::from_certificate(&der).unwrap();
        assert_eq!(identity.common_name.as_deref(), Some(expected));
    }
}

#[test]
fn a_subject_without_common_name_has_none() {
    let der = cert_with_subject(vec![(
        DnType::OrganizationName,
        DnValue::Utf8String("Org only".into()),
    )]);
    let identity = PeerIdentity::from_certificate(&der).unwrap();
    assert_eq!(identity.common_name, None);
    assert!(identity.sans.is_empty());
}

#[test]
fn the_last_common_name_wins() {
    let der = cert_with_subject(vec![
        (DnType::CommonName, DnValue::Utf8String("first".into())),
        (DnType::CommonName, DnValue::Utf8String("second".into())),
    ]);
    let identity = PeerIdentity::from_certificate(&der).unwrap();
    assert_eq!(identity.common_name.as_deref(), Some("second"));
}

#[test]
fn junk_and_every_truncation_of_a_certificate_read_as_none() {
    assert_eq!(PeerIdentity::from_certificate(&[]), None);
    assert_eq!(PeerIdentity::from_certificate(b"not DER at all"), None);
    assert_eq!(PeerIdentity::from_certificate(&[0x30, 0x80, 0, 0]), None);
    assert_eq!(
        PeerIdentity::from_certificate(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]),
        None
    );
    let der = cert_with_subject(vec![(DnType::CommonName, DnValue::Utf8String("x".into()))]);
    for len in 0..der.len() {
        assert_eq!(
            PeerIdentity::from_certificate(&der[..len]),
            None,
            "cut at {len}"
        );
    }
    // Flipped bytes may still parse, but must never panic.
    for i in 0..der.len() {
        let mut bent = der.clone();
        bent[i] ^= 0xff;
        let _ = PeerIdentity::from_certificate(&bent);
    }
}
