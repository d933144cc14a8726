//! Timing-wheel throughput at 10k, 100k and 1M pending timers.
//!
//! The wheel has 4096 slots: at the default 100 ms tick one revolution is
//! about 7 minutes. Deadlines are spread pseudo-randomly over 1..=30000 ticks
//! (~50 minutes, about 7 revolutions) so most entries start in the overflow
//! level and are cascaded into the slots once, as idle timeouts longer than a
//! revolution would.
//!
//! - `insert_cancel`: insert N timers then cancel them all, on a warm wheel
//!   (nodes already allocated, as in a server at steady state). Throughput is
//!   per element, i.e. the time of one insert plus one cancel.
//! - `advance_per_tick`: fire N timers by advancing one tick at a time through
//!   all 30000 ticks, as the event loop does. Per element = per fired timer,
//!   including moving it from the overflow level into its slot.
//! - `advance_per_tick_one_revolution`: the same with deadlines spread over
//!   1..=4000 ticks, within one revolution (idle timeouts shorter than 7
//!   minutes, the common case): nothing needs cascading.
//! - `advance_jump`: the same N timers fired by a single advance past the last
//!   deadline (the slots, then each overflow list once, as after a long stall).
//!
//! Each group also times the baseline a timer wheel has to beat, measured in
//! the same run: a `BTreeMap<(deadline, seq), value>` (ordered map timers, as
//! many event loops use), so the report reads as a ratio.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use tether::time::Tick;
use tether::wheel::Wheel;

const SLOTS: usize = 4096;
const SPREAD: Tick = 30_000;
/// Deadlines within the first revolution (4096 slots).
const SPREAD_ONE_REVOLUTION: Tick = 4_000;
const SIZES: [usize; 3] = [10_000, 100_000, 1_000_000];

/// Deterministic pseudo-random deadlines in 1..=spread (xorshift64*).
fn deadlines(n: usize, spread: Tick) -> Vec<Tick> {
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    (0..n)
        .map(|_| {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            1 + state.wrapping_mul(0x2545_F491_4F6C_DD1D) % spread
        })
        .collect()
}

fn filled(deadlines: &[Tick]) -> Wheel<u64> {
    let mut wheel = Wheel::with_capacity(SLOTS, 0, deadlines.len());
    for (value, &deadline) in deadlines.iter().enumerate() {
        wheel.insert(deadline, value as u64);
    }
    wheel
}

fn insert_cancel(c: &mut Criterion) {
    let mut group = c.benchmark_group("wheel/insert_cancel");
    for n in SIZES {
        let deadlines = deadlines(n, SPREAD);
        let mut wheel = Wheel::with_capacity(SLOTS, 0, n);
        let mut ids = Vec::with_capacity(n);
        group.throughput(Throughput::Elements(n as u64));
        group.bench_function(BenchmarkId::from_parameter(n), |b| {
            b.iter(|| {
                for (value, &deadline) in deadlines.iter().enumerate() {
                    ids.push(wheel.insert(deadline, value as u64));
                }
                for id in ids.drain(..) {
                    black_box(wheel.cancel(id));
                }
            })
        });
        assert!(wheel.is_empty());
        group.bench_function(BenchmarkId::new("btreemap_baseline", n), |b| {
            let mut map = BTreeMap::new();
            b.iter(|| {
                for (value, &deadline) in deadlines.iter().enumerate() {
                    map.insert((deadline, value as u64), value as u64);
                }
                for (value, &deadline) in deadlines.iter().enumerate() {
                    black_box(map.remove(&(deadline, value as u64)));
                }
            })
        });
    }
    group.finish();
}

fn btreemap_filled(deadlines: &[Tick]) -> BTreeMap<(Tick, u64), u64> {
    deadlines
        .iter()
        .enumerate()
        .map(|(value, &deadline)| ((deadline, value as u64), value as u64))
        .collect()
}

fn advance_per_tick(c: &mut Criterion) {
    per_tick(c, "wheel/advance_per_tick", SPREAD);
}

fn advance_per_tick_one_revolution(c: &mut Criterion) {
    per_tick(
        c,
        "wheel/advance_per_tick_one_revolution",
        SPREAD_ONE_REVOLUTION,
    );
}

/// Fires N timers due in 1..=spread by advancing one tick at a time, against
/// the BTreeMap baseline popping its first entries at each tick.
fn per_tick(c: &mut Criterion, name: &str, spread: Tick) {
    let mut group = c.benchmark_group(name);
    for n in SIZES {
        let deadlines = deadlines(n, spread);
        let mut out = Vec::with_capacity(n);
        group.throughput(Throughput::Elements(n as u64));
        group.bench_function(BenchmarkId::from_parameter(n), |b| {
            b.iter_batched(
                || filled(&deadlines),
                |mut wheel| {
                    out.clear();
                    for now in 1..=spread {
                        let more = wheel.advance(now, usize::MAX, &mut out);
                        debug_assert!(!more);
                    }
                    assert_eq!(out.len(), n);
                    wheel
                },
                BatchSize::PerIteration,
            )
        });
        group.bench_function(BenchmarkId::new("btreemap_baseline", n), |b| {
            b.iter_batched(
                || btreemap_filled(&deadlines),
                |mut map| {
                    out.clear();
                    for now in 1..=spread {
                        while let Some(entry) = map.first_entry() {
                            if entry.key().0 > now {
                                break;
                            }
                            out.push(entry.remove());
                        }
                    }
                    assert_eq!(out.len(), n);
                    map
                },
                BatchSize::PerIteration,
            )
        });
    }
    group.finish();
}

fn advance_jump(c: &mut Criterion) {
    let mut group = c.benchmark_group("wheel/advance_jump");
    for n in SIZES {
        let deadlines = deadlines(n, SPREAD);
        let mut out = Vec::with_capacity(n);
        group.throughput(Throughput::Elements(n as u64));
        group.bench_function(BenchmarkId::from_parameter(n), |b| {
            b.iter_batched(
                || filled(&deadlines),
                |mut wheel| {
                    out.clear();
                    let more = wheel.advance(SPREAD, usize::MAX, &mut out);
                    assert!(!more && out.len() == n);
                    wheel
                },
                BatchSize::PerIteration,
            )
        });
    }
    group.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
}

criterion_group! {
    name = benches;
    config = config();
    targets = insert_cancel, advance_per_tick, advance_per_tick_one_revolution, advance_jump
}
criterion_main!(benches);
