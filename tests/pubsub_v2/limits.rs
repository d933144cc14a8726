//! A replay raises the connection's output limits (docs/protocol.md §7.4
//! "Replay and output limits"): a reconnecting client whose replay is larger
//! than `--max-output` is not evicted for it, while a v1 subscriber that does
//! not read still is, at the normal limit; raises add up to at most
//! `--history-memory`. And a PUBLICATION may be longer than `--max-message`
//! (§7.2).

use tether::app::pubsub::ops_v2::{encode_publish, encode_subscribe, RecoveryReason};
use tether::protocol::{encode_message, GoawayCode};

use crate::common::{numbered_body, Client, Server, SMALL_MSS, SPLIT};
use crate::{at, not_recovered, recovered, subscribed};

const MAX_OUTPUT: u64 = 65536;
const PUBLICATIONS: u64 = 2000;

/// A 200-byte body that starts with [`numbered_body`], so deliveries still
/// say which publication they are.
fn body(offset: u64) -> Vec<u8> {
    let mut b = numbered_body(offset);
    b.resize(200, b'.');
    b
}

/// Publishes [`body`]`(o)` for `o` in 1..=`count` on `channel`, a new stream
/// or one with top 0, most of them in one write; returns the stream's epoch.
fn publish_bulk(publisher: &mut Client, channel: &[u8], count: u64) -> u64 {
    publisher.publish_v2(1, channel, &body(1));
    let ack = publisher.expect_publish_ack(1);
    assert_eq!(ack.offset, 1, "{ack:?}");
    let burst: Vec<u8> = (2..=count)
        .flat_map(|o| encode_message(&encode_publish(0, channel, &body(o)), SPLIT))
        .collect();
    publisher.send_raw(&burst);
    publisher.sync();
    ack.epoch
}

/// Reads the replay of 1..=`count` on `channel`, in order.
fn expect_replay(client: &mut Client, channel: &[u8], epoch: u64, count: u64) {
    for o in 1..=count {
        let p = client.expect_publication();
        assert_eq!(
            (p.epoch, p.offset, &p.channel[..], &p.body[..]),
            (epoch, o, channel, &body(o)[..]),
            "replayed publication {o}"
        );
    }
}

#[test]
fn a_replay_above_max_output_is_not_evicted_but_a_stuck_v1_subscriber_is() {
    let channel: &[u8] = b"bulk";
    let server = Server::start(&[
        "--app",
        "pubsub",
        "--max-output",
        "65536",
        "--history-size",
        "2000",
        // The stuck subscriber reads its GOAWAY only after the burst.
        "--linger-ms",
        "60000",
        "--metrics",
        "127.0.0.1:0",
    ]);
    let queued = || server.metric("tether_output_queued_bytes");

    // A v2 subscriber learns the epoch and goes away before the burst.
    let mut leaving = server.open_v2(0);
    let reply = leaving.subscribe_v2(1, channel, None);
    let epoch = reply.epoch;
    assert_eq!(reply, subscribed(1, epoch, 0));
    leaving.abort();
    // A v1 subscriber that reads nothing, with a small window.
    let mut stuck = Client::connect_small_window(server.addr, Some(SMALL_MSS));
    stuck.handshake(0);
    stuck.subscribe(channel);
    stuck.sync();

    // 2000 publications of 200 B (about 450 KB of PUBLICATIONs), written at
    // once: the stuck subscriber is sent them as v1 `M`s.
    let mut publisher = server.open_v2(0);
    assert_eq!(publish_bulk(&mut publisher, channel, PUBLICATIONS), epoch);
    let (data, g) = stuck.expect_goaway_after_data(GoawayCode::SlowConsumer);
    assert!(
        (data as u64) < PUBLICATIONS,
        "the stuck subscriber was sent all {data} deliveries"
    );
    eprintln!(
        "stuck v1 subscriber: {data} DATA frames, then {:?}",
        g.reason
    );
    // Closed on both sides, so what is queued below is the returning client's.
    drop(stuck);
    server.wait_metric("tether_connections_open", 1);

    // The v2 client comes back with a small window and asks for everything.
    let mut back = Client::connect_small_window(server.addr, Some(SMALL_MSS));
    back.handshake_v2(0);
    back.send_subscribe_v2(1, channel, at(epoch, 0));
    // Wait until the server holds far more than --max-output unsent for it:
    // it has judged the limit after its writes since. Evicted, the reads
    // below meet its GOAWAY SLOW_CONSUMER.
    let mut backlog = 0;
    let backed_up = crate::common::wait_until(std::time::Duration::from_secs(10), || {
        backlog = queued();
        backlog > 2 * MAX_OUTPUT
    });
    let reply = back.expect_subscribe_reply(1);
    assert_eq!(
        reply,
        recovered(1, epoch, PUBLICATIONS, PUBLICATIONS as u32)
    );
    expect_replay(&mut back, channel, epoch, PUBLICATIONS);
    assert!(
        backed_up,
        "the queue never passed 2 x --max-output (last seen: {backlog} bytes): the \
         replay never needed the raise, so this run shows nothing"
    );
    back.sync();
    // Live delivery goes on after the replay.
    publisher.publish_v2(9, channel, &body(PUBLICATIONS + 1));
    assert_eq!(publisher.expect_publish_ack(9).offset, PUBLICATIONS + 1);
    assert_eq!(back.expect_publication().offset, PUBLICATIONS + 1);
    back.sync();
}

/// Each replay raises the limits by its bytes, and the raises add up while
/// the output stays above --max-output; a replay that would take the raise
/// past --history-memory is answered TOO_FAR_BEHIND instead.
#[test]
fn replay_raises_add_up_to_history_memory() {
    const COUNT: u64 = 2500;
    let channel: &[u8] = b"bulk";
    // Each replay is 2500 PUBLICATION frames of 8 + 18 + 4 + 200 bytes,
    // 575000 bytes; the history counts 815068 bytes, within the memory.
    let replay_bytes = COUNT * (8 + 18 + channel.len() as u64 + 200);
    let memory = 2_000_000;
    assert_eq!(
        memory / replay_bytes,
        3,
        "three replays fit, a fourth does not"
    );
    let server = Server::start(&[
        "--app",
        "pubsub",
        "--max-output",
        "65536",
        "--history-size",
        "2500",
        "--history-memory",
        "2000000",
    ]);
    let mut publisher = server.open_v2(0);
    let epoch = publish_bulk(&mut publisher, channel, COUNT);

    // Four SUBSCRIBEs from (epoch, 0) at once by a client that reads nothing
    // meanwhile, with a small window: its output stays far above
    // --max-output, so no raise returns to 0 in between.
    let mut c = Client::connect_small_window(server.addr, Some(SMALL_MSS));
    c.handshake_v2(0);
    let subscribes: Vec<u8> = (1..=4)
        .flat_map(|id| encode_message(&encode_subscribe(id, channel, at(epoch, 0)), SPLIT))
        .collect();
    c.send_raw(&subscribes);
    for id in 1..=3 {
        let reply = c.expect_subscribe_reply(id);
        assert_eq!(reply, recovered(id, epoch, COUNT, COUNT as u32));
        expect_replay(&mut c, channel, epoch, COUNT);
    }
    assert_eq!(
        c.expect_subscribe_reply(4),
        not_recovered(4, RecoveryReason::TooFarBehind, epoch, COUNT),
        "a fourth replay would raise the limits past --history-memory"
    );
    c.sync();
    // With its output drained the raise is gone, and it may be raised again.
    assert_eq!(
        c.subscribe_v2(5, channel, at(epoch, 0)),
        recovered(5, epoch, COUNT, COUNT as u32)
    );
    expect_replay(&mut c, channel, epoch, COUNT);
    c.sync();
}

/// §7.2: a PUBLICATION is 12 bytes longer than its PUBLISH and 16 longer than
/// a v1 `P`, so a publish of --max-message bytes reaches v2 subscribers whole.
#[test]
fn a_publication_may_exceed_max_message() {
    let server = Server::start(&["--app", "pubsub", "--max-message", "1024"]);
    let mut sub = server.open_v2(0);
    let epoch = sub.subscribe_v2(1, b"big", None).epoch;
    let mut v2_pub = server.open_v2(0);
    let v2_body = vec![b'2'; 1024 - 6 - 3];
    assert_eq!(encode_publish(1, b"big", &v2_body).len(), 1024);
    v2_pub.publish_v2(1, b"big", &v2_body);
    assert_eq!(v2_pub.expect_publish_ack(1).offset, 1);
    let mut v1_pub = server.open(0);
    let v1_body = vec![b'1'; 1024 - 2 - 3];
    v1_pub.publish(b"big", &v1_body);
    v1_pub.sync();
    for (offset, body) in [(1, &v2_body), (2, &v1_body)] {
        let p = sub.expect_publication();
        assert_eq!(
            (p.epoch, p.offset, p.body.len(), &p.body[..]),
            (epoch, offset, body.len(), &body[..]),
            "PUBLICATION {offset}"
        );
    }
    sub.sync();
}

/// The raise lasts until the unsent output is next at or below --max-output
/// (§7.4); from then on the soft limit is --soft-output again, and output
/// continuously above it for --soft-output-ms means SLOW_CONSUMER (§3.2),
/// whether or not anything more is queued.
#[test]
fn a_replay_left_above_the_soft_limit_gets_the_soft_limit_grace() {
    let channel: &[u8] = b"bulk";
    let server = Server::start(&[
        "--app",
        "pubsub",
        "--soft-output",
        "65536",
        "--soft-output-ms",
        "200",
        "--tick-ms",
        "10",
        "--history-size",
        "2000",
        // The client reads its GOAWAY only at the end.
        "--linger-ms",
        "60000",
        "--metrics",
        "127.0.0.1:0",
    ]);
    let queued = || server.metric("tether_output_queued_bytes");
    let mut publisher = server.open_v2(0);
    let epoch = publish_bulk(&mut publisher, channel, PUBLICATIONS);

    // About 450 KB of replay, under --max-output (4 MiB): the raise ends at
    // the first write, with some 360 KB left unsent, far above --soft-output.
    let mut c = Client::connect_small_window(server.addr, Some(SMALL_MSS));
    c.handshake_v2(0);
    c.send_subscribe_v2(1, channel, at(epoch, 0));
    let mut backlog = 0;
    let backed_up = crate::common::wait_until(std::time::Duration::from_secs(10), || {
        backlog = queued();
        backlog > 2 * 65536
    });
    assert!(
        backed_up,
        "the replay never backed up ({backlog} bytes queued)"
    );
    // Eviction discards the queued frames; a client kept beyond its grace
    // still has them 10 s later.
    let evicted = crate::common::wait_until(std::time::Duration::from_secs(10), || {
        backlog = queued();
        backlog < 4096
    });
    assert!(
        evicted,
        "{backlog} bytes still queued 10 s after the replay's raise ended above \
         --soft-output 65536 with --soft-output-ms 200: not evicted"
    );
    let (data, g) = c.expect_goaway_after_data(GoawayCode::SlowConsumer);
    eprintln!("{data} DATA frames, then SLOW_CONSUMER {:?}", g.reason);
}
