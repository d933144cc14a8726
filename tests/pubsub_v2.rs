//! `--app pubsub` protocol v2 end to end (docs/protocol.md §7), over the real
//! binary and real loopback sockets: the §7.9 flow, recovery from a position
//! and its failures (§7.4), publications racing recoveries (§7.5), v1 and v2
//! clients on one channel, version mix-ups and request errors, replays above
//! `--max-output`, v2 sessions (§7.7) and the history metrics.
//!
//! Deterministic: PING/PONG round trips (`Client::sync`) are the barriers, a
//! publication's offset and body say which one it is, and the few waits for
//! what the server does on its own time (a TTL) poll its metrics, bounded.
//!
//! Split by concept into `tests/pubsub_v2/`; what several of them use is here.

mod common;

#[path = "pubsub_v2/flow.rs"]
mod flow;
#[path = "pubsub_v2/limits.rs"]
mod limits;
#[path = "pubsub_v2/metrics.rs"]
mod metrics;
#[path = "pubsub_v2/race.rs"]
mod race;
#[path = "pubsub_v2/recovery.rs"]
mod recovery;
#[path = "pubsub_v2/versions.rs"]
mod versions;

use std::ops::RangeInclusive;

use common::{numbered_body, Client};
use tether::app::pubsub::ops_v2::{Position, RecoveryReason, Status, SubscribeReply};

/// The channel most tests use.
const CH: &[u8] = b"news";

/// Publishes [`numbered_body`]`(o)` on `channel` for every `o` in `offsets`,
/// unacknowledged, then waits for the server to have handled them all. The
/// offsets are what the stream numbers them only when this is the channel's
/// only publisher and `offsets` starts at its top + 1.
fn publish_numbered(publisher: &mut Client, channel: &[u8], offsets: RangeInclusive<u64>) {
    for o in offsets {
        publisher.publish_v2(0, channel, &numbered_body(o));
    }
    publisher.sync();
}

/// Some(position (`epoch`, `offset`)).
fn at(epoch: u64, offset: u64) -> Option<Position> {
    Some(Position { epoch, offset })
}

/// An epoch that is not `epoch` (and not 0).
fn other_epoch(epoch: u64) -> u64 {
    match epoch ^ 0x5a5a_5a5a_0000_0001 {
        0 => 1,
        e => e,
    }
}

/// The SUBSCRIBED a SUBSCRIBE without a position gets.
fn subscribed(request_id: u32, epoch: u64, top: u64) -> SubscribeReply {
    SubscribeReply {
        request_id,
        status: Status::Ok,
        recovery_asked: false,
        recovered: false,
        reason: RecoveryReason::None,
        epoch,
        top,
        replay: 0,
    }
}

/// The SUBSCRIBED of a recovered position: `replay` publications follow.
fn recovered(request_id: u32, epoch: u64, top: u64, replay: u32) -> SubscribeReply {
    SubscribeReply {
        recovery_asked: true,
        recovered: true,
        replay,
        ..subscribed(request_id, epoch, top)
    }
}

/// The SUBSCRIBED of a position not recovered, for `reason`.
fn not_recovered(request_id: u32, reason: RecoveryReason, epoch: u64, top: u64) -> SubscribeReply {
    SubscribeReply {
        recovery_asked: true,
        reason,
        ..subscribed(request_id, epoch, top)
    }
}
