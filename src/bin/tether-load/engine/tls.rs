//! TLS under the generator's connections: rustls's buffered
//! `ClientConnection` between the frames and the non-blocking socket.
//!
//! - The TLS handshake is part of the connect: the session is made when the
//!   TCP connect completes, the ClientHello goes out with the HELLO (which
//!   rustls holds until the handshake is done), and it all runs inside the
//!   handshake deadline. Each handshake's time (TCP connect to TLS
//!   established) and kind (full or resumed) are counted.
//! - Reads: `read_tls` from the socket until EAGAIN (the epoll is
//!   edge-triggered), EINTR retried, `process_new_packets` after each, then
//!   every byte of plaintext through the same frame handling as plaintext.
//!   The server's close_notify is its EOF; a FIN without one is a TLS error.
//! - Writes: plaintext into rustls (what it will not take yet waits in the
//!   connection's `out`), records to the socket until EAGAIN; WRITABLE
//!   interest stays while rustls holds records. A polite close sends
//!   GOAWAY, then close_notify, then FIN.

use std::io::{self, Write};

use mio::net::TcpStream;
use rustls::HandshakeKind;
use tether::client::TlsError;

use super::*;
use crate::conn::TlsConn;

impl Engine {
    /// The TCP connect of `key` completed: gives it its TLS session. False
    /// when none could be made (the connection is failed).
    pub(super) fn start_tls(&mut self, key: usize) -> bool {
        let Some(tls) = &self.tls else {
            return true;
        };
        match tls.connection() {
            Ok(session) => {
                self.conns[key].tls = Some(Box::new(TlsConn {
                    session,
                    connected_ns: self.now_ns,
                    close_notify_sent: false,
                }));
                true
            }
            Err(e) => {
                self.tls_failed(key, format!("cannot start a TLS session: {e}"));
                false
            }
        }
    }

    /// Ends `key` for a TLS failure, remembering the first one for the report.
    fn tls_failed(&mut self, key: usize, what: String) {
        log::debug!("TLS failed on {key}: {what}");
        if self.stats.first_tls_error.is_none() {
            self.stats.first_tls_error = Some(what);
        }
        self.fail(key, ErrorKind::Tls);
    }

    /// `key` is readable: records in, plaintext out to the frame handling.
    pub(super) fn read_ready_tls(&mut self, key: usize) {
        let mut rbuf = std::mem::take(&mut self.rbuf);
        while let Some(c) = self.conns.get_mut(key).filter(|c| c.phase != Phase::Dead) {
            let Some(t) = c.tls.as_mut() else {
                break;
            };
            // Ok(0) is the FIN (or a close_notify already in): rustls notes
            // it, and the plaintext below then ends the stream.
            match t.session.read_tls(&mut c.stream) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    log::debug!("read failed: {e}");
                    self.fail(key, ErrorKind::Reset);
                    break;
                }
            }
            if !self.process_records(key) || !self.deliver_plaintext(key, &mut rbuf) {
                break;
            }
        }
        self.rbuf = rbuf;
    }

    /// Lets rustls process the records read; counts a completed handshake.
    /// False when TLS failed (the connection is failed).
    fn process_records(&mut self, key: usize) -> bool {
        let c = &mut self.conns[key];
        let Some(t) = c.tls.as_mut() else {
            return false;
        };
        let during_handshake = t.session.is_handshaking();
        match t.session.process_new_packets() {
            Ok(_) => {
                if during_handshake && !t.session.is_handshaking() {
                    let resumed = t.session.handshake_kind() == Some(HandshakeKind::Resumed);
                    let connected_ns = t.connected_ns;
                    let now = self.clock();
                    self.stats
                        .tls
                        .handshake(now, now.saturating_sub(connected_ns), resumed);
                }
                true
            }
            Err(e) => {
                // Tell the server why, best effort: rustls queued an alert.
                let _ = t.session.write_tls(&mut c.stream);
                let error = TlsError::from_rustls(&e, during_handshake);
                self.tls_failed(key, error.to_string());
                false
            }
        }
    }

    /// Hands every byte of plaintext rustls holds to the frame handling,
    /// then flushes. False when the stream ended (the connection is done).
    fn deliver_plaintext(&mut self, key: usize, rbuf: &mut [u8]) -> bool {
        loop {
            let Some(c) = self.conns.get_mut(key).filter(|c| c.phase != Phase::Dead) else {
                return false;
            };
            let Some(t) = c.tls.as_mut() else {
                return false;
            };
            let read = io::Read::read(&mut t.session.reader(), rbuf);
            match read {
                // The server's close_notify: its orderly end of stream.
                Ok(0) => {
                    self.on_eof(key);
                    return false;
                }
                Ok(n) => self.deliver(key, &rbuf[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    // Handshake messages may be due even without plaintext.
                    self.flush(key);
                    return true;
                }
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                    let error = TlsError::Truncated {
                        during_handshake: t.session.is_handshaking(),
                    };
                    self.tls_failed(key, error.to_string());
                    return false;
                }
                Err(e) => {
                    log::debug!("TLS read failed: {e}");
                    self.fail(key, ErrorKind::Reset);
                    return false;
                }
            }
        }
    }

    /// The TLS half of `flush`: the scratch buffer into rustls, records to
    /// the socket, and at the end of a polite close close_notify then FIN.
    pub(super) fn flush_tls(&mut self, key: usize) {
        let Some(c) = self.conns.get_mut(key).filter(|c| c.phase != Phase::Dead) else {
            self.wbuf.clear();
            return;
        };
        let Some(t) = c.tls.as_mut() else {
            return;
        };
        if !self.wbuf.is_empty() {
            c.last_tx_ns = self.now_ns;
            if c.out.is_empty() {
                // Never fails: rustls takes what fits in its buffer.
                let taken = t.session.writer().write(&self.wbuf).unwrap_or(0);
                c.out.extend_from_slice(&self.wbuf[taken..]);
            } else {
                c.out.extend_from_slice(&self.wbuf);
            }
            self.wbuf.clear();
        }
        if let Err(e) = pump(t, &mut c.out, c.fin_pending, &mut c.stream) {
            log::debug!("write failed: {e}");
            self.fail(key, ErrorKind::Reset);
            return;
        }
        if c.out.is_empty() {
            // Free the backlog's memory: an idle connection holds no buffer of ours.
            c.out = Vec::new();
            if c.fin_pending && t.close_notify_sent && !t.session.wants_write() {
                c.fin_pending = false;
                if let Err(e) = shutdown_write(&c.stream) {
                    log::debug!("shutdown failed: {e}");
                }
            }
        }
    }
}

/// Moves plaintext from `out` into rustls and records from rustls to the
/// socket until the socket would block, rustls will take no more (before
/// its handshake is done), or all is written; queues close_notify once
/// `out` is empty when `fin` is pending.
fn pump(t: &mut TlsConn, out: &mut Vec<u8>, fin: bool, stream: &mut TcpStream) -> io::Result<()> {
    loop {
        while t.session.wants_write() {
            match t.session.write_tls(stream) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if !out.is_empty() {
            let taken = t.session.writer().write(out)?;
            if taken == 0 {
                // Only before the handshake is done: it flushes this then.
                return Ok(());
            }
            out.drain(..taken);
        } else if fin && !t.close_notify_sent {
            t.session.send_close_notify();
            t.close_notify_sent = true;
        } else {
            return Ok(());
        }
    }
}
