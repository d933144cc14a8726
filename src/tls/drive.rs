//! One pass of rustls's unbuffered state machine over a buffer: hand over
//! every record it produces, every plaintext byte it decrypts, and carry out
//! one action (encrypt, close_notify) when it allows application data. The
//! session (session.rs) decides what to feed it and what failures mean.

use rustls::server::UnbufferedServerConnection;
use rustls::unbuffered::{
    ConnectionState, EncodeError, EncryptError, InsufficientSizeError, UnbufferedStatus,
};

use super::error::{FailureKind, TlsFailure};

/// What the drive loop should do once rustls allows application data.
#[derive(Clone, Copy)]
pub(super) enum Action<'a> {
    /// Nothing: only process input.
    None,
    /// Encrypt these bytes.
    Encrypt(&'a [u8]),
    /// Send close_notify.
    CloseNotify,
}

/// The result of one drive loop over a buffer.
pub(super) struct Driven {
    /// Bytes at the front of the buffer that rustls is done with.
    pub consumed: usize,
    /// The peer's close_notify was processed.
    pub peer_closed: bool,
    /// The [`Action`] was carried out.
    pub acted: bool,
}

/// Why [`drive`] stopped early.
pub(super) enum DriveError {
    /// rustls failed; the kind depends on when.
    Rustls(rustls::Error),
    /// We failed, with the kind already decided.
    Ours(TlsFailure),
}

impl From<rustls::Error> for DriveError {
    fn from(e: rustls::Error) -> Self {
        DriveError::Rustls(e)
    }
}

/// Runs rustls's state machine over `buffer` until it needs more input,
/// handing over every record it produces and every plaintext byte it
/// decrypts, and performing `action` when application data is allowed.
/// On error, also returns how much of `buffer` had been consumed.
pub(super) fn drive(
    conn: &mut UnbufferedServerConnection,
    buffer: &mut [u8],
    mut plaintext: Option<&mut Vec<u8>>,
    out: &mut Vec<u8>,
    action: Action<'_>,
) -> Result<Driven, (usize, DriveError)> {
    let mut driven = Driven {
        consumed: 0,
        peer_closed: false,
        acted: false,
    };
    // Every turn consumes input, emits a record or ends the loop; the bound
    // only turns a rustls bug into an error instead of a hang.
    let max_turns = buffer.len() + 1024;
    for _ in 0..max_turns {
        let UnbufferedStatus { mut discard, state } =
            conn.process_tls_records(&mut buffer[driven.consumed..]);
        let base = driven.consumed;
        let state = state.map_err(|e| (base + discard, DriveError::from(e)))?;
        let stop = match state {
            ConnectionState::ReadTraffic(mut traffic) => {
                while let Some(record) = traffic.next_record() {
                    let record = record.map_err(|e| (base + discard, e.into()))?;
                    discard += record.discard;
                    match plaintext.as_deref_mut() {
                        Some(plaintext) => plaintext.extend_from_slice(record.payload),
                        None => {
                            return Err((
                                base + discard,
                                DriveError::Ours(TlsFailure::new(
                                    FailureKind::Internal,
                                    "application data decrypted while sending",
                                )),
                            ))
                        }
                    }
                }
                false
            }
            ConnectionState::ReadEarlyData(mut early) => {
                // 0-RTT is never enabled (max_early_data_size is 0), so rustls
                // cannot get here; drop such data rather than trust it.
                while early.next_record().is_some() {}
                false
            }
            ConnectionState::EncodeTlsData(mut encode) => {
                append_record(out, |buf| encode.encode(buf)).map_err(|e| {
                    let detail = format!("encoding a handshake record: {e}");
                    (
                        base + discard,
                        DriveError::Ours(TlsFailure::new(FailureKind::Internal, detail)),
                    )
                })?;
                false
            }
            ConnectionState::TransmitTlsData(transmit) => {
                // The records are already in `out`, which the caller sends.
                transmit.done();
                false
            }
            ConnectionState::PeerClosed => {
                driven.peer_closed = true;
                false
            }
            ConnectionState::WriteTraffic(mut write) => {
                let done = match action {
                    Action::None => Ok(()),
                    Action::Encrypt(data) => append_record(out, |buf| write.encrypt(data, buf)),
                    Action::CloseNotify => append_record(out, |buf| write.queue_close_notify(buf)),
                };
                done.map_err(|e| {
                    let detail = format!("encrypting: {e}");
                    (
                        base + discard,
                        DriveError::Ours(TlsFailure::new(FailureKind::Internal, detail)),
                    )
                })?;
                driven.acted = !matches!(action, Action::None);
                true
            }
            // BlockedHandshake, Closed, and states added by later rustls versions.
            _ => true,
        };
        driven.consumed += discard;
        if stop {
            return Ok(driven);
        }
    }
    Err((
        driven.consumed,
        DriveError::Ours(TlsFailure::new(
            FailureKind::Internal,
            "rustls made no progress",
        )),
    ))
}

/// Appends the alert rustls queued when it failed (it must be encoded like
/// any record). Only while records are queued: each call then hands one
/// over without touching the input again, which would fail a second time.
pub(super) fn flush_alerts(
    conn: &mut UnbufferedServerConnection,
    rest: &mut [u8],
    out: &mut Vec<u8>,
) {
    for _ in 0..16 {
        if !conn.wants_write() {
            return;
        }
        match conn.process_tls_records(rest).state {
            Ok(ConnectionState::EncodeTlsData(mut encode)) => {
                if append_record(out, |buf| encode.encode(buf)).is_err() {
                    return;
                }
            }
            _ => return,
        }
    }
}

/// The size a rustls writer asked for when the buffer was too small.
trait RequiredSize {
    fn required_size(&self) -> Option<usize>;
}

impl RequiredSize for EncodeError {
    fn required_size(&self) -> Option<usize> {
        match self {
            EncodeError::InsufficientSize(InsufficientSizeError { required_size }) => {
                Some(*required_size)
            }
            _ => None,
        }
    }
}

impl RequiredSize for EncryptError {
    fn required_size(&self) -> Option<usize> {
        match self {
            EncryptError::InsufficientSize(InsufficientSizeError { required_size }) => {
                Some(*required_size)
            }
            _ => None,
        }
    }
}

/// Appends what `write` produces to `out`: asks with an empty slice first,
/// since rustls then reports the exact size without doing any work, then
/// writes into exactly that much room.
fn append_record<E: RequiredSize>(
    out: &mut Vec<u8>,
    mut write: impl FnMut(&mut [u8]) -> Result<usize, E>,
) -> Result<(), E> {
    let size = match write(&mut []) {
        Ok(_) => return Ok(()),
        Err(e) => e.required_size().ok_or(e)?,
    };
    let start = out.len();
    out.resize(start + size, 0);
    match write(&mut out[start..]) {
        Ok(written) => {
            out.truncate(start + written);
            Ok(())
        }
        Err(e) => {
            out.truncate(start);
            Err(e)
        }
    }
}
