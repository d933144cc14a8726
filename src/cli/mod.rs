//! The server's command line: flags to a [`Config`], with errors that name
//! the flag. Kept in the library so it is unit-tested like everything else;
//! [`args`] holds what it shares with `tether-load`'s command line.

pub mod args;

use std::ffi::OsString;
use std::path::{Path, PathBuf};

pub use args::CliError;
use args::{Arg, ArgParser};

use crate::config::{AppKind, Config, ConfigError};
use crate::engine::redis::EngineUrl;
use crate::tls::{ServerTlsFiles, TlsVersions};

/// Usage text for `--help`.
pub const USAGE: &str = "\
tether: keeps very many long-lived TCP connections alive cheaply.

usage: tether [--listen ADDR] [--app echo|pubsub] [--heartbeat-ms N] [--min-heartbeat-ms N]
              [--max-heartbeat-ms N] [--miss N] [--handshake-timeout-ms N] [--linger-ms N]
              [--max-connections N] [--max-accept-rate N] [--max-handshakes N]
              [--max-connections-per-ip N] [--max-frame N] [--max-message N] [--max-output BYTES]
              [--session-ttl-ms N] [--auth-token-file PATH] [--tick-ms N]
              [--soft-output BYTES] [--soft-output-ms N] [--rate-limit FRAMES_PER_S]
              [--rate-burst N] [--session-queue BYTES] [--metrics ADDR] [--frame-timeout-ms N]
              [--history-size N] [--history-ttl-ms N] [--history-memory BYTES]
              [--engine memory|redis://HOST:PORT[?password=...]]
              [--tls-listen ADDR]... [--tls-cert FILE] [--tls-key FILE] [--tls-client-ca FILE]
              [--tls13-only]

  --listen ADDR|none         plain listener address (127.0.0.1:7600; port 0 picks one;
                             none: no plain listener)
  --app echo|pubsub          application behind the reactor (pubsub)
  --heartbeat-ms N           heartbeat granted to clients asking for 0 (30000)
  --min-heartbeat-ms N       shortest heartbeat granted (1000)
  --max-heartbeat-ms N       longest heartbeat granted (600000)
  --miss N                   silent heartbeats before eviction (3)
  --handshake-timeout-ms N   time allowed for HELLO (5000)
  --linger-ms N              time a closing connection may take (2000)
  --frame-timeout-ms N       time to finish a frame once begun; slowloris defence (10000)
  --max-connections N        connection limit; capped by the fd limit (100000)
  --max-accept-rate N        new connections a second over all listeners, burst N/10;
                             past it accepting waits, the kernel backlog holds the rest;
                             0 = off (0)
  --max-handshakes N         connections accepted but not yet welcomed (TLS included);
                             at it accepting waits for one to finish; 0 = off (0)
  --max-connections-per-ip N connections held per client IP; past it SERVER_FULL with a
                             retry-after-ms hint; 0 = off (0)
  --max-frame N              largest frame payload accepted (65535)
  --max-message N            largest reassembled message (1048576)
  --max-output BYTES         unsent output per connection before SLOW_CONSUMER (4194304)
  --session-ttl-ms N         how long a detached session is kept (60000)
  --auth-token-file PATH     accepted tokens, one per line (none: no auth)
  --tick-ms N                timer resolution (100)
  --soft-output BYTES        soft output limit, 0 = off (0)
  --soft-output-ms N         time allowed above the soft limit before SLOW_CONSUMER (10000)
  --rate-limit FRAMES_PER_S  average frames a second per connection, 0 = off (0)
  --rate-burst N             frames allowed in a burst above the rate (100)
  --session-queue BYTES      deliveries kept for a detached session (1048576)
  --history-size N           v2: publications kept per channel for recovery, 0 = off (256)
  --history-ttl-ms N         v2: how long a publication is kept; idle channels too (300000)
  --history-memory BYTES     v2: bytes of history server-wide; oldest dropped first (67108864)
  --engine URL               where publications and history live: memory, or
                             redis://HOST:PORT[?password=...] shared by nodes (memory)
  --metrics ADDR             serve GET /metrics (Prometheus) and GET /healthz here (off)
  --tls-listen ADDR          a TLS listener (repeat for more); needs --tls-cert and --tls-key
  --tls-cert FILE            PEM certificate chain, the server's certificate first
  --tls-key FILE             PEM private key of that certificate (RSA, ECDSA or Ed25519)
  --tls-client-ca FILE       PEM CA certificates: clients must present a certificate they signed
  --tls13-only               refuse TLS 1.2 (default: TLS 1.2 and 1.3)
  -h, --help                 this text
  -V, --version              the version

Logging: RUST_LOG=debug for per-connection events (default info).
Prints `listening on IP:PORT` on stdout per listener when ready (plain ones
first, then `listening on IP:PORT tls`). SIGTERM/SIGINT stop gracefully
(GOAWAY SHUTTING_DOWN to every connection); a second one exits at once.
SIGHUP reloads the TLS certificate, key and client CA (a bad file keeps the
old ones and logs why).
";

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Run the server with this configuration (auth tokens not yet loaded).
    Run(Box<Config>),
    /// Print usage and exit 0.
    Help,
    /// Print the version and exit 0.
    Version,
}

/// The flag that sets a [`Config`] field: `--` and the field's name with
/// `-` for `_` (`max_heartbeat_ms` → `--max-heartbeat-ms`).
pub fn flag_for(field: &str) -> String {
    format!("--{}", field.replace('_', "-"))
}

impl From<ConfigError> for CliError {
    /// The validation error with every field it names written as its flag.
    fn from(e: ConfigError) -> Self {
        CliError(e.describe(flag_for))
    }
}

/// What a number flag must be, in its error message.
const WHOLE_NUMBER: &str = "a non-negative whole number in range";

/// Parses the arguments after the program name.
pub fn parse_args<I>(args: I) -> Result<Command, CliError>
where
    I: IntoIterator,
    I::Item: Into<OsString>,
{
    let mut config = Config::default();
    let mut tls = TlsFlags::default();
    let mut p = ArgParser::new(args);
    while let Some(arg) = p.next_arg() {
        let flag = match arg {
            Arg::Flag(flag) => flag,
            Arg::Positional(_) => return Err(unknown_flag(&p)),
        };
        match flag.as_str() {
            "-h" | "--help" => return Ok(Command::Help),
            "-V" | "--version" => return Ok(Command::Version),
            "--listen" => config.listen = p.address_or_none()?,
            "--tls-listen" => config.tls_listen.push(p.address()?),
            "--tls-cert" => tls.cert = Some(PathBuf::from(p.value_os()?)),
            "--tls-key" => tls.key = Some(PathBuf::from(p.value_os()?)),
            "--tls-client-ca" => tls.client_ca = Some(PathBuf::from(p.value_os()?)),
            "--tls13-only" => tls.tls13_only = true,
            "--app" => {
                config.app = match p.value()?.as_str() {
                    "echo" => AppKind::Echo,
                    "pubsub" => AppKind::Pubsub,
                    other => {
                        return Err(CliError(format!(
                            "--app: expected echo or pubsub, got {other:?}"
                        )))
                    }
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
                    url => Some(
                        EngineUrl::parse(url).map_err(|e| CliError(format!("--engine: {e}")))?,
                    ),
                }
            }
            "--metrics" => config.metrics = Some(p.address()?),
            _ => return Err(unknown_flag(&p)),
        }
    }
    config.tls = tls.into_files(!config.tls_listen.is_empty())?;
    if config.listen.is_none() && config.tls_listen.is_empty() {
        return Err(CliError(
            "--listen: none, and no --tls-listen: nothing to listen on".into(),
        ));
    }
    config.validate()?;
    Ok(Command::Run(Box::new(config)))
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
    fn into_files(self, has_tls_listener: bool) -> Result<Option<ServerTlsFiles>, CliError> {
        let any = self.cert.is_some()
            || self.key.is_some()
            || self.client_ca.is_some()
            || self.tls13_only;
        if !has_tls_listener {
            if any {
                return Err(CliError(
                    "--tls-listen: the TLS flags need at least one TLS listener".into(),
                ));
            }
            return Ok(None);
        }
        let Some(cert_chain) = self.cert else {
            return Err(CliError("--tls-cert: needed by --tls-listen".into()));
        };
        let Some(private_key) = self.key else {
            return Err(CliError("--tls-key: needed by --tls-listen".into()));
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

/// Checks that the TLS files load (certificate, key, client CA), so a bad
/// one is reported at startup with the flag that named it.
pub fn check_tls_files(files: &ServerTlsFiles) -> Result<(), CliError> {
    crate::tls::load_server_config(files)
        .map(|_| ())
        .map_err(|e| {
            let path = e.path();
            let flag = if path == Some(files.cert_chain.as_path()) {
                "--tls-cert"
            } else if path == Some(files.private_key.as_path()) {
                "--tls-key"
            } else if path.is_some() && path == files.client_ca.as_deref() {
                "--tls-client-ca"
            } else {
                "--tls-cert"
            };
            CliError(format!("{flag}: {e}"))
        })
}

/// The error for an argument the server does not know (it takes no positionals).
fn unknown_flag(p: &ArgParser) -> CliError {
    CliError(format!("{}: unknown flag (see --help)", p.raw()))
}

/// Reads the auth token file: one token per line, surrounding blanks trimmed,
/// empty lines skipped. An unreadable file, an empty one, or a token over 255
/// bytes (the HELLO limit) is an error naming the flag and the path.
pub fn load_tokens(path: &Path) -> Result<Vec<Vec<u8>>, CliError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        CliError(format!(
            "--auth-token-file: cannot read {}: {e}",
            path.display()
        ))
    })?;
    let tokens: Vec<Vec<u8>> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| l.as_bytes().to_vec())
        .collect();
    if tokens.is_empty() {
        return Err(CliError(format!(
            "--auth-token-file: {} holds no token",
            path.display()
        )));
    }
    if let Some(long) = tokens.iter().position(|t| t.len() > 255) {
        return Err(CliError(format!(
            "--auth-token-file: token on non-empty line {} of {} is over 255 bytes",
            long + 1,
            path.display()
        )));
    }
    Ok(tokens)
}

/// The soft limit on open files, from `/proc/self/limits` (None if unreadable).
pub fn open_file_limit() -> Option<usize> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;

    fn parse(args: &[&str]) -> Result<Command, CliError> {
        parse_args(args.iter().map(|s| s.to_string()))
    }

    #[test]
    fn defaults_and_every_flag() {
        assert_eq!(parse(&[]), Ok(Command::Run(Box::default())));
        let Ok(Command::Run(c)) = parse(&[
            "--listen",
            "127.0.0.1:0",
            "--app",
            "echo",
            "--heartbeat-ms=2000",
            "--min-heartbeat-ms",
            "100",
            "--max-heartbeat-ms",
            "5000",
            "--miss",
            "2",
            "--handshake-timeout-ms",
            "300",
            "--linger-ms",
            "50",
            "--max-connections",
            "7",
            "--max-accept-rate",
            "2000",
            "--max-handshakes",
            "300",
            "--max-connections-per-ip",
            "4",
            "--max-frame",
            "1024",
            "--max-message",
            "4096",
            "--max-output",
            "65536",
            "--session-ttl-ms",
            "10",
            "--auth-token-file",
            "/x",
            "--tick-ms",
            "10",
            "--soft-output",
            "1024",
            "--soft-output-ms",
            "20",
            "--rate-limit",
            "5",
            "--rate-burst",
            "9",
            "--session-queue",
            "77",
            "--metrics",
            "127.0.0.1:9100",
            "--frame-timeout-ms",
            "33",
            "--history-size",
            "0",
            "--history-ttl-ms",
            "5",
            "--history-memory",
            "4096",
        ]) else {
            panic!("parses")
        };
        assert_eq!(c.listen.map(|a| a.port()), Some(0));
        assert_eq!(
            (
                c.heartbeat_ms,
                c.min_heartbeat_ms,
                c.max_heartbeat_ms,
                c.miss
            ),
            (2000, 100, 5000, 2)
        );
        assert_eq!(
            (c.handshake_timeout_ms, c.linger_ms, c.max_connections),
            (300, 50, 7)
        );
        assert_eq!(
            (
                c.max_accept_rate,
                c.max_handshakes,
                c.max_connections_per_ip
            ),
            (2000, 300, 4)
        );
        assert_eq!(
            (c.max_frame, c.max_message, c.max_output),
            (1024, 4096, 65536)
        );
        assert_eq!((c.session_ttl_ms, c.tick_ms), (10, 10));
        assert_eq!(c.auth_token_file, Some(PathBuf::from("/x")));
        assert_eq!(
            (c.soft_output, c.soft_output_ms, c.rate_limit, c.rate_burst),
            (1024, 20, 5, 9)
        );
        assert_eq!((c.session_queue, c.frame_timeout_ms), (77, 33));
        assert_eq!(
            (c.history_size, c.history_ttl_ms, c.history_memory),
            (0, 5, 4096)
        );
        assert_eq!(c.metrics, Some(SocketAddr::from(([127, 0, 0, 1], 9100))));
        assert_eq!(c.app, AppKind::Echo);
    }

    #[test]
    fn errors_name_the_flag() {
        for (args, flag) in [
            (vec!["--miss", "x"], "--miss"),
            (vec!["--max-frame", "70000"], "--max-frame"),
            (vec!["--listen", "nowhere"], "--listen"),
            (vec!["--app", "chat"], "--app"),
            (vec!["--tick-ms"], "--tick-ms"),
            (vec!["--history-ttl-ms", "0"], "--history-ttl-ms"),
            (vec!["--history-memory", "-1"], "--history-memory"),
            (vec!["--bogus"], "--bogus"),
            (vec!["--engine", "http://127.0.0.1:6379"], "--engine"),
            (
                vec!["--engine", "redis-cluster://127.0.0.1:7000"],
                "--engine",
            ),
            (
                vec!["--app", "echo", "--engine", "redis://127.0.0.1:6379"],
                "--engine",
            ),
            (vec!["--tick-ms", "0"], "--tick-ms"),
            (vec!["--heartbeat-ms", "10"], "--heartbeat-ms"),
        ] {
            let err = parse(&args).expect_err("must fail");
            assert!(err.0.starts_with(flag), "{err} should name {flag}");
        }
        assert_eq!(parse(&["--help"]), Ok(Command::Help));
        assert_eq!(parse(&["-V"]), Ok(Command::Version));
    }

    /// Today's exact messages, pinned so that a change of parser cannot alter them.
    #[test]
    fn exact_error_messages() {
        let whole = "expected a non-negative whole number in range";
        let table: &[(&[&str], String)] = &[
            (&["--miss", "x"], format!("--miss: {whole}, got \"x\"")),
            (&["--max-frame", "70000"], format!("--max-frame: {whole}, got \"70000\"")),
            (&["--miss=-1"], format!("--miss: {whole}, got \"-1\"")),
            (&["--miss="], format!("--miss: {whole}, got \"\"")),
            (&["--miss=5=6"], format!("--miss: {whole}, got \"5=6\"")),
            (&["--tick-ms", "--miss"], format!("--tick-ms: {whole}, got \"--miss\"")),
            (&["--tick-ms", "--"], format!("--tick-ms: {whole}, got \"--\"")),
            (&["--listen", "nowhere"], "--listen: expected IP:PORT, got \"nowhere\"".into()),
            (&["--metrics=x"], "--metrics: expected IP:PORT, got \"x\"".into()),
            (&["--app", "chat"], "--app: expected echo or pubsub, got \"chat\"".into()),
            (&["--tick-ms"], "--tick-ms: missing value".into()),
            (&["--tick-ms=1", "--listen"], "--listen: missing value".into()),
            (&["--bogus"], "--bogus: unknown flag (see --help)".into()),
            (&["--bogus=1"], "--bogus=1: unknown flag (see --help)".into()),
            (&["stray"], "stray: unknown flag (see --help)".into()),
            (&["a=b"], "a=b: unknown flag (see --help)".into()),
            (&["--"], "--: unknown flag (see --help)".into()),
            (&["--", "--help"], "--: unknown flag (see --help)".into()),
            (&["--=x"], "--=x: unknown flag (see --help)".into()),
            (&["---help"], "---help: unknown flag (see --help)".into()),
            (&["-"], "-: unknown flag (see --help)".into()),
            (&["-x"], "-x: unknown flag (see --help)".into()),
            (&["-hV"], "-hV: unknown flag (see --help)".into()),
            (&["-h=1"], "-h=1: unknown flag (see --help)".into()),
            (&["--miss", "x", "--help"], format!("--miss: {whole}, got \"x\"")),
            (&["--tick-ms", "0"], "--tick-ms: must be at least 1".into()),
            (&["--min-heartbeat-ms", "0"], "--min-heartbeat-ms: must be at least 1".into()),
            (
                &["--min-heartbeat-ms", "5000", "--max-heartbeat-ms", "1000"],
                "--min-heartbeat-ms: 5000 is above --max-heartbeat-ms 1000".into(),
            ),
            (
                &["--heartbeat-ms", "10"],
                "--heartbeat-ms: 10 is outside [--min-heartbeat-ms 1000, --max-heartbeat-ms 600000]"
                    .into(),
            ),
            (&["--miss", "0"], "--miss: must be at least 1".into()),
            (
                &["--miss", "10000"],
                "--miss: max heartbeat × miss does not fit the 32-bit idle_timeout_ms".into(),
            ),
            (&["--frame-timeout-ms", "0"], "--frame-timeout-ms: must be at least 1".into()),
            (&["--handshake-timeout-ms", "0"], "--handshake-timeout-ms: must be at least 1".into()),
            (&["--max-connections", "0"], "--max-connections: must be at least 1".into()),
            (
                &["--max-frame", "15"],
                "--max-frame: must be at least 16 (a WELCOME and a GOAWAY must fit)".into(),
            ),
            (&["--max-message", "0"], "--max-message: must be at least 1".into()),
            (&["--max-output", "1023"], "--max-output: must be at least 1024 bytes".into()),
            (
                &["--soft-output", "5000000"],
                "--soft-output: 5000000 is above --max-output 4194304".into(),
            ),
            (
                &["--rate-limit", "1", "--rate-burst", "0"],
                "--rate-burst: must be between 1 and 1000000".into(),
            ),
            (
                &["--rate-limit", "1000001"],
                "--rate-limit: must be at most 1000000 frames a second".into(),
            ),
        ];
        for (args, message) in table {
            assert_eq!(parse(args), Err(CliError(message.clone())), "{args:?}");
        }
    }

    /// Today's behaviour for repeated flags, `--flag=value`, and help or
    /// version next to other flags, pinned like the messages.
    #[test]
    fn repeats_inline_values_and_help_order() {
        let Ok(Command::Run(c)) =
            parse(&["--miss", "2", "--miss=4", "--app=echo", "--app", "pubsub"])
        else {
            panic!("parses")
        };
        assert_eq!((c.miss, c.app), (4, AppKind::Pubsub));
        let Ok(Command::Run(c)) = parse(&["--auth-token-file="]) else {
            panic!("parses")
        };
        assert_eq!(c.auth_token_file, Some(PathBuf::new()));
        assert_eq!(parse(&["--help", "--miss", "x"]), Ok(Command::Help));
        assert_eq!(parse(&["--miss", "2", "-h"]), Ok(Command::Help));
        assert_eq!(parse(&["--help=1"]), Ok(Command::Help));
        assert_eq!(parse(&["--version=1"]), Ok(Command::Version));
        assert_eq!(parse(&["-V", "--help"]), Ok(Command::Version));
        assert_eq!(parse(&["--version", "--bogus"]), Ok(Command::Version));
    }

    #[test]
    fn a_field_maps_to_its_flag() {
        assert_eq!(flag_for("miss"), "--miss");
        assert_eq!(flag_for("max_heartbeat_ms"), "--max-heartbeat-ms");
    }

    #[test]
    fn token_file_rules() {
        let dir = std::env::temp_dir().join(format!("tether-cli-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let good = dir.join("good");
        std::fs::write(&good, "alpha\n\n  beta  \n").expect("write");
        assert_eq!(
            load_tokens(&good),
            Ok(vec![b"alpha".to_vec(), b"beta".to_vec()])
        );
        let empty = dir.join("empty");
        std::fs::write(&empty, "\n \n").expect("write");
        assert!(load_tokens(&empty)
            .expect_err("empty")
            .0
            .contains("holds no token"));
        assert!(load_tokens(&dir.join("missing"))
            .expect_err("missing")
            .0
            .starts_with("--auth-token-file"));
        std::fs::remove_dir_all(&dir).ok();
    }
}
