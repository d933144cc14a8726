//! The command line: flags to an [`Args`], with errors that name the flag.
//!
//! Walked and parsed by `tether::cli::args`, the same as the server's; the
//! parser is a pure function and unit-tested below.

use std::ffi::OsString;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::str::FromStr;

use tether::cli::args::{Arg, ArgParser, CliError};
use tether::client::{TlsFlags, TLS_FLAGS_USAGE};

/// Usage text for `--help`: the generator's own flags, the client TLS
/// flags it shares with the example client, and how a run ends.
pub fn usage() -> String {
    format!("{USAGE_HEAD}{TLS_FLAGS_USAGE}{USAGE_TAIL}")
}

const USAGE_HEAD: &str = "\
tether-load: a single-threaded load generator speaking the tether protocol.

usage: tether-load MODE [flags]        (or --mode MODE)

modes:
  pingpong   N connections, D PINGs in flight each, payload P bytes; latency PING->PONG
  echo       DATA messages of S bytes, D in flight per connection; latency send->echo
  idle       N connections heartbeating every H ms; counts survivors and GOAWAYs
  churn      connect, handshake, close politely (GOAWAY NORMAL, FIN, read to EOF) at R/s
  fanout     1 publisher at R msgs/s, N subscribers (server must run --app pubsub)
  storm      N clients PING every H ms (RTT timed); after --warmup, --storm M more connect
             at once; RTT before/during/after the storm and the storm's connect times

flags:
  --addr IP:PORT              server address (127.0.0.1:7600)
  --connections N             connections (subscribers in fanout) (100)
  --duration SECS             measured time, after ramp-up and warmup (10)
  --warmup SECS               unmeasured time before the measurement (0)
  --depth D                   requests in flight per connection, pingpong/echo (1)
  --payload P                 PING payload bytes, 0..=64, pingpong (16; 0 carries no sequence)
  --size S                    DATA message / publish body bytes, >= 16, echo/fanout (64)
  --heartbeat-ms H            heartbeat asked for in HELLO and kept (10000; 0 = server's choice)
  --storm M                   storm: clients that connect at once after the warmup (10000);
                              with --connections at most 19000 sockets in all. Storm's own
                              defaults: --connections 1000, --heartbeat-ms 100, --warmup 2,
                              and --sources 127.0.0.1-127.0.0.4 when --addr is 127.0.0.1
  --storm-in-child            storm: make the storm's connects in a child tether-load, so
                              the established clients' loop only measures (2 loops, 2 CPUs)
  --rate R                    churn: connections per second; fanout: publishes per second (100)
  --channel NAME              fanout channel (load)
  --protocol V                HELLO version, 1 or 2; fanout with 2 speaks v2 pub/sub:
                              SUBSCRIBE (publishing waits for every reply), PUBLISH
                              with request id 0 (no acks), PUBLICATION (1)
  --publish-addr ADDR         fanout: the publisher connects here instead of --addr
                              (another node of a cluster: cross-node delivery)
  --verbatim-deliveries       fanout, protocol 1: a DATA message that is the publisher's
                              own `P`, forwarded unchanged, counts as a delivery (a floor
                              server: examples/floor_fanout.rs)
  --sources A-B|A,B,..        bind each socket to one of these local IPv4 addresses, round-robin
  --connect-concurrency K     most connects/handshakes in flight (256)
  --token T                   auth token sent in HELLO
  --server-pid PID            sample that process's CPU time and RSS over the measured window
  --max-error-pct F           exit 1 when errors exceed F% of connection attempts (1.0)
  --json                      print one JSON object on stdout instead of the table
  --report DIR                also write DIR/report.txt, report.json, SVG charts over time
                              (throughput, latency, connections; server CPU and RSS with
                              --server-pid) and DIR/index.html showing them
  -h, --help                  this text

TLS, for every mode (the TLS handshake is part of the connect; its time is reported):
";

const USAGE_TAIL: &str = "
Every run is bounded: ramp-up (at most 60 s), warmup, duration, then at most
2 s to drain replies and 2 s to close politely. Exit 0 on success, 1 when the
run had too many errors or no connection came up, 2 on a usage error.
";

/// The workload to drive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Closed-loop PING/PONG.
    PingPong,
    /// Closed-loop DATA echo.
    Echo,
    /// Connections that only heartbeat.
    Idle,
    /// Connect, handshake, polite close, repeatedly.
    Churn,
    /// One publisher, many subscribers (pub/sub app).
    Fanout,
    /// Heartbeating clients timed while a connect storm arrives.
    Storm,
}

impl Mode {
    /// The mode's name on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Mode::PingPong => "pingpong",
            Mode::Echo => "echo",
            Mode::Idle => "idle",
            Mode::Churn => "churn",
            Mode::Fanout => "fanout",
            Mode::Storm => "storm",
        }
    }

    fn parse(s: &str) -> Option<Mode> {
        Some(match s {
            "pingpong" => Mode::PingPong,
            "echo" => Mode::Echo,
            "idle" => Mode::Idle,
            "churn" => Mode::Churn,
            "fanout" => Mode::Fanout,
            "storm" => Mode::Storm,
            _ => return None,
        })
    }
}

/// Largest PING payload the protocol allows (docs/protocol.md §2).
pub const MAX_PING_PAYLOAD: usize = 64;
/// Smallest DATA body: an 8-byte sequence number and an 8-byte timestamp.
pub const MIN_SIZE: usize = 16;
/// Largest DATA body we will send: the server's default `max_message`.
pub const MAX_SIZE: usize = 1 << 20;
/// Most source addresses in `--sources`: more would not buy more ports.
pub const MAX_SOURCES: usize = 4096;
/// Most sockets a storm run opens (`--connections` plus `--storm`): under the
/// open-file limit of 20,000 this generator is run with.
pub const MAX_STORM_SOCKETS: usize = 19_000;
/// Storm clients by default (issue 13's storm test).
pub const DEFAULT_STORM: usize = 10_000;

/// Everything the command line sets.
#[derive(Debug, Clone, PartialEq)]
pub struct Args {
    /// The workload.
    pub mode: Mode,
    /// Server address.
    pub addr: SocketAddr,
    /// Connections to hold (subscribers in fanout).
    pub connections: usize,
    /// Measured seconds.
    pub duration_secs: f64,
    /// Unmeasured seconds before the measurement.
    pub warmup_secs: f64,
    /// Requests in flight per connection.
    pub depth: usize,
    /// PING payload bytes.
    pub payload: usize,
    /// DATA body bytes.
    pub size: usize,
    /// Heartbeat asked for in HELLO.
    pub heartbeat_ms: u32,
    /// Churn connections per second or fanout publishes per second.
    pub rate: f64,
    /// Storm: clients that connect at once after the warmup.
    pub storm: usize,
    /// Storm: make the storm's connects in a child process, so this one only measures.
    pub storm_in_child: bool,
    /// Fanout channel name.
    pub channel: String,
    /// The HELLO's protocol version (1 or 2); 2 makes fanout speak v2 pub/sub.
    pub protocol: u8,
    /// Fanout: take the publisher's own `P`, forwarded unchanged, as a delivery.
    pub verbatim_deliveries: bool,
    /// Fanout: where the publisher connects (`None`: `addr`, like the subscribers).
    pub publish_addr: Option<SocketAddr>,
    /// Local addresses to bind, round-robin; empty = let the kernel choose.
    pub sources: Vec<IpAddr>,
    /// Most connects and handshakes in flight.
    pub connect_concurrency: usize,
    /// Auth token for HELLO.
    pub token: Vec<u8>,
    /// Process to sample for CPU and RSS.
    pub server_pid: Option<u32>,
    /// Error threshold for the exit code, in percent of connection attempts.
    pub max_error_pct: f64,
    /// JSON output instead of the table.
    pub json: bool,
    /// Directory for the report files and charts (`--report`).
    pub report: Option<PathBuf>,
    /// Speak TLS, and how (`--tls` and the flags that go with it).
    pub tls: TlsFlags,
}

impl Default for Args {
    fn default() -> Self {
        Args {
            mode: Mode::PingPong,
            addr: SocketAddr::from(([127, 0, 0, 1], 7600)),
            connections: 100,
            duration_secs: 10.0,
            warmup_secs: 0.0,
            depth: 1,
            payload: 16,
            size: 64,
            heartbeat_ms: 10_000,
            rate: 100.0,
            storm: DEFAULT_STORM,
            storm_in_child: false,
            channel: "load".to_string(),
            protocol: tether::protocol::PROTOCOL_V1,
            verbatim_deliveries: false,
            publish_addr: None,
            sources: Vec::new(),
            connect_concurrency: 256,
            token: Vec::new(),
            server_pid: None,
            max_error_pct: 1.0,
            json: false,
            report: None,
            tls: TlsFlags::default(),
        }
    }
}

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Run this load.
    Run(Box<Args>),
    /// Print usage and exit 0.
    Help,
}

/// Parses `A-B` (an inclusive IPv4 range), `A,B,C`, or a single address.
pub fn parse_sources(value: &str) -> Result<Vec<IpAddr>, CliError> {
    let bad = |what: &str| CliError(format!("--sources: {what} in {value:?}"));
    let mut out = Vec::new();
    for part in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        if let Some((a, b)) = part.split_once('-') {
            let a = Ipv4Addr::from_str(a.trim()).map_err(|_| bad("bad IPv4 address"))?;
            let b = Ipv4Addr::from_str(b.trim()).map_err(|_| bad("bad IPv4 address"))?;
            let (lo, hi) = (u32::from(a), u32::from(b));
            if lo > hi {
                return Err(bad("range start above its end"));
            }
            if (hi - lo) as usize >= MAX_SOURCES {
                return Err(bad("range too long"));
            }
            out.extend((lo..=hi).map(|n| IpAddr::V4(Ipv4Addr::from(n))));
        } else {
            out.push(IpAddr::from_str(part).map_err(|_| bad("bad address"))?);
        }
        if out.len() > MAX_SOURCES {
            return Err(bad("too many addresses"));
        }
    }
    if out.is_empty() {
        return Err(bad("no address"));
    }
    Ok(out)
}

/// What a number flag must be, in its error message.
const NUMBER: &str = "a number";

/// Parses the arguments after the program name.
pub fn parse_args<I>(args: I) -> Result<Command, CliError>
where
    I: IntoIterator,
    I::Item: Into<OsString>,
{
    let mut a = Args::default();
    let mut mode_seen = false;
    // Flags given explicitly, so that storm's own defaults do not override them.
    let mut given: Vec<String> = Vec::new();
    let mut p = ArgParser::new(args);
    while let Some(arg) = p.next_arg() {
        let flag = match arg {
            Arg::Flag(flag) => {
                given.push(flag.clone());
                flag
            }
            Arg::Positional(name) => {
                let mode = Mode::parse(&name)
                    .ok_or_else(|| CliError(format!("unknown mode {name:?} (see --help)")))?;
                if mode_seen {
                    return Err(CliError(format!("a second mode {name:?}")));
                }
                a.mode = mode;
                mode_seen = true;
                continue;
            }
        };
        match flag.as_str() {
            "-h" | "--help" => return Ok(Command::Help),
            "--json" => a.json = true,
            "--report" => {
                let dir = p.value()?;
                if dir.is_empty() {
                    return Err(CliError("--report: expected a directory".to_string()));
                }
                a.report = Some(PathBuf::from(dir));
            }
            "--mode" => {
                let v = p.value()?;
                a.mode = Mode::parse(&v)
                    .ok_or_else(|| CliError(format!("--mode: unknown mode {v:?}")))?;
                mode_seen = true;
            }
            "--addr" => a.addr = p.address()?,
            "--connections" => a.connections = p.parsed(NUMBER)?,
            "--duration" => a.duration_secs = p.seconds()?,
            "--warmup" => a.warmup_secs = p.seconds()?,
            "--depth" => a.depth = p.parsed(NUMBER)?,
            "--payload" => a.payload = p.parsed(NUMBER)?,
            "--size" => a.size = p.parsed(NUMBER)?,
            "--heartbeat-ms" => a.heartbeat_ms = p.parsed(NUMBER)?,
            "--rate" => a.rate = p.parsed(NUMBER)?,
            "--storm" => a.storm = p.parsed(NUMBER)?,
            "--storm-in-child" => a.storm_in_child = true,
            "--channel" => a.channel = p.value()?,
            "--protocol" => {
                // Past u8 is simply not 1 or 2: `validate` names the choices.
                let v: u32 = p.parsed(NUMBER)?;
                a.protocol = u8::try_from(v).unwrap_or(0);
            }
            "--verbatim-deliveries" => a.verbatim_deliveries = true,
            "--publish-addr" => a.publish_addr = Some(p.address()?),
            "--sources" => a.sources = parse_sources(&p.value()?)?,
            "--connect-concurrency" => a.connect_concurrency = p.parsed(NUMBER)?,
            "--token" => a.token = p.value()?.into_bytes(),
            "--server-pid" => a.server_pid = Some(p.parsed(NUMBER)?),
            "--max-error-pct" => a.max_error_pct = p.parsed(NUMBER)?,
            _ => {
                if !a.tls.parse_flag(&flag, &mut p)? {
                    return Err(CliError(format!("unknown flag {flag:?} (see --help)")));
                }
            }
        }
    }
    if a.mode == Mode::Storm {
        apply_storm_defaults(&mut a, |f| given.iter().any(|g| g == f));
    }
    validate(&a)?;
    Ok(Command::Run(Box::new(a)))
}

/// Storm's defaults where the command line left a flag out: issue 13's test
/// (1,000 clients heartbeating every 100 ms, 2 s of steady state before the
/// storm, four loopback source addresses to pass one address's port range).
fn apply_storm_defaults(a: &mut Args, given: impl Fn(&str) -> bool) {
    if !given("--connections") {
        a.connections = 1_000;
    }
    if !given("--heartbeat-ms") {
        a.heartbeat_ms = 100;
    }
    if !given("--warmup") {
        a.warmup_secs = 2.0;
    }
    if !given("--sources") && a.addr.ip() == IpAddr::V4(Ipv4Addr::LOCALHOST) {
        a.sources = (1..=4)
            .map(|n| IpAddr::V4(Ipv4Addr::new(127, 0, 0, n)))
            .collect();
    }
}

fn validate(a: &Args) -> Result<(), CliError> {
    let err = |s: &str| Err(CliError(s.to_string()));
    if a.connections == 0 && a.mode != Mode::Churn {
        return err("--connections: must be at least 1");
    }
    if a.connections > 1_000_000 {
        return err("--connections: at most 1000000");
    }
    if a.mode == Mode::Storm && a.storm == 0 {
        return err("--storm: must be at least 1");
    }
    if a.mode == Mode::Storm && a.connections.saturating_add(a.storm) > MAX_STORM_SOCKETS {
        return err(
            "--storm: --connections plus --storm must be at most 19000 (the open-file limit)",
        );
    }
    if a.depth == 0 || a.depth > 4096 {
        return err("--depth: expected 1..=4096");
    }
    if a.payload > MAX_PING_PAYLOAD {
        return err("--payload: a PING carries at most 64 bytes");
    }
    if !(MIN_SIZE..=MAX_SIZE).contains(&a.size) {
        return err("--size: expected 16..=1048576 (8-byte sequence + 8-byte timestamp)");
    }
    if !a.rate.is_finite() || a.rate <= 0.0 || a.rate > 10_000_000.0 {
        return err("--rate: expected a positive number up to 10000000");
    }
    if a.channel.is_empty() || a.channel.len() > 255 {
        return err("--channel: expected 1..=255 bytes");
    }
    if !tether::protocol::is_supported_version(a.protocol) {
        return err("--protocol: expected 1 or 2");
    }
    if a.verbatim_deliveries
        && (a.mode != Mode::Fanout || a.protocol != tether::protocol::PROTOCOL_V1)
    {
        return err("--verbatim-deliveries: only in fanout with --protocol 1");
    }
    if a.publish_addr.is_some() && a.mode != Mode::Fanout {
        return err("--publish-addr: only in fanout");
    }
    if a.connect_concurrency == 0 {
        return err("--connect-concurrency: must be at least 1");
    }
    if a.token.len() > 255 {
        return err("--token: at most 255 bytes");
    }
    if !a.max_error_pct.is_finite() || a.max_error_pct < 0.0 {
        return err("--max-error-pct: expected a non-negative number");
    }
    if a.duration_secs <= 0.0 {
        return err("--duration: must be above 0");
    }
    let publish_ipv4 = a.publish_addr.map_or(a.addr.is_ipv4(), |p| p.is_ipv4());
    if a.sources
        .iter()
        .any(|s| s.is_ipv4() != a.addr.is_ipv4() || s.is_ipv4() != publish_ipv4)
    {
        return err("--sources: address family differs from --addr");
    }
    a.tls.validate()
}

#[cfg(test)]
mod tests;
