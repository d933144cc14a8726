//! The one home of what each setting flag means: [`apply`] sets a [`Config`]
//! field from a flag and its value, wherever the value comes from (the next
//! command-line argument, or a key of the `--config` file, see [`FlagValue`]).
//! A flag added here gets its config-file key (its name without `--`) for free.

use std::collections::HashMap;
use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use super::args::ArgParser;
use super::{CliError, Inherited};
use crate::config::{AppKind, Config};
use crate::engine::redis::EngineUrl;
use crate::tls::{ServerTlsFiles, TlsVersions};

/// What a number flag must be, in its error message.
pub(crate) const WHOLE_NUMBER: &str = "a non-negative whole number in range";

/// Where a flag's value comes from: the command line's [`ArgParser`], or a
/// value of the config file. The methods are named as `ArgParser`'s, so an
/// arm of [`apply`] reads like the command-line parser it came from. Each
/// reads the value as one kind (a value of another kind in a file is an
/// error); errors name the value the way its source does (`--miss`, or
/// `FILE:LINE: miss`).
pub trait FlagValue {
    /// How errors name this value: the flag, or the file, line and key.
    fn name(&self) -> String;
    /// The value as text (addresses, names, URLs).
    fn value(&mut self) -> Result<String, CliError>;
    /// The value as given, for paths (need not be UTF-8 on the command line).
    fn value_os(&mut self) -> Result<OsString, CliError>;
    /// The text of a number (the command line's argument, a file's integer or float).
    fn number_text(&mut self) -> Result<String, CliError>;
    /// A switch: on for a bare command-line flag; `true` or `false` in a file.
    fn switch(&mut self) -> Result<bool, CliError>;

    /// An error about this value.
    fn error(&self, problem: &str) -> CliError {
        CliError(format!("{}: {problem}", self.name()))
    }

    /// `text` parsed as a `T`, or an error saying what was expected and what came.
    fn parse_text<T: FromStr>(&self, text: &str, expected: &str) -> Result<T, CliError> {
        text.parse()
            .map_err(|_| self.error(&format!("expected {expected}, got {text:?}")))
    }

    /// A number parsed as a `T`; `expected` says what it must be, as in
    /// `--miss: expected a number, got "x"` ([`WHOLE_NUMBER`] for most).
    fn parsed<T: FromStr>(&mut self, expected: &str) -> Result<T, CliError> {
        let text = self.number_text()?;
        self.parse_text(&text, expected)
    }

    /// An `IP:PORT` socket address.
    fn address(&mut self) -> Result<SocketAddr, CliError> {
        let text = self.value()?;
        self.parse_text(&text, "IP:PORT")
    }

    /// An `IP:PORT` socket address, or `None` for the word `none`.
    fn address_or_none(&mut self) -> Result<Option<SocketAddr>, CliError> {
        let text = self.value()?;
        if text == "none" {
            return Ok(None);
        }
        self.parse_text(&text, "IP:PORT").map(Some)
    }
}

impl FlagValue for ArgParser {
    fn name(&self) -> String {
        self.flag().to_string()
    }

    fn value(&mut self) -> Result<String, CliError> {
        ArgParser::value(self)
    }

    fn value_os(&mut self) -> Result<OsString, CliError> {
        ArgParser::value_os(self)
    }

    fn number_text(&mut self) -> Result<String, CliError> {
        ArgParser::value(self)
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
    /// With `inherited` sockets (socket activation) the default `listen` is
    /// not bound, and an inherited TLS socket needs the TLS settings.
    pub(crate) fn finish(
        self,
        file: Option<&Path>,
        inherited: Inherited,
    ) -> Result<Config, CliError> {
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
        let inherits_any = inherited.plain + inherited.tls > 0;
        let listen_given = naming.is_given("--listen") || from_file.contains_key("--listen");
        if inherits_any && !listen_given {
            config.listen = None;
        }
        config.tls = if config.tls_listen.is_empty() && inherited.tls > 0 {
            tls.into_files(
                true,
                "an inherited TLS socket (LISTEN_FDNAMES tls)",
                &naming,
            )?
        } else {
            tls.into_files(!config.tls_listen.is_empty(), "--tls-listen", &naming)?
        };
        if config.listen.is_none() && config.tls_listen.is_empty() && !inherits_any {
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
pub fn apply(flag: &str, p: &mut impl FlagValue, layer: &mut Layer) -> Result<bool, CliError> {
    let Layer {
        config,
        tls,
        repeated,
        ..
    } = layer;
    match flag {
        "--listen" => config.listen = p.address_or_none()?,
        "--tls-listen" => {
            let addr = p.address()?;
            // The first value from a source replaces the earlier sources' list.
            if !repeated.contains(&"--tls-listen") {
                repeated.push("--tls-listen");
                config.tls_listen.clear();
            }
            config.tls_listen.push(addr);
        }
        "--tls-cert" => tls.cert = Some(PathBuf::from(p.value_os()?)),
        "--tls-key" => tls.key = Some(PathBuf::from(p.value_os()?)),
        "--tls-client-ca" => tls.client_ca = Some(PathBuf::from(p.value_os()?)),
        "--tls13-only" => tls.tls13_only = p.switch()?,
        "--app" => {
            config.app = match p.value()?.as_str() {
                "echo" => AppKind::Echo,
                "pubsub" => AppKind::Pubsub,
                other => return Err(p.error(&format!("expected echo or pubsub, got {other:?}"))),
            }
        }
        "--heartbeat-ms" => config.heartbeat_ms = p.parsed(WHOLE_NUMBER)?,
        "--min-heartbeat-ms" => config.min_heartbeat_ms = p.parsed(WHOLE_NUMBER)?,
        "--max-heartbeat-ms" => config.max_heartbeat_ms = p.parsed(WHOLE_NUMBER)?,
        "--miss" => config.miss = p.parsed(WHOLE_NUMBER)?,
        "--handshake-timeout-ms" => config.handshake_timeout_ms = p.parsed(WHOLE_NUMBER)?,
        "--linger-ms" => config.linger_ms = p.parsed(WHOLE_NUMBER)?,
        "--frame-timeout-ms" => config.frame_timeout_ms = p.parsed(WHOLE_NUMBER)?,
        "--max-connections" => config.max_connections = p.parsed(WHOLE_NUMBER)?,
        "--max-accept-rate" => config.max_accept_rate = p.parsed(WHOLE_NUMBER)?,
        "--max-handshakes" => config.max_handshakes = p.parsed(WHOLE_NUMBER)?,
        "--max-connections-per-ip" => config.max_connections_per_ip = p.parsed(WHOLE_NUMBER)?,
        "--max-frame" => config.max_frame = p.parsed(WHOLE_NUMBER)?,
        "--max-message" => config.max_message = p.parsed(WHOLE_NUMBER)?,
        "--max-output" => config.max_output = p.parsed(WHOLE_NUMBER)?,
        "--session-ttl-ms" => config.session_ttl_ms = p.parsed(WHOLE_NUMBER)?,
        "--auth-token-file" => config.auth_token_file = Some(PathBuf::from(p.value_os()?)),
        "--tick-ms" => config.tick_ms = p.parsed(WHOLE_NUMBER)?,
        "--soft-output" => config.soft_output = p.parsed(WHOLE_NUMBER)?,
        "--soft-output-ms" => config.soft_output_ms = p.parsed(WHOLE_NUMBER)?,
        "--rate-limit" => config.rate_limit = p.parsed(WHOLE_NUMBER)?,
        "--rate-burst" => config.rate_burst = p.parsed(WHOLE_NUMBER)?,
        "--session-queue" => config.session_queue = p.parsed(WHOLE_NUMBER)?,
        "--history-size" => config.history_size = p.parsed(WHOLE_NUMBER)?,
        "--history-ttl-ms" => config.history_ttl_ms = p.parsed(WHOLE_NUMBER)?,
        "--history-memory" => config.history_memory = p.parsed(WHOLE_NUMBER)?,
        "--engine" => {
            config.engine = match p.value()?.as_str() {
                "memory" => None,
                url => Some(EngineUrl::parse(url).map_err(|e| p.error(&e.to_string()))?),
            }
        }
        "--metrics" => config.metrics = Some(p.address()?),
        "--log-level" => {
            let text = p.value()?;
            config.log_level = Some(crate::config::parse_log_level(&text).ok_or_else(|| {
                p.error(&format!(
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
    /// `needed_by` names the TLS listener in the errors.
    fn into_files(
        self,
        has_tls_listener: bool,
        needed_by: &str,
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
                "{}: needed by {needed_by}",
                naming.full("--tls-cert")
            )));
        };
        let Some(private_key) = self.key else {
            return Err(CliError(format!(
                "{}: needed by {needed_by}",
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
