//! The "floor": the least work a server can do and still answer tether-load's
//! pingpong and idle modes. One thread, one `mio::Poll`, a slab of sockets.
//! It answers the HELLO with one fixed, valid WELCOME (encoded once at
//! startup), then answers every 8 bytes received with one 8-byte PONG frame:
//! no CRC check, no framing beyond 8-byte chunks, no timers. Whatever tether
//! spends above this per ping-pong is the price of being a real server.
//!
//! Use empty PINGs (`tether-load pingpong --payload 0`): any payload is just
//! more 8-byte chunks here.
//!
//! ```text
//! cargo run --release --example floor_echo -- [--listen 127.0.0.1:0]
//! ```
//! Prints `listening on IP:PORT` like the server; stops on SIGTERM/SIGINT.

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use slab::Slab;
use std::io::{self, Read, Write};

use tether::protocol::{encode_frame, FrameType, HEADER_LEN};

mod floor;
use floor::{HelloSkip, LISTENER, SIGNALS};

/// PONG frames per write: enough to batch a burst of pings in one syscall.
const PONG_BATCH: usize = 64;

/// Where a connection is in the HELLO it must read first.
enum Stage {
    /// The HELLO is still arriving.
    Hello(HelloSkip),
    /// Handshake done; `carry` bytes of an 8-byte chunk already read.
    Pings { carry: usize },
}

struct Conn {
    stream: TcpStream,
    stage: Stage,
    /// WELCOME bytes still to send (from the end of the WELCOME frame).
    welcome_left: usize,
    /// PONG bytes still to send.
    pong_bytes: u64,
    write_interest: bool,
}

fn main() -> io::Result<()> {
    let mut poll = Poll::new()?;
    let listening = floor::listen(&poll)?;
    let welcome = floor::welcome_frame();
    let pong = encode_frame(FrameType::Pong, false, &[]);
    let pongs: Vec<u8> = pong
        .iter()
        .copied()
        .cycle()
        .take(PONG_BATCH * HEADER_LEN)
        .collect();

    let mut conns: Slab<Conn> = Slab::new();
    let mut events = Events::with_capacity(1024);
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match poll.poll(&mut events, None) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
        for event in events.iter() {
            match event.token() {
                SIGNALS => return Ok(()),
                LISTENER => {
                    while let Some(mut stream) = floor::accept(&listening.listener) {
                        let entry = conns.vacant_entry();
                        poll.registry().register(
                            &mut stream,
                            Token(entry.key()),
                            Interest::READABLE,
                        )?;
                        entry.insert(Conn {
                            stream,
                            stage: Stage::Hello(HelloSkip::default()),
                            welcome_left: 0,
                            pong_bytes: 0,
                            write_interest: false,
                        });
                    }
                }
                Token(key) => {
                    let Some(conn) = conns.get_mut(key) else {
                        continue;
                    };
                    let open = serve(conn, &mut buf, &welcome, &pongs, event.is_read_closed())
                        && update_interest(&poll, conn, key).is_ok();
                    if !open {
                        let mut conn = conns.remove(key);
                        let _ = poll.registry().deregister(&mut conn.stream);
                    }
                }
            }
        }
    }
}

/// Reads what there is, owes a reply per 8 bytes, writes what it owes.
/// Returns whether the connection stays open.
///
/// A short read means the socket is drained: epoll (edge-triggered) reports
/// the next arrival, so the extra read that would return EAGAIN is skipped.
/// Unless the FIN is already in (`read_closed`): then read on to the EOF,
/// which no later edge would announce.
fn serve(conn: &mut Conn, buf: &mut [u8], welcome: &[u8], pongs: &[u8], read_closed: bool) -> bool {
    loop {
        let n = match conn.stream.read(buf) {
            Ok(0) => {
                let _ = flush(conn, welcome, pongs);
                return false;
            }
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return false,
        };
        let mut data = &buf[..n];
        if let Stage::Hello(hello) = &mut conn.stage {
            match hello.skip(data) {
                Some(rest) => {
                    data = rest;
                    conn.welcome_left = welcome.len();
                    conn.stage = Stage::Pings { carry: 0 };
                }
                None => data = &[],
            }
        }
        if let Stage::Pings { carry } = &mut conn.stage {
            let total = *carry + data.len();
            conn.pong_bytes += (total / HEADER_LEN * HEADER_LEN) as u64;
            *carry = total % HEADER_LEN;
        }
        if n < buf.len() && !read_closed {
            break;
        }
    }
    flush(conn, welcome, pongs).is_ok()
}

fn flush(conn: &mut Conn, welcome: &[u8], pongs: &[u8]) -> io::Result<()> {
    while conn.welcome_left > 0 || conn.pong_bytes > 0 {
        let chunk = if conn.welcome_left > 0 {
            &welcome[welcome.len() - conn.welcome_left..]
        } else {
            // Every PONG is the same 8 bytes, so any run of them is a slice of `pongs`.
            let start = (HEADER_LEN - (conn.pong_bytes % HEADER_LEN as u64) as usize) % HEADER_LEN;
            let len = (pongs.len() - start).min(conn.pong_bytes as usize);
            &pongs[start..start + len]
        };
        match conn.stream.write(chunk) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                let from_welcome = n.min(conn.welcome_left);
                conn.welcome_left -= from_welcome;
                conn.pong_bytes -= (n - from_welcome) as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn update_interest(poll: &Poll, conn: &mut Conn, key: usize) -> io::Result<()> {
    let wants = conn.welcome_left > 0 || conn.pong_bytes > 0;
    if wants != conn.write_interest {
        conn.write_interest = wants;
        let interest = if wants {
            Interest::READABLE | Interest::WRITABLE
        } else {
            Interest::READABLE
        };
        poll.registry()
            .reregister(&mut conn.stream, Token(key), interest)?;
    }
    Ok(())
}
