//! How long a crowd of v2 subscribers takes to recover what it missed when
//! it comes back at once (docs/protocol.md §7.4): the issue's figure "time to
//! recover 1,000 missed publications for 1,000 subscribers reconnecting at
//! once".
//!
//! Against a running server (`tether --history-size 2000`, say):
//! 1. a publisher (v2) publishes one acknowledged publication to learn the
//!    channel's epoch and top T0, then `missed` more (unacknowledged, the
//!    last one acknowledged as a barrier);
//! 2. `subscribers` connections handshake (v2), then each sends, in one
//!    burst, a SUBSCRIBE with the position (epoch, T0);
//! 3. every connection is read with `mio` until its SUBSCRIBED (checked:
//!    RECOVERED, replay = `missed`) and all `missed` replayed PUBLICATIONs
//!    (checked: offsets T0 + 1.. in order) have arrived.
//!
//! Printed: time from the first SUBSCRIBE written to the last subscriber
//! recovered, the p50/p99 of per-subscriber completion, publications
//! replayed per second, and with `--server-pid` the server's CPU time over
//! the burst. Bounded: gives up after `--timeout-s` (default 60).
//!
//! `--mode live` is the baseline for the same run: the subscribers are
//! subscribed first, then the same publications are published and
//! delivered live; the time runs from the first publication written.
//!
//! Run: `cargo run --release --example recovery_storm -- --server ADDR
//!       [--mode replay|live] [--subscribers 1000] [--missed 1000] [--size 64]
//!       [--server-pid PID]`

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use bytes::Bytes;
use mio::{Events, Interest, Poll, Token};
use tether::app::pubsub::ops_v2::{
    encode_publish, encode_subscribe, parse_server_msg, Position, ServerMsg,
};
use tether::protocol::{encode_message, FrameDecoder, FrameType, Hello, Welcome, PROTOCOL_V2};

const CHANNEL: &[u8] = b"storm";

struct Args {
    server: SocketAddr,
    subscribers: usize,
    missed: u64,
    size: usize,
    server_pid: Option<u32>,
    timeout: Duration,
    /// Replay (the figure) or live delivery of the same publications (its baseline).
    replay: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        server: "127.0.0.1:7600".parse().map_err(|e| format!("{e}"))?,
        subscribers: 1000,
        missed: 1000,
        size: 64,
        server_pid: None,
        timeout: Duration::from_secs(60),
        replay: true,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or(format!("{flag}: needs a value"))?;
        let bad = |e: &dyn std::fmt::Display| format!("{flag}: {e}");
        match flag.as_str() {
            "--server" => args.server = value.parse().map_err(|e| bad(&e))?,
            "--subscribers" => args.subscribers = value.parse().map_err(|e| bad(&e))?,
            "--missed" => args.missed = value.parse().map_err(|e| bad(&e))?,
            "--size" => args.size = value.parse().map_err(|e| bad(&e))?,
            "--mode" => {
                args.replay = match value.as_str() {
                    "replay" => true,
                    "live" => false,
                    other => return Err(format!("{flag}: replay or live, not {other:?}")),
                }
            }
            "--server-pid" => args.server_pid = Some(value.parse().map_err(|e| bad(&e))?),
            "--timeout-s" => {
                args.timeout = Duration::from_secs(value.parse().map_err(|e| bad(&e))?)
            }
            _ => return Err(format!("{flag}: unknown flag")),
        }
    }
    Ok(args)
}

/// A blocking v2 connection, handshaken.
fn connect(addr: SocketAddr) -> std::io::Result<(TcpStream, Welcome)> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_nodelay(true)?;
    let hello = Hello {
        version: PROTOCOL_V2,
        heartbeat_ms: 60_000,
        token: Bytes::new(),
        resume: None,
    };
    stream.write_all(&hello.encode_frame())?;
    let mut decoder = FrameDecoder::new(65535);
    let mut buf = [0u8; 4096];
    loop {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Err(ErrorKind::UnexpectedEof.into());
        }
        let mut input = &buf[..n];
        if let Some(frame) = decoder
            .next_frame(&mut input)
            .map_err(std::io::Error::other)?
        {
            if frame.kind != FrameType::Welcome {
                return Err(std::io::Error::other(format!("got {:?}", frame.kind)));
            }
            let welcome = Welcome::decode(&frame.payload).map_err(std::io::Error::other)?;
            return Ok((stream, welcome));
        }
    }
}

/// Reads whole v2 messages from a blocking stream until `done` says stop.
fn read_until(
    stream: &mut TcpStream,
    decoder: &mut FrameDecoder,
    mut done: impl FnMut(ServerMsg) -> bool,
) -> std::io::Result<()> {
    let mut buf = vec![0u8; 65536];
    loop {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Err(ErrorKind::UnexpectedEof.into());
        }
        let mut input = &buf[..n];
        while let Some(frame) = decoder
            .next_frame(&mut input)
            .map_err(std::io::Error::other)?
        {
            let msg = parse_server_msg(&frame.payload).map_err(std::io::Error::other)?;
            if done(msg) {
                return Ok(());
            }
        }
    }
}

/// Publishes one acknowledged publication; returns its position.
fn publish_first(
    publisher: &mut TcpStream,
    decoder: &mut FrameDecoder,
) -> std::io::Result<Position> {
    let ack = encode_message(&encode_publish(1, CHANNEL, b"before"), 65535);
    publisher.write_all(&ack)?;
    let mut position = None;
    read_until(publisher, decoder, |m| match m {
        ServerMsg::PublishAck(a) => {
            position = Some(Position {
                epoch: a.epoch,
                offset: a.offset,
            });
            true
        }
        _ => false,
    })?;
    position.ok_or_else(|| std::io::Error::other("no ack"))
}

/// Publishes `missed` publications, the last one acknowledged, and waits
/// for that acknowledgement.
fn publish_missed(
    args: &Args,
    publisher: &mut TcpStream,
    decoder: &mut FrameDecoder,
) -> std::io::Result<()> {
    let body = vec![b'x'; args.size];
    let mut batch = Vec::new();
    for i in 0..args.missed {
        let id = if i + 1 == args.missed { 2 } else { 0 };
        batch.extend_from_slice(&encode_message(&encode_publish(id, CHANNEL, &body), 65535));
        if batch.len() > 1 << 20 || i + 1 == args.missed {
            publisher.write_all(&batch)?;
            batch.clear();
        }
    }
    if args.missed == 0 {
        return Ok(());
    }
    read_until(
        publisher,
        decoder,
        |m| matches!(m, ServerMsg::PublishAck(a) if a.request_id == 2),
    )
}

/// One subscriber's progress.
struct Sub {
    stream: mio::net::TcpStream,
    decoder: FrameDecoder,
    next: u64,
    subscribed: bool,
    done_at: Option<Duration>,
}

/// What a SUBSCRIBED must say, and the offsets every subscriber must get.
struct Expect {
    recovered: bool,
    replay: u64,
    top: u64,
}

fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit(')').next()?.split_whitespace().collect();
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

fn io(what: &'static str) -> impl Fn(std::io::Error) -> String {
    move |e| format!("{what}: {e}")
}

/// Reads every subscriber until `done` says it is done; records when.
fn drain(
    subs: &mut [Sub],
    poll: &mut Poll,
    start: Instant,
    timeout: Duration,
    expect: &Expect,
    done: impl Fn(&Sub) -> bool,
) -> Result<(), String> {
    let mut left = subs.iter().filter(|s| !done(s)).count();
    let mut events = Events::with_capacity(1024);
    let mut buf = vec![0u8; 65536];
    while left > 0 {
        if start.elapsed() > timeout {
            return Err(format!("{left} subscribers not done after {timeout:?}"));
        }
        poll.poll(&mut events, Some(Duration::from_millis(100)))
            .map_err(io("poll"))?;
        for event in events.iter() {
            let sub = &mut subs[event.token().0];
            loop {
                let n = match sub.stream.read(&mut buf) {
                    Ok(0) => return Err("the server closed a subscriber".into()),
                    Ok(n) => n,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                    Err(e) => return Err(format!("read: {e}")),
                };
                let mut input = &buf[..n];
                while let Some(frame) = sub
                    .decoder
                    .next_frame(&mut input)
                    .map_err(|e| format!("frames: {e}"))?
                {
                    match parse_server_msg(&frame.payload).map_err(|e| format!("{e}"))? {
                        ServerMsg::SubscribeReply(r) => {
                            if r.recovered != expect.recovered
                                || u64::from(r.replay) != expect.replay
                            {
                                return Err(format!("unexpected reply: {r:?}"));
                            }
                            sub.subscribed = true;
                        }
                        ServerMsg::Publication(p) => {
                            if !sub.subscribed || p.offset != sub.next {
                                return Err(format!(
                                    "offset {} where {} was due",
                                    p.offset, sub.next
                                ));
                            }
                            sub.next += 1;
                        }
                        other => return Err(format!("unexpected {other:?}")),
                    }
                }
                if sub.done_at.is_none() && done(sub) {
                    sub.done_at = Some(start.elapsed());
                    left -= 1;
                }
            }
        }
    }
    Ok(())
}

fn run(args: &Args) -> Result<(), String> {
    let (mut publisher, _) = connect(args.server).map_err(io("connecting the publisher"))?;
    let mut decoder = FrameDecoder::new(65535);
    let before = publish_first(&mut publisher, &mut decoder).map_err(io("publishing"))?;
    let top = before.offset + args.missed;
    if args.replay {
        publish_missed(args, &mut publisher, &mut decoder).map_err(io("publishing"))?;
    }
    let mut subs = Vec::with_capacity(args.subscribers);
    let mut poll = Poll::new().map_err(io("poll"))?;
    for i in 0..args.subscribers {
        let (stream, _) = connect(args.server).map_err(io("connecting a subscriber"))?;
        stream.set_nonblocking(true).map_err(io("nonblocking"))?;
        let mut stream = mio::net::TcpStream::from_std(stream);
        poll.registry()
            .register(&mut stream, Token(i), Interest::READABLE)
            .map_err(io("register"))?;
        subs.push(Sub {
            stream,
            decoder: FrameDecoder::new(65535),
            next: before.offset + 1,
            subscribed: false,
            done_at: None,
        });
    }
    let cpu_before;
    let start;
    let expect;
    if args.replay {
        // Everyone comes back at once with the position before the gap.
        let subscribe = encode_message(&encode_subscribe(1, CHANNEL, Some(before)), 65535);
        cpu_before = args.server_pid.and_then(cpu_ticks);
        start = Instant::now();
        for sub in &mut subs {
            sub.stream.write_all(&subscribe).map_err(io("SUBSCRIBE"))?;
        }
        expect = Expect {
            recovered: true,
            replay: args.missed,
            top,
        };
    } else {
        // The baseline: the same publications delivered live.
        let subscribe = encode_message(&encode_subscribe(1, CHANNEL, None), 65535);
        for sub in &mut subs {
            sub.stream.write_all(&subscribe).map_err(io("SUBSCRIBE"))?;
        }
        let subscribed = Expect {
            recovered: false,
            replay: 0,
            top,
        };
        let setup = Instant::now();
        drain(
            &mut subs,
            &mut poll,
            setup,
            args.timeout,
            &subscribed,
            |s| s.subscribed,
        )?;
        for sub in &mut subs {
            sub.done_at = None;
        }
        cpu_before = args.server_pid.and_then(cpu_ticks);
        start = Instant::now();
        publish_missed(args, &mut publisher, &mut decoder).map_err(io("publishing"))?;
        expect = subscribed;
    }
    drain(&mut subs, &mut poll, start, args.timeout, &expect, |s| {
        s.subscribed && s.next > expect.top
    })?;
    let total = start.elapsed();
    let cpu = cpu_before.zip(args.server_pid.and_then(cpu_ticks));
    let mut done: Vec<Duration> = subs.iter().filter_map(|s| s.done_at).collect();
    done.sort();
    let at = |q: f64| done[((done.len() as f64 * q) as usize).min(done.len() - 1)];
    let delivered = args.missed * args.subscribers as u64;
    let how = if args.replay { "recovered" } else { "got live" };
    println!(
        "{} subscribers {how} {} publications each ({} B bodies) in {:.1} ms",
        args.subscribers,
        args.missed,
        args.size,
        total.as_secs_f64() * 1e3
    );
    println!(
        "per subscriber: p50 {:.1} ms, p99 {:.1} ms; {:.0} publications/s delivered",
        at(0.5).as_secs_f64() * 1e3,
        at(0.99).as_secs_f64() * 1e3,
        delivered as f64 / total.as_secs_f64()
    );
    if let Some((a, b)) = cpu {
        // Clock ticks are 10 ms on Linux (USER_HZ 100).
        let ms = (b - a) * 10;
        println!(
            "server CPU: {ms} ms ({:.3} us per delivered publication)",
            ms as f64 * 1e3 / delivered as f64
        );
    }
    Ok(())
}

fn main() -> std::process::ExitCode {
    let result = parse_args().and_then(|args| run(&args));
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("recovery_storm: {e}");
            std::process::ExitCode::from(1)
        }
    }
}
