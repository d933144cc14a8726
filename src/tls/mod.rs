//! TLS for tether, sans-io, over rustls.
//!
//! The reactor keeps doing all the I/O (reads into its shared buffer, writes
//! from each connection's output queue, EAGAIN/EINTR/EOF handling); this
//! module only turns bytes into bytes:
//!
//! - [`policy`]: the crypto provider, versions, cipher suites and groups.
//! - [`load_server_config`] / [`load_client_config`]: PEM files to rustls
//!   configurations, as pure functions that a reload can retry or discard.
//! - [`ServerSession`]: one server-side connection over rustls's unbuffered
//!   API, holding no buffers while idle.
//! - [`PeerIdentity`]: the names in a mutual-TLS client's certificate.
//! - [`ConfigError`], [`TlsFailure`] and [`FailureKind`]: what went wrong,
//!   naming the file or classifying the failure for the counters.
//!
//! Nothing here blocks, spawns a thread or needs an async runtime.

mod client_config;
mod drive;
mod error;
mod identity;
mod pem;
pub mod policy;
mod server_config;
mod session;

#[cfg(test)]
pub(crate) mod tests;

pub use client_config::{
    load_client_config, server_name, ClientCertFiles, ClientTlsOptions, ServerVerification,
};
pub use error::{ConfigError, FailureKind, TlsFailure};
pub use identity::PeerIdentity;
pub use pem::{load_certificates, load_private_key};
pub use policy::TlsVersions;
pub use server_config::{load_server_config, ServerTlsFiles};
pub use session::{Eof, ReadOutcome, ServerSession, MAX_PENDING_INPUT};
