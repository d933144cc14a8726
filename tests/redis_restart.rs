//! Redis misbehaving under load (issue 12): two tether nodes over one real
//! `redis-server`, `tether-cli sub --json` subscribers on both, a publisher
//! on one node publishing all the while. Redis is first frozen (SIGSTOP,
//! longer than the engine's liveness timeout) and thawed: the history
//! survives, so every subscriber prints every publication exactly once, in
//! order. Then Redis is restarted empty: the history is lost, so every
//! subscriber reports `recovery_failed` with `EPOCH_CHANGED` once, then
//! goes on contiguously in the new epoch. Meanwhile publishes are refused
//! (UNAVAILABLE, or OUTCOME_UNKNOWN for one sent as Redis went away), no
//! node exits, and the nodes' memory stays put.
//!
//! Deterministic: each phase waits (bounded) for the publisher's next
//! acknowledged publish, and each check is on what was acknowledged and
//! printed, never on timing.

mod common;

use std::collections::HashMap;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;
use tether::app::pubsub::ops_v2::{PublishAck, ServerMsg, Status};

use common::redis::RedisServer;
use common::{json, CliProcess, Client, Server};

const CHANNEL: &str = "outage";
/// Acknowledged publications per phase (before, between, after the outages).
const PER_PHASE: usize = 150;
/// The engine's liveness timeout is 5 s: a freeze longer than it makes
/// every node drop its Redis connections and reconnect.
const FREEZE: Duration = Duration::from_secs(7);

fn node(redis: &RedisServer) -> Server {
    let url = format!("redis://{}", redis.host_port());
    Server::start(&[
        "--app",
        "pubsub",
        "--engine",
        &url,
        "--history-size",
        "10000",
        "--tick-ms",
        "10",
    ])
}

/// Resident memory of process `pid`, in bytes.
fn rss(pid: i32) -> u64 {
    let statm = std::fs::read_to_string(format!("/proc/{pid}/statm")).expect("statm");
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .expect("resident pages");
    pages * 4096
}

/// The publisher: one v2 connection, one publish at a time, every outcome
/// kept.
struct Publisher {
    client: Client,
    next_id: u32,
    /// (epoch, offset) of every acknowledged publish, in order.
    acked: Vec<(u64, u64)>,
    /// Refusals by status while Redis was away.
    refused: HashMap<Status, usize>,
}

impl Publisher {
    /// Publishes once; the acknowledgement.
    fn publish(&mut self) -> PublishAck {
        self.next_id += 1;
        let id = self.next_id;
        let body = format!("p{id}");
        self.client
            .publish_v2(id, CHANNEL.as_bytes(), body.as_bytes());
        match self.client.recv_v2() {
            ServerMsg::PublishAck(ack) if ack.request_id == id => ack,
            other => panic!("the publisher got {other:?}"),
        }
    }

    /// Publishes until `n` more are acknowledged, pausing after a refusal
    /// (bounded: the node must reach Redis again within 30 s).
    fn publish_acked(&mut self, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let goal = self.acked.len() + n;
        while self.acked.len() < goal {
            let ack = self.publish();
            if ack.status.is_ok() {
                self.acked.push((ack.epoch, ack.offset));
                thread::sleep(Duration::from_millis(2));
            } else {
                *self.refused.entry(ack.status).or_default() += 1;
                assert!(
                    matches!(ack.status, Status::Unavailable | Status::OutcomeUnknown),
                    "refused {:?}",
                    ack.status
                );
                assert!(
                    Instant::now() < deadline,
                    "the node never reached Redis again"
                );
                thread::sleep(Duration::from_millis(50));
            }
        }
    }

    /// Publishes during `how_long` (refusals expected), without waiting
    /// for Redis.
    fn publish_for(&mut self, how_long: Duration) {
        let until = Instant::now() + how_long;
        while Instant::now() < until {
            let ack = self.publish();
            if ack.status.is_ok() {
                self.acked.push((ack.epoch, ack.offset));
            } else {
                *self.refused.entry(ack.status).or_default() += 1;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }
}

fn epoch_hex(epoch: u64) -> String {
    format!("{epoch:016x}")
}

/// Reads `sub`'s lines until it printed the message at (`epoch`, `offset`).
fn read_until(sub: &CliProcess, lines: &mut Vec<Value>, epoch: u64, offset: u64) {
    let needle = format!("\"epoch\":\"{}\",\"offset\":{offset},", epoch_hex(epoch));
    lines.extend(
        sub.lines_until(&needle, Duration::from_secs(30))
            .iter()
            .map(|l| json(l)),
    );
}

#[test]
fn a_frozen_then_restarted_redis_loses_nothing_it_kept_and_says_what_it_lost() {
    let mut redis = RedisServer::start();
    let (a, b) = (node(&redis), node(&redis));
    let (at_a, at_b) = (a.addr.to_string(), b.addr.to_string());
    let mut subs = Vec::new();
    for list in [
        format!("{at_b},{at_a}"),
        format!("{at_b},{at_a}"),
        format!("{at_a},{at_b}"),
    ] {
        let sub = CliProcess::spawn(&["sub", &list, CHANNEL, "--json", "--timeout-s", "120"]);
        subs.push(sub);
    }
    let mut printed: Vec<Vec<Value>> = Vec::new();
    for sub in &subs {
        let before = sub.lines_until("\"subscribed\"", Duration::from_secs(30));
        printed.push(before.iter().map(|l| json(l)).collect());
    }
    let mut publisher = Publisher {
        client: a.open_v2(0),
        next_id: 0,
        acked: Vec::new(),
        refused: HashMap::new(),
    };

    // Steady state.
    publisher.publish_acked(PER_PHASE);
    let rss_before = [rss(a.pid), rss(b.pid)];

    // Frozen longer than the liveness timeout, publishing all the while.
    redis.pause();
    publisher.publish_for(FREEZE);
    redis.resume();
    publisher.publish_acked(PER_PHASE);
    let (epoch, last_kept) = *publisher.acked.last().expect("acked");
    for (sub, lines) in subs.iter().zip(&mut printed) {
        read_until(sub, lines, epoch, last_kept);
    }

    // Restarted empty, publishing all the while.
    redis.restart();
    publisher.publish_acked(PER_PHASE);
    let (new_epoch, last) = *publisher.acked.last().expect("acked");
    assert_ne!(new_epoch, epoch, "an empty Redis starts a new epoch");
    for (sub, lines) in subs.iter().zip(&mut printed) {
        read_until(sub, lines, new_epoch, last);
    }

    let refused: usize = publisher.refused.values().sum();
    assert!(
        publisher
            .refused
            .get(&Status::Unavailable)
            .copied()
            .unwrap_or(0)
            > 0,
        "publishes are refused while Redis is away: {:?}",
        publisher.refused
    );
    eprintln!(
        "acknowledged {} publishes, refused {refused} ({:?})",
        publisher.acked.len(),
        publisher.refused
    );
    for (i, lines) in printed.iter().enumerate() {
        check_subscriber(i, lines, &publisher.acked, epoch, new_epoch);
    }
    // The nodes are up and their memory did not grow with the outages.
    for (node, before) in [(&a, rss_before[0]), (&b, rss_before[1])] {
        let after = rss(node.pid);
        assert!(
            after < before + (32 << 20),
            "node {} grew from {before} to {after} bytes of RSS",
            node.addr
        );
        let mut probe = node.open_v2(0);
        probe.ping(b"up");
        probe.expect_pong(b"up");
    }
}

/// What subscriber `i` printed: in the old `epoch`, every offset from 1 up
/// to the last one kept, once and in order (every acknowledged one among
/// them: the freeze lost nothing); then exactly one `recovery_failed`
/// (`EPOCH_CHANGED`, from the old position); then in `new_epoch` offsets
/// contiguous from the failure's new position to the last acknowledged.
fn check_subscriber(i: usize, lines: &[Value], acked: &[(u64, u64)], epoch: u64, new_epoch: u64) {
    let (old_hex, new_hex) = (epoch_hex(epoch), epoch_hex(new_epoch));
    let offsets_in = |hex: &str| -> Vec<u64> {
        lines
            .iter()
            .filter(|l| l["event"] == "message" && l["epoch"] == hex)
            .map(|l| l["offset"].as_u64().expect("offset"))
            .collect()
    };
    let old = offsets_in(&old_hex);
    let last_old = old.last().copied().unwrap_or(0);
    assert_eq!(
        old,
        (1..=last_old).collect::<Vec<_>>(),
        "subscriber {i}: old epoch contiguous from 1, once each"
    );
    for &(e, o) in acked {
        if e == epoch {
            assert!(
                o <= last_old,
                "subscriber {i}: acked {o} of the old epoch missing"
            );
        }
    }
    let failures: Vec<&Value> = lines
        .iter()
        .filter(|l| l["event"] == "recovery_failed")
        .collect();
    assert_eq!(failures.len(), 1, "subscriber {i}: {failures:?}");
    let failure = failures[0];
    assert_eq!(
        failure["reason"], "EPOCH_CHANGED",
        "subscriber {i}: {failure}"
    );
    assert_eq!(failure["old_epoch"], old_hex.as_str(), "subscriber {i}");
    assert_eq!(
        failure["old_offset"].as_u64(),
        Some(last_old),
        "subscriber {i}"
    );
    assert_eq!(failure["epoch"], new_hex.as_str(), "subscriber {i}");
    let from = failure["offset"].as_u64().expect("offset");
    let new = offsets_in(&new_hex);
    let last_acked = acked.last().expect("acked").1;
    assert_eq!(
        new,
        (from + 1..=last_acked).collect::<Vec<_>>(),
        "subscriber {i}: new epoch contiguous after the recovery failure"
    );
    assert!(
        lines.iter().all(|l| l["event"] != "subscribe_failed"),
        "subscriber {i}: a subscription was given up"
    );
}
