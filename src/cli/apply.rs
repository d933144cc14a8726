//! The one home of what each setting flag means: [`apply`] sets a [`Config`]
//! field from a flag and its value, wherever the value comes from (the next
//! command-line argument, or a key of the `--config` file, see [`FlagValue`]).
//! A flag added here gets its config-file key (its name without `--`) for free.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use super::args::ArgParser;
use super::CliError;
use crate::config::{AppKind, Config};
use crate::engine::redis::EngineUrl;
use crate::tls::{ServerTlsFiles, TlsVersions};

/// What a number flag must be, in its error message.
pub(crate) const WHOLE_NUMBER: &str = "a non-negative whole number in range";

/// Where a flag's value comes from. Each method reads the value as one kind
/// (a value of another kind in a file is an error); errors name the value
/// the way its source does (`--miss`, or `FILE:LINE: miss`).
pub trait FlagValue {
    /// How errors name this value: the flag, or the file, line and key.
    fn name(&self) -> String;
    /// The value as text (addresses, names, URLs).
    fn text(&mut self) -> Result<String, CliError>;
    /// The value as a path (need not be UTF-8 on the command line).
    fn path(&mut self) -> Result<PathBuf, CliError>;
    /// The text of a whole number (the command line's argument, a file's integer).
    fn number_text(&mut self) -> Result<String, CliError>;
    /// A switch: on for a bare command-line flag; `true` or `false` in a file.
    fn switch(&mut self) -> Result<bool, CliError>;

    /// An error about this value.
    fn error(&self, problem: &str) -> CliError {
        CliError(format!("{}: {problem}", self.name()))
    }

    /// The value parsed as `what`, or an error saying what was expected and what came.
    fn parsed_as<T: FromStr>(&self, value: &str, expected: &str) -> Result<T, CliError> {
        value
            .parse()
            .map_err(|_| self.error(&format!("expected {expected}, got {value:?}")))
    }

    /// A non-negative whole number that fits a `T`.
    fn number<T: FromStr>(&mut self) -> Result<T, CliError> {
        let text = self.number_text()?;
        self.parsed_as(&text, WHOLE_NUMBER)
    }

    /// An `IP:PORT` socket address.
    fn address(&mut self) -> Result<SocketAddr, CliError> {
        let text = self.text()?;
        self.parsed_as(&text, "IP:PORT")
    }

    /// An `IP:PORT` socket address, or `None` for the word `none`.
    fn address_or_none(&mut self) -> Result<Option<SocketAddr>, CliError> {
        let text = self.text()?;
        if text == "none" {
            return Ok(None);
        }
        self.parsed_as(&text, "IP:PORT").map(Some)
    }
}

impl FlagValue for ArgParser {
    fn name(&self) -> String {
        self.flag().to_string()
    }

    fn text(&mut self) -> Result<String, CliError> {
        self.value()
    }

    fn path(&mut self) -> Result<PathBuf, CliError> {
        self.value_os().map(PathBuf::from)
    }

    fn number_text(&mut self) -> Result<String, CliError> {
        self.value()
    }

    fn switch(&mut self) -> Result<bool, CliError> {
        Ok(true)
    }
}

/// The settings gathered from one source after another (the file, then the
/// command line), and where each came from for error messages.
#[derive(Debug, Default)]
pub struct Layer {
    /// The configuration so far (TLS files are set by [`Layer::finish`]).
    pub config: Config,
    /// The TLS flags as given.
    tls: TlsFlags,
    /// The flags given on the command line.
    pub(crate) from_command_line: Vec<String>,
    /// The flags set in the config file, with their line.
    pub(crate) from_file: HashMap<String, usize>,
    /// The repeatable flags already seen in the source being applied: the
    /// first value of a source replaces the earlier sources' values.
    repeated: Vec<&'static str>,
}

impl Layer {
    /// Starts applying the next source (see `repeated`).
    pub(crate) fn begin_source(&mut self) {
        self.repeated.clear();
    }

    /// Checks that the settings go together and are valid. Errors name a
    /// setting as its flag when it was given on the command line (or there
    /// is no `file`), else as the file's key, with its line when it is there.
    pub(crate) fn finish(self, file: Option<&Path>) -> Result<Config, CliError> {
        let Layer {
            mut config,
            tls,
            from_command_line,
            from_file,
            ..
        } = self;
        let naming = Naming {
            file,
            from_file: &from_file,
            given: &from_command_line,
        };
        config.tls = tls.into_files(!config.tls_listen.is_empty(), &naming)?;
        if config.listen.is_none() && config.tls_listen.is_empty() {
            return Err(CliError(format!(
                "{}: none, and no {}: nothing to listen on",
                naming.full("--listen"),
                naming.short("--tls-listen")
            )));
        }
        config.validate().map_err(|e| {
            let own = super::flag_for(e.field);
            let message = e.describe(|field| naming.short(&super::flag_for(field)));
            // The field's own name comes first: in full, with the file and line.
            let rest = message
                .strip_prefix(&naming.short(&own))
                .unwrap_or(&message);
            CliError(format!("{}{rest}", naming.full(&own)))
        })?;
        Ok(config)
    }
}

/// How an error found once every source was applied names a setting.
struct Naming<'a> {
    /// The config file, if any.
    file: Option<&'a Path>,
    /// The flags the file set, with their line.
    from_file: &'a HashMap<String, usize>,
    /// The flags given on the command line.
    given: &'a [String],
}

impl Naming<'_> {
    /// The name that starts a message: `--flag`, `FILE:LINE: key` or `FILE: key`.
    fn full(&self, flag: &str) -> String {
        let Some(file) = self.file.filter(|_| !self.is_given(flag)) else {
            return flag.to_string();
        };
        let key = flag.trim_start_matches('-');
        match self.from_file.get(flag) {
            Some(line) => format!("{}:{line}: {key}", file.display()),
            None => format!("{}: {key}", file.display()),
        }
    }

    /// The name inside a message: `--flag` or `key`.
    fn short(&self, flag: &str) -> String {
        if self.file.is_none() || self.is_given(flag) {
            flag.to_string()
        } else {
            flag.trim_start_matches('-').to_string()
        }
    }

    fn is_given(&self, flag: &str) -> bool {
        self.given.iter().any(|f| f == flag)
    }
}

/// Sets what `flag` means from its value; `Ok(false)` for a flag that sets
/// nothing (unknown here: the caller decides what it is).
pub fn apply(flag: &str, value: &mut impl FlagValue, layer: &mut Layer) -> Result<bool, CliError> {
    let Layer {
        config,
        tls,
        repeated,
        ..
    } = layer;
    match flag {
        "--listen" => config.listen = value.address_or_none()?,
        "--tls-listen" => {
            let addr = value.address()?;
            // The first value from a source replaces the earlier sources' list.
            if !repeated.contains(&"--tls-listen") {
                repeated.push("--tls-listen");
                config.tls_listen.clear();
            }
            config.tls_listen.push(addr);
        }
        "--tls-cert" => tls.cert = Some(value.path()?),
        "--tls-key" => tls.key = Some(value.path()?),
        "--tls-client-ca" => tls.client_ca = Some(value.path()?),
        "--tls13-only" => tls.tls13_only = value.switch()?,
        "--app" => {
            config.app = match value.text()?.as_str() {
                "echo" => AppKind::Echo,
                "pubsub" => AppKind::Pubsub,
                other => {
                    return Err(value.error(&format!("expected echo or pubsub, got {other:?}")))
                }
            }
        }
        "--heartbeat-ms" => config.heartbeat_ms = value.number()?,
        "--min-heartbeat-ms" => config.min_heartbeat_ms = value.number()?,
        "--max-heartbeat-ms" => config.max_heartbeat_ms = value.number()?,
        "--miss" => config.miss = value.number()?,
        "--handshake-timeout-ms" => config.handshake_timeout_ms = value.number()?,
        "--linger-ms" => config.linger_ms = value.number()?,
        "--frame-timeout-ms" => config.frame_timeout_ms = value.number()?,
        "--max-connections" => config.max_connections = value.number()?,
        "--max-frame" => config.max_frame = value.number()?,
        "--max-message" => config.max_message = value.number()?,
        "--max-output" => config.max_output = value.number()?,
        "--session-ttl-ms" => config.session_ttl_ms = value.number()?,
        "--auth-token-file" => config.auth_token_file = Some(value.path()?),
        "--tick-ms" => config.tick_ms = value.number()?,
        "--soft-output" => config.soft_output = value.number()?,
        "--soft-output-ms" => config.soft_output_ms = value.number()?,
        "--rate-limit" => config.rate_limit = value.number()?,
        "--rate-burst" => config.rate_burst = value.number()?,
        "--session-queue" => config.session_queue = value.number()?,
        "--history-size" => config.history_size = value.number()?,
        "--history-ttl-ms" => config.history_ttl_ms = value.number()?,
        "--history-memory" => config.history_memory = value.number()?,
        "--engine" => {
            config.engine = match value.text()?.as_str() {
                "memory" => None,
                url => Some(EngineUrl::parse(url).map_err(|e| value.error(&e.to_string()))?),
            }
        }
        "--metrics" => config.metrics = Some(value.address()?),
        "--log-level" => {
            let text = value.text()?;
            config.log_level = Some(crate::config::parse_log_level(&text).ok_or_else(|| {
                value.error(&format!(
                    "expected error, warn, info, debug or trace, got {text:?}"
                ))
            })?)
        }
        _ => return Ok(false),
    }
    Ok(true)
}

/// The TLS flags as given, before they are checked to go together.
#[derive(Debug, Default)]
struct TlsFlags {
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    client_ca: Option<PathBuf>,
    tls13_only: bool,
}

impl TlsFlags {
    /// The TLS files, if any: a certificate and a key go together, and
    /// they (and the other TLS flags) are only for TLS listeners.
    fn into_files(
        self,
        has_tls_listener: bool,
        naming: &Naming<'_>,
    ) -> Result<Option<ServerTlsFiles>, CliError> {
        let any = self.cert.is_some()
            || self.key.is_some()
            || self.client_ca.is_some()
            || self.tls13_only;
        if !has_tls_listener {
            if any {
                return Err(CliError(format!(
                    "{}: the TLS flags need at least one TLS listener",
                    naming.full("--tls-listen")
                )));
            }
            return Ok(None);
        }
        let Some(cert_chain) = self.cert else {
            return Err(CliError(format!(
                "{}: needed by --tls-listen",
                naming.full("--tls-cert")
            )));
        };
        let Some(private_key) = self.key else {
            return Err(CliError(format!(
                "{}: needed by --tls-listen",
                naming.full("--tls-key")
            )));
        };
        Ok(Some(ServerTlsFiles {
            cert_chain,
            private_key,
            client_ca: self.client_ca,
            versions: if self.tls13_only {
                TlsVersions::Tls13Only
            } else {
                TlsVersions::Tls12And13
            },
        }))
    }
}
