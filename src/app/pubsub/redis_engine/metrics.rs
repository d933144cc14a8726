//! The Redis engine's metric families: connection state, commands in
//! flight, refused publishes, reconnects, feed gaps and the PING round
//! trip, over every server's connection (one standalone, one per master
//! in a cluster), and the cluster's slot map refreshes and redirects.

use super::RedisEngine;
use crate::engine::redis::RedisConn;
use crate::exposition::Exposition;

impl RedisEngine {
    /// The engine's metric families.
    pub fn write_metrics(&self, out: &mut Exposition) {
        let conns = || self.shards.iter().filter_map(|s| s.conn.as_ref());
        let in_flight: usize = conns().map(RedisConn::pending).sum();
        let known = self.shards.iter().filter(|s| s.in_map);
        let (known, ready) = known.fold((0u64, 0u64), |(k, r), s| (k + 1, r + u64::from(s.ready)));
        out.gauge(
            "tether_engine_connected",
            "1 while every engine Redis connection (one per server or master) is ready, else 0.",
            u64::from(ready == known),
        );
        out.gauge(
            "tether_engine_servers_connected",
            "Redis servers in use (cluster: the slot map's masters) the engine is connected to.",
            ready,
        );
        out.gauge(
            "tether_engine_servers_known",
            "Redis servers in use (cluster: the slot map's masters; the seeds before it is read).",
            known,
        );
        out.gauge(
            "tether_engine_commands_in_flight",
            "Redis commands queued or awaiting their reply, over every connection.",
            in_flight as u64,
        );
        out.counter(
            "tether_engine_publishes_refused_total",
            "Publishes refused UNAVAILABLE by the engine (Redis down, full, or outcome unknown).",
            self.stats.publishes_refused,
        );
        out.counter(
            "tether_engine_reconnects_total",
            "Connections to Redis made after the first, over every server.",
            self.stats.reconnects,
        );
        out.counter(
            "tether_engine_feed_gaps_total",
            "Times local subscribers of a channel missed publications while Redis was away.",
            self.feeds.gaps,
        );
        if self.cluster.is_some() {
            out.counter(
                "tether_engine_slot_map_refreshes_total",
                "CLUSTER SLOTS sent to read the Redis Cluster's slot map.",
                self.stats.slot_map_refreshes,
            );
            out.counter(
                "tether_engine_redirects_total",
                "MOVED and ASK replies met (a command sent again to another master).",
                self.stats.redirects,
            );
        }
        if let Some(rtt) = conns().filter_map(|c| c.stats().rtt).max() {
            out.gauge(
                "tether_engine_rtt_us",
                "Round-trip time of the last Redis PING, microseconds (the slowest connection's).",
                u64::try_from(rtt.as_micros()).unwrap_or(u64::MAX),
            );
        }
    }
}
