//! A client for the fault-injection cases (`scripts/faults.sh`), built on the
//! blocking [`Client`]: it reports everything it sees as JSON lines on
//! stdout, each stamped with the wall clock (`"t"`, seconds since the Unix
//! epoch) so a script can line its events up with faults it injected from
//! other network namespaces (they share the clock).
//!
//! ```text
//! fault_client idle ADDR [flags]   connect, heartbeat, report connects/disconnects
//! fault_client sub  ADDR [flags]   subscribe to --channel, report each sequence number received;
//!                                  ends at the message "end" or after --duration
//! fault_client pub  ADDR [flags]   publish --count messages "seq:N" (N from --first) to --channel,
//!                                  subscribed itself so each echo confirms the server accepted it
//!
//! flags:
//!   --heartbeat-ms N        heartbeat asked for in HELLO (1000)
//!   --miss N                heartbeats without a frame before the link is dead (3)
//!   --duration SECS         hard limit on the run (30)
//!   --no-reconnect          the first loss is final
//!   --adaptive F,S,P[,R]    adaptive heartbeat: floor F ms, step S ms, P successes to probe,
//!                           re-probe after R ms (default 30 min)
//!   --channel NAME          pub/sub channel (faults)
//!   --count N --first N     pub: how many, starting where (10, 1)
//!   --interval-ms N         pub: pause between publishes (0)
//! ```
//!
//! Lines: `{"t":…,"ev":"connected","resumed":…,"lost":…,"heartbeat_ms":…}`,
//! `"disconnected"` (with `"reason"`: dead_peer, eof, io, goaway, …),
//! `"heartbeat"` (adaptive interval changes), `"goaway"`, `"reconnecting"`,
//! `"subscribed"`, `"msg"` (`"seq"`), `"published"`, and one `"summary"` last.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tether::client::{AdaptiveConfig, Client, ClientConfig, ClientEvent, DisconnectReason};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Idle,
    Sub,
    Pub,
}

#[derive(Debug, Clone)]
struct Args {
    mode: Mode,
    addr: String,
    heartbeat_ms: u32,
    miss: u32,
    duration: Duration,
    reconnect: bool,
    adaptive: Option<AdaptiveConfig>,
    channel: String,
    count: u64,
    first: u64,
    interval: Duration,
}

const USAGE: &str = "usage: fault_client idle|sub|pub ADDR [--heartbeat-ms N] [--miss N] \
[--duration SECS] [--no-reconnect] [--adaptive F,S,P[,R]] [--channel NAME] [--count N] \
[--first N] [--interval-ms N]";

fn parse_args() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let mode = match it.next().as_deref() {
        Some("idle") => Mode::Idle,
        Some("sub") => Mode::Sub,
        Some("pub") => Mode::Pub,
        _ => return Err(USAGE.to_string()),
    };
    let addr = it.next().ok_or(USAGE)?;
    let mut a = Args {
        mode,
        addr,
        heartbeat_ms: 1000,
        miss: 3,
        duration: Duration::from_secs(30),
        reconnect: true,
        adaptive: None,
        channel: "faults".to_string(),
        count: 10,
        first: 1,
        interval: Duration::ZERO,
    };
    while let Some(flag) = it.next() {
        if flag == "--no-reconnect" {
            a.reconnect = false;
            continue;
        }
        let value = it.next().ok_or_else(|| format!("{flag}: missing value"))?;
        let num = |v: &str| -> Result<u64, String> {
            v.parse().map_err(|_| format!("{flag}: bad number {v:?}"))
        };
        match flag.as_str() {
            "--heartbeat-ms" => a.heartbeat_ms = num(&value)? as u32,
            "--miss" => a.miss = num(&value)? as u32,
            "--duration" => a.duration = Duration::from_secs(num(&value)?),
            "--channel" => a.channel = value,
            "--count" => a.count = num(&value)?,
            "--first" => a.first = num(&value)?,
            "--interval-ms" => a.interval = Duration::from_millis(num(&value)?),
            "--adaptive" => {
                let parts: Vec<u64> = value.split(',').map(num).collect::<Result<_, _>>()?;
                if !(3..=4).contains(&parts.len()) {
                    return Err("--adaptive: expected F,S,P[,R]".into());
                }
                a.adaptive = Some(AdaptiveConfig {
                    floor: Duration::from_millis(parts[0]),
                    step: Duration::from_millis(parts[1]),
                    probe_after: parts[2] as u32,
                    reprobe_after: parts
                        .get(3)
                        .map_or(AdaptiveConfig::default().reprobe_after, |r| {
                            Duration::from_millis(*r)
                        }),
                });
            }
            _ => return Err(format!("unknown flag {flag}\n{USAGE}")),
        }
    }
    Ok(a)
}

fn epoch() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

fn json_str(s: &str) -> String {
    let mut o = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(o, "\\u{:04x}", c as u32);
            }
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

/// Prints one JSON line: `{"t":…,"ev":EV,FIELDS}`.
fn emit(ev: &str, fields: &str) {
    let sep = if fields.is_empty() { "" } else { "," };
    println!(
        "{{\"t\":{:.6},\"ev\":{}{sep}{fields}}}",
        epoch(),
        json_str(ev)
    );
}

fn ranges(set: &BTreeSet<u64>) -> String {
    let mut out = Vec::new();
    let mut iter = set.iter().copied();
    if let Some(first) = iter.next() {
        let (mut lo, mut hi) = (first, first);
        for n in iter {
            if n == hi + 1 {
                hi = n;
            } else {
                out.push(format!("[{lo},{hi}]"));
                lo = n;
                hi = n;
            }
        }
        out.push(format!("[{lo},{hi}]"));
    }
    format!("[{}]", out.join(","))
}

/// What the run saw, for the summary.
#[derive(Default)]
struct Tally {
    connects: u64,
    resumed: u64,
    lost_flag: bool,
    dead_peer: u64,
    disconnects: u64,
}

fn report_events(client: &mut Client, tally: &mut Tally) {
    for event in client.events() {
        match event {
            ClientEvent::Connecting { attempt } => {
                emit("connecting", &format!("\"attempt\":{attempt}"))
            }
            ClientEvent::Connected {
                resumed,
                lost,
                heartbeat,
                ..
            } => {
                tally.connects += 1;
                tally.resumed += u64::from(resumed);
                tally.lost_flag |= lost;
                emit(
                    "connected",
                    &format!(
                        "\"resumed\":{resumed},\"lost\":{lost},\"heartbeat_ms\":{}",
                        heartbeat.as_millis()
                    ),
                );
            }
            ClientEvent::Message(_) => {}
            ClientEvent::Goaway(g) => emit(
                "goaway",
                &format!(
                    "\"code\":{},\"reason\":{}",
                    json_str(g.code.name()),
                    json_str(&g.reason)
                ),
            ),
            ClientEvent::HeartbeatChanged { interval } => emit(
                "heartbeat",
                &format!("\"interval_ms\":{}", interval.as_millis()),
            ),
            ClientEvent::Undeliverable(m) => {
                emit("undeliverable", &format!("\"bytes\":{}", m.len()))
            }
            ClientEvent::Disconnected { reason } => {
                tally.disconnects += 1;
                let (kind, extra) = match &reason {
                    DisconnectReason::ConnectFailed(_) => ("connect_failed", String::new()),
                    DisconnectReason::HandshakeTimeout => ("handshake_timeout", String::new()),
                    DisconnectReason::DeadPeer { interval } => {
                        tally.dead_peer += 1;
                        (
                            "dead_peer",
                            format!(",\"interval_ms\":{}", interval.as_millis()),
                        )
                    }
                    DisconnectReason::Eof => ("eof", String::new()),
                    DisconnectReason::Io(_) => ("io", String::new()),
                    DisconnectReason::Goaway(g) => {
                        ("goaway", format!(",\"code\":{}", json_str(g.code.name())))
                    }
                    DisconnectReason::Protocol(_) => ("protocol", String::new()),
                    DisconnectReason::Aborted { .. } => ("aborted", String::new()),
                    DisconnectReason::Tls(_) => ("tls", String::new()),
                    DisconnectReason::Closed => ("closed", String::new()),
                };
                emit(
                    "disconnected",
                    &format!(
                        "\"reason\":{}{extra},\"detail\":{}",
                        json_str(kind),
                        json_str(&reason.to_string())
                    ),
                );
            }
            ClientEvent::Reconnecting { attempt, delay } => emit(
                "reconnecting",
                &format!("\"attempt\":{attempt},\"delay_ms\":{}", delay.as_millis()),
            ),
            ClientEvent::GaveUp { attempts } => {
                emit("gave_up", &format!("\"attempts\":{attempts}"))
            }
            ClientEvent::Closed => emit("closed", ""),
        }
    }
}

/// `P` chan_len channel body.
fn publish_op(channel: &str, body: &[u8]) -> Vec<u8> {
    let mut m = vec![b'P', channel.len() as u8];
    m.extend_from_slice(channel.as_bytes());
    m.extend_from_slice(body);
    m
}

/// `S` channel.
fn subscribe_op(channel: &str) -> Vec<u8> {
    let mut m = vec![b'S'];
    m.extend_from_slice(channel.as_bytes());
    m
}

/// The body of a delivery `M` chan_len channel body on `channel`.
fn delivery_body<'a>(message: &'a [u8], channel: &str) -> Option<&'a [u8]> {
    let (&op, rest) = message.split_first()?;
    let (&len, rest) = rest.split_first()?;
    let len = usize::from(len);
    if op != b'M' || rest.len() < len || &rest[..len] != channel.as_bytes() {
        return None;
    }
    Some(&rest[len..])
}

fn seq_of(body: &[u8]) -> Option<u64> {
    std::str::from_utf8(body)
        .ok()?
        .strip_prefix("seq:")?
        .parse()
        .ok()
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("fault_client: {e}");
            return ExitCode::from(2);
        }
    };
    let config = ClientConfig {
        heartbeat_ms: args.heartbeat_ms,
        miss: args.miss,
        reconnect: args.reconnect,
        adaptive: args.adaptive.clone(),
        ..ClientConfig::default()
    };
    let started = Instant::now();
    let mut tally = Tally::default();
    let mut client = match Client::connect(args.addr.as_str(), config) {
        Ok(c) => c,
        Err(e) => {
            emit(
                "connect_error",
                &format!("\"error\":{}", json_str(&e.to_string())),
            );
            return ExitCode::from(1);
        }
    };
    report_events(&mut client, &mut tally);
    let code = match args.mode {
        Mode::Idle => run_idle(&mut client, &args, started, &mut tally),
        Mode::Sub => run_sub(&mut client, &args, started, &mut tally),
        Mode::Pub => run_pub(&mut client, &args, started, &mut tally),
    };
    let _ = client.close();
    report_events(&mut client, &mut tally);
    code
}

fn tally_fields(tally: &Tally, client: &Client) -> String {
    format!(
        "\"connects\":{},\"resumed\":{},\"lost_flag\":{},\"dead_peer\":{},\"disconnects\":{},\"final_interval_ms\":{}",
        tally.connects,
        tally.resumed,
        tally.lost_flag,
        tally.dead_peer,
        tally.disconnects,
        client.machine().heartbeat_interval().as_millis()
    )
}

fn run_idle(client: &mut Client, args: &Args, started: Instant, tally: &mut Tally) -> ExitCode {
    let mut ended = "duration";
    while started.elapsed() < args.duration {
        match client.recv_timeout(Duration::from_millis(50)) {
            Ok(_) => {}
            Err(_) => {
                ended = "closed";
                report_events(client, tally);
                break;
            }
        }
        report_events(client, tally);
    }
    emit(
        "summary",
        &format!(
            "\"ended\":{},{}",
            json_str(ended),
            tally_fields(tally, client)
        ),
    );
    ExitCode::SUCCESS
}

fn run_sub(client: &mut Client, args: &Args, started: Instant, tally: &mut Tally) -> ExitCode {
    let marker = format!("ready:{}", std::process::id());
    if client.send(&subscribe_op(&args.channel)).is_err()
        || client
            .send(&publish_op(&args.channel, marker.as_bytes()))
            .is_err()
    {
        emit("error", "\"error\":\"subscribe failed\"");
        return ExitCode::from(1);
    }
    let mut received = BTreeSet::new();
    let (mut dups, mut out_of_order, mut last) = (0u64, 0u64, 0u64);
    let mut subscribed = false;
    let mut ended = "duration";
    while started.elapsed() < args.duration {
        let message = match client.recv_timeout(Duration::from_millis(50)) {
            Ok(m) => m,
            Err(_) => {
                ended = "closed";
                report_events(client, tally);
                break;
            }
        };
        report_events(client, tally);
        let Some(message) = message else { continue };
        let Some(body) = delivery_body(&message, &args.channel) else {
            emit("unexpected", &format!("\"bytes\":{}", message.len()));
            continue;
        };
        if body == marker.as_bytes() {
            if !subscribed {
                subscribed = true;
                emit("subscribed", "");
            }
        } else if body == b"end" {
            emit("end", "");
            ended = "end";
            break;
        } else if let Some(seq) = seq_of(body) {
            if !received.insert(seq) {
                dups += 1;
            } else if seq < last {
                out_of_order += 1;
            }
            last = last.max(seq);
            emit("msg", &format!("\"seq\":{seq}"));
        }
    }
    emit(
        "summary",
        &format!(
            "\"ended\":{},\"subscribed\":{subscribed},\"received\":{},\"seqs\":{},\"dups\":{dups},\"out_of_order\":{out_of_order},{}",
            json_str(ended),
            received.len(),
            ranges(&received),
            tally_fields(tally, client)
        ),
    );
    ExitCode::SUCCESS
}

fn run_pub(client: &mut Client, args: &Args, started: Instant, tally: &mut Tally) -> ExitCode {
    // Subscribed on the same connection before publishing: the server handles
    // a connection's messages in order, so every accepted publish echoes back.
    if client.send(&subscribe_op(&args.channel)).is_err() {
        emit("error", "\"error\":\"subscribe failed\"");
        return ExitCode::from(1);
    }
    let mut confirmed = BTreeSet::new();
    let mut published = 0u64;
    let body_end = args.count == 0;
    for seq in args.first..args.first + args.count {
        if started.elapsed() >= args.duration {
            break;
        }
        let body = format!("seq:{seq}");
        match client.send(&publish_op(&args.channel, body.as_bytes())) {
            Ok(()) => {
                published += 1;
                emit("published", &format!("\"seq\":{seq}"));
            }
            Err(e) => emit(
                "publish_error",
                &format!("\"seq\":{seq},\"error\":{}", json_str(&e.to_string())),
            ),
        }
        take(client, tally, &args.channel, &mut confirmed, args.interval);
    }
    if body_end {
        // `--count 0`: publish the end marker instead.
        let _ = client.send(&publish_op(&args.channel, b"end"));
        published += 1;
        emit("published", "\"end\":true");
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while (confirmed.len() as u64) < published.min(args.count) && Instant::now() < deadline {
        take(
            client,
            tally,
            &args.channel,
            &mut confirmed,
            Duration::from_millis(100),
        );
    }
    if body_end {
        take(
            client,
            tally,
            &args.channel,
            &mut confirmed,
            Duration::from_millis(200),
        );
    }
    emit(
        "summary",
        &format!(
            "\"published\":{published},\"confirmed\":{},\"confirmed_count\":{},{}",
            ranges(&confirmed),
            confirmed.len(),
            tally_fields(tally, client)
        ),
    );
    ExitCode::SUCCESS
}

/// Receives for `wait`, adding the sequence numbers echoed back to `confirmed`.
fn take(
    client: &mut Client,
    tally: &mut Tally,
    channel: &str,
    confirmed: &mut BTreeSet<u64>,
    wait: Duration,
) {
    let until = Instant::now() + wait;
    loop {
        let left = until.saturating_duration_since(Instant::now());
        match client.recv_timeout(left.max(Duration::from_millis(1))) {
            Ok(Some(m)) => {
                if let Some(seq) = delivery_body(&m, channel).and_then(seq_of) {
                    confirmed.insert(seq);
                }
            }
            Ok(None) | Err(_) => break,
        }
        if Instant::now() >= until {
            break;
        }
    }
    report_events(client, tally);
}
