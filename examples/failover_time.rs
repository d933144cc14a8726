//! How long the subscribers of a killed node take to be back, recovered,
//! on the other nodes (issue 12's figure: "time for 1,000 subscribers of a
//! killed node to be back and recovered on the others").
//!
//! `subscribers` clients of the library (`PubsubClient`, one thread each)
//! connect with the address list given (the node to kill first), subscribe
//! to one channel and wait for a publication (someone must publish on the
//! channel meanwhile, on another node: `tether-cli pub --rate`). Then this
//! program SIGKILLs `--kill-pid` and times, for each subscriber, the moment
//! its client reports the channel subscribed again with `recovered: true`,
//! and its first publication after the kill. It checks every subscriber's
//! offsets stay contiguous across the move (nothing lost, nothing twice).
//!
//! Printed: how many came back recovered (and not), p50/p90/p99/max of the
//! time from the kill to recovered and to the next publication.
//!
//! Run: `cargo run --release --example failover_time -- --addrs A,B[,C...]
//!       --kill-pid PID [--subscribers 1000] [--channel failover] [--timeout-s 60]`
//! (scripts/cluster_bench.sh runs it on a local cluster).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use tether::client::pubsub::{PubsubClient, PubsubConfig, PubsubEvent};
use tether::client::ClientConfig;

/// The command line.
struct Args {
    addrs: Vec<SocketAddr>,
    kill_pid: i32,
    subscribers: usize,
    channel: String,
    timeout: Duration,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        addrs: Vec::new(),
        kill_pid: 0,
        subscribers: 1000,
        channel: "failover".to_string(),
        timeout: Duration::from_secs(60),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .ok_or_else(|| format!("{flag}: a value is missing"))
        };
        match flag.as_str() {
            "--addrs" => {
                args.addrs = value()?
                    .split(',')
                    .map(|a| a.parse().map_err(|e| format!("--addrs: {a:?}: {e}")))
                    .collect::<Result<_, _>>()?
            }
            "--kill-pid" => {
                args.kill_pid = value()?.parse().map_err(|e| format!("--kill-pid: {e}"))?
            }
            "--subscribers" => {
                args.subscribers = value()?
                    .parse()
                    .map_err(|e| format!("--subscribers: {e}"))?
            }
            "--channel" => args.channel = value()?,
            "--timeout-s" => {
                let s: u64 = value()?.parse().map_err(|e| format!("--timeout-s: {e}"))?;
                args.timeout = Duration::from_secs(s);
            }
            other => return Err(format!("unknown flag {other:?}")),
        }
    }
    if args.addrs.len() < 2 {
        return Err("--addrs: give the node to kill, then at least one other".into());
    }
    if args.kill_pid <= 0 {
        return Err("--kill-pid: the pid of the node to kill is needed".into());
    }
    Ok(args)
}

/// What one subscriber saw after the kill.
#[derive(Debug, Default)]
struct Outcome {
    /// From the kill to SUBSCRIBED with `recovered: true`.
    recovered_after: Option<Duration>,
    /// A resubscribe that could not recover.
    recovery_failed: bool,
    /// From the kill to the first publication delivered after it.
    next_message_after: Option<Duration>,
    /// Offsets not contiguous (a gap or a repeat the client let through).
    broken: bool,
}

/// One subscriber's thread: connect, subscribe, report ready after its
/// first publication, then watch until recovered and delivering again.
fn subscriber(
    args: Arc<(Vec<SocketAddr>, String, Duration)>,
    ready: Arc<AtomicUsize>,
    killed_at: Arc<OnceLock<Instant>>,
    done: mpsc::Sender<Outcome>,
) {
    let (addrs, channel, timeout) = &*args;
    let mut outcome = Outcome::default();
    let started = Instant::now();
    let mut client =
        match PubsubClient::connect(&addrs[..], ClientConfig::default(), PubsubConfig::default()) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("connect: {e}");
                let _ = done.send(outcome);
                return;
            }
        };
    if client.subscribe(channel.as_bytes(), None).is_err() {
        let _ = done.send(outcome);
        return;
    }
    let mut last: Option<u64> = None;
    let mut counted_ready = false;
    while started.elapsed() < *timeout * 2 {
        let event = match client.next_event(Duration::from_millis(100)) {
            Ok(Some(event)) => event,
            Ok(None) => continue,
            Err(_) => break,
        };
        let after_kill = killed_at.get().map(|at| at.elapsed());
        match event {
            PubsubEvent::Message { offset, .. } => {
                if last.is_some_and(|l| offset != l + 1) {
                    outcome.broken = true;
                }
                last = Some(offset);
                if !counted_ready {
                    counted_ready = true;
                    ready.fetch_add(1, Ordering::SeqCst);
                }
                if let Some(after) = after_kill {
                    if outcome.recovered_after.is_some() || outcome.recovery_failed {
                        outcome.next_message_after.get_or_insert(after);
                        break;
                    }
                }
            }
            PubsubEvent::Subscribed {
                recovered: true, ..
            } if after_kill.is_some() => outcome.recovered_after = after_kill,
            PubsubEvent::RecoveryFailed { .. } => outcome.recovery_failed = true,
            _ => {}
        }
    }
    let _ = done.send(outcome);
}

/// The `q` quantile of `sorted`, in milliseconds.
fn quantile_ms(sorted: &[Duration], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i].as_secs_f64() * 1000.0
}

fn summary(name: &str, mut times: Vec<Duration>) {
    times.sort();
    println!(
        "{name}: {} subscribers, p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        times.len(),
        quantile_ms(&times, 0.50),
        quantile_ms(&times, 0.90),
        quantile_ms(&times, 0.99),
        quantile_ms(&times, 1.0),
    );
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("failover_time: {e}");
            std::process::exit(2);
        }
    };
    let shared = Arc::new((args.addrs.clone(), args.channel.clone(), args.timeout));
    let ready = Arc::new(AtomicUsize::new(0));
    let killed_at = Arc::new(OnceLock::new());
    let (done_tx, done_rx) = mpsc::channel();
    for _ in 0..args.subscribers {
        let (shared, ready, killed_at, done) = (
            shared.clone(),
            ready.clone(),
            killed_at.clone(),
            done_tx.clone(),
        );
        thread::Builder::new()
            .stack_size(256 << 10)
            .spawn(move || subscriber(shared, ready, killed_at, done))
            .expect("a subscriber thread");
    }
    drop(done_tx);
    let deadline = Instant::now() + args.timeout;
    while ready.load(Ordering::SeqCst) < args.subscribers {
        if Instant::now() > deadline {
            eprintln!(
                "failover_time: only {} of {} subscribers got a publication (is someone publishing?)",
                ready.load(Ordering::SeqCst),
                args.subscribers
            );
            std::process::exit(1);
        }
        thread::sleep(Duration::from_millis(20));
    }
    // SAFETY: kill(2) with a pid the caller named.
    let rc = unsafe { libc::kill(args.kill_pid, libc::SIGKILL) };
    let _ = killed_at.set(Instant::now());
    if rc != 0 {
        eprintln!(
            "failover_time: kill {}: {}",
            args.kill_pid,
            std::io::Error::last_os_error()
        );
        std::process::exit(1);
    }
    let outcomes: Vec<Outcome> = done_rx.iter().collect();
    let recovered: Vec<Duration> = outcomes.iter().filter_map(|o| o.recovered_after).collect();
    let next: Vec<Duration> = outcomes
        .iter()
        .filter_map(|o| o.next_message_after)
        .collect();
    let failed = outcomes.iter().filter(|o| o.recovery_failed).count();
    let broken = outcomes.iter().filter(|o| o.broken).count();
    println!(
        "{} subscribers: {} recovered, {failed} recovery failed, {broken} with broken offsets",
        outcomes.len(),
        recovered.len()
    );
    summary("kill -> subscribed again, recovered", recovered);
    summary("kill -> first publication delivered after it", next);
    if broken > 0 || failed > 0 {
        std::process::exit(1);
    }
}
