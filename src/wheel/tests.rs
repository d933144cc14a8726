//! Wheel tests on a fake clock: ticks are plain numbers, nothing sleeps.

use std::collections::{BTreeMap, HashSet};

use proptest::prelude::*;

use super::*;

mod cascade;

/// Advances to `now` with no cap and returns what fired, checking invariants.
fn fire(wheel: &mut Wheel<u64>, now: Tick) -> Vec<u64> {
    let mut out = Vec::new();
    let more = wheel.advance(now, usize::MAX, &mut out);
    assert!(!more, "an uncapped advance left work behind");
    wheel.check_invariants();
    out
}

#[test]
fn slots_round_up_to_a_power_of_two_of_at_least_64() {
    assert_eq!(Wheel::<u64>::new(0, 0).slots(), 64);
    assert_eq!(Wheel::<u64>::new(1, 0).slots(), 64);
    assert_eq!(Wheel::<u64>::new(100, 0).slots(), 128);
    assert_eq!(Wheel::<u64>::new(4096, 0).slots(), 4096);
    assert_eq!(Wheel::<u64>::new(usize::MAX, 0).slots(), MAX_SLOTS);
}

#[test]
fn fires_at_its_deadline_and_not_before() {
    let mut wheel = Wheel::new(64, 100);
    wheel.insert(105, 1);
    wheel.insert(110, 2);
    wheel.insert(110, 3);
    for now in 100..105 {
        assert!(fire(&mut wheel, now).is_empty(), "fired early at {now}");
    }
    assert_eq!(fire(&mut wheel, 105), vec![1]);
    assert!(fire(&mut wheel, 109).is_empty());
    assert_eq!(
        fire(&mut wheel, 110),
        vec![2, 3],
        "same tick fires in insertion order"
    );
    assert!(wheel.is_empty());
    assert_eq!(wheel.current_tick(), 110);
}

#[test]
fn deadline_several_revolutions_away_fires_at_its_tick() {
    let mut wheel = Wheel::new(64, 0);
    // All three share slot 5; only the revolution tells them apart.
    wheel.insert(5, 0);
    wheel.insert(3 * 64 + 5, 3);
    wheel.insert(7 * 64 + 5, 7);
    let mut fired_at = Vec::new();
    for now in 1..=8 * 64 {
        for value in fire(&mut wheel, now) {
            fired_at.push((value, now));
        }
    }
    assert_eq!(fired_at, vec![(0, 5), (3, 3 * 64 + 5), (7, 7 * 64 + 5)]);
}

#[test]
fn cancel_returns_the_value_and_it_never_fires() {
    let mut wheel = Wheel::new(64, 0);
    let keep = wheel.insert(10, 1);
    let drop = wheel.insert(10, 2);
    assert_eq!(wheel.len(), 2);
    assert_eq!(wheel.deadline(drop), Some(10));
    assert_eq!(wheel.cancel(drop), Some(2));
    assert_eq!(wheel.deadline(drop), None);
    assert_eq!(wheel.len(), 1);
    wheel.check_invariants();
    assert_eq!(fire(&mut wheel, 1000), vec![1]);
    assert_eq!(wheel.cancel(keep), None, "already fired");
    assert_eq!(wheel.cancel(drop), None, "already cancelled");
}

#[test]
fn stale_id_is_ignored_after_its_node_is_reused() {
    let mut wheel = Wheel::new(64, 0);
    let old = wheel.insert(10, 1);
    assert_eq!(wheel.cancel(old), Some(1));
    let new = wheel.insert(20, 2);
    assert_eq!(new.index, old.index, "the freed node is reused");
    assert_eq!(wheel.cancel(old), None);
    assert_eq!(wheel.len(), 1);

    // Same once the reused entry has fired and the node is reused again.
    assert_eq!(fire(&mut wheel, 20), vec![2]);
    let newer = wheel.insert(30, 3);
    assert_eq!(newer.index, old.index);
    assert_eq!(wheel.cancel(new), None);
    assert_eq!(wheel.cancel(old), None);
    assert_eq!(wheel.cancel(newer), Some(3));

    // An index that was never handed out is stale too.
    let forged = TimerId {
        index: 999,
        generation: 0,
    };
    assert_eq!(wheel.cancel(forged), None);
}

#[test]
fn cap_splits_a_burst_across_calls_without_loss_or_repeat() {
    let mut wheel = Wheel::new(64, 0);
    // Spread over several slots and revolutions, all due by tick 500.
    for value in 0..1000u64 {
        wheel.insert(1 + value % 500, value);
    }
    let mut seen = HashSet::new();
    for call in 0..10 {
        let mut out = Vec::new();
        let more = wheel.advance(500, 100, &mut out);
        wheel.check_invariants();
        assert_eq!(out.len(), 100, "call {call}");
        assert_eq!(more, call < 9, "call {call}");
        for value in out {
            assert!(seen.insert(value), "{value} fired twice");
        }
    }
    assert_eq!(seen.len(), 1000);
    assert!(wheel.is_empty());
    assert_eq!(wheel.current_tick(), 500);
}

#[test]
fn cap_resumes_mid_slot_inside_a_long_jump() {
    let mut wheel = Wheel::new(64, 0);
    for value in 0..500u64 {
        wheel.insert(value * 7 % 3000, value); // some at tick 0: the ready list
    }
    let mut seen = HashSet::new();
    let mut calls = 0;
    loop {
        let mut out = Vec::new();
        let more = wheel.advance(10_000, 7, &mut out);
        wheel.check_invariants();
        assert!(out.len() <= 7);
        seen.extend(out);
        calls += 1;
        if !more {
            break;
        }
    }
    assert_eq!(seen.len(), 500);
    assert_eq!(calls, 500usize.div_ceil(7));
}

#[test]
fn zero_cap_reports_due_work_without_firing() {
    let mut wheel = Wheel::new(64, 0);
    wheel.insert(3, 1);
    let mut out = Vec::new();
    assert!(!wheel.advance(2, 0, &mut out), "nothing due yet");
    assert!(wheel.advance(3, 0, &mut out));
    assert!(out.is_empty());
    assert_eq!(wheel.len(), 1);
}

#[test]
fn overdue_insert_fires_on_an_advance_that_does_not_move_time() {
    let mut wheel = Wheel::new(64, 50);
    wheel.insert(50, 1);
    wheel.insert(7, 2);
    assert_eq!(wheel.next_expiry(), Some(50));
    assert_eq!(fire(&mut wheel, 50), vec![1, 2]);
    // Time never goes back: an older `now` acts as the current tick.
    wheel.insert(40, 3);
    assert_eq!(fire(&mut wheel, 10), vec![3]);
    assert_eq!(wheel.current_tick(), 50);
}

#[test]
fn next_expiry_follows_the_bitmap() {
    let mut wheel = Wheel::new(4096, 0);
    assert_eq!(wheel.next_expiry(), None);
    let far = wheel.insert(4000, 1); // last bitmap words
    assert_eq!(wheel.next_expiry(), Some(4000));
    wheel.insert(70, 2); // second word
    assert_eq!(wheel.next_expiry(), Some(70));
    assert_eq!(wheel.cancel(far), Some(1));
    // Two revolutions away waits in an overflow list: the slots still say 70.
    wheel.insert(2 * 4096 + 3, 3);
    assert_eq!(wheel.next_expiry(), Some(70));
    assert_eq!(fire(&mut wheel, 70), vec![2]);
    // Only an overflow entry left: the start of its revolution, early, never late.
    assert_eq!(wheel.next_expiry(), Some(2 * 4096));
    assert!(fire(&mut wheel, 4096 + 3).is_empty());
    assert_eq!(wheel.next_expiry(), Some(2 * 4096));
    // The last tick before its revolution cascades it into its slot: exact.
    assert!(fire(&mut wheel, 2 * 4096 - 1).is_empty());
    assert_eq!(wheel.next_expiry(), Some(2 * 4096 + 3));
    // Overdue: the current tick.
    wheel.insert(100, 4);
    assert_eq!(wheel.current_tick(), 2 * 4096 - 1);
    assert_eq!(wheel.next_expiry(), Some(2 * 4096 - 1));
    assert_eq!(fire(&mut wheel, 2 * 4096 + 3), vec![4, 3]);
    assert_eq!(wheel.next_expiry(), None);
}

#[test]
fn next_expiry_search_wraps_past_the_end_of_the_overflow_lists() {
    let mut wheel = Wheel::new(64, 62 * 64);
    // Revolution 65 is overflow list 1; the search starts at list 63.
    wheel.insert(65 * 64 + 5, 1);
    assert_eq!(wheel.next_expiry(), Some(65 * 64));
    // 64 revolutions further it shares list 1 and is not the earliest.
    wheel.insert(129 * 64 + 5, 2);
    assert_eq!(wheel.next_expiry(), Some(65 * 64));
    assert!(fire(&mut wheel, 65 * 64).is_empty());
    assert_eq!(wheel.next_expiry(), Some(65 * 64 + 5));
    assert_eq!(fire(&mut wheel, 65 * 64 + 5), vec![1]);
    // Left in list 1 by the cascade: found when the search comes round again.
    assert_eq!(wheel.next_expiry(), Some(129 * 64));
    assert_eq!(fire(&mut wheel, 129 * 64 + 5), vec![2]);
}

#[test]
fn next_expiry_is_the_current_tick_when_an_entry_is_overdue() {
    let mut wheel = Wheel::new(64, 1000);
    wheel.insert(5000, 1);
    wheel.insert(999, 2);
    assert_eq!(wheel.next_expiry(), Some(1000));
}

#[test]
fn a_jump_of_ten_revolutions_fires_everything_due() {
    let mut wheel = Wheel::new(64, 0);
    for deadline in 1..=20 * 64u64 {
        wheel.insert(deadline, deadline);
    }
    let mut fired = fire(&mut wheel, 10 * 64);
    fired.sort_unstable();
    assert_eq!(fired, (1..=10 * 64).collect::<Vec<_>>());
    assert_eq!(wheel.len(), 10 * 64);
    assert_eq!(wheel.next_expiry(), Some(10 * 64 + 1));
    assert_eq!(fire(&mut wheel, 10 * 64 + 1), vec![10 * 64 + 1]);
    assert_eq!(fire(&mut wheel, u64::MAX - 1).len(), 10 * 64 - 1);
}

#[test]
fn survives_ticks_near_the_end_of_u64() {
    let mut wheel = Wheel::new(64, u64::MAX - 100);
    wheel.insert(u64::MAX, 1);
    wheel.insert(u64::MAX - 50, 2);
    // Both wait for the last revolution, which starts at u64::MAX - 63: early, not late.
    assert_eq!(wheel.next_expiry(), Some(u64::MAX - 63));
    assert!(fire(&mut wheel, u64::MAX - 64).is_empty());
    assert_eq!(wheel.next_expiry(), Some(u64::MAX - 50));
    assert_eq!(fire(&mut wheel, u64::MAX - 1), vec![2]);
    assert_eq!(fire(&mut wheel, u64::MAX), vec![1]);
    wheel.insert(u64::MAX, 3);
    assert_eq!(wheel.next_expiry(), Some(u64::MAX));
    assert_eq!(fire(&mut wheel, u64::MAX), vec![3]);
}

#[test]
fn nodes_are_reused_instead_of_growing() {
    let mut wheel = Wheel::with_capacity(64, 0, 16);
    for round in 0..100u64 {
        let ids: Vec<_> = (0..16).map(|i| wheel.insert(round * 10 + i, i)).collect();
        for id in ids.into_iter().step_by(2) {
            wheel.cancel(id);
        }
        let _ = fire(&mut wheel, round * 10 + 20);
    }
    assert_eq!(wheel.nodes.len(), 16);
}

const SLOTS: u64 = 64;

#[derive(Debug, Clone)]
pub(super) enum Op {
    /// Insert at the caller's clock plus `offset` (negative: already overdue).
    Insert { offset: i64 },
    /// Cancel a pending entry (`stale == false`) or a dead id (`stale == true`).
    Cancel { pick: usize, stale: bool },
    /// Move the caller's clock by `by` and advance, with an optional cap.
    Advance { by: u64, cap: Option<usize> },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (-8..5 * SLOTS as i64).prop_map(|offset| Op::Insert { offset }),
        2 => (any::<usize>(), any::<bool>()).prop_map(|(pick, stale)| Op::Cancel { pick, stale }),
        3 => (0..3 * SLOTS, prop::option::of(0usize..16))
            .prop_map(|(by, cap)| Op::Advance { by, cap }),
    ]
}

/// Runs `ops` against a wheel starting at `start` and a `BTreeMap` model,
/// checking after every step: nothing fires early, twice, or after a cancel;
/// `advance` says exactly whether due work remains and respects its cap;
/// `len` and `next_expiry` agree with the model. Shared by the proptests here
/// and in `cascade.rs`.
pub(super) fn check_against_model(start: Tick, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let mut wheel = Wheel::new(SLOTS as usize, start);
    let mut now = start; // the caller's clock
    let mut pending: BTreeMap<u64, (Tick, TimerId)> = BTreeMap::new();
    let mut dead: Vec<TimerId> = Vec::new();
    let mut next_value = 0u64;

    for op in ops {
        match op {
            Op::Insert { offset } => {
                let deadline = now.saturating_add_signed(offset);
                let id = wheel.insert(deadline, next_value);
                pending.insert(next_value, (deadline, id));
                next_value += 1;
            }
            Op::Cancel { pick, stale: true } if !dead.is_empty() => {
                prop_assert_eq!(wheel.cancel(dead[pick % dead.len()]), None);
            }
            Op::Cancel { pick, .. } => {
                if let Some((&value, &(_, id))) = pending.iter().nth(pick % pending.len().max(1)) {
                    prop_assert_eq!(wheel.cancel(id), Some(value));
                    pending.remove(&value);
                    dead.push(id);
                }
            }
            Op::Advance { by, cap } => {
                now = now.saturating_add(by);
                let mut out = Vec::new();
                let more = wheel.advance(now, cap.unwrap_or(usize::MAX), &mut out);
                for value in &out {
                    // Absent means cancelled, fired twice, or never inserted.
                    let entry = pending.remove(value);
                    prop_assert!(entry.is_some(), "{} fired but was not pending", value);
                    if let Some((deadline, id)) = entry {
                        prop_assert!(
                            deadline <= now,
                            "{} due {} fired early at {}",
                            value,
                            deadline,
                            now
                        );
                        dead.push(id);
                    }
                }
                let due_left = pending.values().any(|&(deadline, _)| deadline <= now);
                prop_assert_eq!(
                    more,
                    due_left,
                    "advance's return must say whether due work remains"
                );
                match cap {
                    None => prop_assert!(!more),
                    Some(cap) => {
                        prop_assert!(out.len() <= cap);
                        if more {
                            prop_assert_eq!(out.len(), cap);
                        }
                    }
                }
            }
        }

        wheel.check_invariants();
        prop_assert_eq!(wheel.len(), pending.len());
        prop_assert!(wheel.current_tick() <= now);
        let earliest = pending.values().map(|&(deadline, _)| deadline).min();
        match (wheel.next_expiry(), earliest) {
            (None, None) => {}
            (Some(next), Some(earliest)) if earliest <= wheel.current_tick() => {
                prop_assert_eq!(next, wheel.current_tick(), "overdue entry: expiry is now");
            }
            (Some(next), Some(earliest)) => {
                prop_assert!(
                    next > wheel.current_tick() && next <= earliest,
                    "next_expiry {} vs earliest {} (current {})",
                    next,
                    earliest,
                    wheel.current_tick()
                );
            }
            (next, earliest) => {
                prop_assert!(false, "next_expiry {:?} but earliest {:?}", next, earliest)
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn matches_a_btreemap_model(ops in prop::collection::vec(op(), 1..300)) {
        check_against_model(1_000, ops)?;
    }
}
