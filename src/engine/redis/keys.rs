//! Where a channel lives in Redis: its stream, its meta hash and its
//! pub/sub channel, named so they share one hash slot (one shard of a
//! Redis Cluster), and so any channel bytes make a safe name.
//!
//! A tether channel is 1..=255 arbitrary bytes. Its name in Redis is
//! `{PREFIX:HEX}:stream`, `{PREFIX:HEX}:meta` and `{PREFIX:HEX}:pub`, HEX
//! being the channel in lowercase hex: no byte of it can be `{` or `}`, so
//! the hash tag is exactly `PREFIX:HEX`, and every name reads back to its
//! channel unambiguously.

use bytes::Bytes;

use super::slot::slot_of;

/// The prefix used unless configured otherwise.
pub const DEFAULT_PREFIX: &str = "tether";

/// The longest channel (docs/protocol.md §7.2).
const MAX_CHANNEL_LEN: usize = 255;

/// The Redis names of one channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelKeys {
    /// The hash holding the stream's `epoch` (8 bytes) and `top` offset.
    pub meta: Bytes,
    /// The stream holding the history: entry `OFFSET-0` per publication.
    pub stream: Bytes,
    /// The pub/sub (or shard) channel live publications go to.
    pub pubsub: Bytes,
}

/// The naming scheme under one prefix, so several tether deployments can
/// share a Redis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeySpace {
    prefix: String,
}

impl Default for KeySpace {
    fn default() -> Self {
        KeySpace {
            prefix: DEFAULT_PREFIX.to_owned(),
        }
    }
}

impl KeySpace {
    /// A key space named `prefix`: 1..=64 bytes of ASCII letters, digits,
    /// `-`, `_`, `.` or `:` (no `{` or `}`, which would change the hash tag).
    pub fn new(prefix: &str) -> Result<KeySpace, String> {
        let ok = |b: u8| b.is_ascii_alphanumeric() || b"-_.:".contains(&b);
        if prefix.is_empty() || prefix.len() > 64 || !prefix.bytes().all(ok) {
            return Err(format!(
                "redis key prefix {prefix:?}: must be 1..=64 of A-Z a-z 0-9 - _ . :"
            ));
        }
        Ok(KeySpace {
            prefix: prefix.to_owned(),
        })
    }

    /// The prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The names of `channel`'s stream, meta hash and pub/sub channel.
    pub fn keys(&self, channel: &[u8]) -> ChannelKeys {
        let tag = self.tag(channel);
        let with = |suffix: &str| Bytes::from(format!("{tag}:{suffix}"));
        ChannelKeys {
            meta: with("meta"),
            stream: with("stream"),
            pubsub: with("pub"),
        }
    }

    /// The hash slot all of `channel`'s names live in.
    pub fn slot(&self, channel: &[u8]) -> u16 {
        slot_of(self.tag(channel).as_bytes())
    }

    /// The tether channel a pub/sub channel name of this key space is for;
    /// `None` for any other name (another prefix, bad hex, a channel of
    /// 0 or more than 255 bytes).
    pub fn channel_of(&self, pubsub: &[u8]) -> Option<Bytes> {
        let rest = pubsub
            .strip_prefix(b"{")?
            .strip_prefix(self.prefix.as_bytes())?;
        let hex = rest.strip_prefix(b":")?.strip_suffix(b"}:pub")?;
        if hex.is_empty() || hex.len() > 2 * MAX_CHANNEL_LEN || hex.len() % 2 != 0 {
            return None;
        }
        hex.chunks(2)
            .map(|pair| Some(nibble(pair[0])? << 4 | nibble(pair[1])?))
            .collect::<Option<Vec<u8>>>()
            .map(Bytes::from)
    }

    /// `{PREFIX:HEX}`.
    fn tag(&self, channel: &[u8]) -> String {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut tag = String::with_capacity(self.prefix.len() + 3 + 2 * channel.len());
        tag.push('{');
        tag.push_str(&self.prefix);
        tag.push(':');
        for b in channel {
            tag.push(char::from(DIGITS[usize::from(b >> 4)]));
            tag.push(char::from(DIGITS[usize::from(b & 15)]));
        }
        tag.push('}');
        tag
    }
}

/// A lowercase hex digit's value (uppercase is not what [`KeySpace::keys`] writes).
fn nibble(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_share_a_hash_tag_and_read_back() {
        let space = KeySpace::default();
        let keys = space.keys(b"news");
        assert_eq!(&keys.meta[..], b"{tether:6e657773}:meta");
        assert_eq!(&keys.stream[..], b"{tether:6e657773}:stream");
        assert_eq!(&keys.pubsub[..], b"{tether:6e657773}:pub");
        let slot = space.slot(b"news");
        for name in [&keys.meta, &keys.stream, &keys.pubsub] {
            assert_eq!(slot_of(name), slot);
        }
        assert_eq!(
            space.channel_of(&keys.pubsub),
            Some(Bytes::from_static(b"news"))
        );
    }

    #[test]
    fn any_channel_bytes_make_a_safe_name() {
        let space = KeySpace::new("app-1.x:y").unwrap();
        let every_byte: Vec<u8> = (0..=254).collect();
        for channel in [
            &b"{"[..],
            b"}",
            b"{a}",
            b"\x00",
            b"\r\n",
            b"\xff",
            &every_byte,
        ] {
            let keys = space.keys(channel);
            assert_eq!(space.channel_of(&keys.pubsub).as_deref(), Some(channel));
            assert_eq!(slot_of(&keys.stream), space.slot(channel));
            // The tag is the first {...}: nothing of the channel can end it early.
            assert_eq!(
                keys.stream
                    .iter()
                    .filter(|b| **b == b'{' || **b == b'}')
                    .count(),
                2
            );
        }
        // Different channels, different names (hex is one-to-one).
        assert_ne!(space.keys(b"a").stream, space.keys(b"b").stream);
    }

    #[test]
    fn foreign_names_are_no_channel() {
        let space = KeySpace::default();
        for name in [
            &b"{tether:6e}:meta"[..],
            b"{other:6e}:pub",
            b"{tether:}:pub",
            b"{tether:6}:pub",
            b"{tether:6E}:pub",
            b"{tether:zz}:pub",
            b"tether:6e:pub",
            b"",
        ] {
            assert_eq!(
                space.channel_of(name),
                None,
                "{}",
                String::from_utf8_lossy(name)
            );
        }
        let too_long = space.keys(&[7u8; 256]).pubsub;
        assert_eq!(space.channel_of(&too_long), None);
    }

    #[test]
    fn prefixes_are_checked() {
        for bad in ["", "a{b", "a}b", "a b", &"x".repeat(65)] {
            let err = KeySpace::new(bad).unwrap_err();
            assert!(err.contains("redis key prefix"), "{err}");
        }
        assert_eq!(KeySpace::new("tether").unwrap(), KeySpace::default());
    }
}
