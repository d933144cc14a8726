//! Tests of the second level: cascading, cancel in every list, capped
//! jumps across revolutions, and the model check over many revolutions.

use std::collections::HashSet;

use proptest::prelude::*;

use super::*;

/// Advances one tick at a time to `end`, uncapped, and returns `(value, tick)`
/// for each firing, checking invariants and `next_expiry` at every tick.
fn fire_tick_by_tick(wheel: &mut Wheel<u64>, end: Tick) -> Vec<(u64, Tick)> {
    let mut fired_at = Vec::new();
    while wheel.current_tick() < end {
        let now = wheel.current_tick() + 1;
        if let Some(next) = wheel.next_expiry() {
            assert!(next >= now, "next_expiry {next} in the past at {now}");
        }
        for value in fire(wheel, now) {
            fired_at.push((value, now));
        }
    }
    fired_at
}

#[test]
fn entries_many_revolutions_ahead_fire_at_their_tick() {
    let mut wheel = Wheel::new(64, 0);
    // Revolution edges, both levels' edges (64 overflow lists cover 4096
    // ticks), and entries sharing an overflow list 64 and 128 revolutions apart.
    let mut deadlines = vec![1, 5, 63, 64, 65, 127, 128, 4095, 4096, 4097, 4096 + 5];
    deadlines.extend([2 * 4096 + 5, 2 * 4096 + 63, 3 * 4096 + 3 * 64 + 1, 9000]);
    for &deadline in &deadlines {
        wheel.insert(deadline, deadline);
    }
    wheel.check_invariants();
    let fired_at = fire_tick_by_tick(&mut wheel, 3 * 4096 + 300);
    deadlines.sort_unstable();
    let expected: Vec<_> = deadlines.iter().map(|&d| (d, d)).collect();
    assert_eq!(fired_at, expected);
    assert!(wheel.is_empty());
}

#[test]
fn cancel_works_in_every_list() {
    let mut wheel = Wheel::new(64, 0);
    let slot = wheel.insert(10, 1);
    let overflow = wheel.insert(3 * 64 + 10, 2);
    let far = wheel.insert(70 * 64 + 10, 3); // shares overflow list 6 with revolution 6
    let near_far = wheel.insert(6 * 64 + 1, 4);
    let cascaded = wheel.insert(64 + 10, 5);
    let overdue = wheel.insert(0, 6);
    assert_eq!(wheel.nodes[overflow.index as usize].list, 64 + 3);
    assert_eq!(wheel.nodes[far.index as usize].list, 64 + 6);
    assert_eq!(wheel.cancel(slot), Some(1));
    assert_eq!(wheel.cancel(overflow), Some(2));
    assert_eq!(wheel.cancel(overdue), Some(6));
    wheel.check_invariants();
    // Cascaded into slot 10 at tick 63, then cancelled there.
    assert_eq!(fire(&mut wheel, 64), vec![]);
    assert_eq!(wheel.nodes[cascaded.index as usize].list, 10);
    assert_eq!(wheel.cancel(cascaded), Some(5));
    // The cascade of revolution 6 leaves the far entry in its list.
    assert_eq!(fire(&mut wheel, 6 * 64 + 1), vec![4]);
    assert_eq!(wheel.nodes[far.index as usize].list, 64 + 6);
    assert_eq!(wheel.cancel(far), Some(3));
    assert!(wheel.is_empty());
    assert_eq!(wheel.next_expiry(), None);
    for id in [slot, overflow, far, near_far, cascaded, overdue] {
        assert_eq!(wheel.cancel(id), None);
    }
    assert!(fire(&mut wheel, 100 * 64).is_empty());
}

#[test]
fn cancel_reaches_an_entry_a_capped_jump_left_on_the_ready_list() {
    let mut wheel = Wheel::new(64, 0);
    let ids: Vec<_> = (0..10).map(|i| wheel.insert(3 * 64 + i, i)).collect();
    let mut out = Vec::new();
    // The jump fires 4 straight from overflow list 3 and leaves 6 due on ready.
    assert!(wheel.advance(5 * 64, 4, &mut out));
    wheel.check_invariants();
    assert_eq!(out, vec![0, 1, 2, 3]);
    assert_eq!(wheel.nodes[ids[7].index as usize].list, wheel.ready);
    assert_eq!(wheel.cancel(ids[7]), Some(7));
    assert_eq!(wheel.next_expiry(), Some(wheel.current_tick()));
    assert_eq!(fire(&mut wheel, 5 * 64), vec![4, 5, 6, 8, 9]);
}

#[test]
fn cap_stops_on_the_first_slot_after_a_cascade_and_resumes_there() {
    let mut wheel = Wheel::new(64, 0);
    for value in 0..10 {
        wheel.insert(64, value); // first tick of revolution 1
        wheel.insert(65, 100 + value);
    }
    let mut out = Vec::new();
    assert!(
        wheel.advance(64, 3, &mut out),
        "cascaded at 63, capped in slot 0"
    );
    wheel.check_invariants();
    assert_eq!(out, vec![0, 1, 2]);
    assert_eq!(wheel.current_tick(), 63);
    assert_eq!(wheel.next_expiry(), Some(64));
    assert!(wheel.advance(65, 3, &mut out));
    assert!(wheel.advance(65, 3, &mut out));
    assert!(
        wheel.advance(65, 3, &mut out),
        "slot 64 drained, slot 65 capped"
    );
    wheel.check_invariants();
    assert_eq!(wheel.current_tick(), 64);
    assert!(wheel.advance(65, 6, &mut out));
    assert!(!wheel.advance(65, 6, &mut out));
    let expected: Vec<u64> = (0..10).chain(100..110).collect();
    assert_eq!(out, expected, "every entry once, in tick then FIFO order");
    assert!(wheel.is_empty());
}

#[test]
fn cap_stops_mid_cascade_of_a_jump_without_loss_repeat_or_early_firing() {
    let mut wheel = Wheel::new(64, 0);
    let mut due = HashSet::new();
    let mut later = Vec::new();
    // Dense revolutions 0..8, plus entries 64 and 128 revolutions further on.
    for value in 0..600u64 {
        let deadline = 1 + value * 13 % (8 * 64);
        let deadline = deadline + [0, 0, 0, 64 * 64, 128 * 64][value as usize % 5];
        wheel.insert(deadline, value);
        if deadline <= 5 * 64 + 20 {
            due.insert(value);
        } else {
            later.push((value, deadline));
        }
    }
    let mut seen = HashSet::new();
    let mut calls = 0;
    loop {
        let mut out = Vec::new();
        let more = wheel.advance(5 * 64 + 20, 11, &mut out);
        wheel.check_invariants();
        assert!(out.len() <= 11);
        for value in out {
            assert!(due.contains(&value), "{value} fired early");
            assert!(seen.insert(value), "{value} fired twice");
        }
        calls += 1;
        if !more {
            break;
        }
    }
    assert_eq!(seen, due);
    assert_eq!(calls, due.len().div_ceil(11));
    let fired_at = fire_tick_by_tick(&mut wheel, 200 * 64);
    later.sort_by_key(|&(value, deadline)| (deadline, value));
    assert_eq!(fired_at, later, "the rest fire each at its tick");
}

#[test]
fn a_capped_jump_over_ten_revolutions_fires_exactly_what_is_due() {
    let mut wheel = Wheel::new(64, 0);
    for deadline in 1..=20 * 64u64 {
        wheel.insert(deadline, deadline);
    }
    wheel.insert(100 * 64 + 7, 100 * 64 + 7); // overflow list 36, like revolution 36
    let now = 10 * 64 + 17;
    let mut fired = Vec::new();
    while wheel.advance(now, 64, &mut fired) {
        wheel.check_invariants();
    }
    wheel.check_invariants();
    fired.sort_unstable();
    assert_eq!(fired, (1..=now).collect::<Vec<_>>());
    assert_eq!(wheel.current_tick(), now);
    assert_eq!(wheel.next_expiry(), Some(now + 1));
    let fired_at = fire_tick_by_tick(&mut wheel, 101 * 64);
    let mut expected: Vec<_> = (now + 1..=20 * 64).map(|d| (d, d)).collect();
    expected.push((100 * 64 + 7, 100 * 64 + 7));
    assert_eq!(fired_at, expected);
}

#[test]
fn a_jump_far_beyond_every_overflow_list_looks_at_each_list_once() {
    let mut wheel = Wheel::new(64, 0);
    wheel.insert(1 << 40, 1);
    wheel.insert((1 << 50) + 3, 2);
    wheel.insert(5, 3);
    assert_eq!(fire(&mut wheel, 1 << 45), vec![3, 1]);
    // Only list 0 is occupied: the next revolution that uses it.
    assert_eq!(wheel.next_expiry(), Some((1 << 45) + 64 * 64));
    assert!(fire(&mut wheel, 1 << 50).is_empty());
    assert_eq!(wheel.next_expiry(), Some((1 << 50) + 3));
    assert_eq!(fire(&mut wheel, u64::MAX), vec![2]);
}

/// Operations spread over many revolutions of both levels (64 overflow lists
/// of 64 ticks cover 4096 ticks), starting anywhere up to the end of `u64`.
fn far_op() -> impl Strategy<Value = Op> {
    let cycle = (SLOTS * SLOTS) as i64;
    prop_oneof![
        2 => (-8..3 * SLOTS as i64).prop_map(|offset| Op::Insert { offset }),
        2 => (0..3 * cycle).prop_map(|offset| Op::Insert { offset }),
        2 => (any::<usize>(), any::<bool>()).prop_map(|(pick, stale)| Op::Cancel { pick, stale }),
        2 => (0..2 * SLOTS, prop::option::of(0usize..16))
            .prop_map(|(by, cap)| Op::Advance { by, cap }),
        1 => (0..2 * cycle as u64, prop::option::of(0usize..64))
            .prop_map(|(by, cap)| Op::Advance { by, cap }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn matches_a_btreemap_model_across_many_revolutions(
        start in prop_oneof![Just(0), 0..u64::MAX / 2, u64::MAX - 20_000..u64::MAX],
        ops in prop::collection::vec(far_op(), 1..200),
    ) {
        check_against_model(start, ops)?;
    }
}
