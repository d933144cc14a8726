//! A tether node killed with SIGKILL while a publisher runs (issue 12):
//! three nodes over one real `redis-server` (or a three-master Redis
//! Cluster), `tether-cli sub --json`
//! processes given every node's address (their own node first), a `tether-cli
//! pub` on another node at a steady rate. The killed node's subscribers
//! reconnect to the next address by themselves and recover from the history
//! kept in Redis: every subscriber prints every publication exactly once, in
//! order, with no `recovery_failed`.
//!
//! Deterministic checks only; the time from the kill until each moved
//! subscriber printed its next `subscribed` line is measured and printed,
//! never asserted (it is a figure for the closing note).

mod common;

use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;
use tether::app::pubsub::ops_v2::Status;

use common::redis::{RedisCluster, RedisServer};
use common::{assert_every_seq_once, cli_run, json, CliProcess, Server};

const CHANNEL: &str = "failover";
const PUBLICATIONS: u64 = 2_000;
/// Publishes per second: 2,000 in about 10 s.
const RATE: &str = "200";
/// Subscribers started on the node that is killed, and on each other node.
const ON_KILLED: usize = 10;
const ON_OTHERS: usize = 2;

/// A pub/sub node over the engine at `url` whose history covers the whole run.
fn node(url: &str) -> Server {
    Server::start(&[
        "--app",
        "pubsub",
        "--engine",
        url,
        "--history-size",
        "10000",
        "--tick-ms",
        "10",
    ])
}

/// Waits (bounded) until `node` answers a SUBSCRIBE with something other
/// than UNAVAILABLE: it has reached Redis, so a `tether-cli sub` started
/// against it is not refused.
fn wait_for_redis(node: &Server) {
    let mut probe = node.open_v2(0);
    let deadline = Instant::now() + Duration::from_secs(15);
    for request_id in 1.. {
        let reply = probe.subscribe_v2(request_id, b"probe", None);
        if reply.status == Status::Ok {
            return;
        }
        assert_eq!(reply.status, Status::Unavailable, "{reply:?}");
        assert!(Instant::now() < deadline, "the node never reached Redis");
        thread::sleep(Duration::from_millis(50));
    }
}

/// What one subscriber printed, each line with when it was read.
struct Printed {
    lines: Vec<(Instant, Value)>,
    status: Option<i32>,
    stderr: String,
}

/// Reads `sub`'s lines (after `before`, already read) with their arrival
/// times until it exits, on a thread of its own so that arrival times are
/// not skewed by the other subscribers.
fn collect(sub: CliProcess, before: Vec<String>) -> thread::JoinHandle<Printed> {
    thread::spawn(move || {
        let now = Instant::now();
        let mut lines: Vec<(Instant, Value)> = before.iter().map(|l| (now, json(l))).collect();
        // Ends when its stdout closes (it exits: --count or --timeout-s).
        while let Some(line) = sub.line(Duration::from_secs(90)) {
            lines.push((Instant::now(), json(&line)));
        }
        let (_, status, stderr) = sub.finish(Duration::from_secs(10));
        Printed {
            lines,
            status: status.and_then(|s| s.code()),
            stderr,
        }
    })
}

#[test]
fn subscribers_of_a_killed_node_move_to_another_and_miss_nothing() {
    let redis = RedisServer::start();
    kill_a_node_under_load(&format!("redis://{}", redis.host_port()));
}

#[test]
fn on_a_redis_cluster_subscribers_of_a_killed_node_move_to_another_and_miss_nothing() {
    let cluster = RedisCluster::start();
    kill_a_node_under_load(&cluster.url());
}

/// Three nodes over the engine at `url`, subscribers on each, a publisher
/// at a steady rate, the first node killed: see the module doc.
fn kill_a_node_under_load(url: &str) {
    let started = Instant::now();
    let nodes: Vec<Server> = (0..3).map(|_| node(url)).collect();
    for n in &nodes {
        wait_for_redis(n);
    }
    let addr = |i: usize| nodes[i % 3].addr.to_string();
    // Each subscriber's list starts with its own node, then the others.
    let list_from =
        |first: usize| format!("{},{},{}", addr(first), addr(first + 1), addr(first + 2));
    let count = PUBLICATIONS.to_string();
    let mut subs: Vec<(usize, CliProcess)> = Vec::new();
    for (home, how_many) in [(0, ON_KILLED), (1, ON_OTHERS), (2, ON_OTHERS)] {
        let list = list_from(home);
        for _ in 0..how_many {
            let sub = CliProcess::spawn(&[
                "sub",
                &list,
                CHANNEL,
                "--json",
                "--count",
                &count,
                "--timeout-s",
                "60",
            ]);
            subs.push((home, sub));
        }
    }
    // Every subscriber holds its subscription before the first publish.
    let mut readers = Vec::new();
    for (home, sub) in subs {
        let before = sub.lines_until("\"subscribed\"", Duration::from_secs(30));
        readers.push((home, collect(sub, before)));
    }

    let publisher_addr = addr(1);
    let publisher = thread::spawn(move || {
        cli_run(
            &[
                "pub",
                &publisher_addr,
                CHANNEL,
                "--count",
                &PUBLICATIONS.to_string(),
                "--rate",
                RATE,
                "--json",
            ],
            None,
            Duration::from_secs(60),
        )
    });
    // A few hundred publications in (at 200/s), kill the first node.
    thread::sleep(Duration::from_secs(3));
    let publishing_at_kill = !publisher.is_finished();
    nodes[0].signal(libc::SIGKILL);
    let killed_at = Instant::now();

    let run = publisher.join().expect("the publisher");
    assert_eq!(run.code(), 0, "publisher: {}", run.stderr);
    let acks: Vec<(String, u64)> = run
        .stdout
        .lines()
        .map(|l| {
            let ack = json(l);
            (
                ack["epoch"].as_str().expect("epoch").to_string(),
                ack["offset"].as_u64().expect("offset"),
            )
        })
        .collect();
    assert_eq!(
        acks.len() as u64,
        PUBLICATIONS,
        "every publish acknowledged"
    );
    let (epoch, first) = acks[0].clone();
    assert!(
        acks.iter()
            .zip(first..)
            .all(|((e, o), expected)| *e == epoch && *o == expected),
        "acknowledged with contiguous offsets in one epoch"
    );

    let mut back_after = Vec::new();
    for (i, (home, reader)) in readers.into_iter().enumerate() {
        let printed = reader.join().expect("a subscriber's reader");
        let Printed {
            lines,
            status,
            stderr,
        } = printed;
        let events: Vec<&Value> = lines.iter().map(|(_, e)| e).collect();
        let who = format!("subscriber {i} (node {home})");
        assert_every_seq_once(events.iter().copied(), first, PUBLICATIONS, &who, &stderr);
        for m in events.iter().filter(|e| e["event"] == "message") {
            assert_eq!(m["epoch"], epoch.as_str(), "subscriber {i}");
        }
        assert!(
            !events
                .iter()
                .any(|e| e["event"] == "recovery_failed" || e["event"] == "subscribe_failed"),
            "subscriber {i} (node {home}): the history covers the outage: {events:?}"
        );
        assert_eq!(status, Some(0), "subscriber {i} (node {home}): {stderr}");
        let after_kill: Vec<&(Instant, Value)> =
            lines.iter().filter(|(at, _)| *at >= killed_at).collect();
        let disconnected = after_kill.iter().any(|(_, e)| e["event"] == "disconnected");
        if home == 0 {
            assert!(
                disconnected,
                "subscriber {i} was on the killed node: it must have moved"
            );
            let resubscribed = after_kill
                .iter()
                .find(|(_, e)| e["event"] == "subscribed")
                .unwrap_or_else(|| panic!("subscriber {i}: no subscribed after the kill"));
            assert_eq!(resubscribed.1["recovered"], true, "subscriber {i}");
            back_after.push(resubscribed.0 - killed_at);
        } else {
            assert!(
                !disconnected,
                "subscriber {i} (node {home}): its node stayed up"
            );
        }
    }
    back_after.sort();
    eprintln!(
        "{url}: kill -> every moved subscriber subscribed again (recovered): {} subscribers, \
         first {:?}, median {:?}, last {:?}; publishing at the kill: {publishing_at_kill}; \
         whole test {:?}",
        back_after.len(),
        back_after.first(),
        back_after.get(back_after.len() / 2),
        back_after.last(),
        started.elapsed()
    );
}
