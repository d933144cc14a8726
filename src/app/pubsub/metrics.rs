//! The pub/sub app's metrics: sessions, channels, fan-out, and the v2
//! streams' history and recoveries, written from tables so each family is
//! one line here.

use super::PubsubState;
use crate::exposition::Exposition;

/// Appends the pub/sub families to the exposition.
pub(super) fn write(s: &PubsubState, out: &mut Exposition) {
    let stats = s.stats();
    let streams = s.stream_stats();
    let gauges = [
        (
            "tether_sessions",
            "Sessions held (attached or detached).",
            s.session_count(),
        ),
        (
            "tether_sessions_detached",
            "Sessions waiting for a resume.",
            s.detached_count(),
        ),
        (
            "tether_channels",
            "Channels with at least one subscriber.",
            s.channel_count(),
        ),
        (
            "tether_subscriptions",
            "Subscriptions over all sessions.",
            s.subscription_count(),
        ),
        (
            "tether_history_streams",
            "Channel streams held (epoch, top offset and history).",
            streams.streams,
        ),
        (
            "tether_history_entries",
            "Publications held in histories for recovery.",
            streams.held,
        ),
        (
            "tether_history_bytes",
            "Bytes counted against --history-memory (publications plus overheads).",
            streams.memory,
        ),
    ];
    for (name, help, value) in gauges {
        out.gauge(name, help, value as u64);
    }
    let counters = [
        (
            "tether_sessions_resumed_total",
            "Sessions re-attached by HELLO RESUME.",
            stats.resumed,
        ),
        (
            "tether_sessions_expired_total",
            "Detached sessions dropped after the TTL.",
            stats.expired,
        ),
        (
            "tether_publishes_total",
            "Publications numbered and fanned out (v1 P and v2 PUBLISH).",
            stats.publishes,
        ),
        (
            "tether_publishes_acked_total",
            "v2 PUBLISHes answered with PUBLISH_ACK OK.",
            stats.publishes_acked,
        ),
        (
            "tether_publishes_refused_total",
            "v2 PUBLISHes refused.",
            stats.publishes_refused,
        ),
        (
            "tether_subscribes_refused_total",
            "v2 SUBSCRIBEs refused.",
            stats.subscribes_refused,
        ),
        (
            "tether_deliveries_total",
            "Deliveries sent or queued, one per subscriber per publication.",
            stats.deliveries,
        ),
        (
            "tether_deliveries_dropped_total",
            "Queued deliveries dropped from full session queues.",
            stats.dropped,
        ),
        (
            "tether_history_replayed_total",
            "Publications queued in recovery replays.",
            streams.replayed,
        ),
        (
            "tether_history_evicted_total",
            "Held publications dropped to stay within --history-memory.",
            streams.evicted,
        ),
        (
            "tether_history_expired_total",
            "Held publications dropped after --history-ttl-ms.",
            streams.trimmed_age,
        ),
        (
            "tether_history_streams_forgotten_total",
            "Idle streams forgotten (TTL or memory); their epoch changes.",
            streams.expired + streams.forgotten,
        ),
    ];
    for (name, help, value) in counters {
        out.counter(name, help, value);
    }
    out.labelled_counter(
        "tether_recoveries_total",
        "v2 SUBSCRIBEs with a position, by outcome.",
        "outcome",
        [
            ("recovered", streams.recovered),
            ("epoch_changed", streams.epoch_changed),
            ("too_far_behind", streams.too_far_behind),
        ],
    );
    let (subscribes, publishes) = s.pending_counts();
    out.gauge(
        "tether_engine_pending_subscribes",
        "v2 SUBSCRIBEs waiting for the engine's answer.",
        subscribes as u64,
    );
    out.gauge(
        "tether_engine_pending_publishes",
        "Acknowledged PUBLISHes waiting for the engine's answer.",
        publishes as u64,
    );
    s.engine().write_metrics(out);
}
