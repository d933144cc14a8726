//! The storm's bookkeeping: windows, outcomes and when the storm ends.

use super::*;

fn storm(size: u64) -> Storm {
    Storm::new(size).expect("histograms")
}

#[test]
fn round_trips_overlapping_the_storm_count_in_it() {
    let mut s = storm(2);
    s.record_rtt(1_000, 5_000);
    s.record_rtt(2_000, 8_000);
    assert_eq!(s.window(9_000), StormWindow::Before);
    s.on_started(10_000);
    assert_eq!(s.start_ns, Some(10_000));
    // Sent before the storm, answered in it: during.
    s.record_rtt(50_000, 55_000);
    s.on_started(11_000);
    assert_eq!(
        s.start_ns,
        Some(10_000),
        "the storm starts at its first connect"
    );
    s.on_welcome(3_000);
    s.on_failed(ErrorKind::Timeout);
    assert!(s.settle(99_000));
    assert_eq!(s.end_ns, Some(99_000));
    // Sent in the storm, answered after its end: still during.
    s.record_rtt(4_000, 100_000);
    assert_eq!(s.window(98_999), StormWindow::During);
    assert_eq!(s.window(99_000), StormWindow::After);
    s.record_rtt(4_000, 104_000);
    let counts: Vec<u64> = StormWindow::ALL.iter().map(|w| s.rtt(*w).len()).collect();
    assert_eq!(counts, [2, 2, 1]);
    let during = s.rtt(StormWindow::During);
    assert_eq!(during.max(), during.highest_equivalent(50_000));
    assert_eq!(
        StormWindow::ALL.map(StormWindow::name),
        ["before", "during", "after"]
    );
}

#[test]
fn the_storm_ends_only_when_every_client_is_started_and_resolved() {
    let mut s = storm(3);
    assert!(!s.settle(1), "nothing started yet");
    for t in 0..2 {
        s.on_started(t);
    }
    s.on_welcome(10);
    s.on_welcome(20);
    assert!(!s.settle(2), "one client still to start");
    s.on_started(3);
    assert_eq!(s.to_start(), 0);
    assert!(!s.settle(4), "one client still connecting");
    s.on_goaway(GoawayCode::ServerFull);
    assert!(s.settle(5));
    assert!(!s.settle(6), "it ends once");
    assert_eq!(s.end_ns, Some(5));
}

#[test]
fn outcomes_are_counted_by_kind() {
    let mut s = storm(10);
    for _ in 0..6 {
        s.on_started(0);
    }
    s.on_welcome(1_000_000);
    s.on_welcome(3_000_000);
    s.on_goaway(GoawayCode::ServerFull);
    s.on_goaway(GoawayCode::Normal);
    s.on_failed(ErrorKind::ConnectRefused);
    s.on_failed(ErrorKind::ConnectRefused);
    assert_eq!((s.accepted, s.refused, s.goaway_other), (2, 1, 1));
    assert_eq!(s.resolved(), 6);
    let failed = s.failed_counts();
    assert_eq!(failed.len(), ErrorKind::ALL.len());
    assert!(failed.contains(&("connect_refused", 2)));
    assert_eq!(failed.iter().map(|(_, n)| n).sum::<u64>(), 2);
    assert_eq!(s.connect_time.len(), 2);
    assert!(s.connect_time.max() >= 3_000_000);
}
