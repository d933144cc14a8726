//! Zero-copy framing for the generator.
//!
//! The library's `FrameDecoder` hands out an owned `Bytes` per frame, one
//! allocation per PONG: fine for a server, wasteful for a generator that must
//! stay out of the measurement. Here frames are parsed in place from the
//! shared read buffer; only a frame split across reads is copied into the
//! connection's `partial` buffer, which is freed again as soon as it completes.
//! Encoding writes straight into a shared scratch buffer with the library's
//! `encode_header`, so the CRC is the protocol's own.

use tether::protocol::frame::encode_header;
use tether::protocol::{FrameType, ProtocolError, HEADER_LEN, MAGIC, MAX_PING_PAYLOAD};

/// The MORE bit in `kind`.
const MORE_BIT: u8 = 0x80;
/// The largest payload a 16-bit length can announce; the generator accepts any.
const MAX_PAYLOAD: usize = u16::MAX as usize;

/// Checks the header bytes the payload does not influence; returns `len`.
fn payload_len(header: &[u8]) -> Result<usize, ProtocolError> {
    if header[0] != MAGIC {
        return Err(ProtocolError::BadMagic(header[0]));
    }
    Ok(u16::from_be_bytes([header[2], header[3]]) as usize)
}

/// Checks the CRC, then the type and MORE bit (CRC first, like the server).
fn check(header: &[u8], payload: &[u8]) -> Result<(FrameType, bool), ProtocolError> {
    let crc = u32::from_be_bytes([header[4], header[5], header[6], header[7]]);
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&header[..4]);
    hasher.update(payload);
    if hasher.finalize() != crc {
        return Err(ProtocolError::BadChecksum);
    }
    let more = header[1] & MORE_BIT != 0;
    let kind =
        FrameType::from_u8(header[1] & !MORE_BIT).ok_or(ProtocolError::UnknownType(header[1]))?;
    if more && kind != FrameType::Data {
        return Err(ProtocolError::MoreOnControl(kind));
    }
    if matches!(kind, FrameType::Ping | FrameType::Pong) && payload.len() > MAX_PING_PAYLOAD {
        return Err(ProtocolError::PingTooLong(payload.len()));
    }
    Ok((kind, more))
}

/// Feeds `input` through the framing, calling `on_frame(kind, more, payload)`
/// for each complete frame until it returns `false` (the connection is done).
/// A frame cut off at the end of `input` is kept in `partial`; `partial` is
/// emptied (and its memory freed) once that frame completes.
pub fn feed<F>(
    partial: &mut Vec<u8>,
    mut input: &[u8],
    mut on_frame: F,
) -> Result<(), ProtocolError>
where
    F: FnMut(FrameType, bool, &[u8]) -> bool,
{
    if !partial.is_empty() {
        if partial.len() < HEADER_LEN {
            let take = (HEADER_LEN - partial.len()).min(input.len());
            partial.extend_from_slice(&input[..take]);
            input = &input[take..];
            if partial.len() < HEADER_LEN {
                return Ok(());
            }
        }
        let total = HEADER_LEN + payload_len(partial)?;
        let take = (total - partial.len()).min(input.len());
        partial.extend_from_slice(&input[..take]);
        input = &input[take..];
        if partial.len() < total {
            return Ok(());
        }
        let whole = std::mem::take(partial);
        let (kind, more) = check(&whole[..HEADER_LEN], &whole[HEADER_LEN..])?;
        if !on_frame(kind, more, &whole[HEADER_LEN..]) {
            return Ok(());
        }
    }
    while !input.is_empty() {
        if input[0] != MAGIC {
            return Err(ProtocolError::BadMagic(input[0]));
        }
        if input.len() < HEADER_LEN {
            break;
        }
        let total = HEADER_LEN + payload_len(input)?;
        if input.len() < total {
            break;
        }
        let (kind, more) = check(&input[..HEADER_LEN], &input[HEADER_LEN..total])?;
        if !on_frame(kind, more, &input[HEADER_LEN..total]) {
            return Ok(());
        }
        input = &input[total..];
    }
    if !input.is_empty() {
        let want = if input.len() >= HEADER_LEN {
            HEADER_LEN + payload_len(input)?
        } else {
            HEADER_LEN
        };
        partial.reserve_exact(want);
        partial.extend_from_slice(input);
    }
    Ok(())
}

/// Appends one frame whose payload is `payload`.
pub fn put_frame(buf: &mut Vec<u8>, kind: FrameType, more: bool, payload: &[u8]) {
    buf.extend_from_slice(&encode_header(kind, more, payload));
    buf.extend_from_slice(payload);
}

/// Appends a DATA message of `total` bytes: `prefix`, then zeros. Split into
/// frames of at most `max_frame` bytes (every one but the last with MORE);
/// the payload is written in place and the header filled in after, so no
/// second buffer is needed.
pub fn put_message(buf: &mut Vec<u8>, prefix: &[u8], total: usize, max_frame: usize) {
    let max_frame = max_frame.clamp(1, MAX_PAYLOAD);
    let mut offset = 0;
    loop {
        let len = (total - offset).min(max_frame);
        let more = offset + len < total;
        let head = buf.len();
        buf.resize(head + HEADER_LEN, 0);
        let body = buf.len();
        if offset < prefix.len() {
            let end = prefix.len().min(offset + len);
            buf.extend_from_slice(&prefix[offset..end]);
        }
        buf.resize(body + len, 0);
        let header = encode_header(FrameType::Data, more, &buf[body..]);
        buf[head..body].copy_from_slice(&header);
        offset += len;
        if !more {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tether::protocol::{encode_message, FrameDecoder};

    fn frames(partial: &mut Vec<u8>, input: &[u8]) -> Vec<(FrameType, bool, Vec<u8>)> {
        let mut out = Vec::new();
        feed(partial, input, |k, m, p| {
            out.push((k, m, p.to_vec()));
            true
        })
        .expect("valid");
        out
    }

    #[test]
    fn parses_the_test_vectors_split_at_every_byte() {
        let wire = [
            0xa5, 0x03, 0x00, 0x03, 0xd6, 0xbb, 0x66, 0x27, 0x61, 0x62, 0x63, 0xa5, 0x85, 0x00,
            0x03, 0xce, 0x7d, 0x21, 0x3b, 0x68, 0x65, 0x6c,
        ];
        for cut in 0..=wire.len() {
            let mut partial = Vec::new();
            let mut got = frames(&mut partial, &wire[..cut]);
            got.extend(frames(&mut partial, &wire[cut..]));
            assert_eq!(got.len(), 2, "cut {cut}");
            assert_eq!(got[0], (FrameType::Ping, false, b"abc".to_vec()));
            assert_eq!(got[1], (FrameType::Data, true, b"hel".to_vec()));
            assert!(partial.is_empty() && partial.capacity() == 0);
        }
    }

    #[test]
    fn bad_crc_and_magic_are_errors() {
        let mut ping = vec![0xa5, 0x03, 0x00, 0x00, 0x59, 0xb7, 0x88, 0x72];
        assert!(feed(&mut Vec::new(), &ping, |_, _, _| true).is_ok());
        ping[7] ^= 1;
        assert_eq!(
            feed(&mut Vec::new(), &ping, |_, _, _| true),
            Err(ProtocolError::BadChecksum)
        );
        assert_eq!(
            feed(&mut Vec::new(), &[0x00], |_, _, _| true),
            Err(ProtocolError::BadMagic(0))
        );
    }

    #[test]
    fn stops_when_told() {
        let mut buf = Vec::new();
        put_frame(&mut buf, FrameType::Ping, false, b"");
        put_frame(&mut buf, FrameType::Ping, false, b"");
        let mut n = 0;
        feed(&mut Vec::new(), &buf, |_, _, _| {
            n += 1;
            false
        })
        .expect("valid");
        assert_eq!(n, 1);
    }

    #[test]
    fn put_message_matches_the_library() {
        for (total, max) in [(0, 10), (5, 10), (10, 10), (25, 10), (100, 65535)] {
            let prefix: Vec<u8> = (1..=12).collect();
            let prefix = &prefix[..prefix.len().min(total)];
            let mut whole = prefix.to_vec();
            whole.resize(total, 0);
            let mut buf = Vec::new();
            put_message(&mut buf, prefix, total, max);
            assert_eq!(buf, encode_message(&whole, max).to_vec(), "{total}/{max}");
            let mut dec = FrameDecoder::new(65535);
            let mut input = &buf[..];
            let mut n = 0;
            while let Ok(Some(_)) = dec.next_frame(&mut input) {
                n += 1;
            }
            assert_eq!(n, total.div_ceil(max).max(1));
        }
    }
}
