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

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use slab::Slab;
use std::io::{self, Read, Write};
use std::net::SocketAddr;

use tether::protocol::{encode_frame, FrameType, SessionId, Welcome, HEADER_LEN};

const LISTENER: Token = Token(usize::MAX);
/// PONG frames per write: enough to batch a burst of pings in one syscall.
const PONG_BATCH: usize = 64;

/// Where a connection is in the HELLO it must read first.
enum Stage {
    /// `seen` bytes of the HELLO frame read; `len` its payload length once known.
    Hello { seen: usize, len: usize },
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
    let mut listen: SocketAddr = "127.0.0.1:7601".parse().unwrap();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--listen" => {
                listen = args
                    .next()
                    .expect("--listen ADDR")
                    .parse()
                    .expect("IP:PORT")
            }
            other => panic!("unknown argument {other:?} (only --listen ADDR)"),
        }
    }
    let welcome = Welcome {
        version: tether::protocol::PROTOCOL_V1,
        resumed: false,
        lost: false,
        heartbeat_ms: 600_000,
        idle_timeout_ms: 1_800_000,
        max_frame: u16::MAX,
        max_message: 1 << 20,
        session: SessionId([0x5a; 16]),
    }
    .encode_frame();
    let pong = encode_frame(FrameType::Pong, false, &[]);
    let pongs: Vec<u8> = pong
        .iter()
        .copied()
        .cycle()
        .take(PONG_BATCH * HEADER_LEN)
        .collect();

    let mut poll = Poll::new()?;
    let mut listener = TcpListener::bind(listen)?;
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    let mut signals = signal_hook_mio::v1_0::Signals::new([
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGINT,
    ])?;
    const SIGNALS: Token = Token(usize::MAX - 1);
    poll.registry()
        .register(&mut signals, SIGNALS, Interest::READABLE)?;
    println!("listening on {}", listener.local_addr()?);
    io::stdout().flush()?;

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
                LISTENER => loop {
                    match listener.accept() {
                        Ok((mut stream, _)) => {
                            let _ = stream.set_nodelay(true);
                            let entry = conns.vacant_entry();
                            poll.registry().register(
                                &mut stream,
                                Token(entry.key()),
                                Interest::READABLE,
                            )?;
                            entry.insert(Conn {
                                stream,
                                stage: Stage::Hello { seen: 0, len: 0 },
                                welcome_left: 0,
                                pong_bytes: 0,
                                write_interest: false,
                            });
                        }
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        // WouldBlock, or out of descriptors: wait for the next event.
                        Err(_) => break,
                    }
                },
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
        while let Stage::Hello { seen, len } = &mut conn.stage {
            let Some((&byte, rest)) = data.split_first() else {
                break;
            };
            data = rest;
            match *seen {
                2 => *len = usize::from(byte) << 8,
                3 => *len |= usize::from(byte),
                _ => {}
            }
            *seen += 1;
            if *seen >= HEADER_LEN && *seen == HEADER_LEN + *len {
                conn.welcome_left = welcome.len();
                conn.stage = Stage::Pings { carry: 0 };
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
