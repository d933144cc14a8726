//! Redis Cluster's key → hash slot mapping, and slot → node, so a node
//! sends a channel's commands straight to the shard that owns them and
//! needs a MOVED only after the slot map changed.

use super::frame::Value;

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

/// Which master serves each slot, from `CLUSTER SLOTS`, kept current by
/// the MOVED replies met since (`ASK` is one command's detour: it changes
/// nothing here).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotMap {
    /// `HOST:PORT` of each master known.
    nodes: Vec<String>,
    /// Per slot, an index into `nodes`; [`NO_NODE`] when unassigned.
    owner: Vec<u16>,
}

const NO_NODE: u16 = u16::MAX;

impl SlotMap {
    /// The map a `CLUSTER SLOTS` reply describes: `[[start, end, [host,
    /// port, ...], replicas...], ...]`. An empty host means "the node you
    /// asked" (`asked_host`); ranges whose master has no usable endpoint
    /// (`?`) stay unassigned until a MOVED names one.
    pub fn from_cluster_slots(reply: &Value, asked_host: &str) -> Result<SlotMap, String> {
        let mut map = SlotMap {
            nodes: Vec::new(),
            owner: vec![NO_NODE; usize::from(SLOTS)],
        };
        let bad = |what: &str| format!("CLUSTER SLOTS reply: {what}");
        for range in reply.as_array().ok_or_else(|| bad("not an array"))? {
            let fields = range
                .as_array()
                .ok_or_else(|| bad("a range is not an array"))?;
            let (Some(start), Some(end), Some(master)) = (
                fields.first().and_then(Value::as_int),
                fields.get(1).and_then(Value::as_int),
                fields.get(2).and_then(Value::as_array),
            ) else {
                return Err(bad("a range without start, end and master"));
            };
            let (start, end) = match (u16::try_from(start), u16::try_from(end)) {
                (Ok(s), Ok(e)) if s <= e && e < SLOTS => (s, e),
                _ => return Err(bad(&format!("slot range {start}..={end} out of 0..16384"))),
            };
            let host = master
                .first()
                .and_then(Value::as_bytes)
                .ok_or_else(|| bad("a master without host"))?;
            let port = master
                .get(1)
                .and_then(Value::as_int)
                .ok_or_else(|| bad("a master without port"))?;
            let host = match &host[..] {
                b"?" => continue,
                b"" => asked_host.to_owned(),
                h => String::from_utf8_lossy(h).into_owned(),
            };
            let addr = if host.contains(':') {
                format!("[{host}]:{port}")
            } else {
                format!("{host}:{port}")
            };
            let node = map.node_index(&addr);
            map.owner[usize::from(start)..=usize::from(end)].fill(node);
        }
        Ok(map)
    }

    /// `HOST:PORT` of the master serving `slot`, if known.
    pub fn node_for(&self, slot: u16) -> Option<&str> {
        let node = *self.owner.get(usize::from(slot))?;
        self.nodes.get(usize::from(node)).map(String::as_str)
    }

    /// Records a `MOVED slot addr`: the slot lives on `addr` from now on.
    pub fn moved(&mut self, slot: u16, addr: &str) {
        if slot < SLOTS {
            let node = self.node_index(addr);
            self.owner[usize::from(slot)] = node;
        }
    }

    /// Every master named so far (some may own no slot any more).
    pub fn nodes(&self) -> &[String] {
        &self.nodes
    }

    fn node_index(&mut self, addr: &str) -> u16 {
        match self.nodes.iter().position(|n| n == addr) {
            Some(i) => i as u16,
            None => {
                self.nodes.push(addr.to_owned());
                // At most 16384 masters (one per slot) and one per MOVED:
                // far below u16::MAX.
                (self.nodes.len() - 1) as u16
            }
        }
    }
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

    fn bulk(s: &str) -> Value {
        Value::Bytes(bytes::Bytes::copy_from_slice(s.as_bytes()))
    }

    fn range(start: i64, end: i64, host: &str, port: i64) -> Value {
        let master = Value::Array(vec![
            bulk(host),
            Value::Int(port),
            bulk("id"),
            Value::Map(vec![]),
        ]);
        let replica = Value::Array(vec![bulk("10.0.0.9"), Value::Int(1), bulk("id2")]);
        Value::Array(vec![Value::Int(start), Value::Int(end), master, replica])
    }

    #[test]
    fn a_slot_map_from_cluster_slots_follows_moved() {
        let reply = Value::Array(vec![
            range(0, 5460, "127.0.0.1", 7000),
            range(5461, 10922, "", 7001),
            range(10923, 16383, "::1", 7002),
        ]);
        let mut map = SlotMap::from_cluster_slots(&reply, "seed.local").unwrap();
        assert_eq!(map.node_for(0), Some("127.0.0.1:7000"));
        assert_eq!(map.node_for(5460), Some("127.0.0.1:7000"));
        assert_eq!(map.node_for(5461), Some("seed.local:7001"));
        assert_eq!(map.node_for(16383), Some("[::1]:7002"));
        assert_eq!(map.node_for(16384), None);
        map.moved(5460, "127.0.0.1:7003");
        assert_eq!(map.node_for(5460), Some("127.0.0.1:7003"));
        assert_eq!(map.node_for(5459), Some("127.0.0.1:7000"));
        assert_eq!(map.nodes().len(), 4);
    }

    #[test]
    fn unknown_endpoints_and_gaps_stay_unassigned() {
        let reply = Value::Array(vec![range(0, 99, "?", 7000), range(200, 299, "h", 1)]);
        let map = SlotMap::from_cluster_slots(&reply, "seed").unwrap();
        assert_eq!(
            (map.node_for(50), map.node_for(150), map.node_for(250)),
            (None, None, Some("h:1"))
        );
    }

    #[test]
    fn malformed_replies_say_what_is_wrong() {
        for (reply, what) in [
            (Value::Nil, "not an array"),
            (Value::Array(vec![Value::Int(1)]), "a range is not an array"),
            (
                Value::Array(vec![Value::Array(vec![Value::Int(0)])]),
                "without start, end and master",
            ),
            (Value::Array(vec![range(5, 4, "h", 1)]), "5..=4"),
            (
                Value::Array(vec![range(0, 16384, "h", 1)]),
                "out of 0..16384",
            ),
            (
                Value::Array(vec![Value::Array(vec![
                    Value::Int(0),
                    Value::Int(1),
                    Value::Array(vec![bulk("h")]),
                ])]),
                "without port",
            ),
        ] {
            let err = SlotMap::from_cluster_slots(&reply, "seed").unwrap_err();
            assert!(err.contains(what), "{err} (wanted {what})");
        }
    }
}
