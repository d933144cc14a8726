//! The restart storm (issue 13): thousands of clients of the Rust client
//! library attached to a server that is then restarted; how their
//! reconnects spread over the backoff's jitter window.
//!
//! Each client is the library's own `ClientMachine` (so the reconnect
//! behaviour measured is the library's), driven over `mio` by a few fleet
//! threads (`--threads`, examples/restart_storm/fleet.rs) instead of one
//! blocking client and thread each. The report gives the fleet's own lag in
//! firing the clients' timers: when it is large, the machine was too busy to
//! keep to the library's schedule, and the times are the fleet's, not the library's. The clients' sockets are bound round-robin to
//! 127.0.0.1-127.0.0.4 so 10,000 of them, and their reconnects, stay clear
//! of running out of one address's ephemeral ports.
//!
//! 1. connects `--clients` clients (at most `--connect-concurrency` first
//!    connects in flight) and waits until all are open;
//! 2. prints `ready N` on stdout: now restart the server (SIGTERM, which
//!    sends GOAWAY SHUTTING_DOWN, then start a new one on the same port);
//! 3. records, per client, when its connection ended and when its next
//!    WELCOME came, until every client is back or `--timeout-s` passes;
//! 4. prints the report: how many reconnected and how fast, a histogram of
//!    reconnect times and one of reconnect WELCOMEs since the restart began,
//!    with `--metrics ADDR` the new server's peak accept rate from its
//!    `/metrics`, and the same as one JSON line (`json {...}`, or to `--json FILE`).
//!
//! Exits 0 when every client reconnected, 1 otherwise, 2 on a bad flag.
//! `scripts/restart_storm.sh` runs the whole thing.
//!
//! ```text
//! cargo run --release --example restart_storm -- --server 127.0.0.1:7600 \
//!     [--clients 10000] [--sources 127.0.0.1-127.0.0.4|none] [--connect-concurrency 1000]
//!     [--heartbeat-ms 0] [--jitter full|equal|none] [--base-ms 100] [--cap-ms 30000]
//!     [--threads 2] [--seed N] [--metrics ADDR] [--bucket-ms 100] [--timeout-s 60] [--json FILE]
//! ```

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use tether::client::{ClientConfig, Jitter, RandomSource, SplitMix64};

#[path = "restart_storm/fleet.rs"]
mod fleet;
#[path = "restart_storm/report.rs"]
mod report;
#[path = "restart_storm/sampler.rs"]
mod sampler;

use fleet::{Fleet, FleetConfig, Record};
use report::Summary;
use sampler::Sampler;

/// How often the server's `/metrics` is read for its accept rate.
const SAMPLE_EVERY: Duration = Duration::from_millis(20);

struct Args {
    fleet: FleetConfig,
    /// Fleet threads, each with its own poll and share of the clients.
    threads: usize,
    metrics: Option<SocketAddr>,
    bucket: Duration,
    connect_timeout: Duration,
    timeout: Duration,
    json: Option<String>,
}

/// `A-B` (IPv4, inclusive), `A,B,...` or `none`.
fn parse_sources(value: &str) -> Result<Vec<IpAddr>, String> {
    if value == "none" {
        return Ok(Vec::new());
    }
    if let Some((a, b)) = value.split_once('-') {
        let a: Ipv4Addr = a.parse().map_err(|e| format!("{a:?}: {e}"))?;
        let b: Ipv4Addr = b.parse().map_err(|e| format!("{b:?}: {e}"))?;
        let (a, b) = (u32::from(a), u32::from(b));
        if b < a || b - a >= 256 {
            return Err(format!("{value:?}: an ascending range of at most 256"));
        }
        return Ok((a..=b).map(|n| IpAddr::V4(Ipv4Addr::from(n))).collect());
    }
    value
        .split(',')
        .map(|s| s.parse().map_err(|e| format!("{s:?}: {e}")))
        .collect()
}

fn parse_args() -> Result<Args, String> {
    let mut client = ClientConfig::default();
    let mut seed = None;
    let mut args = Args {
        fleet: FleetConfig {
            server: SocketAddr::from(([127, 0, 0, 1], 7600)),
            clients: 10_000,
            sources: parse_sources("127.0.0.1-127.0.0.4")?,
            connect_concurrency: 1000,
            client: ClientConfig::default(),
            seed: 0,
        },
        threads: 2,
        metrics: None,
        bucket: Duration::from_millis(100),
        connect_timeout: Duration::from_secs(60),
        timeout: Duration::from_secs(60),
        json: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or(format!("{flag}: needs a value"))?;
        let bad = |e: &dyn std::fmt::Display| format!("{flag}: {e}");
        let number = |v: &str| v.parse::<u64>().map_err(|e| bad(&e));
        match flag.as_str() {
            "--server" => args.fleet.server = value.parse().map_err(|e| bad(&e))?,
            "--clients" => args.fleet.clients = number(&value)? as usize,
            "--sources" => args.fleet.sources = parse_sources(&value).map_err(|e| bad(&e))?,
            "--connect-concurrency" => {
                args.fleet.connect_concurrency = (number(&value)? as usize).max(1)
            }
            "--heartbeat-ms" => {
                client.heartbeat_ms = u32::try_from(number(&value)?).map_err(|e| bad(&e))?
            }
            "--jitter" => {
                client.backoff.jitter = match value.as_str() {
                    "full" => Jitter::Full,
                    "equal" => Jitter::Equal,
                    "none" => Jitter::None,
                    other => return Err(bad(&format!("full, equal or none, not {other:?}"))),
                }
            }
            "--base-ms" => client.backoff.base = Duration::from_millis(number(&value)?),
            "--cap-ms" => client.backoff.cap = Duration::from_millis(number(&value)?),
            "--threads" => args.threads = (number(&value)? as usize).max(1),
            "--seed" => seed = Some(number(&value)?),
            "--metrics" => args.metrics = Some(value.parse().map_err(|e| bad(&e))?),
            "--bucket-ms" => args.bucket = Duration::from_millis(number(&value)?.max(1)),
            "--connect-timeout-s" => args.connect_timeout = Duration::from_secs(number(&value)?),
            "--timeout-s" => args.timeout = Duration::from_secs(number(&value)?),
            "--json" => args.json = Some(value),
            _ => return Err(format!("{flag}: unknown flag")),
        }
    }
    args.fleet.seed = seed.unwrap_or_else(|| SplitMix64::from_entropy().next_u64());
    args.fleet.client = client;
    Ok(args)
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("restart_storm: {e}");
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("restart_storm: {e}");
            ExitCode::FAILURE
        }
    }
}

/// What a fleet thread reports: its clients open, then its records and timer lag.
enum FromFleet {
    Ready(Result<usize, String>),
    Done(Result<(Vec<Record>, Vec<Duration>), String>),
}

/// Runs one fleet on its own thread: connects, reports ready, records the
/// restart, reports, and keeps its clients attached until `release` says go.
fn spawn_fleet(
    config: FleetConfig,
    args: &Args,
    tx: mpsc::Sender<FromFleet>,
    release: mpsc::Receiver<()>,
) -> thread::JoinHandle<()> {
    let (connect_timeout, timeout) = (args.connect_timeout, args.timeout);
    thread::spawn(move || {
        let mut fleet = match Fleet::new(config) {
            Ok(fleet) => fleet,
            Err(e) => {
                let _ = tx.send(FromFleet::Ready(Err(format!("poll: {e}"))));
                return;
            }
        };
        let ready = fleet.connect_all(connect_timeout).map(|()| fleet.open());
        let failed = ready.is_err();
        fleet.mark_ready();
        let _ = tx.send(FromFleet::Ready(ready));
        if failed {
            return;
        }
        let done = fleet
            .watch(timeout)
            .map(|records| (records, fleet.timer_lag()))
            .map_err(|e| format!("poll: {e}"));
        let _ = tx.send(FromFleet::Done(done));
        let _ = release.recv();
    })
}

/// The storm; `Ok(true)` when every client reconnected.
fn run(args: &Args) -> Result<bool, String> {
    let backoff = &args.fleet.client.backoff;
    eprintln!(
        "restart_storm: {} clients to {} from {} source address(es) on {} thread(s), backoff \
         base {:?} cap {:?} jitter {:?}, seed {}",
        args.fleet.clients,
        args.fleet.server,
        args.fleet.sources.len(),
        args.threads,
        backoff.base,
        backoff.cap,
        backoff.jitter,
        args.fleet.seed
    );
    let (tx, rx) = mpsc::channel();
    let mut releases = Vec::new();
    let mut threads = Vec::new();
    let mut seeds = SplitMix64::new(args.fleet.seed);
    for t in 0..args.threads {
        let mut config = args.fleet.clone();
        // An even share of the clients per thread, each thread starting
        // its round-robin over the source addresses at a different one.
        config.clients = (args.fleet.clients + args.threads - 1 - t) / args.threads;
        config
            .sources
            .rotate_left(t % args.fleet.sources.len().max(1));
        config.seed = seeds.next_u64();
        let (release_tx, release_rx) = mpsc::channel();
        releases.push(release_tx);
        threads.push(spawn_fleet(config, args, tx.clone(), release_rx));
    }
    drop(tx);
    let mut open = 0;
    for _ in 0..args.threads {
        match rx.recv() {
            Ok(FromFleet::Ready(Ok(n))) => open += n,
            Ok(FromFleet::Ready(Err(e))) => return Err(e),
            Ok(FromFleet::Done(_)) | Err(_) => return Err("a fleet thread ended early".into()),
        }
    }
    let sampler = args.metrics.map(|addr| Sampler::start(addr, SAMPLE_EVERY));
    println!("ready {open}");
    let _ = std::io::stdout().flush();
    let mut records = Vec::new();
    let mut lag = Vec::new();
    for _ in 0..args.threads {
        match rx.recv() {
            Ok(FromFleet::Done(Ok((r, l)))) => {
                records.extend(r);
                lag.extend(l);
            }
            Ok(FromFleet::Done(Err(e))) => return Err(e),
            Ok(FromFleet::Ready(_)) | Err(_) => return Err("a fleet thread ended early".into()),
        }
    }
    lag.sort();
    let peak = sampler.and_then(Sampler::finish);
    // Asked while every client is still attached: the server's own count.
    let server_open = args.metrics.and_then(sampler::connections_open);
    for release in releases {
        let _ = release.send(());
    }
    for thread in threads {
        let _ = thread.join();
    }
    let summary = Summary::new(&records, lag, args.bucket);
    print!("{}", summary.text(peak.as_ref()));
    if let Some(n) = server_open {
        println!("the new server holds {n} connections by its /metrics");
    }
    let json = summary.json(peak.as_ref()).to_string();
    match &args.json {
        Some(path) => std::fs::write(path, json + "\n").map_err(|e| format!("{path}: {e}"))?,
        None => println!("json {json}"),
    }
    Ok(summary.reconnected == summary.clients)
}
