//! The channel streams in Redis: Lua scripts that number, store and
//! publish a publication in one atomic step, read a stream for recovery in
//! one atomic step, and keep a subscribed stream alive; with typed builders
//! for their calls and parsers for their replies.
//!
//! **Layout** (names from [`KeySpace`]): the meta hash holds `epoch` (8
//! bytes, big-endian) and `top`; the stream holds publication OFFSET as
//! entry `OFFSET-0` with fields `t` (Redis time, ms) and `p` (the payload),
//! so `XRANGE stream O+1-0 +` is exactly the offsets after O.
//!
//! **Payload**: what is published and stored is the §7.2 PUBLICATION DATA
//! payload itself, `07 | epoch u64 | offset u64 | chan_len u8 | channel |
//! body`, built once by the script: every node parses it with the
//! protocol's own parser and frames it for its subscribers without
//! re-encoding the body, and a replay is the stored payloads as they are.
//!
//! **Epochs**: made by the script from a candidate the node draws from the
//! OS random source (Lua's `math.random` is seeded the same on every call),
//! used only when the stream has none. A missing meta hash (never made,
//! expired, evicted, FLUSHALL) means a new epoch; the stream is deleted
//! with it, so no old entry can pass for the new numbering. Offsets are Lua
//! numbers (doubles), exact below 2^53: the script starts a new epoch there,
//! where §7.3 says 2^64 − 1 (some 285 years at a million a second).
//!
//! **Age**: entries older than the TTL (by Redis's clock, one per shard,
//! not the nodes' skewed ones) are trimmed oldest first at every publish
//! and read; publish and read also PEXPIRE both keys by the TTL, so an idle
//! stream is forgotten (§7.3), and a node keeps a subscribed one alive with
//! [`RedisStreams::touch`] more often than the TTL.

use std::sync::LazyLock;

use bytes::Bytes;

use super::command::{Command, PubsubKind, Script};
use super::frame::Value;
use super::keys::KeySpace;
use crate::app::pubsub::ops_v2::{parse_server_msg, Position, Publication, ServerMsg};

/// Helpers every script starts with. Lua 5.1: numbers are doubles, so
/// numbers sent to Redis are formatted with `%d` (concatenation would give
/// `1e+15`).
const PRELUDE: &str = r#"
local meta, stream = KEYS[1], KEYS[2]
local MAX_TOP = 9007199254740991
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function offset_of(id)
  return tonumber(string.match(id, '^(%d+)'))
end
-- The stream's epoch and top; a new numbering (with `candidate`, an empty
-- history) when there is none or the top reached `renew_at`.
local function stream_state(candidate, renew_at)
  local st = redis.call('HMGET', meta, 'epoch', 'top')
  local epoch, top = st[1], tonumber(st[2])
  if not epoch or #epoch ~= 8 or not top or top >= renew_at then
    redis.call('DEL', stream)
    redis.call('HSET', meta, 'epoch', candidate, 'top', 0)
    return candidate, 0
  end
  return epoch, top
end
-- Drops held publications stored before `cutoff` (ms), oldest first. The
-- common case, a young head, costs one one-entry XRANGE.
local function trim_aged(cutoff)
  local first = redis.call('XRANGE', stream, '-', '+', 'COUNT', 1)
  if #first == 0 or (tonumber(first[1][2][2]) or 0) >= cutoff then return end
  while true do
    local head = redis.call('XRANGE', stream, '-', '+', 'COUNT', 16)
    if #head == 0 then return end
    for _, entry in ipairs(head) do
      if (tonumber(entry[2][2]) or 0) >= cutoff then
        redis.call('XTRIM', stream, 'MINID', entry[1])
        return
      end
    end
    local after = offset_of(head[#head][1]) + 1
    redis.call('XTRIM', stream, 'MINID', string.format('%d-0', after))
  end
end
"#;

/// ARGV: candidate epoch (8 bytes), history size, TTL ms, `PUBLISH` or
/// `SPUBLISH`, pub/sub channel, tether channel, body. Returns {epoch, offset}.
const PUBLISH_BODY: &str = r#"
local size, ttl = tonumber(ARGV[2]), tonumber(ARGV[3])
local epoch = stream_state(ARGV[1], MAX_TOP)
local top = redis.call('HINCRBY', meta, 'top', 1)
local payload = '\7' .. epoch .. struct.pack('>I8', top) .. string.char(#ARGV[6]) .. ARGV[6] .. ARGV[7]
if size > 0 then
  local now = now_ms()
  redis.call('XADD', stream, 'MAXLEN', string.format('%d', size), string.format('%d-0', top),
    't', string.format('%d', now), 'p', payload)
  trim_aged(now - ttl)
  redis.call('PEXPIRE', stream, string.format('%d', ttl))
else
  redis.call('DEL', stream)
end
redis.call('PEXPIRE', meta, string.format('%d', ttl))
redis.call(ARGV[4], ARGV[5], payload)
return {epoch, top}
"#;

/// ARGV: candidate epoch, TTL ms, position epoch (8 bytes, or empty for
/// none), position offset, most entries, most payload bytes. Returns
/// {epoch, top, oldest, {payloads of offsets O+1..=top}}, the payloads only
/// when the position is in this epoch's held range and within both limits.
const READ_BODY: &str = r#"
local ttl = tonumber(ARGV[2])
local epoch, top = stream_state(ARGV[1], math.huge)
redis.call('PEXPIRE', meta, string.format('%d', ttl))
redis.call('PEXPIRE', stream, string.format('%d', ttl))
trim_aged(now_ms() - ttl)
local oldest = top + 1
local first = redis.call('XRANGE', stream, '-', '+', 'COUNT', 1)
if #first > 0 then oldest = offset_of(first[1][1]) end
local replay = {}
local from = tonumber(ARGV[4])
if ARGV[3] == epoch and from and from < top and from >= oldest - 1
    and top - from <= tonumber(ARGV[5]) then
  local bytes, budget = 0, tonumber(ARGV[6])
  for i, entry in ipairs(redis.call('XRANGE', stream, string.format('%d-0', from + 1), '+')) do
    local payload = entry[2][4] or ''
    bytes = bytes + #payload
    if bytes > budget then
      replay = {}
      break
    end
    replay[i] = payload
  end
end
return {epoch, top, oldest, replay}
"#;

/// ARGV: TTL ms. Returns 1 when the stream still exists (its TTL renewed), 0 when forgotten.
const TOUCH_BODY: &str = r#"
local ttl = string.format('%d', tonumber(ARGV[1]))
redis.call('PEXPIRE', stream, ttl)
return redis.call('PEXPIRE', meta, ttl)
"#;

/// Numbers, stores and publishes one publication atomically.
pub static PUBLISH: LazyLock<Script> =
    LazyLock::new(|| Script::new("tether-publish", format!("{PRELUDE}{PUBLISH_BODY}")));
/// Reads a stream's epoch, top, oldest and the entries after a position.
pub static READ: LazyLock<Script> =
    LazyLock::new(|| Script::new("tether-read", format!("{PRELUDE}{READ_BODY}")));
/// Renews a subscribed stream's TTL.
pub static TOUCH: LazyLock<Script> =
    LazyLock::new(|| Script::new("tether-touch", format!("{PRELUDE}{TOUCH_BODY}")));

/// A publish script's answer: where the publication landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Published {
    /// The stream's epoch.
    pub epoch: u64,
    /// The publication's offset, at least 1.
    pub offset: u64,
}

/// A read script's answer: the stream as one atomic read saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamRead {
    /// The stream's epoch (made by the read if the stream had none).
    pub epoch: u64,
    /// The top offset (0: nothing published in this epoch).
    pub top: u64,
    /// The oldest held offset; top + 1 when nothing is held.
    pub oldest: u64,
    /// PUBLICATION payloads after the position, when the script sent them.
    pub replay: Vec<Bytes>,
}

/// A script reply or push that is not what the scripts produce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplyError(pub String);

impl std::fmt::Display for ReplyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// How a node uses the channel streams: names, history limits, which
/// pub/sub. Builds every command the scripts need and reads their replies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisStreams {
    /// The key naming scheme.
    pub keys: KeySpace,
    /// Classic pub/sub (standalone) or sharded (Redis Cluster).
    pub pubsub: PubsubKind,
    /// Publications kept per stream (`--history-size`); 0: numbered, not kept.
    pub history_size: u64,
    /// Age limit of a publication and idle life of a stream, ms (`--history-ttl-ms`).
    pub ttl_ms: u64,
    /// Most publications one read replays; beyond, not recovered (TOO_FAR_BEHIND).
    pub max_replay: u64,
    /// Most payload bytes one read replays; beyond, not recovered.
    pub max_replay_bytes: u64,
}

impl RedisStreams {
    /// SCRIPT LOAD of every script, for a new connection before its first call.
    pub fn load_commands() -> [Command; 3] {
        [
            PUBLISH.load_command(),
            READ.load_command(),
            TOUCH.load_command(),
        ]
    }

    /// Publishes `body` to `channel` (1..=255 bytes, checked by the caller).
    /// `candidate_epoch` (from the OS random source, not 0) becomes the
    /// epoch only if the stream has none. Reply: [`RedisStreams::published`].
    pub fn publish(&self, channel: &[u8], body: Bytes, candidate_epoch: u64) -> Command {
        let keys = self.keys.keys(channel);
        let publish: &'static str = match self.pubsub {
            PubsubKind::Global => "PUBLISH",
            PubsubKind::Sharded => "SPUBLISH",
        };
        let args = vec![
            Bytes::copy_from_slice(&candidate_epoch.to_be_bytes()),
            Bytes::from(self.history_size.to_string()),
            Bytes::from(self.ttl_ms.to_string()),
            Bytes::from_static(publish.as_bytes()),
            keys.pubsub,
            Bytes::copy_from_slice(channel),
            body,
        ];
        Command::script(&PUBLISH, vec![keys.meta, keys.stream], args)
    }

    /// Reads `channel`'s stream for a SUBSCRIBE with `position`, making the
    /// stream (with `candidate_epoch`) if it has none. Reply: [`RedisStreams::stream_read`].
    pub fn read(
        &self,
        channel: &[u8],
        position: Option<Position>,
        candidate_epoch: u64,
    ) -> Command {
        let keys = self.keys.keys(channel);
        let (epoch, offset) = match position {
            Some(p) => (Bytes::copy_from_slice(&p.epoch.to_be_bytes()), p.offset),
            None => (Bytes::new(), 0),
        };
        let args = vec![
            Bytes::copy_from_slice(&candidate_epoch.to_be_bytes()),
            Bytes::from(self.ttl_ms.to_string()),
            epoch,
            Bytes::from(offset.to_string()),
            Bytes::from(self.max_replay.to_string()),
            Bytes::from(self.max_replay_bytes.to_string()),
        ];
        Command::script(&READ, vec![keys.meta, keys.stream], args)
    }

    /// Renews the TTL of a stream this node has subscribers on. Reply: 1
    /// when it still existed, 0 when it had been forgotten.
    pub fn touch(&self, channel: &[u8]) -> Command {
        let keys = self.keys.keys(channel);
        let args = vec![Bytes::from(self.ttl_ms.to_string())];
        Command::script(&TOUCH, vec![keys.meta, keys.stream], args)
    }

    /// Subscribes a node to the live feed of `channels` (in cluster mode,
    /// channels of one slot per command, sent to that slot's node).
    pub fn subscribe<'a>(&self, channels: impl IntoIterator<Item = &'a [u8]>) -> Command {
        Command::subscribe(
            self.pubsub,
            channels.into_iter().map(|c| self.keys.keys(c).pubsub),
        )
    }

    /// Ends the node's live feed of `channels` (at least one).
    pub fn unsubscribe<'a>(&self, channels: impl IntoIterator<Item = &'a [u8]>) -> Command {
        Command::unsubscribe(
            self.pubsub,
            channels.into_iter().map(|c| self.keys.keys(c).pubsub),
        )
    }

    /// The publish script's reply.
    pub fn published(reply: &Value) -> Result<Published, ReplyError> {
        let bad = || {
            ReplyError(format!(
                "publish script: expected {{epoch, offset}}, got {reply:?}"
            ))
        };
        let [epoch, offset] = reply.as_array().ok_or_else(bad)? else {
            return Err(bad());
        };
        let epoch = epoch_of(epoch).ok_or_else(bad)?;
        let offset = positive(offset).ok_or_else(bad)?;
        Ok(Published { epoch, offset })
    }

    /// The read script's reply.
    pub fn stream_read(reply: &Value) -> Result<StreamRead, ReplyError> {
        let bad = |what: &str| ReplyError(format!("read script: {what} in {reply:?}"));
        let [epoch, top, oldest, replay] = reply.as_array().ok_or_else(|| bad("no array"))? else {
            return Err(bad("not {epoch, top, oldest, replay}"));
        };
        let epoch = epoch_of(epoch).ok_or_else(|| bad("bad epoch"))?;
        let top = u64::try_from(top.as_int().ok_or_else(|| bad("bad top"))?)
            .map_err(|_| bad("negative top"))?;
        let oldest = positive(oldest).ok_or_else(|| bad("bad oldest"))?;
        let replay = replay
            .as_array()
            .ok_or_else(|| bad("bad replay"))?
            .iter()
            .map(|p| {
                p.as_bytes()
                    .cloned()
                    .ok_or_else(|| bad("a replay entry not a string"))
            })
            .collect::<Result<Vec<Bytes>, ReplyError>>()?;
        Ok(StreamRead {
            epoch,
            top,
            oldest,
            replay,
        })
    }

    /// A live publication pushed on `pubsub_channel`, checked: the name is
    /// of this key space, the payload a PUBLICATION of that channel with
    /// epoch and offset not 0.
    pub fn publication(
        &self,
        pubsub_channel: &[u8],
        payload: &Bytes,
    ) -> Result<Publication, ReplyError> {
        let channel = self.keys.channel_of(pubsub_channel).ok_or_else(|| {
            ReplyError(format!(
                "pub/sub channel {:?} is not one of key space {:?}",
                String::from_utf8_lossy(pubsub_channel),
                self.keys.prefix()
            ))
        })?;
        let publication = parse_publication(payload)?;
        if publication.channel != channel {
            return Err(ReplyError(format!(
                "a publication of channel {:?} pushed on {:?}",
                String::from_utf8_lossy(&publication.channel),
                String::from_utf8_lossy(pubsub_channel)
            )));
        }
        Ok(publication)
    }
}

/// A stored or pushed payload as a PUBLICATION with epoch and offset not 0.
pub fn parse_publication(payload: &Bytes) -> Result<Publication, ReplyError> {
    match parse_server_msg(payload) {
        Ok(ServerMsg::Publication(p)) if p.epoch != 0 && p.offset != 0 => Ok(p),
        Ok(other) => Err(ReplyError(format!(
            "payload is no numbered PUBLICATION: {other:?}"
        ))),
        Err(e) => Err(ReplyError(format!("payload is no PUBLICATION: {e}"))),
    }
}

/// An 8-byte big-endian epoch, not 0.
fn epoch_of(v: &Value) -> Option<u64> {
    let bytes: [u8; 8] = v.as_bytes()?.as_ref().try_into().ok()?;
    Some(u64::from_be_bytes(bytes)).filter(|e| *e != 0)
}

/// An integer at least 1.
fn positive(v: &Value) -> Option<u64> {
    u64::try_from(v.as_int()?).ok().filter(|n| *n >= 1)
}

#[cfg(test)]
#[path = "scripts_tests.rs"]
mod tests;
