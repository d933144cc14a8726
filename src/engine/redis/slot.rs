//! Redis Cluster's key → hash slot mapping, so a node sends a channel's
//! commands straight to the shard that owns them and needs a MOVED only
//! after the slot map changed.

/// How many hash slots a Redis Cluster has.
pub const SLOTS: u16 = 16384;

/// The hash slot of a key (or shard channel): CRC16-XMODEM of the key mod
/// 16384, where a key with a non-empty `{tag}` (the first `{` and the
/// first `}` after it) hashes only the tag, so keys sharing a tag share a
/// slot. The computation is redis-protocol's (the codec crate already
/// carries it), kept behind this name so the engine has one home for it.
pub fn slot_of(key: &[u8]) -> u16 {
    redis_protocol::redis_keyslot(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_vectors() {
        // CRC16-XMODEM check value: "123456789" -> 0x31C3 = 12739.
        assert_eq!(slot_of(b"123456789"), 0x31C3);
        // From the cluster specification and `CLUSTER KEYSLOT`.
        assert_eq!(slot_of(b"foo"), 12182);
        assert_eq!(slot_of(b"bar"), 5061);
        assert_eq!(slot_of(b"somekey"), 11058);
        assert_eq!(slot_of(b""), 0);
    }

    #[test]
    fn hash_tags() {
        // Only the tag is hashed.
        assert_eq!(slot_of(b"{user1000}.following"), slot_of(b"user1000"));
        assert_eq!(slot_of(b"{user1000}.followers"), slot_of(b"user1000"));
        // The first '{' and the first '}' after it.
        assert_eq!(slot_of(b"foo{{bar}}zap"), slot_of(b"{bar"));
        assert_eq!(slot_of(b"foo{bar}{zap}"), slot_of(b"bar"));
        // An empty tag, or none closed, hashes the whole key.
        assert_eq!(slot_of(b"foo{}{bar}"), crc(b"foo{}{bar}"));
        assert_ne!(slot_of(b"foo{}{bar}"), slot_of(b"bar"));
        assert_eq!(slot_of(b"{bar"), crc(b"{bar"));
        assert_eq!(slot_of(b"}bar{"), crc(b"}bar{"));
        // Every slot is in range, even for binary keys.
        for k in [&b"\xff\xff{"[..], b"{}", b"{", b"}", b"{\x00}"] {
            assert!(slot_of(k) < SLOTS, "{k:?}");
        }
    }

    /// The plain CRC16-XMODEM mod 16384, written out for the tests only.
    fn crc(key: &[u8]) -> u16 {
        let mut crc: u16 = 0;
        for &b in key {
            crc ^= u16::from(b) << 8;
            for _ in 0..8 {
                crc = if crc & 0x8000 != 0 {
                    (crc << 1) ^ 0x1021
                } else {
                    crc << 1
                };
            }
        }
        crc & (SLOTS - 1)
    }

    #[test]
    fn whole_key_hash_matches_the_reference_crc() {
        for k in [&b"foo"[..], b"123456789", b"tether", b"\x00\x01\x02"] {
            assert_eq!(slot_of(k), crc(k), "{k:?}");
        }
    }
}
