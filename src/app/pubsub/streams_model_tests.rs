//! Streams against a simple model under random sequences of publish,
//! subscribe, unsubscribe, time passing and expire: numbering without gaps,
//! exact replays, the memory limit, and nothing older than the TTL replayed.

use super::*;
use proptest::prelude::*;
use std::collections::BTreeMap;

const CHANNELS: [&[u8]; 4] = [b"a", b"bb", b"ccc", b"dddd"];

/// Which position a SUBSCRIBE carries.
#[derive(Debug, Clone)]
enum Choice {
    None,
    /// The stream's epoch (if it has a stream), at its top plus this much (at least 0).
    Current(i64),
    /// An epoch the counter never draws, at this offset.
    Other(u64),
}

#[derive(Debug, Clone)]
enum Op {
    Publish {
        channel: usize,
        len: usize,
    },
    Subscribe {
        channel: usize,
        choice: Choice,
        budget: usize,
    },
    Unsubscribe(usize),
    Advance(Tick),
    Expire,
}

fn op() -> impl Strategy<Value = Op> {
    let choice = prop_oneof![
        Just(Choice::None),
        (-8i64..=2).prop_map(Choice::Current),
        (0u64..10).prop_map(Choice::Other),
    ];
    prop_oneof![
        4 => (0..4usize, 16..80usize).prop_map(|(channel, len)| Op::Publish { channel, len }),
        3 => (0..4usize, choice, prop_oneof![0..200usize, Just(BIG)])
            .prop_map(|(channel, choice, budget)| Op::Subscribe { channel, choice, budget }),
        2 => (0..4usize).prop_map(Op::Unsubscribe),
        2 => (0..15 as Tick).prop_map(Op::Advance),
        1 => Just(Op::Expire),
    ]
}

/// What the model knows of a stream: its numbering, every publication of
/// the current epoch (offset, tick, length), and its subscriptions.
#[derive(Debug)]
struct Model {
    epoch: u64,
    top: u64,
    published: Vec<(u64, Tick, usize)>,
    subscribers: usize,
    idle_since: Tick,
}

impl Model {
    fn new(epoch: u64, now: Tick) -> Self {
        Model {
            epoch,
            top: 0,
            published: Vec::new(),
            subscribers: 0,
            idle_since: now,
        }
    }
}

fn check_against_model(limits: HistoryLimits, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let mut s = Streams::new(limits, counter_epochs());
    let ttl = limits.ttl.ticks();
    let mut model: BTreeMap<&[u8], Model> = BTreeMap::new();
    let mut now: Tick = 0;
    for op in ops {
        let before = s.stats();
        match op {
            Op::Publish { channel, len } => {
                let ch = CHANNELS[channel];
                let p = s.publish(ch, now, encoder(len));
                prop_assert_eq!(
                    numbered(std::slice::from_ref(&p.publication)),
                    [(p.epoch, p.offset)]
                );
                let m = model.entry(ch).or_insert_with(|| Model::new(p.epoch, now));
                // Same numbering, next offset: no gap, no repeat.
                prop_assert_eq!((p.epoch, p.offset), (m.epoch, m.top + 1));
                m.top = p.offset;
                m.published.push((p.offset, now, len));
                m.idle_since = now;
            }
            Op::Subscribe {
                channel,
                choice,
                budget,
            } => {
                let ch = CHANNELS[channel];
                // A stream may be made by a SUBSCRIBE with or without a position.
                let position = match choice {
                    Choice::None => None,
                    Choice::Current(d) => model.get(ch).map(|m| Position {
                        epoch: m.epoch,
                        offset: (m.top as i64 + d).max(0) as u64,
                    }),
                    Choice::Other(offset) => Some(Position { epoch: 1, offset }),
                };
                let r = s.subscribe(ch, position, budget, now);
                let m = model.entry(ch).or_insert_with(|| Model::new(r.epoch, now));
                prop_assert_eq!((r.epoch, r.top), (m.epoch, m.top));
                m.subscribers += 1;
                check_recovery(&r, position, m, limits, budget, now, &before)?;
            }
            Op::Unsubscribe(channel) => {
                let ch = CHANNELS[channel];
                s.unsubscribe(ch, now);
                if let Some(m) = model.get_mut(ch) {
                    if m.subscribers > 0 {
                        m.subscribers -= 1;
                        if m.subscribers == 0 {
                            m.idle_since = now;
                        }
                    }
                }
            }
            Op::Advance(dt) => now += dt,
            Op::Expire => {
                s.expire(now);
                for (ch, m) in &model {
                    if m.subscribers == 0 && m.idle_since + ttl < now {
                        prop_assert_eq!(s.position(ch), None, "idle past the TTL");
                    }
                }
                prop_assert!(s.next_expiry().is_none_or(|t| t > now));
            }
        }
        // The streams are the model's, and each went for a reason.
        let mut gone = 0;
        let mut result = Ok(());
        model.retain(|ch, m| match s.position(ch) {
            None => {
                gone += 1;
                if m.subscribers > 0 {
                    result = Err(TestCaseError::fail("a subscribed stream was forgotten"));
                }
                false
            }
            Some(p) => {
                if p != (Position {
                    epoch: m.epoch,
                    offset: m.top,
                }) {
                    result = Err(TestCaseError::fail(format!("{p:?} but model {m:?}")));
                }
                true
            }
        });
        result?;
        let stats = s.stats();
        prop_assert_eq!(
            gone,
            (stats.expired - before.expired) + (stats.forgotten - before.forgotten)
        );
        prop_assert_eq!(stats.streams, model.len());
        let overheads: usize = model.keys().map(|ch| ch.len() + STREAM_OVERHEAD).sum();
        prop_assert_eq!(
            stats.memory,
            stats.held_bytes + stats.held * ENTRY_OVERHEAD + overheads
        );
        prop_assert!(stats.held <= limits.size * model.len());
        let all_subscribed = model.values().all(|m| m.subscribers > 0);
        prop_assert!(
            stats.memory <= limits.memory || (stats.held == 0 && all_subscribed),
            "memory {} over {}",
            stats.memory,
            limits.memory
        );
    }
    Ok(())
}

/// The §7.4 table, with the model as the oracle.
fn check_recovery(
    r: &Recovery,
    position: Option<Position>,
    m: &Model,
    limits: HistoryLimits,
    budget: usize,
    now: Tick,
    before: &StreamStats,
) -> Result<(), TestCaseError> {
    prop_assert_eq!(r.recovery_asked, position.is_some());
    let Some(Position { epoch, offset }) = position else {
        prop_assert!(!r.recovered && r.replay.is_empty());
        prop_assert_eq!(r.reason, RecoveryReason::None);
        return Ok(());
    };
    if epoch != r.epoch || offset > r.top {
        prop_assert!(!r.recovered && r.replay.is_empty());
        prop_assert_eq!(r.reason, RecoveryReason::EpochChanged);
        return Ok(());
    }
    let missed: Vec<_> = m.published.iter().filter(|p| p.0 > offset).collect();
    prop_assert_eq!(missed.len() as u64, r.top - offset);
    let bytes: usize = missed.iter().map(|p| p.2).sum();
    if r.recovered {
        prop_assert_eq!(r.reason, RecoveryReason::None);
        let expected: Vec<_> = missed.iter().map(|p| (r.epoch, p.0)).collect();
        prop_assert_eq!(numbered(&r.replay), expected);
        prop_assert_eq!(r.replay_bytes, bytes);
        prop_assert!(bytes <= budget);
        for &&(o, tick, _) in &missed {
            prop_assert!(
                now - tick <= limits.ttl.ticks(),
                "offset {o} replayed past the TTL"
            );
        }
    } else {
        prop_assert!(r.replay.is_empty());
        prop_assert_eq!(r.reason, RecoveryReason::TooFarBehind);
        // Held publications go only by size, age or memory.
        let by_size = missed.len() > limits.size;
        let by_age = missed.iter().any(|p| now - p.1 > limits.ttl.ticks());
        let by_memory = before.evicted > 0;
        prop_assert!(by_size || by_age || by_memory || bytes > budget);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn matches_a_simple_model(
        size in 0usize..6,
        ttl in 1 as Tick..30,
        memory in prop_oneof![150usize..3000, Just(BIG)],
        ops in prop::collection::vec(op(), 1..200),
    ) {
        let limits = HistoryLimits { size, ttl: Span::from_ticks(ttl), memory };
        check_against_model(limits, ops)?;
    }
}
