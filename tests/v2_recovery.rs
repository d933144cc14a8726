//! Protocol v2 recovery end to end: `tether-cli sub --json` processes
//! behind a TCP proxy that cuts their connections (anywhere in the byte
//! stream, mid-frame included), a `tether-cli pub` publishing directly to
//! the real server, and every subscriber must print every publication
//! exactly once, in publish order (docs/protocol.md §7.5, §7.6). Then a
//! subscriber away longer than the history covers: told why, then live.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;
use tether::client::{RandomSource, SplitMix64};

use common::{assert_every_seq_once, cli_run, json, CliProcess, Server};

/// Where the proxy cuts a connection: after this many bytes from the
/// server (counted once armed), or never.
#[derive(Debug, Clone, Copy)]
enum Cuts {
    /// Seeded random byte counts: mostly anywhere in 250 KB (a subscriber's
    /// 10,000 publications are about 400 KB: three or four cuts each, so
    /// the §4.4 backoff, which grows with every cut, stays short), one in
    /// eight within the first 120 bytes (the WELCOME, the SUBSCRIBE_REPLY,
    /// the replay's start).
    Random,
    /// Only when told ([`Cutter::hold`]).
    Never,
}

struct Shared {
    cuts: Cuts,
    /// Bytes count toward a cut only once armed.
    armed: AtomicBool,
    /// While held, new connections are closed at once.
    held: AtomicBool,
    rng: Mutex<SplitMix64>,
    cut: AtomicUsize,
    accepted: AtomicUsize,
    /// Every connection's two sockets, for `hold`.
    live: Mutex<Vec<(TcpStream, TcpStream)>>,
}

/// The cutting proxy. Its threads stop (closing their sockets) on drop.
struct Cutter {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    shared: Arc<Shared>,
}

impl Cutter {
    fn start(upstream: SocketAddr, cuts: Cuts, seed: u64) -> Cutter {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("proxy addr");
        let stop = Arc::new(AtomicBool::new(false));
        let shared = Arc::new(Shared {
            cuts,
            armed: AtomicBool::new(false),
            held: AtomicBool::new(false),
            rng: Mutex::new(SplitMix64::new(seed)),
            cut: AtomicUsize::new(0),
            accepted: AtomicUsize::new(0),
            live: Mutex::new(Vec::new()),
        });
        {
            let (stop, shared) = (Arc::clone(&stop), Arc::clone(&shared));
            thread::spawn(move || accept_loop(listener, upstream, &stop, &shared));
        }
        Cutter { addr, stop, shared }
    }

    fn arm(&self) {
        self.shared.armed.store(true, Ordering::SeqCst);
    }

    /// Cuts every connection and refuses new ones until `release`.
    fn hold(&self) {
        self.shared.held.store(true, Ordering::SeqCst);
        for (client, server) in self.shared.live.lock().expect("live").iter() {
            let _ = client.shutdown(Shutdown::Both);
            let _ = server.shutdown(Shutdown::Both);
        }
    }

    fn release(&self) {
        self.shared.held.store(false, Ordering::SeqCst);
    }

    fn cuts(&self) -> usize {
        self.shared.cut.load(Ordering::SeqCst)
    }

    fn accepted(&self) -> usize {
        self.shared.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for Cutter {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        self.hold();
    }
}

fn accept_loop(
    listener: TcpListener,
    upstream: SocketAddr,
    stop: &AtomicBool,
    shared: &Arc<Shared>,
) {
    while !stop.load(Ordering::SeqCst) {
        let client = match listener.accept() {
            Ok((client, _)) => client,
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                thread::sleep(Duration::from_millis(2));
                continue;
            }
            Err(_) => continue,
        };
        shared.accepted.fetch_add(1, Ordering::SeqCst);
        if shared.held.load(Ordering::SeqCst) {
            let _ = client.shutdown(Shutdown::Both);
            continue;
        }
        let Ok(server) = TcpStream::connect(upstream) else {
            continue;
        };
        let _ = client.set_nonblocking(false);
        let _ = client.set_nodelay(true);
        let _ = server.set_nodelay(true);
        let budget = match shared.cuts {
            Cuts::Never => None,
            Cuts::Random => {
                let mut rng = shared.rng.lock().expect("rng");
                let r = rng.next_u64();
                Some(if r % 8 == 0 {
                    1 + (rng.next_u64() % 120) as usize
                } else {
                    1 + (rng.next_u64() % 250_000) as usize
                })
            }
        };
        let clones = (client.try_clone(), server.try_clone());
        let (Ok(client_up), Ok(server_up)) = clones else {
            continue;
        };
        if let (Ok(c), Ok(s)) = (client.try_clone(), server.try_clone()) {
            shared.live.lock().expect("live").push((c, s));
        }
        // Client to server: forwarded as is.
        thread::spawn(move || {
            let (mut from, mut to) = (client_up, server_up);
            let mut buf = [0u8; 16 * 1024];
            while let Ok(n) = from.read(&mut buf) {
                if n == 0 || to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
            let _ = to.shutdown(Shutdown::Write);
        });
        let shared = Arc::clone(shared);
        thread::spawn(move || pump_down(server, client, budget, &shared));
    }
}

/// Server to client, cutting both sides once `budget` bytes went through
/// while armed: the last read is forwarded only up to the budget, so the
/// cut lands wherever that is, mid-frame as often as not.
fn pump_down(mut server: TcpStream, mut client: TcpStream, budget: Option<usize>, shared: &Shared) {
    let mut counted = 0usize;
    let mut buf = [0u8; 16 * 1024];
    loop {
        let n = match server.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if let (Some(budget), true) = (budget, shared.armed.load(Ordering::SeqCst)) {
            if counted + n >= budget {
                let _ = client.write_all(&buf[..budget - counted]);
                shared.cut.fetch_add(1, Ordering::SeqCst);
                let _ = client.shutdown(Shutdown::Both);
                let _ = server.shutdown(Shutdown::Both);
                return;
            }
            counted += n;
        }
        if client.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = client.shutdown(Shutdown::Write);
}

const SUBSCRIBERS: usize = 20;
const PUBLICATIONS: u64 = 10_000;
/// Publishes per second: 10,000 in 20 s.
const RATE: &str = "500";

/// The seed of the cuts: `TETHER_TEST_SEED` to replay a run, else fixed.
fn seed() -> u64 {
    std::env::var("TETHER_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x7e7e_2026)
}

#[test]
fn every_subscriber_gets_every_publication_once_in_order_across_cuts() {
    let seed = seed();
    eprintln!("cut seed {seed} (TETHER_TEST_SEED={seed} replays it)");
    let started = Instant::now();
    let server = Server::start(&["--app", "pubsub", "--history-size", "20000"]);
    let cutter = Cutter::start(server.addr, Cuts::Random, seed);
    let proxied = cutter.addr.to_string();
    let count = PUBLICATIONS.to_string();
    let subs: Vec<CliProcess> = (0..SUBSCRIBERS)
        .map(|_| {
            CliProcess::spawn(&[
                "sub",
                &proxied,
                "stream",
                "--json",
                "--count",
                &count,
                "--timeout-s",
                "90",
            ])
        })
        .collect();
    for sub in &subs {
        sub.lines_until("\"subscribed\"", Duration::from_secs(30));
    }
    // Every subscriber holds its subscription: cuts may start.
    cutter.arm();
    let direct = server.addr.to_string();
    let publisher = cli_run(
        &[
            "pub", &direct, "stream", "--count", &count, "--rate", RATE, "--json",
        ],
        None,
        Duration::from_secs(150),
    );
    assert_eq!(publisher.code(), 0, "publisher: {}", publisher.stderr);
    let acks: Vec<u64> = publisher
        .stdout
        .lines()
        .map(|l| json(l)["offset"].as_u64().expect("offset"))
        .collect();
    assert_eq!(
        acks,
        (1..=PUBLICATIONS).collect::<Vec<_>>(),
        "acknowledged in order"
    );
    eprintln!("published in {:?}", started.elapsed());
    for (i, sub) in subs.into_iter().enumerate() {
        let (lines, status, stderr) = sub.finish(Duration::from_secs(150));
        let events: Vec<Value> = lines.iter().map(|l| json(l)).collect();
        assert_every_seq_once(
            &events,
            1,
            PUBLICATIONS,
            &format!("subscriber {i}"),
            &stderr,
        );
        assert!(
            !events.iter().any(|e| e["event"] == "recovery_failed"),
            "subscriber {i}: the history covers every cut"
        );
        assert_eq!(
            status.and_then(|s| s.code()),
            Some(0),
            "subscriber {i}: {stderr}"
        );
    }
    eprintln!(
        "{} cuts over {} connections, {:?} in all",
        cutter.cuts(),
        cutter.accepted(),
        started.elapsed()
    );
    assert!(
        cutter.cuts() >= SUBSCRIBERS,
        "too few cuts to mean anything: {}",
        cutter.cuts()
    );
}

/// Away while more was published than the history holds: the resubscribe
/// is answered not recovered (TOO_FAR_BEHIND, with both positions), and
/// live publications follow.
#[test]
fn a_subscriber_away_longer_than_the_history_is_told_then_gets_live_messages() {
    let server = Server::start(&["--app", "pubsub", "--history-size", "5"]);
    let cutter = Cutter::start(server.addr, Cuts::Never, 0);
    let proxied = cutter.addr.to_string();
    let direct = server.addr.to_string();
    let sub = CliProcess::spawn(&["sub", &proxied, "away", "--json", "--count", "4"]);
    sub.lines_until("\"subscribed\"", Duration::from_secs(30));
    let run = cli_run(
        &["pub", &direct, "away", "--count", "2"],
        None,
        Duration::from_secs(30),
    );
    assert_eq!(run.code(), 0, "{run:?}");
    sub.lines_until("\"offset\":2", Duration::from_secs(30));
    cutter.hold();
    let missed: String = (1..=20).map(|i| format!("missed:{i}\n")).collect();
    let run = cli_run(
        &["pub", &direct, "away"],
        Some(missed.as_bytes()),
        Duration::from_secs(30),
    );
    assert_eq!(run.code(), 0, "{run:?}");
    cutter.release();
    let lines = sub.lines_until("\"subscribed\"", Duration::from_secs(30));
    let subscribed = json(lines.last().expect("the line"));
    assert_eq!(subscribed["recovered"], false, "{lines:?}");
    assert_eq!(subscribed["offset"], 22);
    let failed = json(
        &sub.line(Duration::from_secs(30))
            .expect("recovery_failed follows"),
    );
    assert_eq!(failed["event"], "recovery_failed");
    assert_eq!(failed["reason"], "TOO_FAR_BEHIND");
    assert_eq!(
        (failed["old_offset"].clone(), failed["offset"].clone()),
        (2.into(), 22.into())
    );
    assert_eq!(failed["old_epoch"], failed["epoch"]);
    assert!(
        !lines.iter().any(|l| l.contains("missed:")),
        "nothing of the gap is delivered: {lines:?}"
    );
    let run = cli_run(
        &["pub", &direct, "away"],
        Some(b"live:1\nlive:2\n"),
        Duration::from_secs(30),
    );
    assert_eq!(run.code(), 0, "{run:?}");
    let (rest, status, stderr) = sub.finish(Duration::from_secs(30));
    let live: Vec<(u64, String)> = rest
        .iter()
        .map(|l| json(l))
        .filter(|e| e["event"] == "message")
        .map(|e| {
            (
                e["offset"].as_u64().expect("offset"),
                e["payload"].as_str().expect("text").to_string(),
            )
        })
        .collect();
    assert_eq!(
        live,
        [(23, "live:1".to_string()), (24, "live:2".to_string())]
    );
    assert_eq!(status.and_then(|s| s.code()), Some(0), "{stderr}");
}
