//! The §7.4 recovery decision over what one atomic read of a Redis stream
//! returned: the table itself is `app::pubsub::recovery::verdict`, shared
//! with the in-memory engine; this adds the check that the read returned
//! exactly the missed entries, and the node only carries the answer out
//! (reply, replay, then the buffered live feed above `top`, per §7.5).

use bytes::Bytes;

use super::scripts::{parse_publication, StreamRead};
use crate::app::pubsub::ops_v2::{Position, RecoveryReason};
use crate::app::pubsub::recovery::{verdict, Verdict};

/// The answer to a SUBSCRIBE: the SUBSCRIBE_REPLY fields and the replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveryDecision {
    /// The stream's epoch.
    pub epoch: u64,
    /// The stream's top: live publications from top + 1 follow the replay.
    pub top: u64,
    /// The SUBSCRIBE carried a position.
    pub recovery_asked: bool,
    /// The replay covers everything after the position.
    pub recovered: bool,
    /// Why not recovered; `None` when recovered or not asked.
    pub reason: RecoveryReason,
    /// PUBLICATION payloads of offsets O + 1..=top, in order, when recovered.
    pub replay: Vec<Bytes>,
}

/// Decides recovery for `position` against a read of the stream (§7.4):
///
/// | position | condition | recovered | reason |
/// |---|---|---|---|
/// | none | - | no | NONE |
/// | (E, O) | E = e, oldest − 1 ≤ O ≤ top | yes, replay O + 1..=top | NONE |
/// | (E, O) | E = e, O < oldest − 1 | no | TOO_FAR_BEHIND |
/// | (E, O) | E = e, O > top | no | EPOCH_CHANGED |
/// | (E, O) | E ≠ e | no | EPOCH_CHANGED |
///
/// A replay the read did not return whole (over the replay limits, or
/// entries that are not exactly offsets O + 1..=top of epoch e) is not
/// recovered, TOO_FAR_BEHIND, as §7.4 answers a replay over its limit.
pub fn decide(position: Option<Position>, read: StreamRead) -> RecoveryDecision {
    let mut decision = RecoveryDecision {
        epoch: read.epoch,
        top: read.top,
        recovery_asked: position.is_some(),
        recovered: false,
        reason: RecoveryReason::None,
        replay: Vec::new(),
    };
    decision.reason = match verdict(position, read.epoch, read.top, read.oldest) {
        Verdict::NotAsked => return decision,
        Verdict::NotRecovered(reason) => reason,
        Verdict::Replay { after } if !is_exact_replay(&read, after) => RecoveryReason::TooFarBehind,
        Verdict::Replay { .. } => {
            decision.recovered = true;
            decision.replay = read.replay;
            RecoveryReason::None
        }
    };
    decision
}

/// Whether `read.replay` is exactly the publications after `offset`.
fn is_exact_replay(read: &StreamRead, offset: u64) -> bool {
    let missed = read.top - offset;
    read.replay.len() as u64 == missed
        && read.replay.iter().zip(offset + 1..).all(|(payload, want)| {
            parse_publication(payload).is_ok_and(|p| p.epoch == read.epoch && p.offset == want)
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::pubsub::ops_v2::encode_publication;
    use RecoveryReason as R;

    const E: u64 = 0x0123_4567_89ab_cdef;
    const E2: u64 = 0x9a3c_5e7f_1032_5476;

    /// A stream of epoch E holding `oldest..=top`, and the read a position
    /// `from` gets: the script returns entries only inside the window.
    fn read(oldest: u64, top: u64, from: Option<u64>) -> StreamRead {
        let replay = match from {
            Some(o) if o < top && o + 1 >= oldest => (o + 1..=top)
                .map(|n| encode_publication(E, n, b"news", format!("m{n}").as_bytes()))
                .collect(),
            _ => Vec::new(),
        };
        StreamRead {
            epoch: E,
            top,
            oldest,
            replay,
        }
    }

    fn at(epoch: u64, offset: u64) -> Option<Position> {
        Some(Position { epoch, offset })
    }

    fn outcome(d: &RecoveryDecision) -> (bool, bool, RecoveryReason, usize) {
        (d.recovery_asked, d.recovered, d.reason, d.replay.len())
    }

    #[test]
    fn the_section_7_4_table() {
        // History 41..=43 held (oldest 41), top 43.
        let cases = [
            (None, (false, false, R::None, 0)),
            (at(E, 43), (true, true, R::None, 0)), // O = top
            (at(E, 41), (true, true, R::None, 2)), // inside: replay 42, 43
            (at(E, 40), (true, true, R::None, 3)), // O = oldest - 1
            (at(E, 39), (true, false, R::TooFarBehind, 0)), // O < oldest - 1
            (at(E, 0), (true, false, R::TooFarBehind, 0)),
            (at(E, 44), (true, false, R::EpochChanged, 0)), // O > top
            (at(E2, 43), (true, false, R::EpochChanged, 0)), // E != e
            (at(E2, 41), (true, false, R::EpochChanged, 0)),
        ];
        for (position, want) in cases {
            let from = position.map(|p| p.offset);
            let d = decide(position, read(41, 43, from));
            assert_eq!(outcome(&d), want, "{position:?}");
            assert_eq!((d.epoch, d.top), (E, 43));
        }
    }

    #[test]
    fn the_replay_is_offsets_after_the_position_in_order() {
        let d = decide(at(E, 41), read(41, 43, Some(41)));
        let offsets: Vec<u64> = d
            .replay
            .iter()
            .map(|p| parse_publication(p).unwrap().offset)
            .collect();
        assert_eq!(offsets, [42, 43]);
    }

    #[test]
    fn a_new_or_empty_stream() {
        // Just made (top 0, nothing held): only (e, 0) is recovered.
        assert_eq!(
            outcome(&decide(at(E, 0), read(1, 0, Some(0)))),
            (true, true, R::None, 0)
        );
        assert_eq!(
            outcome(&decide(at(E2, 0), read(1, 0, Some(0)))),
            (true, false, R::EpochChanged, 0)
        );
        // History off (top 7, nothing held, oldest = top + 1): only the top.
        assert_eq!(
            outcome(&decide(at(E, 7), read(8, 7, Some(7)))),
            (true, true, R::None, 0)
        );
        assert_eq!(
            outcome(&decide(at(E, 6), read(8, 7, Some(6)))),
            (true, false, R::TooFarBehind, 0)
        );
    }

    #[test]
    fn a_replay_not_returned_whole_is_too_far_behind() {
        // Over the script's limits: inside the window, but no entries.
        let mut r = read(41, 43, Some(41));
        r.replay.clear();
        assert_eq!(
            outcome(&decide(at(E, 41), r)),
            (true, false, R::TooFarBehind, 0)
        );
        // A gap, another epoch's entry, or something not a PUBLICATION.
        let mut r = read(41, 43, Some(40));
        r.replay.remove(1);
        assert_eq!(
            outcome(&decide(at(E, 40), r.clone())),
            (true, false, R::TooFarBehind, 0)
        );
        r.replay.insert(1, encode_publication(E2, 42, b"news", b""));
        assert_eq!(
            outcome(&decide(at(E, 40), r.clone())),
            (true, false, R::TooFarBehind, 0)
        );
        r.replay[1] = Bytes::from_static(b"\x07junk");
        assert_eq!(
            outcome(&decide(at(E, 40), r)),
            (true, false, R::TooFarBehind, 0)
        );
    }
}
