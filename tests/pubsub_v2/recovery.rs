//! Recovery from a position (docs/protocol.md §7.4): inside the history the
//! replay is exactly what was missed, then live publications follow with no
//! gap and no duplicate; outside it the reply says why (TOO_FAR_BEHIND,
//! EPOCH_CHANGED) and live delivery resumes from the top; a restarted server
//! or a forgotten idle stream has a new epoch.

use tether::app::pubsub::ops_v2::RecoveryReason;

use crate::common::{numbered_body, Server};
use crate::{at, not_recovered, other_epoch, publish_numbered, recovered, subscribed, CH};

#[test]
fn a_resubscribe_inside_the_history_replays_what_was_missed_then_goes_live() {
    let server = Server::start(&["--app", "pubsub"]);
    let mut publisher = server.open_v2(0);
    let mut sub = server.open_v2(0);
    let reply = sub.subscribe_v2(1, CH, None);
    let epoch = reply.epoch;
    assert_ne!(epoch, 0);
    assert_eq!(reply, subscribed(1, epoch, 0));

    // The subscriber reads up to 4 of 10 and its connection is reset.
    publish_numbered(&mut publisher, CH, 1..=10);
    for o in 1..=4 {
        sub.expect_numbered(CH, epoch, o);
    }
    sub.abort();
    publish_numbered(&mut publisher, CH, 11..=15);

    // A new connection resubscribes from (epoch, 4): 5..=15 replayed in
    // order, then live from 16, each once.
    let mut again = server.open_v2(0);
    assert_eq!(
        again.subscribe_v2(1, CH, at(epoch, 4)),
        recovered(1, epoch, 15, 11)
    );
    for o in 5..=15 {
        again.expect_numbered(CH, epoch, o);
    }
    publish_numbered(&mut publisher, CH, 16..=18);
    for o in 16..=18 {
        again.expect_numbered(CH, epoch, o);
    }
    again.sync();

    // Up to date: the position (epoch, top) is recovered with no replay.
    let mut current = server.open_v2(0);
    assert_eq!(
        current.subscribe_v2(1, CH, at(epoch, 18)),
        recovered(1, epoch, 18, 0)
    );
    current.sync();

    // A replacing SUBSCRIBE on the same connection (nothing in flight to it):
    // the replay from (epoch, 10), then live, and no second copy of anything.
    assert_eq!(
        again.subscribe_v2(2, CH, at(epoch, 10)),
        recovered(2, epoch, 18, 8)
    );
    for o in 11..=18 {
        again.expect_numbered(CH, epoch, o);
    }
    publish_numbered(&mut publisher, CH, 19..=19);
    again.expect_numbered(CH, epoch, 19);
    current.expect_numbered(CH, epoch, 19);
    again.sync();
    current.sync();
}

#[test]
fn positions_outside_the_history_are_not_recovered_and_live_delivery_goes_on() {
    let mut server = Server::start(&["--app", "pubsub", "--history-size", "5"]);
    let mut publisher = server.open_v2(0);
    publisher.publish_v2(1, CH, &numbered_body(1));
    let ack = publisher.expect_publish_ack(1);
    let epoch = ack.epoch;
    assert_eq!(ack.offset, 1, "{ack:?}");
    // Top 12; the history holds 8..=12, so the oldest position recoverable is 7.
    publish_numbered(&mut publisher, CH, 2..=12);

    let mut far = server.open_v2(0);
    assert_eq!(
        far.subscribe_v2(1, CH, at(epoch, 6)),
        not_recovered(1, RecoveryReason::TooFarBehind, epoch, 12),
        "(epoch, 6): 7 is no longer held"
    );
    let mut edge = server.open_v2(0);
    assert_eq!(
        edge.subscribe_v2(1, CH, at(epoch, 7)),
        recovered(1, epoch, 12, 5),
        "(epoch, 7): everything after it is held"
    );
    for o in 8..=12 {
        edge.expect_numbered(CH, epoch, o);
    }
    let mut stranger = server.open_v2(0);
    assert_eq!(
        stranger.subscribe_v2(1, CH, at(other_epoch(epoch), 5)),
        not_recovered(1, RecoveryReason::EpochChanged, epoch, 12),
        "a position of another epoch"
    );
    let mut ahead = server.open_v2(0);
    assert_eq!(
        ahead.subscribe_v2(1, CH, at(epoch, 13)),
        not_recovered(1, RecoveryReason::EpochChanged, epoch, 12),
        "a position past the top is not of this numbering"
    );
    let mut current = server.open_v2(0);
    assert_eq!(
        current.subscribe_v2(1, CH, at(epoch, 12)),
        recovered(1, epoch, 12, 0)
    );

    // Recovered or not, every subscription is made: live from 13, nothing else.
    publish_numbered(&mut publisher, CH, 13..=13);
    for c in [&mut far, &mut edge, &mut stranger, &mut ahead, &mut current] {
        c.expect_numbered(CH, epoch, 13);
        c.sync();
    }

    // A restarted server (the in-memory engine keeps nothing) has a new
    // epoch: the old position is EPOCH_CHANGED, numbering restarts at 1.
    drop((far, edge, stranger, ahead, current, publisher));
    drop(server);
    server = Server::start(&["--app", "pubsub", "--history-size", "5"]);
    let mut returning = server.open_v2(0);
    let reply = returning.subscribe_v2(1, CH, at(epoch, 13));
    assert_ne!(reply.epoch, epoch, "the restarted server reused the epoch");
    assert_ne!(reply.epoch, 0);
    assert_eq!(
        reply,
        not_recovered(1, RecoveryReason::EpochChanged, reply.epoch, 0)
    );
    let mut publisher = server.open_v2(0);
    publish_numbered(&mut publisher, CH, 1..=1);
    returning.expect_numbered(CH, reply.epoch, 1);
    returning.sync();
}

/// §7.3: a stream without subscription or publication for --history-ttl-ms
/// is forgotten and made again with a new epoch; a subscribed one keeps its
/// epoch, and its expired publications make a position before them
/// TOO_FAR_BEHIND.
#[test]
fn an_idle_stream_is_forgotten_after_the_ttl_and_a_subscribed_one_is_not() {
    let server = Server::start(&[
        "--app",
        "pubsub",
        "--history-ttl-ms",
        "300",
        "--tick-ms",
        "10",
        "--metrics",
        "127.0.0.1:0",
    ]);
    let mut watcher = server.open_v2(0);
    let kept = watcher.subscribe_v2(1, b"kept", None).epoch;
    let mut publisher = server.open_v2(0);
    publish_numbered(&mut publisher, b"kept", 1..=1);
    watcher.expect_numbered(b"kept", kept, 1);
    // Published after "kept"'s publication: when "idle" is forgotten, that
    // one has been held longer than the TTL too.
    publisher.publish_v2(1, b"idle", &numbered_body(1));
    let idle = publisher.expect_publish_ack(1).epoch;

    server.wait_metric("tether_history_streams_forgotten_total", 1);
    assert_eq!(server.metric("tether_history_streams"), 1);
    assert_eq!(server.metric("tether_history_entries"), 0);

    let mut back = server.open_v2(0);
    let reply = back.subscribe_v2(1, b"idle", at(idle, 1));
    assert_ne!(
        reply.epoch, idle,
        "a forgotten stream comes back with a new epoch"
    );
    assert_eq!(
        reply,
        not_recovered(1, RecoveryReason::EpochChanged, reply.epoch, 0)
    );
    assert_eq!(
        back.subscribe_v2(2, b"kept", at(kept, 0)),
        not_recovered(2, RecoveryReason::TooFarBehind, kept, 1),
        "publication 1 of the subscribed stream has expired"
    );
    assert_eq!(
        back.subscribe_v2(3, b"kept", at(kept, 1)),
        recovered(3, kept, 1, 0),
        "the subscribed stream kept its epoch and top"
    );
    back.sync();
    watcher.sync();
}

/// §7.3 "History off": streams are still numbered and replies carry epoch
/// and top, but only the position (epoch, top) is recovered.
#[test]
fn with_history_off_only_the_top_is_recovered() {
    let server = Server::start(&["--app", "pubsub", "--history-size", "0"]);
    let mut publisher = server.open_v2(0);
    publisher.publish_v2(1, CH, &numbered_body(1));
    let epoch = publisher.expect_publish_ack(1).epoch;
    publish_numbered(&mut publisher, CH, 2..=3);
    let mut c = server.open_v2(0);
    assert_eq!(
        c.subscribe_v2(1, CH, at(epoch, 3)),
        recovered(1, epoch, 3, 0)
    );
    assert_eq!(
        c.subscribe_v2(2, CH, at(epoch, 2)),
        not_recovered(2, RecoveryReason::TooFarBehind, epoch, 3)
    );
    assert_eq!(c.subscribe_v2(3, CH, None), subscribed(3, epoch, 3));
    publish_numbered(&mut publisher, CH, 4..=4);
    c.expect_numbered(CH, epoch, 4);
    c.sync();
}
