//! Streams on a fake clock: plain tick numbers, epochs from a counter.

use super::*;

impl Streams {
    /// Sets the channel's top (its history dropped, as offsets follow the
    /// top), to reach the end of the numbering without 2^64 publishes.
    fn set_top(&mut self, channel: &[u8], top: u64) {
        if let Some(&key) = self.by_channel.get(channel) {
            while !self.streams[key].history.is_empty() {
                self.drop_oldest(key);
            }
            self.streams[key].top = top;
        }
    }
}

/// Epochs 101, 102, … in draw order.
pub(super) fn counter_epochs() -> Box<dyn EpochSource> {
    let mut next = 100;
    Box::new(move || {
        next += 1;
        next
    })
}

pub(super) fn streams(size: usize, ttl_ticks: Tick, memory: usize) -> Streams {
    let limits = HistoryLimits {
        size,
        ttl: Span::from_ticks(ttl_ticks),
        memory,
    };
    Streams::new(limits, counter_epochs())
}

/// A stand-in PUBLICATION of `len` bytes (at least 16): epoch and offset
/// first, so a replay can be read back.
pub(super) fn encoder(len: usize) -> impl FnOnce(u64, u64) -> Bytes {
    move |epoch, offset| {
        let mut v = Vec::with_capacity(len.max(16));
        v.extend_from_slice(&epoch.to_be_bytes());
        v.extend_from_slice(&offset.to_be_bytes());
        v.resize(len.max(16), 0xab);
        Bytes::from(v)
    }
}

/// The (epoch, offset) pairs a replay carries.
pub(super) fn numbered(replay: &[Bytes]) -> Vec<(u64, u64)> {
    replay
        .iter()
        .map(|b| {
            let epoch = u64::from_be_bytes(b[..8].try_into().expect("8 bytes"));
            let offset = u64::from_be_bytes(b[8..16].try_into().expect("8 bytes"));
            (epoch, offset)
        })
        .collect()
}

fn offsets(replay: &[Bytes]) -> Vec<u64> {
    numbered(replay).into_iter().map(|(_, o)| o).collect()
}

fn pos(epoch: u64, offset: u64) -> Option<Position> {
    Some(Position { epoch, offset })
}

/// Plenty: no limit is reached unless a test means to.
const BIG: usize = 1 << 30;

/// Publishes `n` 16-byte publications to `channel` at `now`; the epoch.
fn publish_n(s: &mut Streams, channel: &[u8], n: usize, now: Tick) -> u64 {
    let mut epoch = 0;
    for _ in 0..n {
        epoch = s.publish(channel, now, encoder(16)).epoch;
    }
    epoch
}

#[test]
fn no_position_is_neither_asked_nor_recovered() {
    let mut s = streams(8, 100, BIG);
    let e = publish_n(&mut s, b"news", 3, 0);
    let r = s.subscribe(b"news", None, BIG, 0);
    assert_eq!((r.epoch, r.top), (e, 3));
    assert!(!r.recovery_asked && !r.recovered);
    assert_eq!(r.reason, RecoveryReason::None);
    assert!(r.replay.is_empty());
    assert_eq!(s.stats().recovery_not_asked, 1);
}

#[test]
fn position_at_top_is_recovered_with_nothing_to_replay() {
    let mut s = streams(8, 100, BIG);
    let e = publish_n(&mut s, b"news", 3, 0);
    let r = s.subscribe(b"news", pos(e, 3), BIG, 0);
    assert!(r.recovery_asked && r.recovered);
    assert_eq!(r.reason, RecoveryReason::None);
    assert!(r.replay.is_empty());
}

#[test]
fn position_within_history_replays_what_follows_it_in_order() {
    let mut s = streams(4, 100, BIG);
    let e = publish_n(&mut s, b"news", 6, 0); // holds 3..=6
    let r = s.subscribe(b"news", pos(e, 4), BIG, 0);
    assert!(r.recovery_asked && r.recovered);
    assert_eq!(offsets(&r.replay), [5, 6]);
    assert_eq!(r.replay_bytes, 32);
    // The edge: O = oldest − 1 replays the whole history.
    let r = s.subscribe(b"news", pos(e, 2), BIG, 0);
    assert!(r.recovered);
    assert_eq!(numbered(&r.replay), [(e, 3), (e, 4), (e, 5), (e, 6)]);
    assert_eq!(s.stats().recovered, 2);
    assert_eq!(s.stats().replayed, 6);
}

#[test]
fn position_before_the_history_is_too_far_behind() {
    let mut s = streams(4, 100, BIG);
    let e = publish_n(&mut s, b"news", 6, 0); // holds 3..=6
    let r = s.subscribe(b"news", pos(e, 1), BIG, 0);
    assert!(r.recovery_asked && !r.recovered);
    assert_eq!(r.reason, RecoveryReason::TooFarBehind);
    assert!(r.replay.is_empty());
    assert_eq!((r.epoch, r.top), (e, 6));
    assert_eq!(s.stats().too_far_behind, 1);
}

#[test]
fn position_past_the_top_or_of_another_epoch_is_epoch_changed() {
    let mut s = streams(4, 100, BIG);
    let e = publish_n(&mut s, b"news", 3, 0);
    for position in [pos(e, 4), pos(e, u64::MAX), pos(e + 1, 3), pos(e + 1, 0)] {
        let r = s.subscribe(b"news", position, BIG, 0);
        assert!(r.recovery_asked && !r.recovered, "{position:?}");
        assert_eq!(r.reason, RecoveryReason::EpochChanged, "{position:?}");
        assert!(r.replay.is_empty());
        assert_eq!((r.epoch, r.top), (e, 3));
    }
    assert_eq!(s.stats().epoch_changed, 4);
}

#[test]
fn a_stream_just_made_never_takes_the_positions_epoch() {
    // The source would hand out exactly the epoch the client names.
    let mut draws = vec![7, 0, 7, 9].into_iter();
    let limits = HistoryLimits {
        size: 4,
        ttl: Span::from_ticks(100),
        memory: BIG,
    };
    let mut s = Streams::new(limits, Box::new(move || draws.next().unwrap_or(1)));
    let r = s.subscribe(b"news", pos(7, 0), BIG, 0);
    assert_eq!(r.reason, RecoveryReason::EpochChanged);
    assert_eq!((r.epoch, r.top), (9, 0), "7 and 0 drawn again");
}

#[test]
fn a_replay_beyond_the_budget_is_too_far_behind() {
    let mut s = streams(8, 100, BIG);
    let e = publish_n(&mut s, b"news", 4, 0);
    let r = s.subscribe(b"news", pos(e, 1), 47, 0);
    assert_eq!(r.reason, RecoveryReason::TooFarBehind);
    assert!(r.replay.is_empty());
    let r = s.subscribe(b"news", pos(e, 1), 48, 0);
    assert!(r.recovered);
    assert_eq!(r.replay_bytes, 48);
    // Nothing to replay needs no budget.
    assert!(s.subscribe(b"news", pos(e, 4), 0, 0).recovered);
}

#[test]
fn history_off_numbers_holds_nothing_and_recovers_only_the_top() {
    let mut s = streams(0, 100, BIG);
    let e = publish_n(&mut s, b"news", 3, 0);
    assert_eq!(s.position(b"news"), pos(e, 3));
    assert_eq!((s.stats().held, s.stats().memory), (0, 4 + STREAM_OVERHEAD));
    let r = s.subscribe(b"news", pos(e, 3), BIG, 0);
    assert!(r.recovered && r.replay.is_empty());
    let r = s.subscribe(b"news", pos(e, 2), BIG, 0);
    assert_eq!(r.reason, RecoveryReason::TooFarBehind);
}

#[test]
fn size_trims_the_oldest() {
    let mut s = streams(3, 100, BIG);
    let e = publish_n(&mut s, b"news", 5, 0);
    let stats = s.stats();
    assert_eq!(
        (stats.held, stats.held_bytes, stats.trimmed_size),
        (3, 48, 2)
    );
    assert_eq!(
        s.subscribe(b"news", pos(e, 1), BIG, 0).reason,
        RecoveryReason::TooFarBehind
    );
    assert_eq!(
        offsets(&s.subscribe(b"news", pos(e, 2), BIG, 0).replay),
        [3, 4, 5]
    );
}

#[test]
fn ttl_trims_at_the_edge_never_before() {
    let mut s = streams(8, 10, BIG);
    let e = s.publish(b"news", 0, encoder(16)).epoch;
    s.publish(b"news", 5, encoder(16));
    // Exactly 10 ticks after the first: still held and replayed.
    s.expire(10);
    assert_eq!(s.stats().held, 2);
    let r = s.subscribe(b"news", pos(e, 0), BIG, 10);
    assert_eq!(offsets(&r.replay), [1, 2]);
    // One tick later it is gone, by the trim before the decision alone.
    let r = s.subscribe(b"news", pos(e, 0), BIG, 11);
    assert_eq!(r.reason, RecoveryReason::TooFarBehind);
    assert_eq!(
        offsets(&s.subscribe(b"news", pos(e, 1), BIG, 11).replay),
        [2]
    );
    assert_eq!(s.stats().trimmed_age, 1);
    // And by expire for the second one.
    assert_eq!(s.next_expiry(), Some(16));
    s.expire(15);
    assert_eq!(s.stats().held, 1);
    s.expire(16);
    assert_eq!(s.stats().held, 0);
    let r = s.subscribe(b"news", pos(e, 2), BIG, 16);
    assert!(r.recovered && r.replay.is_empty(), "the top is still known");
}

#[test]
fn memory_evicts_the_oldest_publication_server_wide() {
    // Two streams of 65 bytes, room for three 20-byte publications (each
    // counts its bytes and ENTRY_OVERHEAD).
    let held = 20 + ENTRY_OVERHEAD;
    let mut s = streams(8, 100, 2 * 65 + 3 * held);
    let a = s.publish(b"a", 0, encoder(20)).epoch;
    let b = s.publish(b"b", 0, encoder(20)).epoch;
    s.publish(b"a", 0, encoder(20));
    assert_eq!(s.stats().evicted, 0);
    s.publish(b"b", 0, encoder(20)); // evicts a:1
    s.publish(b"a", 0, encoder(20)); // evicts b:1
    let stats = s.stats();
    assert_eq!(
        (stats.evicted, stats.held, stats.memory),
        (2, 3, 2 * 65 + 3 * held)
    );
    assert_eq!(
        offsets(&s.subscribe(b"a", pos(a, 1), BIG, 0).replay),
        [2, 3]
    );
    assert_eq!(
        s.subscribe(b"a", pos(a, 0), BIG, 0).reason,
        RecoveryReason::TooFarBehind
    );
    assert_eq!(offsets(&s.subscribe(b"b", pos(b, 1), BIG, 0).replay), [2]);
    assert_eq!(
        s.subscribe(b"b", pos(b, 0), BIG, 0).reason,
        RecoveryReason::TooFarBehind
    );
}

#[test]
fn a_publication_too_large_to_hold_alone_leaves_other_streams_histories() {
    // Room for two streams and two publications of 40 bytes in all (each
    // with its ENTRY_OVERHEAD): 40 + 2 × ENTRY_OVERHEAD for publications.
    let mut s = streams(8, 100, 2 * 65 + 40 + 2 * ENTRY_OVERHEAD);
    let a = s.publish(b"a", 0, encoder(20)).epoch;
    let b = s.publish(b"b", 0, encoder(16)).epoch;
    // Alone it would need 137 + ENTRY_OVERHEAD, one byte more than there is.
    let big = s.publish(b"b", 0, encoder(137));
    assert_eq!((big.epoch, big.offset), (b, 2));
    let stats = s.stats();
    assert_eq!(
        (stats.held, stats.evicted, stats.memory),
        (1, 2, 2 * 65 + 20 + ENTRY_OVERHEAD)
    );
    assert_eq!(offsets(&s.subscribe(b"a", pos(a, 0), BIG, 0).replay), [1]);
    let r = s.subscribe(b"b", pos(b, 1), BIG, 0);
    assert_eq!(r.reason, RecoveryReason::TooFarBehind);
    assert!(s.subscribe(b"b", pos(b, 2), BIG, 0).recovered);
}

#[test]
fn with_nothing_held_memory_forgets_idle_streams_longest_idle_first() {
    // History off; room for three one-byte channels' streams.
    let mut s = streams(0, 1000, 3 * 65);
    let first_a = publish_n(&mut s, b"a", 1, 1);
    publish_n(&mut s, b"b", 1, 2);
    publish_n(&mut s, b"c", 1, 3);
    s.subscribe(b"b", None, BIG, 3); // b is longest idle, but subscribed
    publish_n(&mut s, b"d", 1, 4); // a goes
    assert_eq!(s.position(b"a"), None);
    publish_n(&mut s, b"e", 1, 5); // c goes, not b
    assert_eq!(s.position(b"c"), None);
    assert!(s.position(b"b").is_some());
    let stats = s.stats();
    assert_eq!((stats.forgotten, stats.streams, stats.memory), (2, 3, 195));
    // Made again: a new numbering.
    let again = s.publish(b"a", 6, encoder(16));
    assert_ne!(again.epoch, first_a);
    assert_eq!(again.offset, 1);
}

#[test]
fn subscribed_streams_stay_even_above_the_memory_limit() {
    let mut s = streams(4, 1000, 65);
    s.subscribe(b"a", None, BIG, 0);
    s.subscribe(b"b", None, BIG, 0);
    let stats = s.stats();
    assert_eq!((stats.streams, stats.memory, stats.forgotten), (2, 130, 0));
    // Their publications are not held, but still numbered.
    let p = s.publish(b"a", 0, encoder(16));
    assert_eq!((p.offset, s.stats().held), (1, 0));
}

#[test]
fn idle_streams_expire_subscribed_ones_never() {
    let mut s = streams(4, 10, BIG);
    publish_n(&mut s, b"pub", 1, 0);
    s.subscribe(b"sub", None, BIG, 0);
    publish_n(&mut s, b"busy", 1, 0);
    publish_n(&mut s, b"busy", 1, 8);
    assert_eq!(s.next_expiry(), Some(11));
    s.expire(10);
    assert_eq!(s.stats().streams, 3);
    s.expire(11);
    assert_eq!(s.position(b"pub"), None);
    assert!(s.position(b"busy").is_some(), "published at 8");
    s.expire(19);
    assert_eq!(s.position(b"busy"), None);
    s.expire(100_000);
    assert!(s.position(b"sub").is_some());
    assert_eq!(s.next_expiry(), None);
    // Idle from the last unsubscription; a second subscription keeps it.
    s.subscribe(b"sub", None, BIG, 100_000);
    s.unsubscribe(b"sub", 100_000);
    s.expire(100_020);
    assert!(s.position(b"sub").is_some());
    s.unsubscribe(b"sub", 100_020);
    s.unsubscribe(b"sub", 100_020); // one too many: ignored
    s.unsubscribe(b"none", 100_020);
    s.expire(100_030);
    assert!(s.position(b"sub").is_some());
    s.expire(100_031);
    assert_eq!(s.position(b"sub"), None);
    assert_eq!(s.stats().expired, 3);
    assert_eq!(s.stats().memory, 0);
}

#[test]
fn the_epoch_changes_after_a_forget_and_never_otherwise() {
    let mut s = streams(2, 10, 65 + 32);
    let e = s.subscribe(b"a", None, BIG, 0).epoch;
    for t in 0..1000 {
        // Publications trimmed by size, age and memory, time passing.
        let p = s.publish(b"a", t * 3, encoder(16 + (t as usize % 40)));
        assert_eq!((p.epoch, p.offset), (e, t + 1));
        s.expire(t * 3 + 1);
    }
    s.unsubscribe(b"a", 3000);
    s.expire(3010);
    assert_eq!(s.position(b"a"), pos(e, 1000));
    s.expire(3011);
    let r = s.subscribe(b"a", pos(e, 1000), BIG, 3011);
    assert_ne!(r.epoch, e);
    assert_eq!((r.top, r.reason), (0, RecoveryReason::EpochChanged));
}

#[test]
fn a_replay_is_the_historys_own_buffers() {
    let mut s = streams(8, 100, BIG);
    let published: Vec<Published> = (0..3).map(|_| s.publish(b"news", 0, encoder(64))).collect();
    let e = published[0].epoch;
    let first = s.subscribe(b"news", pos(e, 0), BIG, 0);
    let second = s.subscribe(b"news", pos(e, 0), BIG, 0);
    for (i, p) in published.iter().enumerate() {
        assert_eq!(first.replay[i].as_ptr(), p.publication.as_ptr(), "no copy");
        assert_eq!(second.replay[i].as_ptr(), p.publication.as_ptr(), "no copy");
    }
}

#[test]
fn a_top_at_the_end_of_the_numbering_starts_a_new_epoch() {
    let mut s = streams(8, 100, BIG);
    let e = s.subscribe(b"news", None, BIG, 0).epoch;
    s.set_top(b"news", u64::MAX - 1);
    let last = s.publish(b"news", 0, encoder(16));
    assert_eq!((last.epoch, last.offset), (e, u64::MAX));
    let r = s.subscribe(b"news", pos(e, u64::MAX - 1), BIG, 0);
    assert_eq!(numbered(&r.replay), [(e, u64::MAX)]);
    let next = s.publish(b"news", 0, encoder(16));
    assert_ne!(next.epoch, e);
    assert_eq!(next.offset, 1);
    let r = s.subscribe(b"news", pos(e, u64::MAX), BIG, 0);
    assert_eq!(r.reason, RecoveryReason::EpochChanged);
    assert_eq!((r.epoch, r.top), (next.epoch, 1));
    let stats = s.stats();
    assert_eq!((stats.wrapped, stats.held, stats.held_bytes), (1, 1, 16));
}

#[test]
fn time_going_back_is_taken_as_time_standing_still() {
    let mut s = streams(8, 10, BIG);
    let e = s.publish(b"news", 100, encoder(16)).epoch;
    s.publish(b"news", 5, encoder(16));
    // Both count as published at 100: both go at 111.
    s.expire(110);
    assert_eq!(s.stats().held, 2);
    let r = s.subscribe(b"news", pos(e, 0), BIG, 111);
    assert_eq!(r.reason, RecoveryReason::TooFarBehind);
    assert_eq!(s.stats().held, 0);
}

#[test]
fn a_source_of_only_zeros_still_gives_a_valid_epoch() {
    let limits = HistoryLimits {
        size: 1,
        ttl: Span::from_ticks(1),
        memory: BIG,
    };
    let mut s = Streams::new(limits, Box::new(|| 0));
    assert_ne!(s.publish(b"a", 0, encoder(16)).epoch, 0);
    let r = s.subscribe(b"b", pos(1, 0), BIG, 0);
    assert!(r.epoch != 0 && r.epoch != 1);
}

#[path = "streams_model_tests.rs"]
mod model;
