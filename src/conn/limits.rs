//! What a connection obeys, already in the units it works in: deadlines as
//! tick [`Span`]s, sizes in bytes, the heartbeat bounds and the auth tokens.
//! Built once from the server's [`Config`], so the
//! state machine never converts milliseconds on its own.

use crate::config::Config;
use crate::time::Span;

/// A connection's limits; see [`Config`] for why each exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnLimits {
    /// The tick length in ms (the token bucket refills per tick).
    pub tick_ms: u32,
    /// Time allowed for a valid HELLO.
    pub handshake: Span,
    /// Time allowed to finish a frame once its first byte arrived.
    pub frame_timeout: Span,
    /// Time a closing connection may take to flush and see the peer's EOF.
    pub linger: Span,
    /// Grace period above the soft output limit.
    pub soft_output_grace: Span,
    /// Heartbeat granted when the client asks for 0, ms.
    pub heartbeat_ms: u32,
    /// Shortest heartbeat granted, ms.
    pub min_heartbeat_ms: u32,
    /// Longest heartbeat granted, ms.
    pub max_heartbeat_ms: u32,
    /// Silent heartbeat intervals before eviction.
    pub miss: u32,
    /// Largest frame payload accepted (and the size our messages are split at).
    pub max_frame: u16,
    /// Largest reassembled message.
    pub max_message: u32,
    /// Unsent output before SLOW_CONSUMER.
    pub max_output: usize,
    /// Soft output limit (0 = off).
    pub soft_output: usize,
    /// Frames per second on average (0 = no limit).
    pub rate_limit: u32,
    /// Frames allowed in a burst above the rate.
    pub rate_burst: u32,
    /// Accepted auth tokens; empty = no auth.
    pub auth_tokens: Vec<Vec<u8>>,
}

impl ConnLimits {
    /// The limits of a validated configuration, durations rounded up to ticks.
    pub fn from_config(c: &Config) -> ConnLimits {
        let span = |ms: u32| Span::from_ms(ms.into(), c.tick_ms);
        ConnLimits {
            tick_ms: c.tick_ms,
            handshake: span(c.handshake_timeout_ms),
            frame_timeout: span(c.frame_timeout_ms),
            linger: span(c.linger_ms),
            soft_output_grace: span(c.soft_output_ms),
            heartbeat_ms: c.heartbeat_ms,
            min_heartbeat_ms: c.min_heartbeat_ms,
            max_heartbeat_ms: c.max_heartbeat_ms,
            miss: c.miss,
            max_frame: c.max_frame,
            max_message: c.max_message,
            max_output: c.max_output,
            soft_output: c.soft_output,
            rate_limit: c.rate_limit,
            rate_burst: c.rate_burst,
            auth_tokens: c.auth_tokens.clone(),
        }
    }

    /// The heartbeat granted for a HELLO asking for `requested_ms` (0 = server's choice).
    pub fn negotiate_heartbeat(&self, requested_ms: u32) -> u32 {
        let wanted = if requested_ms == 0 {
            self.heartbeat_ms
        } else {
            requested_ms
        };
        wanted.clamp(self.min_heartbeat_ms, self.max_heartbeat_ms)
    }

    /// The idle timeout that goes with a negotiated heartbeat (`heartbeat × miss`), ms.
    pub fn idle_timeout_ms(&self, heartbeat_ms: u32) -> u32 {
        heartbeat_ms.saturating_mul(self.miss)
    }

    /// The idle timeout for a negotiated heartbeat, in ticks.
    pub fn idle_timeout(&self, heartbeat_ms: u32) -> Span {
        Span::from_ms(self.idle_timeout_ms(heartbeat_ms).into(), self.tick_ms)
    }

    /// Whether a HELLO token is acceptable: always when no tokens are set,
    /// else it must equal one of them. Each comparison takes the same time
    /// whatever the bytes, so the token cannot be guessed byte by byte.
    pub fn is_authorized(&self, token: &[u8]) -> bool {
        if self.auth_tokens.is_empty() {
            return true;
        }
        self.auth_tokens.iter().fold(false, |found, accepted| {
            found | constant_time_eq(accepted, token)
        })
    }
}

/// Compares two byte strings in time that depends only on their lengths.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |diff, (x, y)| diff | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_negotiate_as_documented() {
        let l = ConnLimits::from_config(&Config::default());
        assert_eq!(l.negotiate_heartbeat(0), 30_000);
        assert_eq!(l.negotiate_heartbeat(1), 1_000);
        assert_eq!(l.negotiate_heartbeat(u32::MAX), 600_000);
        assert_eq!(l.idle_timeout_ms(30_000), 90_000);
        assert_eq!(l.idle_timeout(30_000).ticks(), 900);
        assert_eq!(l.handshake.ticks(), 50);
    }

    #[test]
    fn durations_round_up_to_ticks() {
        let l = ConnLimits::from_config(&Config {
            tick_ms: 30,
            linger_ms: 100,
            ..Config::default()
        });
        assert_eq!(l.linger.ticks(), 4);
    }

    #[test]
    fn tokens_must_match_exactly() {
        let mut l = ConnLimits::from_config(&Config::default());
        assert!(l.is_authorized(b""));
        l.auth_tokens = vec![b"alpha".to_vec(), b"beta".to_vec()];
        assert!(l.is_authorized(b"beta"));
        assert!(!l.is_authorized(b""));
        assert!(!l.is_authorized(b"bet"));
        assert!(!l.is_authorized(b"betaa"));
    }
}
