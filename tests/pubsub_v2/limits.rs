//! A replay raises the connection's output limits (docs/protocol.md §7.4
//! "Replay and output limits"): a reconnecting client whose replay is larger
//! than `--max-output` is not evicted for it, while a v1 subscriber that does
//! not read still is, at the normal limit.

use tether::app::pubsub::ops_v2::encode_publish;
use tether::protocol::{encode_message, GoawayCode};

use crate::common::{numbered_body, Client, Server, SMALL_MSS, SPLIT};
use crate::{at, recovered, subscribed};

const MAX_OUTPUT: u64 = 65536;
const PUBLICATIONS: u64 = 2000;

/// A 200-byte body that starts with [`numbered_body`], so deliveries still
/// say which publication they are.
fn body(offset: u64) -> Vec<u8> {
    let mut b = numbered_body(offset);
    b.resize(200, b'.');
    b
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

    // 2000 publications of 200 B (about 450 KB of PUBLICATIONs), written at once.
    let mut publisher = server.open_v2(0);
    let burst: Vec<u8> = (1..=PUBLICATIONS)
        .flat_map(|o| encode_message(&encode_publish(0, channel, &body(o)), SPLIT))
        .collect();
    publisher.send_raw(&burst);
    publisher.sync();
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
    for o in 1..=PUBLICATIONS {
        let p = back.expect_publication();
        assert_eq!(
            (p.epoch, p.offset, &p.channel[..], &p.body[..]),
            (epoch, o, channel, &body(o)[..]),
            "replayed publication {o}"
        );
    }
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
