//! RESP on the wire: replies decoded by the `redis-protocol` crate into
//! [`Value`]s, commands encoded by it, and the one guard the crate lacks.
//!
//! The crate's decoder recurses once per nesting level with no limit: a
//! reply of a few hundred nested `*1` headers (2 KB) overflows the stack of
//! a debug build, a few thousand a release one (measured with 6.0.0), and a
//! stack overflow aborts the process. So before decoding, [`frame_len`]
//! walks the frame's headers without building anything, with an explicit
//! stack bounded by a depth limit, and says whether a whole frame is there.
//! Only a whole frame within the limits reaches the crate. It checks the
//! framing (types, lengths, CRLFs) and nothing of the values: the decoding
//! stays the crate's.

use bytes::{Bytes, BytesMut};
use redis_protocol::resp3::decode::complete::decode_bytes_mut;
use redis_protocol::resp3::encode::complete::extend_encode_borrowed;
use redis_protocol::resp3::types::{BorrowedFrame, BytesFrame};

/// The deepest nesting of aggregates accepted in a reply. The engine's
/// deepest is `CLUSTER SLOTS` at 4 (ranges, nodes, metadata maps); 32 leaves room and stays far
/// below what overflows a 2 MiB test thread's stack in a debug build.
pub const MAX_DEPTH: usize = 32;

/// A reply value, independent of the codec crate's types.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// Null (RESP3 `_`, RESP2 `$-1` and `*-1`).
    Nil,
    /// An integer.
    Int(i64),
    /// A blob, simple, verbatim string or big number, as bytes.
    Bytes(Bytes),
    /// A double.
    Double(f64),
    /// A boolean.
    Bool(bool),
    /// An array, set or push, in order.
    Array(Vec<Value>),
    /// A map's pairs (in the order the codec gives them).
    Map(Vec<(Value, Value)>),
    /// An error nested in an aggregate (a top-level error is a
    /// [`RedisError`](super::RedisError) instead).
    Error(Bytes),
}

impl Value {
    /// The bytes of a string value.
    pub fn as_bytes(&self) -> Option<&Bytes> {
        match self {
            Value::Bytes(b) => Some(b),
            _ => None,
        }
    }

    /// An integer value, or a string of ASCII digits (Lua replies stay integers).
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(n) => Some(*n),
            Value::Bytes(b) => std::str::from_utf8(b).ok()?.parse().ok(),
            _ => None,
        }
    }

    /// The elements of an array value.
    pub fn as_array(&self) -> Option<&[Value]> {
        match self {
            Value::Array(items) => Some(items),
            _ => None,
        }
    }

    /// The value for a string key of a map value.
    pub fn map_get(&self, key: &[u8]) -> Option<&Value> {
        match self {
            Value::Map(pairs) => pairs
                .iter()
                .find(|(k, _)| k.as_bytes().is_some_and(|k| k == key))
                .map(|(_, v)| v),
            _ => None,
        }
    }
}

/// One decoded frame off the wire.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    /// A reply to the oldest command waiting for one.
    Reply(Value),
    /// An error reply (`-...` or `!...`) to that command: its text.
    Error(Bytes),
    /// Out-of-band data (RESP3 `>`): pub/sub messages and confirmations.
    Push(Vec<Value>),
}

/// Why bytes from Redis are no acceptable frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameError {
    /// Nested deeper than [`MAX_DEPTH`].
    TooDeep,
    /// Not RESP (or a streamed RESP3 type, which Redis never sends).
    Invalid(String),
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameError::TooDeep => write!(f, "reply nested deeper than {MAX_DEPTH} levels"),
            FrameError::Invalid(why) => f.write_str(why),
        }
    }
}

/// The length of the whole frame at the start of `buf`, `None` while it is
/// incomplete. Walks headers only (see the module docs).
pub fn frame_len(buf: &[u8], max_depth: usize) -> Result<Option<usize>, FrameError> {
    let mut pos = 0;
    // Per open aggregate, how many elements it still waits for.
    let mut open: Vec<u64> = Vec::new();
    loop {
        let Some(&kind) = buf.get(pos) else {
            return Ok(None);
        };
        let Some(line_end) = find_crlf(buf, pos + 1) else {
            return Ok(None);
        };
        let line = &buf[pos + 1..line_end];
        pos = line_end + 2;
        let elements = match kind {
            b'+' | b'-' | b':' | b',' | b'(' | b'#' | b'_' => 0,
            b'$' | b'!' | b'=' => {
                if let Some(len) = length(kind, line)? {
                    let end = pos.saturating_add(len).saturating_add(2);
                    if buf.len() < end {
                        return Ok(None);
                    }
                    if &buf[end - 2..end] != b"\r\n" {
                        return Err(FrameError::Invalid(format!(
                            "a '{}' string of {len} bytes not followed by CRLF",
                            kind as char
                        )));
                    }
                    pos = end;
                }
                0
            }
            b'*' | b'~' | b'>' => length(kind, line)?.unwrap_or(0),
            b'%' => length(kind, line)?.unwrap_or(0).saturating_mul(2),
            // Attributes: pairs, then the frame they describe.
            b'|' => length(kind, line)?
                .unwrap_or(0)
                .saturating_mul(2)
                .saturating_add(1),
            other => {
                return Err(FrameError::Invalid(format!(
                    "unknown RESP type byte 0x{other:02x}"
                )))
            }
        };
        if elements > 0 {
            if open.len() >= max_depth {
                return Err(FrameError::TooDeep);
            }
            open.push(elements as u64);
            continue;
        }
        // A whole element: close every aggregate it completes.
        loop {
            match open.last_mut() {
                None => return Ok(Some(pos)),
                Some(left) => {
                    *left -= 1;
                    if *left > 0 {
                        break;
                    }
                    open.pop();
                }
            }
        }
    }
}

/// The index of the next `\r\n` at or after `from`.
fn find_crlf(buf: &[u8], from: usize) -> Option<usize> {
    let rest = buf.get(from..)?;
    rest.windows(2).position(|w| w == b"\r\n").map(|i| from + i)
}

/// A header's length: `None` for the null length -1, an error for the
/// streamed `?` and anything else not a count.
fn length(kind: u8, line: &[u8]) -> Result<Option<usize>, FrameError> {
    let bad = || {
        FrameError::Invalid(format!(
            "bad length {:?} after '{}'",
            String::from_utf8_lossy(line),
            kind as char
        ))
    };
    let n: i64 = std::str::from_utf8(line)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(bad)?;
    match n {
        -1 => Ok(None),
        n if n >= 0 => usize::try_from(n).map(Some).map_err(|_| bad()),
        _ => Err(bad()),
    }
}

/// Decodes the whole frame of `len` bytes (from [`frame_len`]) at the start
/// of `buf` and removes it from `buf`.
pub fn decode_frame(buf: &mut BytesMut, len: usize) -> Result<Frame, FrameError> {
    // RESP2's nulls, which the crate's RESP3 decoder refuses: only a
    // RESP2 reply (before HELLO 3 is answered) can carry them, at the top.
    if buf.starts_with(b"$-1\r\n") || buf.starts_with(b"*-1\r\n") {
        let _ = buf.split_to(len);
        return Ok(Frame::Reply(Value::Nil));
    }
    let decoded = decode_bytes_mut(buf).map_err(|e| FrameError::Invalid(e.to_string()))?;
    match decoded {
        Some((frame, used, _)) if used == len => Ok(match frame {
            BytesFrame::SimpleError { data, .. } => Frame::Error(data.into_inner()),
            BytesFrame::BlobError { data, .. } => Frame::Error(data),
            BytesFrame::Push { data, .. } => Frame::Push(data.into_iter().map(value).collect()),
            other => Frame::Reply(value(other)),
        }),
        Some((_, used, _)) => Err(FrameError::Invalid(format!(
            "codec read {used} bytes of a {len}-byte frame"
        ))),
        None => Err(FrameError::Invalid(format!(
            "codec found a {len}-byte frame incomplete"
        ))),
    }
}

/// The codec's frame as a [`Value`]; depth is bounded by [`frame_len`].
fn value(frame: BytesFrame) -> Value {
    match frame {
        BytesFrame::BlobString { data, .. }
        | BytesFrame::SimpleString { data, .. }
        | BytesFrame::BigNumber { data, .. }
        | BytesFrame::VerbatimString { data, .. } => Value::Bytes(data),
        BytesFrame::BlobError { data, .. } => Value::Error(data),
        BytesFrame::SimpleError { data, .. } => Value::Error(data.into_inner()),
        BytesFrame::Boolean { data, .. } => Value::Bool(data),
        BytesFrame::Null => Value::Nil,
        BytesFrame::Number { data, .. } => Value::Int(data),
        BytesFrame::Double { data, .. } => Value::Double(data),
        BytesFrame::Array { data, .. } | BytesFrame::Push { data, .. } => {
            Value::Array(data.into_iter().map(value).collect())
        }
        BytesFrame::Set { data, .. } => Value::Array(data.into_iter().map(value).collect()),
        BytesFrame::Map { data, .. } => Value::Map(
            data.into_iter()
                .map(|(k, v)| (value(k), value(v)))
                .collect(),
        ),
        // Client-to-server and streaming types never come out of the complete decoder.
        BytesFrame::Hello { .. } | BytesFrame::ChunkedString(_) => Value::Nil,
    }
}

/// Appends a command (an array of blob strings) to `out`.
pub fn encode_command<'a>(out: &mut BytesMut, args: impl Iterator<Item = &'a [u8]>) {
    let data: Vec<BorrowedFrame<'_>> = args
        .map(|data| BorrowedFrame::BlobString {
            data,
            attributes: None,
        })
        .collect();
    let frame = BorrowedFrame::Array {
        data: &data,
        attributes: None,
    };
    // Encoding blob strings into a growable buffer cannot fail.
    if let Err(e) = extend_encode_borrowed(out, &frame, false) {
        log::error!("encoding a redis command: {e}");
    }
}

#[cfg(test)]
#[path = "frame_tests.rs"]
mod tests;
