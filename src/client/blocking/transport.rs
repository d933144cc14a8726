//! The blocking driver's byte stream: a `TcpStream`, or TLS over one with
//! rustls's buffered `ClientConnection` (memory per client connection does
//! not matter here, simplicity does).
//!
//! The TLS handshake is not run to completion up front: it advances inside
//! the same bounded reads and writes as the tether protocol, so the
//! machine's handshake deadline covers the TLS handshake and WELCOME
//! together, and HELLO (held by rustls until the handshake is done) is never
//! sent to a server whose certificate was not verified.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::Duration;

use rustls::ClientConnection;

use crate::client::TlsError;

/// What one read produced.
#[derive(Debug)]
pub(super) enum ReadResult {
    /// `n` plaintext bytes are at the front of the buffer.
    Data(usize),
    /// The server's orderly end of stream: FIN, or over TLS its `close_notify`.
    Eof,
    /// Nothing yet (the wait ran out, or only part of a TLS record came).
    Nothing,
    /// The socket failed.
    Failed(io::Error),
    /// TLS failed.
    Tls(TlsError),
}

/// One connection's stream.
#[derive(Debug)]
pub(super) enum Transport {
    /// Plaintext TCP.
    Plain(TcpStream),
    /// TLS over TCP.
    Tls(Box<TlsStream>),
}

/// A TLS session and the socket it runs over.
#[derive(Debug)]
pub(super) struct TlsStream {
    conn: ClientConnection,
    sock: TcpStream,
}

impl Transport {
    /// Wraps a connected socket, in TLS when `tls` is a session (whose
    /// ClientHello goes out with the first write).
    pub(super) fn new(sock: TcpStream, tls: Option<ClientConnection>) -> Transport {
        match tls {
            None => Transport::Plain(sock),
            Some(conn) => Transport::Tls(Box::new(TlsStream { conn, sock })),
        }
    }

    /// Writes all of `bytes` (blocking up to the socket's write timeout).
    pub(super) fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        match self {
            // write_all retries Interrupted itself.
            Transport::Plain(sock) => sock.write_all(bytes),
            Transport::Tls(tls) => tls.write_all(bytes),
        }
    }

    /// Reads once, waiting at most `wait` for the socket.
    pub(super) fn read(&mut self, buf: &mut [u8], wait: Duration) -> ReadResult {
        match self {
            Transport::Plain(sock) => {
                let result = sock
                    .set_read_timeout(Some(wait))
                    .and_then(|()| sock.read(buf));
                match result {
                    Ok(0) => ReadResult::Eof,
                    Ok(n) => ReadResult::Data(n),
                    Err(e) if is_no_data(&e) => ReadResult::Nothing,
                    Err(e) => ReadResult::Failed(e),
                }
            }
            Transport::Tls(tls) => tls.read(buf, wait),
        }
    }

    /// Ends our direction: over TLS a `close_notify` first, then FIN. Best
    /// effort: a peer already gone shows up as EOF or an error on the next read.
    pub(super) fn shutdown_write(&mut self) {
        let sock = match self {
            Transport::Plain(sock) => &*sock,
            Transport::Tls(tls) => {
                tls.conn.send_close_notify();
                let _ = tls.flush();
                &tls.sock
            }
        };
        let _ = sock.shutdown(Shutdown::Write);
    }
}

/// A read that ended without data or failure: the timeout ran out, or a signal.
fn is_no_data(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
    )
}

impl TlsStream {
    fn write_all(&mut self, mut bytes: &[u8]) -> io::Result<()> {
        while !bytes.is_empty() {
            // rustls takes what fits in its bounded buffers: before the
            // handshake it holds the plaintext, after it the records.
            let taken = self.conn.writer().write(bytes)?;
            bytes = &bytes[taken..];
            let stuck = taken == 0 && !self.conn.wants_write();
            self.flush()?;
            if stuck {
                // Only possible with 64 KiB queued before the handshake is
                // done, which the machine never does (it holds messages until WELCOME).
                return Err(io::Error::new(
                    io::ErrorKind::WriteZero,
                    "TLS: output buffer full before the handshake finished",
                ));
            }
        }
        self.flush()
    }

    /// Writes every TLS record rustls has ready.
    fn flush(&mut self) -> io::Result<()> {
        while self.conn.wants_write() {
            match self.conn.write_tls(&mut self.sock) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    fn read(&mut self, buf: &mut [u8], wait: Duration) -> ReadResult {
        // Plaintext (or whole records) may be left from an earlier read: the
        // socket would not announce them again.
        if let Some(result) = self.decrypted(buf) {
            return result;
        }
        if let Err(e) = self.sock.set_read_timeout(Some(wait)) {
            return ReadResult::Failed(e);
        }
        // Ok(0) is the TCP EOF, which rustls notes: `decrypted` then tells a
        // clean close (close_notify seen) from a truncated one.
        match self.conn.read_tls(&mut self.sock) {
            Ok(_) => {}
            Err(e) if is_no_data(&e) => return ReadResult::Nothing,
            Err(e) => return ReadResult::Failed(e),
        }
        self.decrypted(buf).unwrap_or(ReadResult::Nothing)
    }

    /// Processes the records read so far, sends what that produced
    /// (handshake messages, an alert), and returns plaintext or the end of
    /// the stream; `None` when there is nothing yet.
    fn decrypted(&mut self, buf: &mut [u8]) -> Option<ReadResult> {
        let during_handshake = self.conn.is_handshaking();
        let processed = self.conn.process_new_packets();
        // Sent even after an error: rustls has queued the alert that tells
        // the server why (a rejected certificate, say).
        let flushed = self.flush();
        if let Err(e) = processed {
            return Some(ReadResult::Tls(TlsError::from_rustls(&e, during_handshake)));
        }
        if let Err(e) = flushed {
            return Some(ReadResult::Failed(e));
        }
        match self.conn.reader().read(buf) {
            // Ok(0) into a non-empty buffer: the server's close_notify.
            Ok(0) => Some(ReadResult::Eof),
            Ok(n) => Some(ReadResult::Data(n)),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => None,
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                Some(ReadResult::Tls(TlsError::Truncated {
                    during_handshake: self.conn.is_handshaking(),
                }))
            }
            Err(e) => Some(ReadResult::Failed(e)),
        }
    }
}
