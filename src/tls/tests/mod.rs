//! Tests for the TLS layer: real rustls clients against [`ServerSession`]
//! over in-memory byte vectors, with certificates made at test time.

use crate::tls;
#[allow(unused_imports)] // `tls::` paths in support.rs resolve through this
use crate::tls::ServerSession;

mod config;
mod failures;
mod handshake;
mod identity;
mod mtls;
pub(crate) mod support;
