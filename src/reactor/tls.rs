//! TLS connections in the reactor: the same socket calls, the same budgets
//! and the same connection state machine as plain ones, with a
//! [`ServerSession`] between the socket and the [`Conn`](crate::conn::Conn).
//!
//! - Reading: ciphertext from the shared read buffer goes through
//!   [`ServerSession::read_tls`]; the plaintext it yields is fed to the
//!   connection exactly as a plain read would be; the peer's close_notify is
//!   its EOF.
//! - Writing: the connection's queued frames are gathered (up to
//!   [`ENCRYPT_BATCH`]), encrypted into a shared scratch buffer and written
//!   straight from it. Only what the socket does not take is copied into the
//!   connection's own `unsent` buffer, so an idle TLS connection holds no
//!   buffer at all.
//! - Closing: after the GOAWAY is out, close_notify, then `shutdown(Write)`.
//!   A failed session sends its alert (or, to a plaintext tether client, a
//!   plaintext GOAWAY saying the port wants TLS) and closes without a GOAWAY.

use std::io::ErrorKind;
use std::sync::Arc;
use std::time::Instant;

use rustls::ServerConfig;

use super::core::Entry;
use super::io::send_once;
use super::stats::{Stats, TlsStats};
use super::Reactor;
use crate::app::{App, ConnId};
use crate::conn::ConnLimits;
use crate::protocol::frame::MAGIC;
use crate::protocol::{encode_goaway, GoawayCode};
use crate::tls::{FailureKind, ServerSession, TlsFailure};

/// Plaintext encrypted per write: a few full TLS records, enough to fill a
/// socket buffer in one `send`, small enough to bound what a slow reader's
/// connection copies into `unsent`.
pub(super) const ENCRYPT_BATCH: usize = 64 * 1024;

/// The most ciphertext a connection may leave unread that its own input
/// provoked (handshake flights, alerts, key-update answers): far above any
/// handshake flight, so only a peer that keeps asking without reading hits it.
const MAX_PROVOKED_UNSENT: usize = 256 * 1024;

/// The TLS side of a connection accepted on a TLS listener.
pub(super) struct TlsConn {
    pub(super) session: ServerSession,
    /// Ciphertext the socket has not taken yet; only while there is some.
    unsent: Option<Box<Unsent>>,
    /// close_notify has been produced (it may still be in `unsent`).
    close_queued: bool,
    /// When the connection was accepted, until its handshake completes.
    accepted_at: Option<Instant>,
}

/// Ciphertext waiting for the socket, and how much of it went out.
struct Unsent {
    bytes: Vec<u8>,
    sent: usize,
}

/// Buffers every TLS connection borrows for the length of one call.
#[derive(Default)]
pub(super) struct TlsScratch {
    /// Decrypted input, or gathered plaintext to encrypt.
    plain: Vec<u8>,
    /// Records produced by the session.
    cipher: Vec<u8>,
}

impl TlsConn {
    /// A connection about to handshake with `config`.
    pub(super) fn new(config: Arc<ServerConfig>, now: Instant) -> Result<TlsConn, TlsFailure> {
        Ok(TlsConn {
            session: ServerSession::new(config)?,
            unsent: None,
            close_queued: false,
            accepted_at: Some(now),
        })
    }

    /// Whether ciphertext is waiting for the socket (WRITABLE interest).
    pub(super) fn wants_write(&self) -> bool {
        self.unsent.is_some()
    }

    /// Ciphertext not yet taken by the socket.
    fn unsent_len(&self) -> usize {
        self.unsent.as_ref().map_or(0, |u| u.bytes.len() - u.sent)
    }

    fn queue(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        match &mut self.unsent {
            Some(unsent) => unsent.bytes.extend_from_slice(bytes),
            None => {
                self.unsent = Some(Box::new(Unsent {
                    bytes: bytes.to_vec(),
                    sent: 0,
                }))
            }
        }
    }
}

impl<A: App> Reactor<A> {
    /// Feeds ciphertext just read from a TLS connection to its session, and
    /// the plaintext that comes out to the connection (and so to the app).
    pub(super) fn tls_input(&mut self, id: ConnId, ciphertext: &mut [u8]) {
        let mut scratch = std::mem::take(&mut self.core.tls_scratch);
        scratch.plain.clear();
        scratch.cipher.clear();
        let clock_read = self.clock_read;
        let Some((e, tls, limits, now)) = self.core.tls_parts(id) else {
            self.core.tls_scratch = scratch;
            return;
        };
        if !matches!(
            e.conn.state(),
            crate::conn::State::Handshake | crate::conn::State::Open
        ) {
            // Closing: input is drained and discarded, as on plain connections.
            self.core.tls_scratch = scratch;
            return;
        }
        let first_byte = ciphertext.first().copied();
        let result = tls
            .session
            .read_tls(ciphertext, &mut scratch.plain, &mut scratch.cipher);
        tls.queue(&scratch.cipher);
        if tls.unsent_len() > MAX_PROVOKED_UNSENT {
            log::debug!("{id} TLS answers pile up unread: closing");
            e.conn.handle_reset();
            self.core.tls_scratch = scratch;
            return;
        }
        let mut peer_closed = false;
        match result {
            Ok(outcome) => {
                if outcome.handshake_completed {
                    self.stats.tls.handshakes += 1;
                    if let Some(at) = tls.accepted_at.take() {
                        self.stats.tls.handshake_time.observe(clock_read - at);
                    }
                    log::debug!("{id} TLS handshake done");
                }
                peer_closed = outcome.peer_closed;
            }
            Err(failure) => {
                fail(
                    e,
                    tls,
                    limits,
                    now,
                    &failure,
                    first_byte,
                    &mut self.stats.tls,
                );
                log::debug!("{id} {failure}");
            }
        }
        if !scratch.plain.is_empty() {
            self.handle_input(id, &scratch.plain);
        }
        if peer_closed {
            if let Some((e, limits, now)) = self.core.parts(id) {
                e.conn.handle_eof(now, limits);
            }
        }
        self.core.tls_scratch = scratch;
    }

    /// The peer's EOF on a TLS connection: how the TLS stream ended, then
    /// the connection's own EOF handling.
    pub(super) fn tls_eof(&mut self, id: ConnId) {
        let Some((e, tls, limits, now)) = self.core.tls_parts(id) else {
            return;
        };
        // A session that already failed was counted then; its EOF is just the end.
        if tls.session.failure().is_none() {
            if let Err(failure) = tls.session.read_eof() {
                self.stats.tls.record_failure(failure.kind());
                log::debug!("{id} {failure}");
            }
        }
        e.conn.handle_eof(now, limits);
    }
}

/// A session failed: count it, say so to a plaintext tether client, and
/// close the connection without a GOAWAY (the session's alert, if any, is
/// already queued).
fn fail(
    e: &mut Entry,
    tls: &mut TlsConn,
    limits: &ConnLimits,
    now: crate::time::Tick,
    failure: &TlsFailure,
    first_byte: Option<u8>,
    stats: &mut TlsStats,
) {
    stats.record_failure(failure.kind());
    if failure.kind() == FailureKind::NotTls && first_byte == Some(MAGIC) {
        // A tether client without TLS: one plaintext GOAWAY it can read.
        stats.plaintext_refused += 1;
        tls.queue(&encode_goaway(
            GoawayCode::ProtocolError,
            "this port speaks TLS; connect with TLS",
        ));
    }
    e.conn.handle_transport_failure(now, limits);
}

/// Writes a TLS connection's pending ciphertext, then encrypts and writes
/// its queued frames, until all is out or the socket is full.
pub(super) fn flush_tls(
    e: &mut Entry,
    tls: &mut TlsConn,
    limits: &ConnLimits,
    stats: &mut Stats,
    scratch: &mut TlsScratch,
) {
    loop {
        if let Some(unsent) = tls.unsent.as_deref_mut() {
            match send_once(&e.stream, &unsent.bytes[unsent.sent..]) {
                Ok(0) => {
                    e.conn.handle_reset();
                    return;
                }
                Ok(n) => {
                    stats.bytes_out += n as u64;
                    unsent.sent += n;
                    if unsent.sent < unsent.bytes.len() {
                        return; // the socket is full
                    }
                    tls.unsent = None;
                }
                Err(err) if err.kind() == ErrorKind::WouldBlock => return,
                Err(err) => {
                    log::debug!("{} write: {err}", e.id);
                    e.conn.handle_reset();
                    return;
                }
            }
        }
        if !e.conn.wants_write() {
            return;
        }
        if !tls.session.can_send() {
            // Frames queued before the handshake finished (a handshake
            // timeout's GOAWAY, SERVER_FULL) have no keys to go with.
            e.conn.discard_output();
            return;
        }
        scratch.plain.clear();
        for buf in e.conn.output() {
            let room = ENCRYPT_BATCH - scratch.plain.len();
            scratch.plain.extend_from_slice(&buf[..buf.len().min(room)]);
            if scratch.plain.len() == ENCRYPT_BATCH {
                break;
            }
        }
        scratch.cipher.clear();
        if let Err(failure) = tls.session.encrypt(&scratch.plain, &mut scratch.cipher) {
            log::warn!("{} {failure}", e.id);
            stats.tls.record_failure(failure.kind());
            e.conn.handle_reset();
            return;
        }
        e.conn.handle_written(scratch.plain.len(), limits);
        match send_once(&e.stream, &scratch.cipher) {
            Ok(n) => {
                stats.bytes_out += n as u64;
                if n < scratch.cipher.len() {
                    tls.queue(&scratch.cipher[n..]);
                    return;
                }
            }
            Err(err) if err.kind() == ErrorKind::WouldBlock => {
                tls.queue(&scratch.cipher);
                return;
            }
            Err(err) => {
                log::debug!("{} write: {err}", e.id);
                e.conn.handle_reset();
                return;
            }
        }
    }
}

/// Whether a closing TLS connection may shut its write side: close_notify
/// is produced once, and must be out first.
pub(super) fn ready_to_shut(
    e: &mut Entry,
    tls: &mut TlsConn,
    limits: &ConnLimits,
    stats: &mut Stats,
    scratch: &mut TlsScratch,
) -> bool {
    if !tls.close_queued {
        tls.close_queued = true;
        scratch.cipher.clear();
        // Mid-handshake there is nothing to send; a failed session has said its alert.
        let _ = tls.session.close(&mut scratch.cipher);
        tls.queue(&scratch.cipher);
        flush_tls(e, tls, limits, stats, scratch);
    }
    tls.unsent.is_none()
}
