//! §7.6.1–§7.6.3 and §7.6.6: positions, resubscribes after WELCOME, recovery
//! inside and outside the history, epoch changes, duplicates and gaps.

use super::*;

#[test]
fn live_publications_are_delivered_in_order_and_advance_the_position() {
    let mut h = subscribed_at(43);
    h.publications(NEWS, E, 44..=46);
    assert_eq!(h.delivered(), [44, 45, 46]);
    assert_eq!(h.m.position(NEWS), Some(pos(E, 46)));
    assert!(h.sent().is_empty());
}

/// §7.6.1: after every WELCOME, one SUBSCRIBE per wanted channel, with its
/// position when it has one, without waiting for replies; ids from 1 again.
#[test]
fn every_welcome_resubscribes_every_wanted_channel_with_its_position() {
    let mut h = subscribed_at(43);
    h.m.subscribe(b"alpha", None).expect("valid");
    assert_eq!(h.sent(), [subscribe(2, b"alpha", None)]);
    h.publications(NEWS, E, [44]);
    let _ = h.events();
    let events = h.disconnect();
    assert_eq!(
        events,
        [PubsubEvent::Disconnected {
            reason: DisconnectReason::Eof
        }]
    );
    assert!(!h.m.is_connected());
    h.m.handle_connected(1000, true);
    assert_eq!(h.events(), [PubsubEvent::Connected { resumed: true }]);
    assert_eq!(
        h.sent(),
        [
            subscribe(1, b"alpha", None),
            subscribe(2, NEWS, Some(pos(E, 44))),
        ]
    );
}

/// Away while 45..=47 were published, all still in the history: they are
/// replayed, each delivered once, then live ones follow.
#[test]
fn recovery_inside_the_window_replays_what_was_missed_once() {
    let mut h = subscribed_at(43);
    h.publications(NEWS, E, [44]);
    let _ = h.events();
    let _ = h.disconnect();
    h.connect();
    assert_eq!(h.sent(), [subscribe(1, NEWS, Some(pos(E, 44)))]);
    h.recovered(1, E, 47, 3);
    assert_eq!(h.events(), [subscribed_event(NEWS, E, 47, true, 3)]);
    h.publications(NEWS, E, 45..=49);
    assert_eq!(h.delivered(), [45, 46, 47, 48, 49]);
    assert_eq!(h.m.position(NEWS), Some(pos(E, 49)));
}

/// Recovered with nothing missed: no replay, the position stays.
#[test]
fn recovery_with_nothing_missed_keeps_the_position() {
    let mut h = subscribed_at(43);
    let _ = h.disconnect();
    h.connect();
    let _ = h.sent();
    h.recovered(1, E, 43, 0);
    assert_eq!(h.events(), [subscribed_event(NEWS, E, 43, true, 0)]);
    h.publications(NEWS, E, [44]);
    assert_eq!(h.delivered(), [44]);
}

/// Away longer than the history covers: one RecoveryFailed with both
/// positions, then live publications from the new top.
#[test]
fn recovery_outside_the_window_reports_the_gap_then_goes_live() {
    let mut h = subscribed_at(43);
    let _ = h.disconnect();
    h.connect();
    let _ = h.sent();
    h.not_recovered(1, RecoveryReason::TooFarBehind, E, 500);
    assert_eq!(
        h.events(),
        [
            subscribed_event(NEWS, E, 500, false, 0),
            PubsubEvent::RecoveryFailed {
                channel: Bytes::from_static(NEWS),
                reason: RecoveryReason::TooFarBehind,
                old: pos(E, 43),
                new: pos(E, 500),
            },
        ]
    );
    h.publications(NEWS, E, [300, 500]);
    assert!(h.delivered().is_empty(), "at or below the new top: dropped");
    h.publications(NEWS, E, [501, 502]);
    assert_eq!(h.delivered(), [501, 502]);
    assert!(h.sent().is_empty());
}

/// A restarted server: another epoch. The position moves to the new stream.
#[test]
fn an_epoch_change_reports_old_and_new_positions() {
    let mut h = subscribed_at(43);
    let _ = h.disconnect();
    h.connect();
    let _ = h.sent();
    h.not_recovered(1, RecoveryReason::EpochChanged, E2, 7);
    assert_eq!(
        h.events()[1],
        PubsubEvent::RecoveryFailed {
            channel: Bytes::from_static(NEWS),
            reason: RecoveryReason::EpochChanged,
            old: pos(E, 43),
            new: pos(E2, 7),
        }
    );
    h.publications(NEWS, E2, [8]);
    assert_eq!(h.delivered(), [8]);
    assert_eq!(h.m.position(NEWS), Some(pos(E2, 8)));
    // The next reconnect asks for the new stream's position.
    let _ = h.disconnect();
    h.connect();
    assert_eq!(h.sent(), [subscribe(1, NEWS, Some(pos(E2, 8)))]);
}

/// A SUBSCRIBED claiming RECOVERED for another epoch than ours is not
/// trusted: the position moves to the reply's and the gap is reported.
#[test]
fn a_recovered_reply_of_another_epoch_is_not_trusted() {
    let mut h = subscribed_at(43);
    let _ = h.disconnect();
    h.connect();
    let _ = h.sent();
    h.recovered(1, E2, 5, 0);
    let events = h.events();
    assert_eq!(events[0], subscribed_event(NEWS, E2, 5, false, 0));
    assert!(matches!(events[1], PubsubEvent::RecoveryFailed { .. }));
    assert_eq!(h.m.position(NEWS), Some(pos(E2, 5)));
}

/// §7.6.3: a gap (offsets skipped) is dropped and resubscribed once with
/// (epoch, last); further gap publications while it is pending send nothing
/// more; the replay then fills the gap, once.
#[test]
fn a_gap_resubscribes_once_and_the_replay_fills_it() {
    let mut h = subscribed_at(10);
    h.publications(NEWS, E, [11, 13, 14]);
    assert_eq!(h.delivered(), [11]);
    assert_eq!(h.sent(), [subscribe(2, NEWS, Some(pos(E, 11)))]);
    h.publications(NEWS, E, [15]);
    assert!(h.sent().is_empty(), "a SUBSCRIBE is already pending");
    assert!(h.delivered().is_empty());
    h.recovered(2, E, 15, 4);
    assert_eq!(h.events(), [subscribed_event(NEWS, E, 15, true, 4)]);
    h.publications(NEWS, E, 12..=16);
    assert_eq!(h.delivered(), [12, 13, 14, 15, 16]);
}

/// A publication of another epoch on a live subscription is a gap too.
#[test]
fn a_publication_of_another_epoch_is_a_gap() {
    let mut h = subscribed_at(10);
    h.publications(NEWS, E2, [1]);
    assert!(h.delivered().is_empty());
    assert_eq!(h.sent(), [subscribe(2, NEWS, Some(pos(E, 10)))]);
    assert_eq!(h.m.position(NEWS), Some(pos(E, 10)));
}

/// Publications racing a recovery: live ones of the old subscription keep
/// coming while the resubscribe is pending, and the replay repeats them.
/// Each is delivered once: `last` is kept, at least the position sent.
#[test]
fn publications_racing_a_recovery_are_delivered_once() {
    let mut h = subscribed_at(10);
    h.publications(NEWS, E2, [99]); // a gap: resubscribe from (E, 10)
    assert_eq!(h.sent(), [subscribe(2, NEWS, Some(pos(E, 10)))]);
    h.publications(NEWS, E, [11, 12]); // still live on the old subscription
    assert_eq!(h.delivered(), [11, 12]);
    h.recovered(2, E, 13, 3);
    let _ = h.events();
    assert_eq!(h.m.position(NEWS), Some(pos(E, 12)), "not moved back to 10");
    h.publications(NEWS, E, [11, 12, 13, 14]); // replay 11..=13, then live 14
    assert_eq!(h.delivered(), [13, 14]);
}

#[test]
fn duplicates_at_or_below_the_position_are_dropped() {
    let mut h = subscribed_at(10);
    h.publications(NEWS, E, [11, 11, 5, 12, 1]);
    assert_eq!(h.delivered(), [11, 12]);
    assert!(h.sent().is_empty(), "a duplicate is no gap");
}

/// The application starts from a position kept from an earlier run.
#[test]
fn a_start_position_goes_in_the_first_subscribe() {
    let mut h = Harness::new();
    h.connect();
    h.m.subscribe(NEWS, Some(pos(E, 40))).expect("valid");
    assert_eq!(h.sent(), [subscribe(1, NEWS, Some(pos(E, 40)))]);
    h.recovered(1, E, 43, 3);
    let _ = h.events();
    h.publications(NEWS, E, 41..=44);
    assert_eq!(h.delivered(), [41, 42, 43, 44]);
    // Not recovered: the start position is the "old" one reported.
    let mut h = Harness::new();
    h.connect();
    h.m.subscribe(NEWS, Some(pos(E, 40))).expect("valid");
    let _ = h.sent();
    h.not_recovered(1, RecoveryReason::TooFarBehind, E, 900);
    assert!(h.events().contains(&PubsubEvent::RecoveryFailed {
        channel: Bytes::from_static(NEWS),
        reason: RecoveryReason::TooFarBehind,
        old: pos(E, 40),
        new: pos(E, 900),
    }));
}

/// Publications of channels not wanted (or not yet SUBSCRIBED) are ignored.
#[test]
fn publications_of_unwanted_or_unsubscribed_channels_are_ignored() {
    let mut h = subscribed_at(10);
    h.publications(b"other", E, [1, 2]);
    h.m.subscribe(b"later", None).expect("valid");
    let _ = h.sent();
    h.publications(b"later", E, [1]);
    assert!(h.events().is_empty());
    assert!(h.sent().is_empty());
}

/// §7.6.6: UNSUBSCRIBE forgets the channel and its position; publications
/// still in flight are ignored, and a new subscription starts afresh.
#[test]
fn unsubscribe_forgets_the_channel_and_its_position() {
    let mut h = subscribed_at(10);
    assert!(h.m.unsubscribe(NEWS));
    assert!(!h.m.unsubscribe(NEWS), "no longer wanted");
    assert_eq!(
        h.sent(),
        [ClientOp::Unsubscribe {
            request_id: 2,
            channel: Bytes::from_static(NEWS)
        }]
    );
    h.publications(NEWS, E, [11]);
    assert!(h.events().is_empty());
    h.unsubscribed(2);
    assert_eq!(h.m.position(NEWS), None);
    h.m.subscribe(NEWS, None).expect("valid");
    assert_eq!(h.sent(), [subscribe(3, NEWS, None)]);
    // Not connected: forgotten without a word to the server.
    let _ = h.disconnect();
    assert!(h.m.unsubscribe(NEWS));
    h.connect();
    assert!(h.sent().is_empty());
}

/// Unsubscribed and subscribed again before the first SUBSCRIBE's reply:
/// that stale reply is ignored, the new one counts.
#[test]
fn the_reply_to_a_replaced_subscribe_is_ignored() {
    let mut h = Harness::new();
    h.connect();
    h.m.subscribe(NEWS, None).expect("valid");
    h.m.unsubscribe(NEWS);
    h.m.subscribe(NEWS, None).expect("valid");
    assert_eq!(h.sent().len(), 3);
    h.subscribed(1, E, 5);
    h.unsubscribed(2);
    assert!(h.events().is_empty());
    assert_eq!(h.m.position(NEWS), None);
    h.subscribed(3, E, 6);
    assert_eq!(h.events(), [subscribed_event(NEWS, E, 6, false, 0)]);
}
