//! The status and recovery-reason numbers of v2 replies (docs/protocol.md
//! §7.2), with room for numbers a later server may add.

use std::fmt;

/// A request's outcome in a reply (docs/protocol.md §7.2 status codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    /// Done.
    Ok,
    /// An empty channel, or one the server's channel rules refuse.
    BadChannel,
    /// The connection already holds the most subscriptions it may.
    TooManySubscriptions,
    /// The body is above the engine's publication limit.
    TooLarge,
    /// Refused by the server's policy.
    NotAllowed,
    /// History or engine unavailable; nothing done; retry later.
    Unavailable,
    /// PUBLISH only: the engine sent the publication to its store and lost
    /// the connection before the result, so it may have been published; the
    /// server never resends it, and a client must not assume either way.
    OutcomeUnknown,
    /// A code this implementation does not know (7..=255 when parsed): a
    /// failure of the request, kept so a client can report it.
    Unknown(u8),
}

impl Status {
    /// Every status this implementation knows, in wire order.
    pub const ALL: [Status; 7] = [
        Status::Ok,
        Status::BadChannel,
        Status::TooManySubscriptions,
        Status::TooLarge,
        Status::NotAllowed,
        Status::Unavailable,
        Status::OutcomeUnknown,
    ];

    /// The status for a wire number; numbers past the table become [`Status::Unknown`].
    pub fn from_u8(n: u8) -> Status {
        Status::ALL
            .get(usize::from(n))
            .copied()
            .unwrap_or(Status::Unknown(n))
    }

    /// The status's number on the wire.
    pub fn as_u8(self) -> u8 {
        match self {
            Status::Unknown(n) => n,
            known => Status::ALL.iter().position(|s| *s == known).unwrap_or(0) as u8,
        }
    }

    /// Whether the request was done.
    pub fn is_ok(self) -> bool {
        self == Status::Ok
    }

    /// The status's name as docs/protocol.md spells it.
    pub fn name(self) -> &'static str {
        match self {
            Status::Ok => "OK",
            Status::BadChannel => "BAD_CHANNEL",
            Status::TooManySubscriptions => "TOO_MANY_SUBSCRIPTIONS",
            Status::TooLarge => "TOO_LARGE",
            Status::NotAllowed => "NOT_ALLOWED",
            Status::Unavailable => "UNAVAILABLE",
            Status::OutcomeUnknown => "OUTCOME_UNKNOWN",
            Status::Unknown(_) => "UNKNOWN",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Status::Unknown(n) => write!(f, "UNKNOWN({n})"),
            known => f.write_str(known.name()),
        }
    }
}

/// Why a SUBSCRIBE with a position was not recovered (docs/protocol.md §7.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RecoveryReason {
    /// Recovered, or no position given.
    None,
    /// The position's epoch is not the stream's (or its offset is past the top).
    EpochChanged,
    /// Same epoch, but publications after the position are no longer held.
    TooFarBehind,
    /// A reason this implementation does not know (3..=255 when parsed): not recovered.
    Unknown(u8),
}

impl RecoveryReason {
    /// Every reason this implementation knows, in wire order.
    pub const ALL: [RecoveryReason; 3] = [
        RecoveryReason::None,
        RecoveryReason::EpochChanged,
        RecoveryReason::TooFarBehind,
    ];

    /// The reason for a wire number; numbers past the table become [`RecoveryReason::Unknown`].
    pub fn from_u8(n: u8) -> RecoveryReason {
        RecoveryReason::ALL
            .get(usize::from(n))
            .copied()
            .unwrap_or(RecoveryReason::Unknown(n))
    }

    /// The reason's number on the wire.
    pub fn as_u8(self) -> u8 {
        match self {
            RecoveryReason::Unknown(n) => n,
            known => RecoveryReason::ALL
                .iter()
                .position(|r| *r == known)
                .unwrap_or(0) as u8,
        }
    }

    /// The reason's name as docs/protocol.md spells it.
    pub fn name(self) -> &'static str {
        match self {
            RecoveryReason::None => "NONE",
            RecoveryReason::EpochChanged => "EPOCH_CHANGED",
            RecoveryReason::TooFarBehind => "TOO_FAR_BEHIND",
            RecoveryReason::Unknown(_) => "UNKNOWN",
        }
    }
}

impl fmt::Display for RecoveryReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecoveryReason::Unknown(n) => write!(f, "UNKNOWN({n})"),
            known => f.write_str(known.name()),
        }
    }
}
