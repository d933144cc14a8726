//! The generator's framing: the library's codec, used so that it copies nothing.
//!
//! Frames are decoded in place from the shared read buffer by
//! [`FrameDecoder::feed_ref`]; only a frame split across reads is copied into
//! the connection's decoder, which frees it as soon as it completes. Encoding
//! writes straight into the shared scratch buffer with the library's
//! [`put_frame`] and [`put_message`]. What is the generator's own is only its
//! limit: it takes any frame the 16-bit length can announce, since the server
//! decides what it sends.

use tether::protocol::frame::MAX_FRAME_LIMIT;
use tether::protocol::FrameDecoder;

pub use tether::protocol::{put_frame, put_message};

/// A connection's decoder: it accepts every frame size the protocol can carry.
pub fn decoder() -> FrameDecoder {
    FrameDecoder::new(MAX_FRAME_LIMIT)
}
