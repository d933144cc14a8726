//! The Redis engine's metric families: connection state, commands in
//! flight, refused publishes, reconnects, feed gaps and the PING round trip.

use super::RedisEngine;
use crate::engine::redis::RedisConn;
use crate::exposition::Exposition;

impl RedisEngine {
    /// The engine's metric families.
    pub fn write_metrics(&self, out: &mut Exposition) {
        let in_flight = self.conn.as_ref().map_or(0, RedisConn::pending);
        out.gauge(
            "tether_engine_connected",
            "1 while the engine's Redis connection is ready, else 0.",
            u64::from(self.ready),
        );
        out.gauge(
            "tether_engine_commands_in_flight",
            "Redis commands queued or awaiting their reply.",
            in_flight as u64,
        );
        out.counter(
            "tether_engine_publishes_refused_total",
            "Publishes refused UNAVAILABLE by the engine (Redis down, full, or outcome unknown).",
            self.stats.publishes_refused,
        );
        out.counter(
            "tether_engine_reconnects_total",
            "Connections to Redis made after the first.",
            self.stats.reconnects,
        );
        out.counter(
            "tether_engine_feed_gaps_total",
            "Times local subscribers of a channel missed publications while Redis was away.",
            self.feeds.gaps,
        );
        if let Some(rtt) = self.conn.as_ref().and_then(|c| c.stats().rtt) {
            out.gauge(
                "tether_engine_rtt_us",
                "Round-trip time of the last Redis PING, microseconds.",
                u64::try_from(rtt.as_micros()).unwrap_or(u64::MAX),
            );
        }
    }
}
