//! The client-side TLS flags, one home for `tether-load` and the example
//! client: how they are spelled, read (with [`crate::cli::args::ArgParser`]),
//! checked and turned into a [`ClientTls`].
//!
//! Reading and checking are pure; only [`TlsFlags::load`] reads the files.

use std::path::PathBuf;

use super::tls::ClientTls;
use crate::cli::args::{ArgParser, CliError};
use crate::tls::{server_name, ClientCertFiles, ClientTlsOptions, ServerVerification, TlsVersions};

/// Usage lines for the flags, in the layout of `tether-load --help`.
// No `\` after the opening quote: it would eat the first line's indent too.
pub const TLS_FLAGS_USAGE: &str = "  --tls                       speak TLS to the server
  --tls-ca FILE               trust only the CAs in this PEM file (default: the system's roots)
  --tls-insecure              accept any server certificate (load tests on throwaway certificates only)
  --tls-server-name NAME      name the server's certificate must be valid for (default: the address's host)
  --tls-cert FILE             client certificate chain (PEM) for mutual TLS; needs --tls-key
  --tls-key FILE              private key (PEM) of --tls-cert
";

/// The TLS flags as given on a command line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsFlags {
    /// `--tls`: speak TLS.
    pub enabled: bool,
    /// `--tls-ca FILE`: the CAs to trust instead of the system's.
    pub ca: Option<PathBuf>,
    /// `--tls-insecure`: trust any certificate.
    pub insecure: bool,
    /// `--tls-server-name NAME`: the name to verify instead of the address's host.
    pub server_name: Option<String>,
    /// `--tls-cert FILE`: the client certificate chain for mutual TLS.
    pub cert: Option<PathBuf>,
    /// `--tls-key FILE`: its private key.
    pub key: Option<PathBuf>,
}

impl TlsFlags {
    /// Reads `flag` (the current flag of `p`) when it is a TLS flag, with its
    /// value if it takes one. `Ok(false)`: not a TLS flag, nothing was read.
    pub fn parse_flag(&mut self, flag: &str, p: &mut ArgParser) -> Result<bool, CliError> {
        match flag {
            "--tls" => self.enabled = true,
            "--tls-insecure" => self.insecure = true,
            "--tls-ca" => self.ca = Some(PathBuf::from(p.value_os()?)),
            "--tls-server-name" => self.server_name = Some(p.value()?),
            "--tls-cert" => self.cert = Some(PathBuf::from(p.value_os()?)),
            "--tls-key" => self.key = Some(PathBuf::from(p.value_os()?)),
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Checks the combination: every other TLS flag needs `--tls`, a CA and
    /// `--tls-insecure` exclude each other, a certificate needs its key, and
    /// the server name must be a DNS name or an IP address.
    pub fn validate(&self) -> Result<(), CliError> {
        let err = |s: String| Err(CliError(s));
        if !self.enabled {
            let given = [
                ("--tls-ca", self.ca.is_some()),
                ("--tls-insecure", self.insecure),
                ("--tls-server-name", self.server_name.is_some()),
                ("--tls-cert", self.cert.is_some()),
                ("--tls-key", self.key.is_some()),
            ];
            if let Some((flag, _)) = given.iter().find(|(_, set)| *set) {
                return err(format!("{flag}: only with --tls"));
            }
            return Ok(());
        }
        if self.insecure && self.ca.is_some() {
            return err(
                "--tls-insecure: not with --tls-ca (one names whom to trust, the other trusts anyone)"
                    .to_string(),
            );
        }
        match (&self.cert, &self.key) {
            (Some(_), None) => return err("--tls-cert: needs --tls-key".to_string()),
            (None, Some(_)) => return err("--tls-key: needs --tls-cert".to_string()),
            _ => {}
        }
        if let Some(name) = &self.server_name {
            if let Err(e) = server_name(name) {
                return err(format!("--tls-server-name: {e}"));
            }
        }
        Ok(())
    }

    /// What to build the rustls configuration from; `None` without `--tls`.
    pub fn options(&self) -> Option<ClientTlsOptions> {
        if !self.enabled {
            return None;
        }
        let verification = match (&self.ca, self.insecure) {
            (Some(ca), _) => ServerVerification::CaFile(ca.clone()),
            (None, true) => ServerVerification::InsecureAcceptAny,
            (None, false) => ServerVerification::SystemRoots,
        };
        let client_cert = match (&self.cert, &self.key) {
            (Some(cert), Some(key)) => Some(ClientCertFiles {
                cert_chain: cert.clone(),
                private_key: key.clone(),
            }),
            _ => None,
        };
        Some(ClientTlsOptions {
            verification,
            client_cert,
            versions: TlsVersions::default(),
        })
    }

    /// Checks the flags, reads the files and builds the TLS settings;
    /// `Ok(None)` without `--tls`. `default_host` is the name verified when
    /// `--tls-server-name` is not given (the host part of the server address).
    pub fn load(&self, default_host: &str) -> Result<Option<ClientTls>, CliError> {
        self.validate()?;
        let Some(options) = self.options() else {
            return Ok(None);
        };
        let name = self.server_name.as_deref().unwrap_or(default_host);
        ClientTls::load(&options, name)
            .map(Some)
            .map_err(|e| CliError(format!("TLS: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(line: &str) -> Result<TlsFlags, CliError> {
        let mut flags = TlsFlags::default();
        let mut p = ArgParser::new(line.split_whitespace());
        while let Some(arg) = p.next_arg() {
            let crate::cli::args::Arg::Flag(flag) = arg else {
                panic!("positional in {line:?}");
            };
            if !flags.parse_flag(&flag, &mut p)? {
                return Err(CliError(format!("unknown flag {flag:?}")));
            }
        }
        flags.validate()?;
        Ok(flags)
    }

    #[test]
    fn every_flag_is_read() {
        let f = parse(
            "--tls --tls-ca ca.pem --tls-server-name localhost --tls-cert c.pem --tls-key=c.key",
        )
        .expect("valid");
        assert!(f.enabled && !f.insecure);
        assert_eq!(f.ca, Some(PathBuf::from("ca.pem")));
        assert_eq!(f.server_name.as_deref(), Some("localhost"));
        assert_eq!(f.cert, Some(PathBuf::from("c.pem")));
        assert_eq!(f.key, Some(PathBuf::from("c.key")));
        let options = f.options().expect("--tls");
        assert_eq!(
            options.verification,
            ServerVerification::CaFile("ca.pem".into())
        );
        assert_eq!(
            options.client_cert,
            Some(ClientCertFiles {
                cert_chain: "c.pem".into(),
                private_key: "c.key".into(),
            })
        );
    }

    #[test]
    fn verification_follows_the_flags() {
        let insecure = parse("--tls --tls-insecure").expect("valid");
        assert_eq!(
            insecure.options().map(|o| o.verification),
            Some(ServerVerification::InsecureAcceptAny)
        );
        let system = parse("--tls").expect("valid");
        assert_eq!(
            system.options().map(|o| o.verification),
            Some(ServerVerification::SystemRoots)
        );
        assert_eq!(parse("").expect("valid").options(), None);
    }

    #[test]
    fn errors_name_the_flag() {
        let table = [
            ("--tls-ca x", "--tls-ca: only with --tls"),
            ("--tls-insecure", "--tls-insecure: only with --tls"),
            ("--tls-key k", "--tls-key: only with --tls"),
            (
                "--tls --tls-ca x --tls-insecure",
                "--tls-insecure: not with --tls-ca (one names whom to trust, the other trusts anyone)",
            ),
            ("--tls --tls-cert c", "--tls-cert: needs --tls-key"),
            ("--tls --tls-key k", "--tls-key: needs --tls-cert"),
            ("--tls --tls-ca", "--tls-ca: missing value"),
        ];
        for (line, message) in table {
            assert_eq!(parse(line), Err(CliError(message.to_string())), "{line:?}");
        }
        match parse("--tls --tls-server-name a..b") {
            Err(CliError(m)) => assert!(m.starts_with("--tls-server-name: "), "{m}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn load_names_the_missing_file() {
        let f = TlsFlags {
            enabled: true,
            ca: Some(PathBuf::from("/nonexistent/tether-ca.pem")),
            ..TlsFlags::default()
        };
        match f.load("localhost") {
            Err(CliError(m)) => {
                assert!(m.starts_with("TLS: "), "{m}");
                assert!(m.contains("/nonexistent/tether-ca.pem"), "{m}");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(TlsFlags::default().load("localhost"), Ok(None));
    }
}
