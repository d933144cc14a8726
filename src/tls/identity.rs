//! The identity of a mutually authenticated client: the subject common name
//! and subject alternative names of its verified certificate.
//!
//! rustls verifies the certificate; this module only reads names out of it,
//! with a small DER reader that knows the few X.509 structures involved. It
//! returns `None` on anything it does not understand rather than guessing,
//! and never panics, whatever the bytes.

use std::net::{Ipv4Addr, Ipv6Addr};

/// Who the client is, per its verified certificate. Built only for mutual
/// TLS connections, and only when asked for
/// ([`ServerSession::peer_identity`](super::ServerSession::peer_identity)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerIdentity {
    /// The subject's common name (CN); the last one when there are several,
    /// as most X.509 libraries do. `None` when the subject has none.
    pub common_name: Option<String>,
    /// The subject alternative names, in certificate order, written the way
    /// OpenSSL prints them: `DNS:host`, `URI:spiffe://...`, `email:a@b`,
    /// `IP:10.0.0.1`. Other kinds (otherName, directoryName...) are skipped.
    pub sans: Vec<String>,
}

/// `id-at-commonName` (2.5.4.3), the OID's content octets.
const OID_COMMON_NAME: &[u8] = &[0x55, 0x04, 0x03];
/// `id-ce-subjectAltName` (2.5.29.17).
const OID_SUBJECT_ALT_NAME: &[u8] = &[0x55, 0x1d, 0x11];

mod tag {
    pub const BOOLEAN: u8 = 0x01;
    pub const INTEGER: u8 = 0x02;
    pub const OCTET_STRING: u8 = 0x04;
    pub const OID: u8 = 0x06;
    pub const UTF8_STRING: u8 = 0x0c;
    pub const PRINTABLE_STRING: u8 = 0x13;
    pub const TELETEX_STRING: u8 = 0x14;
    pub const IA5_STRING: u8 = 0x16;
    pub const UNIVERSAL_STRING: u8 = 0x1c;
    pub const BMP_STRING: u8 = 0x1e;
    pub const SEQUENCE: u8 = 0x30;
    pub const SET: u8 = 0x31;
    pub const VERSION: u8 = 0xa0;
    pub const ISSUER_UID: u8 = 0x81;
    pub const SUBJECT_UID: u8 = 0x82;
    pub const EXTENSIONS: u8 = 0xa3;
    pub const SAN_EMAIL: u8 = 0x81;
    pub const SAN_DNS: u8 = 0x82;
    pub const SAN_URI: u8 = 0x86;
    pub const SAN_IP: u8 = 0x87;
}

impl PeerIdentity {
    /// Reads the names out of a DER certificate; `None` if it is not one.
    pub fn from_certificate(der: &[u8]) -> Option<PeerIdentity> {
        let mut outer = Der::new(der);
        let mut cert = Der::new(outer.expect(tag::SEQUENCE)?);
        let mut tbs = Der::new(cert.expect(tag::SEQUENCE)?);
        tbs.optional(tag::VERSION)?;
        tbs.expect(tag::INTEGER)?; // serial
        tbs.expect(tag::SEQUENCE)?; // signature algorithm
        tbs.expect(tag::SEQUENCE)?; // issuer
        tbs.expect(tag::SEQUENCE)?; // validity
        let subject = tbs.expect(tag::SEQUENCE)?;
        tbs.expect(tag::SEQUENCE)?; // subject public key info
        tbs.optional(tag::ISSUER_UID)?;
        tbs.optional(tag::SUBJECT_UID)?;
        let sans = match tbs.optional(tag::EXTENSIONS)? {
            Some(extensions) => subject_alt_names(extensions)?,
            None => Vec::new(),
        };
        Some(PeerIdentity {
            common_name: common_name(subject)?,
            sans,
        })
    }
}

/// The last CN in a Name's contents; `Some(None)` when there is none.
fn common_name(name: &[u8]) -> Option<Option<String>> {
    let mut found = None;
    let mut rdns = Der::new(name);
    while !rdns.is_empty() {
        let mut set = Der::new(rdns.expect(tag::SET)?);
        while !set.is_empty() {
            let mut attribute = Der::new(set.expect(tag::SEQUENCE)?);
            let oid = attribute.expect(tag::OID)?;
            let (value_tag, value) = attribute.next()?;
            if oid == OID_COMMON_NAME {
                found = Some(directory_string(value_tag, value)?);
            }
        }
    }
    Some(found)
}

/// Decodes the string types an X.509 name attribute may use.
fn directory_string(value_tag: u8, value: &[u8]) -> Option<String> {
    match value_tag {
        tag::UTF8_STRING | tag::PRINTABLE_STRING | tag::IA5_STRING => {
            Some(String::from_utf8_lossy(value).into_owned())
        }
        // T.61 in theory, Latin-1 in practice.
        tag::TELETEX_STRING => Some(value.iter().map(|&b| char::from(b)).collect()),
        tag::BMP_STRING => {
            let units = value
                .chunks_exact(2)
                .map(|pair| u16::from_be_bytes([pair[0], pair[1]]));
            Some(
                char::decode_utf16(units)
                    .map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER))
                    .collect(),
            )
        }
        tag::UNIVERSAL_STRING => Some(
            value
                .chunks_exact(4)
                .map(|quad| {
                    char::from_u32(u32::from_be_bytes([quad[0], quad[1], quad[2], quad[3]]))
                        .unwrap_or(char::REPLACEMENT_CHARACTER)
                })
                .collect(),
        ),
        _ => None,
    }
}

/// The SAN entries from the `[3] EXPLICIT Extensions` field's contents.
fn subject_alt_names(explicit: &[u8]) -> Option<Vec<String>> {
    let mut wrapper = Der::new(explicit);
    let mut extensions = Der::new(wrapper.expect(tag::SEQUENCE)?);
    let mut sans = Vec::new();
    while !extensions.is_empty() {
        let mut extension = Der::new(extensions.expect(tag::SEQUENCE)?);
        let oid = extension.expect(tag::OID)?;
        extension.optional(tag::BOOLEAN)?; // critical
        let value = extension.expect(tag::OCTET_STRING)?;
        if oid != OID_SUBJECT_ALT_NAME {
            continue;
        }
        let mut names = Der::new(Der::new(value).expect(tag::SEQUENCE)?);
        while !names.is_empty() {
            let (name_tag, name) = names.next()?;
            let text = String::from_utf8_lossy(name);
            sans.push(match name_tag {
                tag::SAN_DNS => format!("DNS:{text}"),
                tag::SAN_URI => format!("URI:{text}"),
                tag::SAN_EMAIL => format!("email:{text}"),
                tag::SAN_IP => match ip_address(name) {
                    Some(ip) => format!("IP:{ip}"),
                    None => continue,
                },
                _ => continue,
            });
        }
    }
    Some(sans)
}

/// An iPAddress SAN: 4 bytes for IPv4, 16 for IPv6.
fn ip_address(bytes: &[u8]) -> Option<String> {
    if let Ok(v4) = <[u8; 4]>::try_from(bytes) {
        return Some(Ipv4Addr::from(v4).to_string());
    }
    <[u8; 16]>::try_from(bytes)
        .ok()
        .map(|v6| Ipv6Addr::from(v6).to_string())
}

/// A cursor over DER elements with single-byte tags and definite lengths
/// (all that X.509 uses); any other encoding reads as `None`.
struct Der<'a> {
    rest: &'a [u8],
}

impl<'a> Der<'a> {
    fn new(bytes: &'a [u8]) -> Der<'a> {
        Der { rest: bytes }
    }

    fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    /// The next element's tag and contents.
    fn next(&mut self) -> Option<(u8, &'a [u8])> {
        let (&tag, after_tag) = self.rest.split_first()?;
        if tag & 0x1f == 0x1f {
            return None; // multi-byte tag
        }
        let (&first, after_len) = after_tag.split_first()?;
        let (len, body) = match first {
            0..=0x7f => (usize::from(first), after_len),
            0x81..=0x84 => {
                let n = usize::from(first & 0x7f);
                let len_bytes = after_len.get(..n)?;
                let len = len_bytes
                    .iter()
                    .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
                (len, after_len.get(n..)?)
            }
            _ => return None, // indefinite or absurd length
        };
        let contents = body.get(..len)?;
        self.rest = body.get(len..)?;
        Some((tag, contents))
    }

    /// The next element's contents, which must have this tag.
    fn expect(&mut self, want: u8) -> Option<&'a [u8]> {
        match self.next()? {
            (tag, contents) if tag == want => Some(contents),
            _ => None,
        }
    }

    /// The next element's contents if it has this tag (`Some(None)` if the
    /// next element is something else or there is none; `None` if malformed).
    fn optional(&mut self, want: u8) -> Option<Option<&'a [u8]>> {
        match self.rest.first() {
            Some(&tag) if tag == want => self.next().map(|(_, contents)| Some(contents)),
            _ => Some(None),
        }
    }
}
