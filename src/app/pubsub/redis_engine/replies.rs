//! What the Redis connection answers: script replies (publish
//! acknowledgements, recovery reads, catch-up reads) and pushed
//! publications, turned into the app's [`EngineEvent`]s.

use bytes::Bytes;

use super::super::engine::EngineEvent;
use super::super::ops_v2::{Position, RecoveryReason, Status};
use super::super::streams::{Published, Recovery};
use super::{QueuedRead, RedisEngine, Sent};
use crate::engine::redis::{decide, RedisStreams, Token, Value};
use crate::protocol::encode_message;

impl RedisEngine {
    /// The reply to the command sent under `token` on server `shard`.
    pub(super) fn on_reply(&mut self, token: Token, value: &Value, shard: usize) {
        match self.sent.remove(&token) {
            Some(Sent::Publish { token: 0, .. })
            | Some(Sent::Other(_))
            | Some(Sent::Subscribe { .. })
            | None => {}
            Some(Sent::Slots) => self.on_slots(Some(value), shard),
            Some(Sent::Publish { token: t, .. }) => match RedisStreams::published(value) {
                Ok(p) => self.events.push_back(EngineEvent::Published {
                    token: t,
                    result: Ok(Published {
                        epoch: p.epoch,
                        offset: p.offset,
                        publication: Bytes::new(),
                    }),
                }),
                Err(e) => {
                    // The script ran, but its numbering cannot be read.
                    log::warn!("redis engine: {}", e.0);
                    self.publish_failed(t, true);
                }
            },
            Some(Sent::CatchUp { channel, .. }) if self.catch_ups.get(&channel) != Some(&token) => {
            } // an older one
            Some(Sent::CatchUp { channel, position }) => {
                self.catch_ups.remove(&channel);
                let read = RedisStreams::stream_read(value)
                    .map_err(|e| log::warn!("redis engine: {}", e.0))
                    .ok();
                let events = self
                    .feeds
                    .caught_up(&channel, position, read, self.max_frame);
                self.events.extend(events);
            }
            Some(Sent::Read(QueuedRead {
                channel,
                token,
                position,
                budget,
                ..
            })) => {
                let result = match RedisStreams::stream_read(value) {
                    Ok(read) => {
                        if self.interest.contains_key(&channel) {
                            self.feeds.seen(&channel, read.epoch, read.top);
                        }
                        Ok(self.recovery(position, budget, read))
                    }
                    Err(e) => {
                        log::warn!("redis engine: {}", e.0);
                        Err(Status::Unavailable)
                    }
                };
                self.events
                    .push_back(EngineEvent::Subscribed { token, result });
            }
        }
    }

    /// The §7.4 decision over a read, framed for the subscriber and within
    /// its replay budget (beyond: not recovered, TOO_FAR_BEHIND).
    fn recovery(
        &self,
        position: Option<Position>,
        budget: usize,
        read: crate::engine::redis::StreamRead,
    ) -> Recovery {
        let d = decide(position, read);
        let replay: Vec<Bytes> = d
            .replay
            .iter()
            .map(|p| encode_message(p, self.max_frame))
            .collect();
        let replay_bytes: usize = replay.iter().map(Bytes::len).sum();
        let mut recovery = Recovery {
            epoch: d.epoch,
            top: d.top,
            recovery_asked: d.recovery_asked,
            recovered: d.recovered,
            reason: d.reason,
            replay,
            replay_bytes,
        };
        if recovery.recovered && replay_bytes > budget {
            recovery.recovered = false;
            recovery.reason = RecoveryReason::TooFarBehind;
            recovery.replay = Vec::new();
            recovery.replay_bytes = 0;
        }
        recovery
    }

    /// A publish that got no numbering: UNAVAILABLE when it never reached
    /// Redis, OUTCOME_UNKNOWN when it was sent (`ran_maybe`) and may have
    /// been published; never retried either way.
    pub(super) fn publish_failed(&mut self, token: u64, ran_maybe: bool) {
        self.stats.publishes_refused += 1;
        if token != 0 {
            let status = if ran_maybe {
                Status::OutcomeUnknown
            } else {
                Status::Unavailable
            };
            self.events.push_back(EngineEvent::Published {
                token,
                result: Err(status),
            });
        }
    }

    pub(super) fn on_message(&mut self, channel: &[u8], payload: &Bytes) {
        let publication = match self.streams.publication(channel, payload) {
            Ok(p) if self.interest.contains_key(&p.channel) => p,
            Ok(_) => {
                self.stats.dropped_messages += 1;
                return;
            }
            Err(e) => {
                self.stats.dropped_messages += 1;
                log::warn!("redis engine: dropped a pushed message: {}", e.0);
                return;
            }
        };
        if let Some(event) = self.feeds.live(publication, payload, self.max_frame) {
            self.events.push_back(event);
        }
    }
}
