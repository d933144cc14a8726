//! Frames: an 8-byte header (magic, kind, len, CRC-32) and a payload.
//!
//! [`decode_frame_ref`] parses and checks one frame in place in a contiguous
//! slice; [`decode_frame`] is the same with the payload copied out. The checks
//! live only in the former. [`FrameDecoder`] wraps them for a byte stream split
//! anywhere, holding at most one partial frame (header plus `max_frame` bytes)
//! and nothing at all between frames; [`FrameDecoder::feed_ref`] is its
//! zero-copy form for callers that finish with each payload at once (the load
//! generator).

use bytes::{BufMut, Bytes, BytesMut};
use std::fmt;
use std::ops::DerefMut;

use super::ProtocolError;

/// The first byte of every frame.
pub const MAGIC: u8 = 0xA5;
/// Header size: magic, kind, len (u16), crc (u32).
pub const HEADER_LEN: usize = 8;
/// The MORE bit in `kind`: another fragment of this DATA message follows.
pub const MORE_BIT: u8 = 0x80;
/// The largest PING (and so PONG) payload: pings are probes, not a data channel.
pub const MAX_PING_PAYLOAD: usize = 64;
/// The largest payload the 16-bit length field can carry.
pub const MAX_FRAME_LIMIT: usize = u16::MAX as usize;

/// A frame's type (bits 0-6 of `kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FrameType {
    /// Client's opening frame.
    Hello = 0x01,
    /// Server's answer to HELLO.
    Welcome = 0x02,
    /// Liveness probe; answered with PONG.
    Ping = 0x03,
    /// Answer to PING, echoing its payload.
    Pong = 0x04,
    /// One fragment of an application message.
    Data = 0x05,
    /// Close with a code and reason.
    Goaway = 0x06,
}

impl FrameType {
    /// The type for a `kind` byte's low seven bits, if it is one this version defines.
    pub fn from_u8(t: u8) -> Option<FrameType> {
        Some(match t {
            0x01 => FrameType::Hello,
            0x02 => FrameType::Welcome,
            0x03 => FrameType::Ping,
            0x04 => FrameType::Pong,
            0x05 => FrameType::Data,
            0x06 => FrameType::Goaway,
            _ => return None,
        })
    }
}

impl fmt::Display for FrameType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FrameType::Hello => "HELLO",
            FrameType::Welcome => "WELCOME",
            FrameType::Ping => "PING",
            FrameType::Pong => "PONG",
            FrameType::Data => "DATA",
            FrameType::Goaway => "GOAWAY",
        })
    }
}

/// A complete, checked frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The frame's type.
    pub kind: FrameType,
    /// The MORE bit (only ever set on DATA once decoded).
    pub more: bool,
    /// The payload, `len` bytes.
    pub payload: Bytes,
}

/// A complete, checked frame whose payload still lies in the buffer it was
/// decoded from: what [`decode_frame_ref`] and [`FrameDecoder::feed_ref`] give,
/// so a caller that is done with the payload at once copies nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameRef<'a> {
    /// The frame's type.
    pub kind: FrameType,
    /// The MORE bit (only ever set on DATA once decoded).
    pub more: bool,
    /// The payload, `len` bytes.
    pub payload: &'a [u8],
}

impl FrameRef<'_> {
    /// The same frame with its payload copied into its own buffer.
    pub fn to_frame(&self) -> Frame {
        Frame {
            kind: self.kind,
            more: self.more,
            payload: Bytes::copy_from_slice(self.payload),
        }
    }
}

/// Whether a parse finished: httparse's split between "need more bytes" and an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status<T> {
    /// The value, parsed.
    Complete(T),
    /// More bytes are needed; nothing is wrong yet.
    Partial,
}

fn crc_of(header4: &[u8], payload: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(header4);
    hasher.update(payload);
    hasher.finalize()
}

/// The 8-byte header for a frame; `payload` must be at most 65535 bytes.
pub fn encode_header(kind: FrameType, more: bool, payload: &[u8]) -> [u8; HEADER_LEN] {
    debug_assert!(payload.len() <= MAX_FRAME_LIMIT);
    let len = (payload.len().min(MAX_FRAME_LIMIT) as u16).to_be_bytes();
    let kind_byte = kind as u8 | if more { MORE_BIT } else { 0 };
    let head = [MAGIC, kind_byte, len[0], len[1]];
    let crc = crc_of(&head, payload).to_be_bytes();
    [
        head[0], head[1], head[2], head[3], crc[0], crc[1], crc[2], crc[3],
    ]
}

/// Appends one frame to `dst` (a `BytesMut`, or a `Vec<u8>` such as the load
/// generator's scratch buffer).
pub fn put_frame<B: BufMut>(dst: &mut B, kind: FrameType, more: bool, payload: &[u8]) {
    dst.put_slice(&encode_header(kind, more, payload));
    dst.put_slice(payload);
}

/// Encodes one whole frame into its own buffer.
pub fn encode_frame(kind: FrameType, more: bool, payload: &[u8]) -> Bytes {
    let mut dst = BytesMut::with_capacity(HEADER_LEN + payload.len());
    put_frame(&mut dst, kind, more, payload);
    dst.freeze()
}

/// Encodes a whole DATA message as one buffer of frames, split at `max_frame`
/// bytes (every frame but the last carries MORE; an empty message is one empty
/// frame). One allocation, so the result can be shared by many receivers.
pub fn encode_message(message: &[u8], max_frame: usize) -> Bytes {
    let max_frame = max_frame.clamp(1, MAX_FRAME_LIMIT);
    let frames = message.len().div_ceil(max_frame).max(1);
    let mut dst = BytesMut::with_capacity(frames * HEADER_LEN + message.len());
    put_message(&mut dst, message, message.len(), max_frame);
    dst.freeze()
}

/// Appends a DATA message of `len` bytes, `head` followed by zeros (a `head`
/// longer than `len` is cut), framed as [`encode_message`] frames it. Each
/// payload is written in place and its header filled in after, so the load
/// generator sends messages of any size that start with a sequence number or
/// timestamp without building them in a second buffer first.
pub fn put_message<B>(dst: &mut B, head: &[u8], len: usize, max_frame: usize)
where
    B: BufMut + DerefMut<Target = [u8]>,
{
    let max_frame = max_frame.clamp(1, MAX_FRAME_LIMIT);
    let mut offset = 0;
    loop {
        let chunk = (len - offset).min(max_frame);
        let more = offset + chunk < len;
        let header_at = dst.len();
        dst.put_bytes(0, HEADER_LEN);
        let payload_at = dst.len();
        let from_head = head
            .get(offset..head.len().min(offset + chunk))
            .unwrap_or_default();
        dst.put_slice(from_head);
        if from_head.len() < chunk {
            dst.put_bytes(0, chunk - from_head.len());
        }
        let header = encode_header(FrameType::Data, more, &dst[payload_at..]);
        dst[header_at..payload_at].copy_from_slice(&header);
        offset += chunk;
        if !more {
            return;
        }
    }
}

/// Checks what the header alone can tell, before any payload is buffered:
/// the magic byte and that `len` is within `max_frame`. Returns `len`.
fn check_header(header: &[u8], max_frame: usize) -> Result<usize, ProtocolError> {
    if header[0] != MAGIC {
        return Err(ProtocolError::BadMagic(header[0]));
    }
    let len = u16::from_be_bytes([header[2], header[3]]) as usize;
    if len > max_frame {
        return Err(ProtocolError::FrameTooLarge {
            len,
            max: max_frame,
        });
    }
    Ok(len)
}

/// Checks the CRC, then interprets `kind`. The type, MORE and PING-size
/// checks come after the CRC so that a corrupted type or length reads as
/// BAD_CHECKSUM, as docs/protocol.md §1 says.
fn check_body(header: &[u8], payload: &[u8]) -> Result<(FrameType, bool), ProtocolError> {
    let crc = u32::from_be_bytes([header[4], header[5], header[6], header[7]]);
    if crc != crc_of(&header[..4], payload) {
        return Err(ProtocolError::BadChecksum);
    }
    let kind_byte = header[1];
    let more = kind_byte & MORE_BIT != 0;
    let kind =
        FrameType::from_u8(kind_byte & !MORE_BIT).ok_or(ProtocolError::UnknownType(kind_byte))?;
    if more && kind != FrameType::Data {
        return Err(ProtocolError::MoreOnControl(kind));
    }
    if matches!(kind, FrameType::Ping | FrameType::Pong) && payload.len() > MAX_PING_PAYLOAD {
        return Err(ProtocolError::PingTooLong(payload.len()));
    }
    Ok((kind, more))
}

/// Parses and checks one frame at the start of `buf` without copying it. On
/// success returns the frame, its payload borrowed from `buf`, and how many
/// bytes it used; `Partial` when `buf` ends inside the frame. The checks run
/// in the order docs/protocol.md gives: the magic as soon as one byte is in, the
/// length against `max_frame` as soon as the header is in (so an oversized
/// frame is refused before any of it is buffered), then the CRC, then the
/// type, the MORE bit and the PING size.
#[inline]
pub fn decode_frame_ref(
    buf: &[u8],
    max_frame: usize,
) -> Result<Status<(FrameRef<'_>, usize)>, ProtocolError> {
    if buf.is_empty() {
        return Ok(Status::Partial);
    }
    if buf[0] != MAGIC {
        return Err(ProtocolError::BadMagic(buf[0]));
    }
    if buf.len() < HEADER_LEN {
        return Ok(Status::Partial);
    }
    let len = check_header(&buf[..HEADER_LEN], max_frame)?;
    let total = HEADER_LEN + len;
    if buf.len() < total {
        return Ok(Status::Partial);
    }
    let payload = &buf[HEADER_LEN..total];
    let (kind, more) = check_body(&buf[..HEADER_LEN], payload)?;
    let frame = FrameRef {
        kind,
        more,
        payload,
    };
    Ok(Status::Complete((frame, total)))
}

/// Parses one frame from the start of `buf`, as [`decode_frame_ref`] does, and
/// copies its payload out. On success returns the frame and how many bytes it
/// used; `Partial` when `buf` ends inside the frame (an oversized length is
/// still an error as soon as the header is in).
pub fn decode_frame(buf: &[u8], max_frame: usize) -> Result<Status<(Frame, usize)>, ProtocolError> {
    let (frame, used) = match decode_frame_ref(buf, max_frame)? {
        Status::Complete(done) => done,
        Status::Partial => return Ok(Status::Partial),
    };
    // Built here rather than by `to_frame`: returning a `Frame` from a call
    // made the compiler copy its padding and re-check `used`, eight more
    // instructions per frame in `FrameDecoder::next_frame`.
    let frame = Frame {
        kind: frame.kind,
        more: frame.more,
        payload: Bytes::copy_from_slice(frame.payload),
    };
    Ok(Status::Complete((frame, used)))
}

/// An incremental frame decoder for a byte stream that may be split at any
/// byte. Between frames it holds no memory; inside one it holds at most
/// `HEADER_LEN + max_frame` bytes, reserved once the header has been checked.
#[derive(Debug)]
pub struct FrameDecoder {
    max_frame: usize,
    partial: BytesMut,
}

impl FrameDecoder {
    /// A decoder that rejects payloads above `max_frame` bytes.
    pub fn new(max_frame: usize) -> Self {
        FrameDecoder {
            max_frame: max_frame.min(MAX_FRAME_LIMIT),
            partial: BytesMut::new(),
        }
    }

    /// Bytes of an incomplete frame held between calls.
    pub fn buffered(&self) -> usize {
        self.partial.len()
    }

    /// Drops any partial frame and its memory (after an error or at EOF).
    pub fn clear(&mut self) {
        self.partial = BytesMut::new();
    }

    /// Takes the next complete frame from `input` (advancing it past what was
    /// used). `Ok(None)` means `input` is exhausted and any tail is buffered.
    /// After an error the stream cannot be trusted; the caller stops feeding it.
    pub fn next_frame(&mut self, input: &mut &[u8]) -> Result<Option<Frame>, ProtocolError> {
        if self.partial.is_empty() {
            match decode_frame(input, self.max_frame)? {
                Status::Complete((frame, used)) => {
                    *input = &input[used..];
                    Ok(Some(frame))
                }
                Status::Partial => {
                    self.stash(input)?;
                    Ok(None)
                }
            }
        } else {
            self.stash(input)?;
            self.take_buffered()
        }
    }

    /// Decodes every complete frame in `input` in place and calls `on_frame`
    /// with each until it returns `false` (the caller is done with this
    /// stream; the rest of `input` is dropped). Nothing is copied but a frame
    /// split across calls, which is buffered as [`FrameDecoder::next_frame`]
    /// buffers it and freed as soon as `on_frame` has seen it. After an error
    /// the stream cannot be trusted; the caller stops feeding it.
    pub fn feed_ref<F>(&mut self, mut input: &[u8], mut on_frame: F) -> Result<(), ProtocolError>
    where
        F: FnMut(FrameRef<'_>) -> bool,
    {
        if !self.partial.is_empty() {
            self.stash(&mut input)?;
            let Status::Complete((frame, _)) = decode_frame_ref(&self.partial, self.max_frame)?
            else {
                return Ok(());
            };
            let go_on = on_frame(frame);
            self.clear();
            if !go_on {
                return Ok(());
            }
        }
        loop {
            match decode_frame_ref(input, self.max_frame)? {
                Status::Complete((frame, used)) => {
                    if !on_frame(frame) {
                        return Ok(());
                    }
                    input = &input[used..];
                }
                Status::Partial => return self.stash(&mut input),
            }
        }
    }

    /// Moves as much of `input` into `partial` as the current frame needs.
    fn stash(&mut self, input: &mut &[u8]) -> Result<(), ProtocolError> {
        while !input.is_empty() {
            let want = if self.partial.len() < HEADER_LEN {
                HEADER_LEN
            } else {
                HEADER_LEN + check_header(&self.partial[..HEADER_LEN], self.max_frame)?
            };
            if self.partial.len() >= want {
                return Ok(());
            }
            let take = (want - self.partial.len()).min(input.len());
            if self.partial.is_empty() && input[0] != MAGIC {
                return Err(ProtocolError::BadMagic(input[0]));
            }
            self.partial.extend_from_slice(&input[..take]);
            *input = &input[take..];
            if self.partial.len() == HEADER_LEN {
                let len = check_header(&self.partial[..HEADER_LEN], self.max_frame)?;
                self.partial.reserve(len);
            }
        }
        Ok(())
    }

    /// The buffered frame once it is complete, its payload moved out of
    /// `partial` (not copied), which is left empty and unallocated.
    fn take_buffered(&mut self) -> Result<Option<Frame>, ProtocolError> {
        let (kind, more) = match decode_frame_ref(&self.partial, self.max_frame)? {
            Status::Complete((frame, _)) => (frame.kind, frame.more),
            Status::Partial => return Ok(None),
        };
        let mut whole = std::mem::take(&mut self.partial);
        let payload = whole.split_off(HEADER_LEN).freeze();
        Ok(Some(Frame {
            kind,
            more,
            payload,
        }))
    }
}

#[cfg(test)]
mod tests;
