//! The recovery decision of docs/protocol.md §7.4, in one place for every
//! engine: what a SUBSCRIBE's position gets against a stream's epoch, top
//! and oldest held publication. The engines add only what is theirs (the
//! in-memory one a replay budget, the Redis one a check that the read
//! returned exactly the missed entries).

use super::ops_v2::{Position, RecoveryReason};

/// What the §7.4 table says for a position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The SUBSCRIBE carried no position: nothing to recover.
    NotAsked,
    /// Recovered: replay the offsets after `after`, up to the top (none
    /// when `after` is the top).
    Replay {
        /// The position's offset.
        after: u64,
    },
    /// Not recovered, for this reason.
    NotRecovered(RecoveryReason),
}

/// Decides for `position` against a stream of `epoch` whose top is `top`
/// and whose oldest held offset is `oldest` (top + 1 when it holds none):
///
/// | position | condition | verdict |
/// |---|---|---|
/// | none | - | not asked |
/// | (E, O) | E = epoch, oldest − 1 ≤ O ≤ top | replay O + 1..=top |
/// | (E, O) | E = epoch, O < oldest − 1 | TOO_FAR_BEHIND |
/// | (E, O) | E = epoch, O > top | EPOCH_CHANGED |
/// | (E, O) | E ≠ epoch | EPOCH_CHANGED |
pub fn verdict(position: Option<Position>, epoch: u64, top: u64, oldest: u64) -> Verdict {
    let Some(position) = position else {
        return Verdict::NotAsked;
    };
    if position.epoch != epoch || position.offset > top {
        Verdict::NotRecovered(RecoveryReason::EpochChanged)
    } else if position.offset < oldest.saturating_sub(1) {
        Verdict::NotRecovered(RecoveryReason::TooFarBehind)
    } else {
        Verdict::Replay {
            after: position.offset,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(epoch: u64, offset: u64) -> Option<Position> {
        Some(Position { epoch, offset })
    }

    #[test]
    fn the_section_7_4_table() {
        // Epoch 7 holds 41..=43.
        let v = |p| verdict(p, 7, 43, 41);
        assert_eq!(v(None), Verdict::NotAsked);
        assert_eq!(v(at(7, 43)), Verdict::Replay { after: 43 });
        assert_eq!(v(at(7, 40)), Verdict::Replay { after: 40 });
        assert_eq!(
            v(at(7, 39)),
            Verdict::NotRecovered(RecoveryReason::TooFarBehind)
        );
        assert_eq!(
            v(at(7, 44)),
            Verdict::NotRecovered(RecoveryReason::EpochChanged)
        );
        assert_eq!(
            v(at(8, 42)),
            Verdict::NotRecovered(RecoveryReason::EpochChanged)
        );
        // Nothing held (history off): only the top itself is recovered.
        assert_eq!(verdict(at(7, 43), 7, 43, 44), Verdict::Replay { after: 43 });
        assert_eq!(
            verdict(at(7, 42), 7, 43, 44),
            Verdict::NotRecovered(RecoveryReason::TooFarBehind)
        );
        // A fresh stream: top 0, nothing held.
        assert_eq!(verdict(at(7, 0), 7, 0, 1), Verdict::Replay { after: 0 });
    }
}
