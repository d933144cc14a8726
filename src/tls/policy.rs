//! The cipher policy: which crypto provider, protocol versions, cipher suites
//! and key-exchange groups tether offers, in one place for server and client.
//!
//! The provider is aws-lc-rs (see the comment on `rustls` in Cargo.toml for
//! why and the measurements behind it). The lists are spelled out here rather
//! than taken from the provider's defaults, so an upgrade cannot widen them
//! silently:
//!
//! - **TLS 1.3** suites: `TLS13_AES_128_GCM_SHA256`, `TLS13_AES_256_GCM_SHA384`,
//!   `TLS13_CHACHA20_POLY1305_SHA256` — all three RFC 8446 suites a modern
//!   client offers; AES-GCM is fastest with AES-NI, ChaCha20-Poly1305 without
//!   it (phones, small ARM boards).
//! - **TLS 1.2** suites (unless [`TlsVersions::Tls13Only`]): ECDHE with ECDSA or
//!   RSA certificates and the same three AEADs. That is forward secrecy and
//!   authenticated encryption only: no static-RSA key exchange, no CBC, no
//!   SHA-1 MACs, no DHE — everything in the Mozilla "intermediate" profile that
//!   is still worth having, and nothing in its "old" one.
//! - **Key exchange**: `X25519MLKEM768` (hybrid post-quantum, so recorded
//!   traffic of long-lived connections stays private against a future quantum
//!   computer), then `X25519`, `secp256r1`, `secp384r1` for peers without it.
//!
//! AES-128 comes before AES-256: 128-bit security is ample against classical
//! attackers and it is the faster of the two. The server follows the client's
//! order among these (rustls's default), since only the client knows whether
//! it has AES hardware.

use std::sync::Arc;

use rustls::crypto::aws_lc_rs as backend;
use rustls::crypto::CryptoProvider;
use rustls::SupportedProtocolVersion;

/// Which TLS versions to accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TlsVersions {
    /// TLS 1.2 and 1.3 (1.3 is negotiated whenever the peer has it).
    #[default]
    Tls12And13,
    /// TLS 1.3 only: refuses clients that cannot do 1.3.
    Tls13Only,
}

impl TlsVersions {
    /// The rustls version list for this choice.
    pub(crate) fn rustls_versions(self) -> &'static [&'static SupportedProtocolVersion] {
        static BOTH: [&SupportedProtocolVersion; 2] =
            [&rustls::version::TLS13, &rustls::version::TLS12];
        static TLS13_ONLY: [&SupportedProtocolVersion; 1] = [&rustls::version::TLS13];
        match self {
            TlsVersions::Tls12And13 => &BOTH,
            TlsVersions::Tls13Only => &TLS13_ONLY,
        }
    }
}

/// The crypto provider with tether's cipher suites and key-exchange groups
/// (the module documentation says which and why).
pub fn crypto_provider() -> Arc<CryptoProvider> {
    use backend::cipher_suite as cs;
    use backend::kx_group as kx;
    Arc::new(CryptoProvider {
        cipher_suites: vec![
            cs::TLS13_AES_128_GCM_SHA256,
            cs::TLS13_AES_256_GCM_SHA384,
            cs::TLS13_CHACHA20_POLY1305_SHA256,
            cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
            cs::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
            cs::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
            cs::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
            cs::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
            cs::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
        ],
        kx_groups: vec![kx::X25519MLKEM768, kx::X25519, kx::SECP256R1, kx::SECP384R1],
        ..backend::default_provider()
    })
}

/// The stateless session-ticket encrypter: its key lives in the shared
/// configuration and rotates every few hours, so resumption costs no memory
/// per connection or per session. A new configuration (reload) gets a new key,
/// so tickets issued before a reload, for instance under an old client CA,
/// are not honoured after it.
pub(crate) fn ticketer() -> Result<Arc<dyn rustls::server::ProducesTickets>, rustls::Error> {
    backend::Ticketer::new()
}
