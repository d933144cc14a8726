//! The command line: a subcommand and its flags, to a [`Command`], with
//! errors that name the flag. Walked with `tether::cli::args` like the other
//! binaries; pure, and unit-tested below. The help texts live in `help`.

use std::ffi::OsString;
use std::path::PathBuf;

use tether::cli::args::{parse_value, Arg, ArgParser, CliError};
use tether::client::pubsub::Position;
use tether::client::TlsFlags;

use crate::help;

/// What every subcommand takes: where to connect and how.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Common {
    /// `ADDR[,ADDR...]`: tried in order; after a connection ends, the next one first.
    pub addrs: Vec<String>,
    /// `--tls` and the flags that go with it.
    pub tls: TlsFlags,
    /// `--token-file FILE`: the auth token is its first line.
    pub token_file: Option<PathBuf>,
    /// `--heartbeat-ms N`: asked for in HELLO (0: the server's choice).
    pub heartbeat_ms: u32,
    /// `--json`: one JSON object per line on stdout.
    pub json: bool,
}

/// `tether-cli sub`.
#[derive(Debug, Clone, PartialEq)]
pub struct SubArgs {
    /// Connection flags.
    pub common: Common,
    /// The channels, in the order given.
    pub channels: Vec<String>,
    /// `--count N`: exit 0 after N messages.
    pub count: Option<u64>,
    /// `--timeout-s S`: give up (or end) after S seconds.
    pub timeout_s: Option<f64>,
    /// `--from EPOCH:OFFSET`: start after this position, on every channel.
    pub from: Option<Position>,
}

/// Where `tether-cli pub` takes its messages from.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    /// The MESSAGE argument, once.
    One(String),
    /// Each line of stdin.
    Lines,
    /// `seq:1` to `seq:N`, at `rate` per second (as fast as acknowledged when `None`).
    Numbered {
        /// N.
        count: u64,
        /// Publishes per second.
        rate: Option<f64>,
    },
}

/// `tether-cli pub`.
#[derive(Debug, Clone, PartialEq)]
pub struct PubArgs {
    /// Connection flags.
    pub common: Common,
    /// The channel.
    pub channel: String,
    /// What to publish.
    pub source: Source,
}

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Print this help text and exit 0.
    Help(String),
    /// Subscribe and print.
    Sub(SubArgs),
    /// Publish and wait for acknowledgements.
    Pub(PubArgs),
    /// One PING's round trip.
    Ping(Common),
}

/// A channel is 1..=255 bytes (docs/protocol.md §7.2).
const MAX_CHANNEL_LEN: usize = 255;
/// What a number flag must be, in its error message.
const NUMBER: &str = "a number";

/// Parses the arguments after the program name.
pub fn parse_args<I>(args: I) -> Result<Command, CliError>
where
    I: IntoIterator,
    I::Item: Into<OsString>,
{
    let mut p = ArgParser::new(args);
    let sub = match p.next_arg() {
        None => {
            return Err(CliError(
                "missing subcommand: sub, pub or ping (see --help)".into(),
            ))
        }
        Some(Arg::Flag(flag)) if flag == "-h" || flag == "--help" => {
            return Ok(Command::Help(help::top()))
        }
        Some(Arg::Flag(flag)) => {
            return Err(CliError(format!(
                "unknown flag {flag:?} before the subcommand (see --help)"
            )))
        }
        Some(Arg::Positional(sub)) => sub,
    };
    match sub.as_str() {
        "sub" => parse_sub(&mut p),
        "pub" => parse_pub(&mut p),
        "ping" => parse_ping(&mut p),
        other => Err(CliError(format!(
            "unknown subcommand {other:?}: sub, pub or ping (see --help)"
        ))),
    }
}

/// Reads `flag` into `common` when it is one of the shared flags.
fn common_flag(flag: &str, p: &mut ArgParser, common: &mut Common) -> Result<bool, CliError> {
    match flag {
        "--json" => common.json = true,
        "--token-file" => common.token_file = Some(PathBuf::from(p.value_os()?)),
        "--heartbeat-ms" => common.heartbeat_ms = p.parsed(NUMBER)?,
        _ => return common.tls.parse_flag(flag, p),
    }
    Ok(true)
}

/// The walk every subcommand shares: `-h`/`--help` wins, shared flags go to
/// `common`, `own` takes the subcommand's flags, positionals are collected.
fn walk(
    p: &mut ArgParser,
    sub: &str,
    common: &mut Common,
    mut own: impl FnMut(&str, &mut ArgParser) -> Result<bool, CliError>,
) -> Result<Option<Vec<String>>, CliError> {
    let mut positionals = Vec::new();
    while let Some(arg) = p.next_arg() {
        match arg {
            Arg::Positional(value) => positionals.push(value),
            Arg::Flag(flag) if flag == "-h" || flag == "--help" => return Ok(None),
            Arg::Flag(flag) => {
                if !own(&flag, p)? && !common_flag(&flag, p, common)? {
                    return Err(CliError(format!(
                        "unknown flag {flag:?} (see tether-cli {sub} --help)"
                    )));
                }
            }
        }
    }
    common.tls.validate()?;
    Ok(Some(positionals))
}

/// Takes ADDR[,ADDR...] off the front of the positionals.
fn take_addrs(positionals: &mut Vec<String>, common: &mut Common) -> Result<(), CliError> {
    if positionals.is_empty() {
        return Err(CliError("missing ADDR (HOST:PORT[,HOST:PORT...])".into()));
    }
    let value = positionals.remove(0);
    common.addrs = parse_addrs(&value)?;
    Ok(())
}

/// `HOST:PORT[,HOST:PORT...]`; each must end in a port number (names are
/// resolved when connecting).
pub fn parse_addrs(value: &str) -> Result<Vec<String>, CliError> {
    let addrs: Vec<String> = value.split(',').map(|a| a.trim().to_string()).collect();
    for addr in &addrs {
        let port = addr
            .rsplit_once(':')
            .map(|(host, port)| (host, port.parse::<u16>()));
        if !matches!(port, Some((host, Ok(_))) if !host.is_empty()) {
            return Err(CliError(format!(
                "ADDR: expected HOST:PORT[,HOST:PORT...], got {value:?}"
            )));
        }
    }
    Ok(addrs)
}

fn check_channel(channel: &str) -> Result<(), CliError> {
    if channel.is_empty() || channel.len() > MAX_CHANNEL_LEN {
        return Err(CliError(format!(
            "CHANNEL: expected 1..=255 bytes, got {} in {channel:?}",
            channel.len()
        )));
    }
    Ok(())
}

/// `EPOCH:OFFSET`: the epoch as 1 to 16 hex digits (not 0), the offset in decimal.
pub fn parse_position(flag: &str, value: &str) -> Result<Position, CliError> {
    let bad = || {
        CliError(format!(
            "{flag}: expected EPOCH:OFFSET (EPOCH 16 hex digits, not 0; OFFSET decimal), got {value:?}"
        ))
    };
    let (epoch, offset) = value.split_once(':').ok_or_else(bad)?;
    if epoch.is_empty() || epoch.len() > 16 || !epoch.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad());
    }
    let epoch = u64::from_str_radix(epoch, 16).map_err(|_| bad())?;
    let offset: u64 = offset.parse().map_err(|_| bad())?;
    if epoch == 0 {
        return Err(bad());
    }
    Ok(Position { epoch, offset })
}

fn parse_sub(p: &mut ArgParser) -> Result<Command, CliError> {
    let mut common = Common::default();
    let (mut count, mut timeout_s, mut from) = (None, None, None);
    let walked = walk(p, "sub", &mut common, |flag, p| {
        match flag {
            "--count" => count = Some(positive_count(p)?),
            "--timeout-s" => {
                let secs = p.seconds()?;
                if secs <= 0.0 {
                    return Err(CliError("--timeout-s: must be above 0".into()));
                }
                timeout_s = Some(secs);
            }
            "--from" => from = Some(parse_position("--from", &p.value()?)?),
            _ => return Ok(false),
        }
        Ok(true)
    })?;
    let Some(mut positionals) = walked else {
        return Ok(Command::Help(help::sub()));
    };
    take_addrs(&mut positionals, &mut common)?;
    if positionals.is_empty() {
        return Err(CliError("missing CHANNEL".into()));
    }
    for channel in &positionals {
        check_channel(channel)?;
    }
    Ok(Command::Sub(SubArgs {
        common,
        channels: positionals,
        count,
        timeout_s,
        from,
    }))
}

fn positive_count(p: &mut ArgParser) -> Result<u64, CliError> {
    let n: u64 = p.parsed(NUMBER)?;
    if n == 0 {
        return Err(CliError("--count: must be at least 1".into()));
    }
    Ok(n)
}

fn parse_pub(p: &mut ArgParser) -> Result<Command, CliError> {
    let mut common = Common::default();
    let (mut count, mut rate) = (None, None);
    let walked = walk(p, "pub", &mut common, |flag, p| {
        match flag {
            "--count" => count = Some(positive_count(p)?),
            "--rate" => {
                let value = p.value()?;
                let r: f64 = parse_value("--rate", &value, NUMBER)?;
                if !r.is_finite() || r <= 0.0 || r > 10_000_000.0 {
                    return Err(CliError(format!(
                        "--rate: expected a positive number up to 10000000, got {value:?}"
                    )));
                }
                rate = Some(r);
            }
            _ => return Ok(false),
        }
        Ok(true)
    })?;
    let Some(mut positionals) = walked else {
        return Ok(Command::Help(help::publish()));
    };
    take_addrs(&mut positionals, &mut common)?;
    if positionals.is_empty() {
        return Err(CliError("missing CHANNEL".into()));
    }
    let channel = positionals.remove(0);
    check_channel(&channel)?;
    let message = positionals.pop();
    if !positionals.is_empty() {
        return Err(CliError(
            "one MESSAGE at most (quote it if it has spaces)".into(),
        ));
    }
    let source = match (message, count) {
        (Some(_), Some(_)) => {
            return Err(CliError(
                "--count: not with a MESSAGE (it numbers its own)".into(),
            ))
        }
        (Some(message), None) => Source::One(message),
        (None, Some(count)) => Source::Numbered { count, rate },
        (None, None) => Source::Lines,
    };
    if rate.is_some() && count.is_none() {
        return Err(CliError("--rate: only with --count".into()));
    }
    Ok(Command::Pub(PubArgs {
        common,
        channel,
        source,
    }))
}

fn parse_ping(p: &mut ArgParser) -> Result<Command, CliError> {
    let mut common = Common::default();
    let walked = walk(p, "ping", &mut common, |_, _| Ok(false))?;
    let Some(mut positionals) = walked else {
        return Ok(Command::Help(help::ping()));
    };
    take_addrs(&mut positionals, &mut common)?;
    if let Some(extra) = positionals.first() {
        return Err(CliError(format!("ping: unexpected argument {extra:?}")));
    }
    Ok(Command::Ping(common))
}

#[cfg(test)]
mod tests;
