//! What a connection holds of its input between reads, and reassembly.

use bytes::{Bytes, BytesMut};

use super::ConnEvent;
use super::ConnLimits;
use crate::protocol::{FrameDecoder, ProtocolError};
use crate::time::Tick;

/// Adds one DATA fragment to the message being reassembled; a whole message
/// comes out when a fragment without MORE arrives.
pub(super) fn handle_data(
    message: &mut BytesMut,
    more: bool,
    payload: Bytes,
    limits: &ConnLimits,
) -> Result<Option<ConnEvent>, ProtocolError> {
    let max = limits.max_message as usize;
    let len = message.len() + payload.len();
    if len > max {
        return Err(ProtocolError::MessageTooLarge { len, max });
    }
    if message.is_empty() && !more {
        // The common case: a one-frame message is handed on without a copy.
        return Ok(Some(ConnEvent::Message(payload)));
    }
    message.extend_from_slice(&payload);
    if more {
        return Ok(None);
    }
    Ok(Some(ConnEvent::Message(std::mem::take(message).freeze())))
}

/// What a connection holds of its input between reads: a partial frame and
/// the fragments of a message being reassembled (≤ `max_message`).
#[derive(Debug)]
pub(super) struct InputBuffers {
    pub(super) decoder: FrameDecoder,
    pub(super) message: BytesMut,
    /// When the partial frame in `decoder` began (for the frame deadline).
    pub(super) frame_started: Tick,
}

impl InputBuffers {
    pub(super) fn new(max_frame: usize) -> Self {
        InputBuffers {
            decoder: FrameDecoder::new(max_frame),
            message: BytesMut::new(),
            frame_started: 0,
        }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.decoder.buffered() == 0 && self.message.is_empty()
    }
}
