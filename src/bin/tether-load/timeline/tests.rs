//! The timeline on hand-made snapshots: intervals, rates, merging at the cap.

use super::*;

const S: u64 = 1_000_000_000;

fn snap(now_ns: u64, messages: u64) -> Snapshot {
    Snapshot {
        now_ns,
        messages,
        ..Snapshot::default()
    }
}

fn pct(ms: u64) -> Option<Percentiles> {
    Some(Percentiles {
        p50_ns: ms * 1_000_000,
        p99_ns: 2 * ms * 1_000_000,
        p999_ns: 3 * ms * 1_000_000,
    })
}

#[test]
fn the_first_snapshot_is_the_baseline() {
    let mut t = Timeline::new(S, 10);
    assert!(t.due(0));
    t.record(snap(0, 5), pct(1));
    assert!(t.points().is_empty());
    assert!(!t.due(S - 1));
    assert!(t.due(S));
    t.record(snap(S, 105), pct(1));
    let p = t.points()[0];
    assert_eq!((p.start_ns, p.end_ns, p.messages), (0, S, 100));
    assert_eq!(p.messages_per_sec(), 100.0);
    assert_eq!(t.latest(), Some(&p));
}

#[test]
fn counts_are_per_interval_and_states_at_its_end() {
    let mut t = Timeline::new(S / 2, 10);
    let base = ProcSample {
        cpu_ns: 1_000,
        rss_bytes: 10,
    };
    t.record(
        Snapshot {
            server: Some(base),
            handshakes: 3,
            ..snap(0, 0)
        },
        None,
    );
    t.record(
        Snapshot {
            now_ns: S / 2,
            messages: 50,
            handshakes: 103,
            open: 100,
            connecting: 7,
            errors: 2,
            server: Some(ProcSample {
                cpu_ns: 1_000 + S / 4,
                rss_bytes: 2 << 20,
            }),
            storm: Some(StormCounts {
                accepted: 1,
                refused: 2,
                failed: 3,
                pending: 4,
            }),
        },
        None,
    );
    let p = t.points()[0];
    assert_eq!(p.messages_per_sec(), 100.0);
    assert_eq!(p.handshakes_per_sec(), 200.0);
    assert_eq!((p.open, p.connecting, p.errors), (100, 7, 2));
    assert_eq!(p.server_cpu_pct(), Some(50.0));
    assert_eq!(p.server_rss_bytes, Some(2 << 20));
    assert_eq!(p.storm.map(|s| s.pending), Some(4));
    assert_eq!(p.latency, None);
}

#[test]
fn without_a_server_there_is_no_cpu_or_rss() {
    let mut t = Timeline::new(S, 10);
    t.record(snap(0, 0), None);
    t.record(snap(S, 1), None);
    assert_eq!(t.points()[0].server_cpu_pct(), None);
    assert_eq!(t.points()[0].server_rss_bytes, None);
}

#[test]
fn a_snapshot_that_is_not_later_is_ignored() {
    let mut t = Timeline::new(S, 10);
    t.record(snap(S, 0), None);
    t.record(snap(S, 10), None);
    t.record(snap(S / 2, 10), None);
    assert!(t.points().is_empty());
}

#[test]
fn past_the_cap_pairs_merge_and_the_interval_doubles() {
    let mut t = Timeline::new(S, 4);
    t.record(snap(0, 0), None);
    // Five intervals of 10, 20, 30, 40, 50 messages; p50 1..5 ms.
    let mut total = 0;
    for i in 1..=5u64 {
        total += 10 * i;
        t.record(snap(i * S, total), pct(i));
    }
    assert_eq!(t.interval_ns(), 2 * S);
    let pts = t.points();
    assert_eq!(pts.len(), 3);
    assert_eq!(
        (pts[0].start_ns, pts[0].end_ns, pts[0].messages),
        (0, 2 * S, 30)
    );
    assert_eq!(pts[0].messages_per_sec(), 15.0);
    // The merged latency is the larger of the two intervals'.
    assert_eq!(pts[0].latency, pct(2));
    assert_eq!(
        (pts[1].start_ns, pts[1].end_ns, pts[1].messages),
        (2 * S, 4 * S, 70)
    );
    // The odd one out stays as it was.
    assert_eq!(
        (pts[2].start_ns, pts[2].end_ns, pts[2].messages),
        (4 * S, 5 * S, 50)
    );
    assert_eq!(t.next_due_ns(), 7 * S);
}

#[test]
fn a_long_run_stays_bounded() {
    let mut t = Timeline::new(S / 10, MAX_POINTS);
    for i in 0..100_000u64 {
        t.record(snap(i * S / 10, i), pct(1));
    }
    assert!(t.points().len() <= MAX_POINTS);
    assert!(t.points().len() > MAX_POINTS / 2);
    // Merging keeps the total.
    let sum: u64 = t.points().iter().map(|p| p.messages).sum();
    assert_eq!(sum, 99_999);
}

#[test]
fn merging_keeps_whichever_latency_exists() {
    let mut t = Timeline::new(S, 2);
    t.record(snap(0, 0), None);
    t.record(snap(S, 0), None);
    t.record(snap(2 * S, 0), pct(7));
    t.record(snap(3 * S, 0), None);
    assert_eq!(t.points()[0].latency, pct(7));
}

#[test]
fn short_runs_are_sampled_more_often() {
    assert_eq!(Timeline::interval_for(3.0), 100_000_000);
    assert_eq!(Timeline::interval_for(12.0), 200_000_000);
    assert_eq!(Timeline::interval_for(22.0), 250_000_000);
    assert_eq!(Timeline::interval_for(30.0), 500_000_000);
    assert_eq!(Timeline::interval_for(100.0), S);
    assert_eq!(Timeline::interval_for(3_600.0), S);
    assert_eq!(Timeline::interval_for(0.0), 100_000_000);
}

#[test]
fn a_sliver_at_the_end_extends_the_latest_point() {
    let mut t = Timeline::new(S, 10);
    t.record(snap(0, 0), pct(1));
    t.record(snap(S, 100), pct(1));
    t.record(
        Snapshot {
            open: 5,
            ..snap(S + S / 10, 100)
        },
        pct(9),
    );
    assert_eq!(t.points().len(), 1);
    let p = t.points()[0];
    assert_eq!(
        (p.start_ns, p.end_ns, p.messages, p.open),
        (0, S + S / 10, 100, 5)
    );
    assert_eq!(p.latency, pct(9));
    // A quarter interval or more is a point of its own.
    t.record(snap(S + S / 10 + S / 4, 110), None);
    assert_eq!(t.points().len(), 2);
}
