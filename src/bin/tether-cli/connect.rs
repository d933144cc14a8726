//! From the connection flags to what the client library needs: the
//! resolved addresses and a [`ClientConfig`] (token, heartbeat, TLS).

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::Path;

use bytes::Bytes;
use tether::client::ClientConfig;

use crate::args::Common;
use crate::Fail;

/// The longest auth token HELLO carries (docs/protocol.md §2.1).
const MAX_TOKEN_LEN: usize = 255;

/// Where to connect and with what.
#[derive(Debug)]
pub struct Target {
    /// Every address of every `HOST:PORT`, in the order given.
    pub addrs: Vec<SocketAddr>,
    /// The client settings (the protocol version is the subcommand's).
    pub config: ClientConfig,
    /// `ADDR` as given, for messages.
    pub shown: String,
}

/// Reads the token file and the TLS files and resolves the addresses.
/// Bad files are usage errors (exit 2); an address that does not resolve
/// is a runtime failure (exit 1), since name service can fail and recover.
pub fn prepare(common: &Common) -> Result<Target, Fail> {
    let shown = common.addrs.join(",");
    let token = match &common.token_file {
        Some(path) => read_token(path).map_err(Fail::Usage)?,
        None => Bytes::new(),
    };
    // The name a TLS certificate must be valid for: the first address's host.
    let first_host = common
        .addrs
        .first()
        .and_then(|a| a.rsplit_once(':'))
        .map_or("", |(host, _)| {
            host.trim_start_matches('[').trim_end_matches(']')
        });
    let tls = common
        .tls
        .load(first_host)
        .map_err(|e| Fail::Usage(e.to_string()))?;
    let mut addrs = Vec::new();
    for addr in &common.addrs {
        let resolved = addr
            .to_socket_addrs()
            .map_err(|e| Fail::Runtime(format!("cannot resolve {addr:?}: {e}")))?;
        addrs.extend(resolved);
    }
    if addrs.is_empty() {
        return Err(Fail::Runtime(format!("{shown:?} resolved to no address")));
    }
    Ok(Target {
        addrs,
        config: ClientConfig {
            heartbeat_ms: common.heartbeat_ms,
            token,
            tls,
            ..ClientConfig::default()
        },
        shown,
    })
}

/// The token is the file's first line, without surrounding blanks.
fn read_token(path: &Path) -> Result<Bytes, String> {
    let text = std::fs::read(path)
        .map_err(|e| format!("--token-file: cannot read {}: {e}", path.display()))?;
    let first = text.split(|&b| b == b'\n').next().unwrap_or_default();
    let token = first.trim_ascii();
    if token.is_empty() {
        return Err(format!(
            "--token-file: {} has no token on its first line",
            path.display()
        ));
    }
    if token.len() > MAX_TOKEN_LEN {
        return Err(format!(
            "--token-file: the token in {} is {} bytes, at most {MAX_TOKEN_LEN}",
            path.display(),
            token.len()
        ));
    }
    Ok(Bytes::copy_from_slice(token))
}
