//! The sans-io server side of one TLS connection, over rustls's unbuffered
//! API: ciphertext in, plaintext and ciphertext out, into buffers the caller
//! owns. It never does I/O, reads no clock and holds no buffers while idle.
//!
//! Memory: rustls's buffered `ServerConnection` keeps a receive buffer and
//! send queues per connection; the unbuffered one decrypts in the caller's
//! buffer and hands every outgoing record over at once. What a session holds
//! between events is rustls's per-connection state (keys, sequence numbers,
//! the handshake's leftovers) plus, only while the peer has sent part of a
//! record, a boxed copy of that part ([`ServerSession::pending_input`]).
//! `examples/tls_idle_mem.rs` measures the result.
//!
//! Interest: a session never holds output. Every byte TLS wants sent
//! (handshake flights, tickets, alerts, key updates, close_notify) is appended
//! to the caller's `out` by the call that produced it, so write interest is
//! exactly "the connection's output queue is not empty", as for plaintext, and
//! read interest is [`ServerSession::wants_read`].

use std::sync::Arc;

use rustls::server::UnbufferedServerConnection;
use rustls::{ProtocolVersion, ServerConfig, SupportedCipherSuite};

use super::drive::{drive, flush_alerts, Action, DriveError, Driven};
use super::error::{FailureKind, TlsFailure};
use super::identity::PeerIdentity;
use crate::protocol::frame::MAGIC;

/// The most ciphertext a session buffers while waiting for the rest of it:
/// a handshake message may span records up to rustls's 64 KiB handshake
/// message limit, plus one largest TLS 1.2 record (2^14 + 2048 + 5 bytes).
/// rustls rejects anything larger before this is reached; the check keeps
/// the bound explicit.
pub const MAX_PENDING_INPUT: usize = 0xffff + 4 + (1 << 14) + 2048 + 5;

/// TLS record content type of a handshake record: what a client's first byte is.
const HANDSHAKE_RECORD: u8 = 0x16;
/// The major version byte of every TLS record header (SSL 3.0 to TLS 1.3).
const RECORD_MAJOR_VERSION: u8 = 0x03;

/// What one [`ServerSession::read_tls`] call changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReadOutcome {
    /// The handshake finished in this call: application data may flow, and
    /// the peer's identity (with mutual TLS) is known.
    pub handshake_completed: bool,
    /// The peer's close_notify arrived in this call: its stream of plaintext
    /// is complete, which the reactor treats as the peer's EOF.
    pub peer_closed: bool,
}

/// How the peer's stream ended, when it ended without a TLS failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Eof {
    /// After the peer's close_notify: a clean TLS close.
    AfterCloseNotify,
    /// After the handshake, at a record boundary, without close_notify. TLS
    /// cannot tell this from a truncation attack; tether's own framing can
    /// (a partial frame, a missing GOAWAY), so it is not a TLS failure.
    WithoutCloseNotify,
    /// Before the peer sent a single byte (a port probe or health check).
    BeforeAnyData,
}

/// One server-side TLS connection, driven by the reactor with bytes.
///
/// Per readable event: [`read_tls`](Self::read_tls) with what `read` returned,
/// then the plaintext goes to the protocol layer; on EOF,
/// [`read_eof`](Self::read_eof). To send: [`encrypt`](Self::encrypt) once
/// [`can_send`](Self::can_send). To close: [`close`](Self::close).
pub struct ServerSession {
    conn: UnbufferedServerConnection,
    /// Ciphertext rustls has not consumed yet: a partial record, or the
    /// records of a handshake message that is still incomplete. Boxed and
    /// present only while there is some, so an idle session pays 8 bytes.
    pending: Option<Box<PendingInput>>,
    /// How many of the stream's first two bytes have been checked (0..=2).
    prefix_checked: u8,
    /// Set once the session has failed; every later call reports it.
    failed: Option<FailureKind>,
    /// The peer's close_notify has arrived.
    peer_closed: bool,
    /// The peer's EOF has been seen.
    eof: bool,
    /// We have sent close_notify (or, mid-handshake, given up on sending).
    close_sent: bool,
}

/// The unconsumed ciphertext of [`ServerSession::pending`].
struct PendingInput {
    bytes: Vec<u8>,
}

impl ServerSession {
    /// A session that will handshake with `config` (normally the one built by
    /// [`load_server_config`](super::load_server_config); a reload swaps the
    /// `Arc` for new sessions and leaves open ones on the old configuration).
    pub fn new(config: Arc<ServerConfig>) -> Result<ServerSession, TlsFailure> {
        let conn = UnbufferedServerConnection::new(config)
            .map_err(|e| TlsFailure::from_rustls(FailureKind::Internal, e))?;
        Ok(ServerSession {
            conn,
            pending: None,
            prefix_checked: 0,
            failed: None,
            peer_closed: false,
            eof: false,
            close_sent: false,
        })
    }

    /// Feeds ciphertext just read from the socket. Decrypted application data
    /// is appended to `plaintext` (the reactor's shared scratch) and whatever
    /// TLS must send in answer (handshake flights, tickets, alerts) to `out`.
    /// `ciphertext` is decrypted in place, so it is scratch afterwards.
    ///
    /// Bytes after the peer's close_notify are ignored. On `Err` the session
    /// is finished; `out` may hold an alert worth sending before closing.
    pub fn read_tls(
        &mut self,
        ciphertext: &mut [u8],
        plaintext: &mut Vec<u8>,
        out: &mut Vec<u8>,
    ) -> Result<ReadOutcome, TlsFailure> {
        self.check_not_failed()?;
        if self.peer_closed || ciphertext.is_empty() {
            return Ok(ReadOutcome::default());
        }
        self.check_prefix(ciphertext)?;
        let was_handshaking = self.conn.is_handshaking();

        let driven = match self.pending.take() {
            Some(mut pending) => {
                self.check_pending_len(pending.bytes.len() + ciphertext.len())?;
                pending.bytes.extend_from_slice(ciphertext);
                let driven =
                    self.drive_and_flush(&mut pending.bytes, Some(plaintext), out, Action::None)?;
                pending.bytes.drain(..driven.consumed);
                if !pending.bytes.is_empty() {
                    self.pending = Some(pending);
                }
                driven
            }
            None => {
                let driven =
                    self.drive_and_flush(ciphertext, Some(plaintext), out, Action::None)?;
                let rest = &ciphertext[driven.consumed..];
                self.check_pending_len(rest.len())?;
                if !rest.is_empty() {
                    self.pending = Some(Box::new(PendingInput {
                        bytes: rest.to_vec(),
                    }));
                }
                driven
            }
        };
        if driven.peer_closed {
            self.peer_closed = true;
            self.pending = None; // anything after close_notify is ignored
        }
        Ok(ReadOutcome {
            handshake_completed: was_handshaking && !self.conn.is_handshaking(),
            peer_closed: driven.peer_closed,
        })
    }

    /// The peer's EOF (`read` returned 0). Says how the stream ended, or
    /// fails with [`FailureKind::TruncatedHandshake`] mid-handshake and
    /// [`FailureKind::CorruptRecord`] inside a record.
    pub fn read_eof(&mut self) -> Result<Eof, TlsFailure> {
        self.check_not_failed()?;
        self.eof = true;
        if self.peer_closed {
            return Ok(Eof::AfterCloseNotify);
        }
        if self.prefix_checked == 0 {
            return Ok(Eof::BeforeAnyData);
        }
        if self.conn.is_handshaking() {
            return Err(self.fail(TlsFailure::new(
                FailureKind::TruncatedHandshake,
                "the peer closed the connection during the handshake",
            )));
        }
        if let Some(pending) = &self.pending {
            let detail = format!(
                "the stream ended inside a record ({} bytes of it received)",
                pending.bytes.len()
            );
            return Err(self.fail(TlsFailure::new(FailureKind::CorruptRecord, detail)));
        }
        Ok(Eof::WithoutCloseNotify)
    }

    /// Encrypts application data, appending the records to `out`. Only once
    /// [`can_send`](Self::can_send); before the handshake finishes or after
    /// [`close`](Self::close) it fails with [`FailureKind::Internal`].
    pub fn encrypt(&mut self, data: &[u8], out: &mut Vec<u8>) -> Result<(), TlsFailure> {
        self.check_not_failed()?;
        if !self.can_send() {
            let when = if self.close_sent {
                "after close_notify"
            } else {
                "before the handshake finished"
            };
            return Err(self.fail(TlsFailure::new(
                FailureKind::Internal,
                format!("application data offered {when}"),
            )));
        }
        let driven = self.drive_pending(out, Action::Encrypt(data))?;
        if !driven.acted {
            return Err(self.fail(TlsFailure::new(
                FailureKind::Internal,
                "rustls did not allow application data",
            )));
        }
        Ok(())
    }

    /// Closes our direction: appends close_notify to `out` (the reactor sends
    /// it after its GOAWAY frame, then shuts the socket's write side). Mid
    /// handshake there are no traffic keys and nothing is sent. Idempotent;
    /// a failed session has nothing to close.
    pub fn close(&mut self, out: &mut Vec<u8>) -> Result<(), TlsFailure> {
        if self.failed.is_some() || self.close_sent {
            return Ok(());
        }
        self.close_sent = true;
        if self.conn.is_handshaking() {
            return Ok(());
        }
        self.drive_pending(out, Action::CloseNotify).map(|_| ())
    }

    /// Whether the reactor should keep reading: until the peer's close_notify
    /// or EOF, or a failure.
    pub fn wants_read(&self) -> bool {
        self.failed.is_none() && !self.peer_closed && !self.eof
    }

    /// Whether application data may be encrypted now: the handshake is done,
    /// we have not closed, and nothing failed.
    pub fn can_send(&self) -> bool {
        self.failed.is_none() && !self.close_sent && !self.conn.is_handshaking()
    }

    /// Whether the handshake is still in progress.
    pub fn is_handshaking(&self) -> bool {
        self.conn.is_handshaking()
    }

    /// Whether the peer's close_notify has arrived.
    pub fn peer_closed(&self) -> bool {
        self.peer_closed
    }

    /// The failure that ended this session, if one did.
    pub fn failure(&self) -> Option<FailureKind> {
        self.failed
    }

    /// Bytes of a partial record held for the peer (0 when idle).
    pub fn pending_input(&self) -> usize {
        self.pending.as_ref().map_or(0, |p| p.bytes.len())
    }

    /// The client's verified identity, with mutual TLS once the handshake is
    /// done; `None` otherwise. Parsed from the certificate on each call, so
    /// the session stores nothing extra for it.
    pub fn peer_identity(&self) -> Option<PeerIdentity> {
        if self.conn.is_handshaking() {
            return None;
        }
        let end_entity = self.conn.peer_certificates()?.first()?;
        PeerIdentity::from_certificate(end_entity)
    }

    /// The negotiated TLS version, once known.
    pub fn protocol_version(&self) -> Option<ProtocolVersion> {
        self.conn.protocol_version()
    }

    /// The negotiated cipher suite, once known.
    pub fn cipher_suite(&self) -> Option<SupportedCipherSuite> {
        self.conn.negotiated_cipher_suite()
    }

    fn check_not_failed(&self) -> Result<(), TlsFailure> {
        match self.failed {
            Some(kind) => Err(TlsFailure::new(kind, "the session has already failed")),
            None => Ok(()),
        }
    }

    /// Records the failure so later calls report it, and returns it.
    fn fail(&mut self, failure: TlsFailure) -> TlsFailure {
        self.failed = Some(failure.kind());
        self.pending = None;
        failure
    }

    /// Fails the session if `len` bytes of incomplete input would exceed
    /// [`MAX_PENDING_INPUT`] (a handshake failure before the handshake is
    /// done, a corrupt record after).
    fn check_pending_len(&mut self, len: usize) -> Result<(), TlsFailure> {
        if len <= MAX_PENDING_INPUT {
            return Ok(());
        }
        let kind = if self.conn.is_handshaking() {
            FailureKind::Handshake
        } else {
            FailureKind::CorruptRecord
        };
        let detail = format!("more than {MAX_PENDING_INPUT} bytes of incomplete TLS input");
        Err(self.fail(TlsFailure::new(kind, detail)))
    }

    /// Checks that the stream starts like a TLS handshake record (content type
    /// 0x16, major version 3), so plaintext and other protocols are told apart
    /// from TLS that fails.
    fn check_prefix(&mut self, ciphertext: &[u8]) -> Result<(), TlsFailure> {
        let mut bytes = ciphertext.iter();
        while self.prefix_checked < 2 {
            let Some(&byte) = bytes.next() else {
                return Ok(());
            };
            let expected =
                [HANDSHAKE_RECORD, RECORD_MAJOR_VERSION][usize::from(self.prefix_checked)];
            if byte != expected {
                let detail = if self.prefix_checked == 0 && byte == MAGIC {
                    "the client speaks plaintext tether (first byte 0xA5) on a TLS port".to_owned()
                } else {
                    format!(
                        "byte {} of the stream is {byte:#04x}, not {expected:#04x}: not a TLS client",
                        self.prefix_checked
                    )
                };
                return Err(self.fail(TlsFailure::new(FailureKind::NotTls, detail)));
            }
            self.prefix_checked += 1;
        }
        Ok(())
    }

    /// Drives rustls over the pending input (or nothing) to carry out `action`.
    fn drive_pending(
        &mut self,
        out: &mut Vec<u8>,
        action: Action<'_>,
    ) -> Result<Driven, TlsFailure> {
        let mut pending = self.pending.take();
        let buffer: &mut [u8] = match &mut pending {
            Some(p) => &mut p.bytes,
            None => &mut [],
        };
        let result = self.drive_and_flush(buffer, None, out, action);
        if let (Ok(driven), Some(mut p)) = (&result, pending) {
            p.bytes.drain(..driven.consumed);
            if !p.bytes.is_empty() {
                self.pending = Some(p);
            }
        }
        result
    }

    /// [`drive`] plus failure handling: on error, the alert rustls queued is
    /// appended to `out` and the failure is classified and recorded.
    fn drive_and_flush(
        &mut self,
        buffer: &mut [u8],
        plaintext: Option<&mut Vec<u8>>,
        out: &mut Vec<u8>,
        action: Action<'_>,
    ) -> Result<Driven, TlsFailure> {
        let was_handshaking = self.conn.is_handshaking();
        match drive(&mut self.conn, buffer, plaintext, out, action) {
            Ok(driven) => Ok(driven),
            Err((consumed, failure)) => {
                let rest = buffer.get_mut(consumed..).unwrap_or_default();
                flush_alerts(&mut self.conn, rest, out);
                let failure = match failure {
                    DriveError::Rustls(e) => {
                        TlsFailure::from_rustls(classify(&e, was_handshaking), e)
                    }
                    DriveError::Ours(failure) => failure,
                };
                Err(self.fail(failure))
            }
        }
    }
}

/// Sorts a rustls error into a [`FailureKind`].
fn classify(error: &rustls::Error, during_handshake: bool) -> FailureKind {
    if during_handshake {
        FailureKind::Handshake
    } else {
        match error {
            rustls::Error::EncryptError => FailureKind::Internal,
            _ => FailureKind::CorruptRecord,
        }
    }
}
