//! The v2 metrics (src/app/pubsub/metrics.rs) after publishes and
//! recoveries: history gauges equal to what is held and counted as §7.3 says,
//! and the recovery, replay, acknowledgement and refusal counters moving by
//! exactly what was done. A sync on the client before each read is the
//! barrier: the server has handled everything before the metrics request.

use tether::app::pubsub::ops_v2::{PublishAck, RecoveryReason, Status};

use crate::common::{assert_refused, numbered_body, Server};
use crate::{at, not_recovered, other_epoch, recovered, subscribed};

/// Bytes a held publication counts besides its own (ENTRY_OVERHEAD, §7.3).
const ENTRY_OVERHEAD: u64 = 96;
/// Bytes a stream counts besides its channel (STREAM_OVERHEAD, §7.3).
const STREAM_OVERHEAD: u64 = 64;
/// A frame's header: magic, type, length, CRC (§1).
const FRAME_HEADER: u64 = 8;
/// A PUBLICATION without channel and body (§7.2).
const PUBLICATION_HEAD: u64 = 18;

#[test]
fn history_and_recovery_metrics_follow_what_happened() {
    let channel: &[u8] = b"metered";
    let server = Server::start(&[
        "--app",
        "pubsub",
        "--history-size",
        "3",
        "--metrics",
        "127.0.0.1:0",
    ]);
    let metric = |name: &str| server.metric(name);
    let recoveries =
        |outcome: &str| server.metric(&format!("tether_recoveries_total{{outcome=\"{outcome}\"}}"));
    let all_recoveries = || {
        [
            recoveries("recovered"),
            recoveries("epoch_changed"),
            recoveries("too_far_behind"),
        ]
    };
    assert_eq!(metric("tether_history_streams"), 0);
    assert_eq!(metric("tether_history_entries"), 0);
    assert_eq!(metric("tether_history_bytes"), 0);
    assert_eq!(all_recoveries(), [0, 0, 0]);

    // A subscription without a position makes the stream; no recovery asked.
    let mut sub = server.open_v2(0);
    let epoch = sub.subscribe_v2(1, channel, None).epoch;
    let stream_bytes = channel.len() as u64 + STREAM_OVERHEAD;
    assert_eq!(metric("tether_history_streams"), 1);
    assert_eq!(metric("tether_history_entries"), 0);
    assert_eq!(metric("tether_history_bytes"), stream_bytes);
    assert_eq!(all_recoveries(), [0, 0, 0]);

    // Five acknowledged publishes; the history holds the last three.
    let mut publisher = server.open_v2(0);
    for o in 1..=5u64 {
        publisher.publish_v2(o as u32, channel, &numbered_body(o));
        let ack = publisher.expect_publish_ack(o as u32);
        assert_eq!(
            ack,
            PublishAck {
                request_id: o as u32,
                status: Status::Ok,
                epoch,
                offset: o
            }
        );
        sub.expect_numbered(channel, epoch, o);
    }
    let held_bytes: u64 = (3..=5)
        .map(|o| {
            FRAME_HEADER
                + PUBLICATION_HEAD
                + channel.len() as u64
                + numbered_body(o).len() as u64
                + ENTRY_OVERHEAD
        })
        .sum();
    assert_eq!(metric("tether_history_entries"), 3);
    assert_eq!(metric("tether_history_bytes"), stream_bytes + held_bytes);
    assert_eq!(metric("tether_publishes_total"), 5);
    assert_eq!(metric("tether_publishes_acked_total"), 5);
    assert_eq!(metric("tether_deliveries_total"), 5);

    // One recovery of each outcome, and one more EPOCH_CHANGED.
    let mut c = server.open_v2(0);
    assert_eq!(
        c.subscribe_v2(1, channel, at(epoch, 2)),
        recovered(1, epoch, 5, 3)
    );
    for o in 3..=5 {
        c.expect_numbered(channel, epoch, o);
    }
    assert_eq!(all_recoveries(), [1, 0, 0]);
    assert_eq!(metric("tether_history_replayed_total"), 3);
    assert_eq!(
        c.subscribe_v2(2, channel, at(epoch, 1)),
        not_recovered(2, RecoveryReason::TooFarBehind, epoch, 5)
    );
    assert_eq!(all_recoveries(), [1, 0, 1]);
    assert_eq!(
        c.subscribe_v2(3, channel, at(epoch, 6)),
        not_recovered(3, RecoveryReason::EpochChanged, epoch, 5)
    );
    assert_eq!(
        c.subscribe_v2(4, channel, at(other_epoch(epoch), 5)),
        not_recovered(4, RecoveryReason::EpochChanged, epoch, 5)
    );
    assert_eq!(all_recoveries(), [1, 2, 1]);
    // Without a position: counted under none of them.
    assert_eq!(c.subscribe_v2(5, channel, None), subscribed(5, epoch, 5));
    assert_eq!(all_recoveries(), [1, 2, 1]);
    assert_eq!(metric("tether_history_replayed_total"), 3);
    // A replay takes nothing out of the history; replacing SUBSCRIBEs add no
    // subscription.
    assert_eq!(metric("tether_history_entries"), 3);
    assert_eq!(metric("tether_history_bytes"), stream_bytes + held_bytes);
    assert_eq!(metric("tether_subscriptions"), 2);
    assert_eq!(metric("tether_history_streams"), 1);

    // Refusals are counted, and change nothing else.
    assert_refused(&c.subscribe_v2(6, b"", None), Status::BadChannel);
    c.publish_v2(7, b"", b"x");
    assert_eq!(c.expect_publish_ack(7).status, Status::BadChannel);
    c.publish_v2(0, b"", b"unacknowledged, still refused");
    c.sync();
    assert_eq!(metric("tether_subscribes_refused_total"), 1);
    assert_eq!(metric("tether_publishes_refused_total"), 2);
    assert_eq!(metric("tether_publishes_total"), 5);
    assert_eq!(metric("tether_publishes_acked_total"), 5);
    assert_eq!(all_recoveries(), [1, 2, 1]);
    sub.sync();
}

/// §7.3 "Memory": above --history-memory the oldest held publication
/// server-wide goes first, whichever its stream; a position before what a
/// stream still holds is then TOO_FAR_BEHIND.
#[test]
fn history_memory_drops_the_oldest_publications_server_wide() {
    // Each publication counts 8 + 18 + 1 + 100 + 96 = 223 bytes and each
    // stream 1 + 64: 12 publications and two streams fit in 3000 bytes.
    let body = |o: u64| {
        let mut b = numbered_body(o);
        b.resize(100, b'.');
        b
    };
    let counted = FRAME_HEADER + PUBLICATION_HEAD + 1 + 100 + ENTRY_OVERHEAD;
    let streams = 2 * (1 + STREAM_OVERHEAD);
    assert_eq!((3000 - streams) / counted, 12);
    let server = Server::start(&[
        "--app",
        "pubsub",
        "--history-memory",
        "3000",
        "--metrics",
        "127.0.0.1:0",
    ]);
    // a1 b1 a2 b2 ... a10 b10: the first eight go, a5..=a10 and b5..=b10 stay.
    let mut publisher = server.open_v2(0);
    let mut epochs = [0u64; 2];
    for o in 1..=10u64 {
        for (i, channel) in [b"a", b"b"].iter().enumerate() {
            publisher.publish_v2(1, *channel, &body(o));
            let ack = publisher.expect_publish_ack(1);
            assert_eq!(ack.offset, o, "{ack:?}");
            epochs[i] = ack.epoch;
        }
    }
    assert_eq!(server.metric("tether_history_entries"), 12);
    assert_eq!(
        server.metric("tether_history_bytes"),
        streams + 12 * counted
    );
    assert_eq!(server.metric("tether_history_evicted_total"), 8);
    assert_eq!(server.metric("tether_history_streams"), 2);

    let mut c = server.open_v2(0);
    for (i, channel) in [b"a", b"b"].iter().enumerate() {
        let epoch = epochs[i];
        let id = 2 * i as u32;
        assert_eq!(
            c.subscribe_v2(id + 1, *channel, at(epoch, 3)),
            not_recovered(id + 1, RecoveryReason::TooFarBehind, epoch, 10),
            "{:?}: 4 is gone",
            channel
        );
        assert_eq!(
            c.subscribe_v2(id + 2, *channel, at(epoch, 4)),
            recovered(id + 2, epoch, 10, 6),
            "{:?}: 5..=10 are held",
            channel
        );
        for o in 5..=10 {
            let p = c.expect_publication();
            assert_eq!((p.epoch, p.offset, &p.body[..]), (epoch, o, &body(o)[..]));
        }
    }
    c.sync();
}
