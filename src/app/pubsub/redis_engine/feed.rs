//! The node's live feed of each channel it is subscribed to in Redis: the
//! last publication forwarded to the app, so a repeat is dropped and, after
//! a reconnect, the publications missed while the connection was down are
//! read from the stream and forwarded in order before the live ones
//! (catch-up), keeping every local subscriber contiguous.
//!
//! A catch-up reads from the last forwarded position on the new connection
//! after its SUBSCRIBE, so (RESP3, one connection) the live publications
//! that come before the read's reply are at or below its top: they are
//! kept (bounded) and only those above the top are forwarded after the
//! replay. When the read cannot cover the gap (the history moved on, the
//! epoch changed), the local subscribers miss those publications; that is
//! counted and logged (`gaps`), and the feed goes on from the live ones.

use std::collections::HashMap;

use bytes::Bytes;

use super::super::engine::EngineEvent;
use super::super::ops_v2::{Position, Publication};
use crate::engine::redis::scripts::parse_publication;
use crate::engine::redis::{decide, StreamRead};
use crate::protocol::encode_message;

/// Live publications kept per channel during a catch-up; beyond, the
/// catch-up gives up on them (counted as a gap).
pub const MAX_KEPT: usize = 4096;

#[derive(Debug, Default)]
struct Feed {
    /// (epoch, offset) of the last publication forwarded.
    last: Option<(u64, u64)>,
    /// During a catch-up: the live publications that came meanwhile.
    kept: Option<Vec<(Publication, Bytes)>>,
    /// More than [`MAX_KEPT`] came during the catch-up.
    overflowed: bool,
}

/// Every subscribed channel's feed.
#[derive(Debug, Default)]
pub(super) struct Feeds {
    feeds: HashMap<Bytes, Feed>,
    /// Publications local subscribers missed (catch-up impossible or overflowed).
    pub gaps: u64,
}

impl Feeds {
    /// The node no longer follows `channel`.
    pub fn remove(&mut self, channel: &[u8]) {
        self.feeds.remove(channel);
    }

    /// A live publication (its pushed `payload`): the event to forward, or
    /// None when it is a repeat or kept for a catch-up.
    pub fn live(
        &mut self,
        p: Publication,
        payload: &Bytes,
        max_frame: usize,
    ) -> Option<EngineEvent> {
        let feed = self.feeds.entry(p.channel.clone()).or_default();
        if let Some(kept) = feed.kept.as_mut() {
            if kept.len() >= MAX_KEPT {
                feed.overflowed = true;
            } else {
                kept.push((p, payload.clone()));
            }
            return None;
        }
        if feed
            .last
            .is_some_and(|(epoch, offset)| epoch == p.epoch && p.offset <= offset)
        {
            return None;
        }
        feed.last = Some((p.epoch, p.offset));
        Some(event(p, payload, max_frame))
    }

    /// A read of `channel` says its stream is at (`epoch`, `top`): every
    /// live publication up to there came before the read's reply (one
    /// connection), so the feed is at least there; a catch-up after a
    /// reconnect starts from it even if nothing was published since.
    pub fn seen(&mut self, channel: &Bytes, epoch: u64, top: u64) {
        let feed = self.feeds.entry(channel.clone()).or_default();
        if feed.kept.is_some() {
            return;
        }
        match feed.last {
            Some((e, o)) if e == epoch && o >= top => {}
            _ => feed.last = Some((epoch, top)),
        }
    }

    /// A reconnect: the position to read `channel` from, if anything was
    /// forwarded before; live publications are kept until [`Feeds::caught_up`].
    pub fn start_catch_up(&mut self, channel: &Bytes) -> Option<Position> {
        let feed = self.feeds.get_mut(channel)?;
        let (epoch, offset) = feed.last?;
        feed.kept = Some(Vec::new());
        feed.overflowed = false;
        Some(Position { epoch, offset })
    }

    /// The catch-up read of `channel` from `position` answered (`None`: it
    /// failed): the missed publications, then the kept ones above them.
    pub fn caught_up(
        &mut self,
        channel: &Bytes,
        position: Position,
        read: Option<StreamRead>,
        max_frame: usize,
    ) -> Vec<EngineEvent> {
        let Some(feed) = self.feeds.get_mut(channel) else {
            return Vec::new();
        };
        let kept = feed.kept.take().unwrap_or_default();
        let mut events = Vec::new();
        let mut gap = feed.overflowed;
        match read.map(|read| decide(Some(position), read)) {
            Some(d) if d.recovered => {
                for payload in &d.replay {
                    if let Ok(p) = parse_publication(payload) {
                        events.push(event(p, payload, max_frame));
                    }
                }
                feed.last = Some((d.epoch, d.top));
            }
            Some(d) => {
                gap = gap || d.top > position.offset || d.epoch != position.epoch;
            }
            None => gap = true,
        }
        if gap {
            self.gaps += 1;
            log::warn!(
                "redis engine: local subscribers of {:?} missed publications while Redis was away",
                String::from_utf8_lossy(channel)
            );
        }
        for (p, payload) in kept {
            let repeat = feed
                .last
                .is_some_and(|(epoch, offset)| epoch == p.epoch && p.offset <= offset);
            if !repeat {
                feed.last = Some((p.epoch, p.offset));
                events.push(event(p, &payload, max_frame));
            }
        }
        events
    }
}

/// The app's event for publication `p` pushed or stored as `payload`.
fn event(p: Publication, payload: &Bytes, max_frame: usize) -> EngineEvent {
    EngineEvent::Publication {
        channel: p.channel,
        epoch: p.epoch,
        offset: p.offset,
        publication: encode_message(payload, max_frame),
        body: p.body,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::pubsub::ops_v2::encode_publication;

    const E: u64 = 9;

    fn pushed(epoch: u64, offset: u64) -> (Publication, Bytes) {
        let payload = encode_publication(epoch, offset, b"c", format!("m{offset}").as_bytes());
        (parse_publication(&payload).expect("a publication"), payload)
    }

    fn offsets(events: &[EngineEvent]) -> Vec<(u64, u64)> {
        events
            .iter()
            .map(|e| match e {
                EngineEvent::Publication { epoch, offset, .. } => (*epoch, *offset),
                other => panic!("not a publication: {other:?}"),
            })
            .collect()
    }

    fn live(feeds: &mut Feeds, epoch: u64, offset: u64) -> Option<(u64, u64)> {
        let (p, payload) = pushed(epoch, offset);
        let event = feeds.live(p, &payload, 65535)?;
        Some(offsets(&[event])[0])
    }

    fn read(epoch: u64, top: u64, oldest: u64, from: u64) -> StreamRead {
        StreamRead {
            epoch,
            top,
            oldest,
            replay: (from + 1..=top).map(|o| pushed(epoch, o).1).collect(),
        }
    }

    #[test]
    fn repeats_are_dropped() {
        let mut feeds = Feeds::default();
        assert_eq!(live(&mut feeds, E, 1), Some((E, 1)));
        assert_eq!(live(&mut feeds, E, 1), None);
        assert_eq!(live(&mut feeds, E, 2), Some((E, 2)));
        // A new epoch is forwarded whatever its offset.
        assert_eq!(live(&mut feeds, E + 1, 1), Some((E + 1, 1)));
    }

    #[test]
    fn a_catch_up_forwards_the_missed_then_the_kept_above_the_top() {
        let mut feeds = Feeds::default();
        let channel = Bytes::from_static(b"c");
        live(&mut feeds, E, 3);
        let position = feeds.start_catch_up(&channel).expect("a position");
        assert_eq!(
            position,
            Position {
                epoch: E,
                offset: 3
            }
        );
        // Live ones during the catch-up: 5 and 6 at or below the read's top,
        // 7 above it.
        assert_eq!(live(&mut feeds, E, 5), None);
        assert_eq!(live(&mut feeds, E, 6), None);
        assert_eq!(live(&mut feeds, E, 7), None);
        let events = feeds.caught_up(&channel, position, Some(read(E, 6, 1, 3)), 65535);
        assert_eq!(offsets(&events), [(E, 4), (E, 5), (E, 6), (E, 7)]);
        assert_eq!(feeds.gaps, 0);
        assert_eq!(live(&mut feeds, E, 7), None, "a repeat after the catch-up");
    }

    #[test]
    fn an_impossible_catch_up_is_a_gap_and_the_feed_goes_on() {
        let mut feeds = Feeds::default();
        let channel = Bytes::from_static(b"c");
        live(&mut feeds, E, 3);
        let position = feeds.start_catch_up(&channel).expect("a position");
        assert_eq!(live(&mut feeds, E + 1, 1), None);
        // Redis lost the stream: a new epoch.
        let events = feeds.caught_up(&channel, position, Some(read(E + 1, 1, 1, 1)), 65535);
        assert_eq!(offsets(&events), [(E + 1, 1)]);
        assert_eq!(feeds.gaps, 1);
        // A failed read is a gap too.
        let position = feeds.start_catch_up(&channel).expect("a position");
        assert!(feeds.caught_up(&channel, position, None, 65535).is_empty());
        assert_eq!(feeds.gaps, 2);
    }

    #[test]
    fn a_read_seeds_the_position_a_catch_up_starts_from() {
        let mut feeds = Feeds::default();
        let channel = Bytes::from_static(b"c");
        assert_eq!(feeds.start_catch_up(&channel), None, "nothing followed");
        feeds.seen(&channel, E, 12);
        assert_eq!(
            feeds.start_catch_up(&channel),
            Some(Position {
                epoch: E,
                offset: 12
            })
        );
    }
}
