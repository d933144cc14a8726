//! The server's command line: flags to a [`Config`], with errors that name
//! the flag. Kept in the library so it is unit-tested like everything else;
//! [`args`] holds what it shares with `tether-load`'s command line.

pub mod apply;
pub mod args;
pub mod file;
pub mod logging;

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use apply::{apply, Layer};
pub use args::CliError;
use args::{Arg, ArgParser};

use crate::config::{Config, ConfigError};
use crate::tls::ServerTlsFiles;

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
              [--tls13-only] [--log-level LEVEL] [--config FILE] [--check-config FILE]

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
  --max-connections-per-ip N
                             connections held per client IP; past it SERVER_FULL with a
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
                             redis://HOST:PORT[?password=...] shared by nodes, or
                             redis-cluster://HOST:PORT,... (seeds) (memory)
  --metrics ADDR             serve GET /metrics (Prometheus) and GET /healthz here (off)
  --tls-listen ADDR          a TLS listener (repeat for more); needs --tls-cert and --tls-key
  --tls-cert FILE            PEM certificate chain, the server's certificate first
  --tls-key FILE             PEM private key of that certificate (RSA, ECDSA or Ed25519)
  --tls-client-ca FILE       PEM CA certificates: clients must present a certificate they signed
  --tls13-only               refuse TLS 1.2 (default: TLS 1.2 and 1.3)
  --log-level LEVEL          error, warn, info, debug or trace (not set: RUST_LOG, else info)
  --config FILE              read settings from a TOML file: each key is a flag without --
                             (heartbeat-ms = 30000); flags given here override it
  --check-config FILE        check FILE with the other flags, print the settings in effect
                             as TOML, exit 0 (2 on an error); binds nothing
  -h, --help                 this text
  -V, --version              the version

Logging: --log-level debug (or RUST_LOG=debug) for per-connection events (default info).
Prints `listening on IP:PORT` on stdout per listener when ready (plain ones
first, then `listening on IP:PORT tls`). SIGTERM/SIGINT stop gracefully
(GOAWAY SHUTTING_DOWN to every connection); a second one exits at once.
SIGHUP reloads: the --config file (the command line still overrides it), the
auth token file and the TLS files; limits, timeouts, tokens and the log level
apply to new connections (output and rate limits to all); listeners, app,
engine, metrics, tick and history need a restart. A bad file keeps the whole
old configuration and logs why.
Under systemd (contrib/tether.service): with NOTIFY_SOCKET set it sends
READY=1, STOPPING=1, RELOADING=1 and, when WATCHDOG_USEC asks, WATCHDOG=1;
sockets passed by socket activation (LISTEN_FDS) replace the default
--listen (one named `tls` is a TLS listener). README: Running under systemd.
";

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Run the server with this configuration (auth tokens not yet loaded).
    Run(Box<Config>),
    /// `--check-config FILE`: print this configuration (the file with the
    /// other flags over it) as TOML and exit 0, binding nothing.
    Check(Box<Config>),
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

/// Parses the arguments after the program name. With `--config FILE` (or
/// `--check-config FILE`) the file's settings come first and the other
/// flags override them; a repeatable flag on the command line replaces the
/// file's values.
pub fn parse_args<I>(args: I) -> Result<Command, CliError>
where
    I: IntoIterator,
    I::Item: Into<OsString>,
{
    parse_args_with(args, Inherited::default())
}

/// Listening sockets systemd passed (socket activation), as far as the
/// configuration cares: how many plain and TLS ones.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Inherited {
    /// Plain listeners.
    pub plain: usize,
    /// TLS listeners (`LISTEN_FDNAMES` name `tls`).
    pub tls: usize,
}

/// [`parse_args`] for a server that also has `inherited` listeners: then
/// the default `listen` is not bound (`config.listen` is `None` unless the
/// command line or the file gave one), and an inherited TLS socket needs
/// the TLS settings as `tls-listen` does.
pub fn parse_args_with<I>(args: I, inherited: Inherited) -> Result<Command, CliError>
where
    I: IntoIterator,
    I::Item: Into<OsString>,
{
    let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
    let mut command_line = Layer::default();
    let walked = walk_command_line(&args, &mut command_line)?;
    if let Some(command) = walked.early {
        return Ok(command);
    }
    let config = match &walked.config_file {
        None => command_line.finish(None, inherited)?,
        Some(path) => {
            let mut layer = Layer::default();
            file::apply_file(path, &mut layer)?;
            walk_command_line(&args, &mut layer)?;
            layer.finish(Some(path), inherited)?
        }
    };
    Ok(if walked.check {
        Command::Check(Box::new(config))
    } else {
        Command::Run(Box::new(config))
    })
}

/// What a walk over the command line found besides settings.
struct Walked {
    /// `--help` or `--version`, when it came before any error.
    early: Option<Command>,
    /// The `--config` (or `--check-config`) file.
    config_file: Option<PathBuf>,
    /// `--check-config` was given.
    check: bool,
}

/// Applies every setting flag of the command line to `layer`, in order.
fn walk_command_line(args: &[OsString], layer: &mut Layer) -> Result<Walked, CliError> {
    let mut walked = Walked {
        early: None,
        config_file: None,
        check: false,
    };
    let mut p = ArgParser::new(args.iter().cloned());
    layer.begin_source();
    while let Some(arg) = p.next_arg() {
        let flag = match arg {
            Arg::Flag(flag) => flag,
            Arg::Positional(_) => return Err(unknown_flag(&p)),
        };
        match flag.as_str() {
            "-h" | "--help" => walked.early = Some(Command::Help),
            "-V" | "--version" => walked.early = Some(Command::Version),
            "--config" => walked.config_file = Some(PathBuf::from(p.value_os()?)),
            "--check-config" => {
                walked.config_file = Some(PathBuf::from(p.value_os()?));
                walked.check = true;
            }
            _ => {
                if !apply(&flag, &mut p, layer)? {
                    return Err(unknown_flag(&p));
                }
                layer.from_command_line.push(flag);
            }
        }
        if walked.early.is_some() {
            break;
        }
    }
    Ok(walked)
}

/// Reads the configuration the command line `args` names (the file, then
/// the flags) and the auth tokens, as at startup, with the same `inherited`
/// sockets: what a reload (SIGHUP) takes. `--help` and `--version` are
/// errors here.
pub fn load_config(args: &[OsString], inherited: Inherited) -> Result<Config, CliError> {
    let mut config = match parse_args_with(args.iter().cloned(), inherited)? {
        Command::Run(config) | Command::Check(config) => *config,
        Command::Help | Command::Version => {
            return Err(CliError("the command line asks for no server".into()))
        }
    };
    prepare_to_run(&mut config)?;
    Ok(config)
}

/// What a parsed configuration needs before a server runs with it: its auth
/// tokens loaded, and `max_connections` within the open-file limit.
pub fn prepare_to_run(config: &mut Config) -> Result<(), CliError> {
    if let Some(path) = &config.auth_token_file {
        config.auth_tokens = load_tokens(path)?;
    }
    cap_max_connections(config);
    Ok(())
}

/// Lowers `max_connections` to what the open-file limit allows (less
/// [`RESERVED_FDS`]), with a warning.
fn cap_max_connections(config: &mut Config) {
    if let Some(limit) = open_file_limit() {
        let usable = limit.saturating_sub(RESERVED_FDS).max(1);
        if config.max_connections > usable {
            log::warn!(
                "--max-connections {} is above what the open-file limit {limit} allows; using {usable}",
                config.max_connections
            );
            config.max_connections = usable;
        }
    }
}

/// Descriptors kept back from `max_connections`: listener, epoll, signal pipe, metrics, logs, slack.
const RESERVED_FDS: usize = 64;

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
    use crate::config::AppKind;
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

    #[test]
    fn a_redis_cluster_engine_takes_every_seed() {
        let args = ["--engine", "redis-cluster://127.0.0.1:7000,127.0.0.1:7001"];
        let Ok(Command::Run(config)) = parse(&args) else {
            panic!("redis-cluster:// is accepted");
        };
        let engine = config.engine.expect("an engine");
        assert!(engine.cluster);
        assert_eq!(engine.seeds.len(), 2);
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

    #[test]
    fn inherited_sockets_replace_the_default_listen() {
        let run = |args: &[&str], inherited| match parse_args_with(args.iter().copied(), inherited)
        {
            Ok(Command::Run(c)) => Ok(c),
            Ok(other) => panic!("{other:?}"),
            Err(e) => Err(e.to_string()),
        };
        let plain = Inherited { plain: 1, tls: 0 };
        assert_eq!(run(&[], plain).map(|c| c.listen), Ok(None));
        assert_eq!(
            run(&["--listen", "none"], plain).map(|c| c.listen),
            Ok(None)
        );
        let explicit = run(&["--listen", "127.0.0.1:0"], plain).map(|c| c.listen);
        assert_eq!(explicit, Ok(Some("127.0.0.1:0".parse().unwrap())));
        let tls = Inherited { plain: 0, tls: 1 };
        let needs = "--tls-cert: needed by an inherited TLS socket (LISTEN_FDNAMES tls)";
        assert_eq!(run(&[], tls).map(|c| c.listen), Err(needs.to_string()));
        let with_files = run(&["--tls-cert", "c.pem", "--tls-key", "k.pem"], tls);
        assert!(with_files.is_ok_and(|c| c.tls.is_some()));
    }
}
