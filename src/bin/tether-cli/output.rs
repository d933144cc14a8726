//! What goes to stdout: payload lines, or one JSON object per line.
//!
//! Epochs are written as 16 hex digits in strings: they are random 64-bit
//! numbers, and most JSON readers (jq, JavaScript) hold numbers as doubles,
//! which would round them. Offsets are plain numbers.

use std::io::{self, BufWriter, StdoutLock, Write};

use base64::Engine;
use serde_json::{json, Value};
use tether::client::pubsub::{Position, PubsubEvent};

/// An epoch as `--from` and the JSON output spell it.
pub fn epoch_hex(epoch: u64) -> String {
    format!("{epoch:016x}")
}

/// `EPOCH:OFFSET`, as `--from` takes it.
pub fn position_text(p: Position) -> String {
    format!("{}:{}", epoch_hex(p.epoch), p.offset)
}

/// A channel name for JSON and messages (names from the command line are UTF-8).
pub fn channel_text(channel: &[u8]) -> String {
    String::from_utf8_lossy(channel).into_owned()
}

/// The JSON line for a subscriber's event; `None` for events `sub` does not print.
pub fn event_json(event: &PubsubEvent) -> Option<Value> {
    Some(match event {
        PubsubEvent::Message {
            channel,
            epoch,
            offset,
            payload,
        } => {
            let mut line = json!({
                "event": "message",
                "channel": channel_text(channel),
                "epoch": epoch_hex(*epoch),
                "offset": offset,
            });
            match std::str::from_utf8(payload) {
                Ok(text) => line["payload"] = json!(text),
                Err(_) => {
                    let b64 = base64::engine::general_purpose::STANDARD.encode(payload);
                    line["payload_b64"] = json!(b64);
                }
            }
            line
        }
        PubsubEvent::Subscribed {
            channel,
            epoch,
            top,
            recovered,
            replayed,
        } => json!({
            "event": "subscribed",
            "channel": channel_text(channel),
            "epoch": epoch_hex(*epoch),
            "offset": top,
            "recovered": recovered,
            "replayed": replayed,
        }),
        PubsubEvent::RecoveryFailed {
            channel,
            reason,
            old,
            new,
        } => json!({
            "event": "recovery_failed",
            "channel": channel_text(channel),
            "reason": reason.to_string(),
            "old_epoch": epoch_hex(old.epoch),
            "old_offset": old.offset,
            "epoch": epoch_hex(new.epoch),
            "offset": new.offset,
        }),
        PubsubEvent::SubscribeFailed { channel, status } => json!({
            "event": "subscribe_failed",
            "channel": channel_text(channel),
            "status": status.to_string(),
        }),
        PubsubEvent::Connected { resumed } => json!({
            "event": "connected",
            "resumed": resumed,
        }),
        PubsubEvent::Disconnected { reason } => json!({
            "event": "disconnected",
            "reason": reason.to_string(),
        }),
        PubsubEvent::PublishAcked { .. }
        | PubsubEvent::PublishFailed { .. }
        | PubsubEvent::PublishUnknown { .. } => return None,
    })
}

/// Stdout, line by line, flushed after each line so a reader sees every
/// event as it happens.
pub struct Out {
    w: BufWriter<StdoutLock<'static>>,
}

impl Out {
    /// Locks stdout for the rest of the run.
    pub fn stdout() -> Out {
        Out {
            w: BufWriter::new(io::stdout().lock()),
        }
    }

    /// Writes `bytes` and a newline.
    pub fn line(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.w.write_all(bytes)?;
        self.w.write_all(b"\n")?;
        self.w.flush()
    }

    /// Writes one JSON object on a line.
    pub fn json(&mut self, value: &Value) -> io::Result<()> {
        self.line(value.to_string().as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use tether::client::pubsub::RecoveryReason;
    use tether::client::DisconnectReason;

    fn line(event: PubsubEvent) -> String {
        event_json(&event).expect("printed").to_string()
    }

    #[test]
    fn messages_carry_utf8_as_text_and_the_rest_as_base64() {
        let message = |payload: &'static [u8]| PubsubEvent::Message {
            channel: Bytes::from_static(b"news"),
            epoch: 0x0123_4567_89ab_cdef,
            offset: 42,
            payload: Bytes::from_static(payload),
        };
        assert_eq!(
            line(message(b"h\"i")),
            r#"{"event":"message","channel":"news","epoch":"0123456789abcdef","offset":42,"payload":"h\"i"}"#
        );
        assert_eq!(
            line(message(&[0xff, 0x00, b'a'])),
            r#"{"event":"message","channel":"news","epoch":"0123456789abcdef","offset":42,"payload_b64":"/wBh"}"#
        );
    }

    #[test]
    fn every_subscriber_event_has_its_line() {
        let news = || Bytes::from_static(b"news");
        assert_eq!(
            line(PubsubEvent::Subscribed {
                channel: news(),
                epoch: 1,
                top: 43,
                recovered: true,
                replayed: 2
            }),
            r#"{"event":"subscribed","channel":"news","epoch":"0000000000000001","offset":43,"recovered":true,"replayed":2}"#
        );
        assert_eq!(
            line(PubsubEvent::RecoveryFailed {
                channel: news(),
                reason: RecoveryReason::TooFarBehind,
                old: Position {
                    epoch: 1,
                    offset: 3
                },
                new: Position {
                    epoch: 1,
                    offset: 900
                },
            }),
            r#"{"event":"recovery_failed","channel":"news","reason":"TOO_FAR_BEHIND","old_epoch":"0000000000000001","old_offset":3,"epoch":"0000000000000001","offset":900}"#
        );
        assert_eq!(
            line(PubsubEvent::Connected { resumed: false }),
            r#"{"event":"connected","resumed":false}"#
        );
        assert_eq!(
            line(PubsubEvent::Disconnected {
                reason: DisconnectReason::Eof
            }),
            r#"{"event":"disconnected","reason":"server closed the connection"}"#
        );
        assert_eq!(
            position_text(Position {
                epoch: 0xab,
                offset: 7
            }),
            "00000000000000ab:7"
        );
    }
}
