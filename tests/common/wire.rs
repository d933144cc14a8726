//! Bytes for the wire made by hand: frames and HELLO layouts the library's
//! encoders would never produce, and deterministic payloads.

/// Encodes a frame with an arbitrary `kind` byte (unknown types, MORE on
/// control frames) and a correct CRC, bypassing the library's checks (the
/// fuzz harnesses' encoder, so there is one of it).
#[allow(unused_imports)]
pub use tether::fuzzing::raw_frame;

/// A HELLO payload (version, flags, heartbeat, token) laid out by hand, so
/// tests can send versions and layouts the library would never produce.
pub fn hello_payload(version: u8, heartbeat_ms: u32, token: &[u8]) -> Vec<u8> {
    let mut p = vec![version, 0];
    p.extend_from_slice(&heartbeat_ms.to_be_bytes());
    p.push(u8::try_from(token.len()).expect("token fits u8"));
    p.extend_from_slice(token);
    p
}

/// A deterministic, non-repeating-looking payload of `len` bytes.
pub fn pattern(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 24) as u8
        })
        .collect()
}
