//! What the floor servers (`floor_echo`, `floor_fanout`) share: the command
//! line, the listener and signals, the one fixed WELCOME, and skipping the
//! HELLO without parsing it. A floor does the least a server can do for
//! tether-load, so that tether's cost can be read against it.

use mio::net::{TcpListener, TcpStream};
use mio::{Interest, Poll, Token};
use std::io::{self, Write};
use std::net::SocketAddr;

use tether::protocol::{SessionId, Welcome, HEADER_LEN};

/// The listener's token.
pub const LISTENER: Token = Token(usize::MAX);
/// The SIGTERM/SIGINT token: either stops the floor.
pub const SIGNALS: Token = Token(usize::MAX - 1);

/// The listening socket and the signal source, both registered with `poll`.
pub struct Listening {
    /// Accepts at [`LISTENER`].
    pub listener: TcpListener,
    /// Readable at [`SIGNALS`] on SIGTERM or SIGINT; kept alive while the floor runs.
    pub _signals: signal_hook_mio::v1_0::Signals,
}

/// Reads `--listen ADDR` (the only flag; default 127.0.0.1:7601), binds,
/// registers the listener and the signals, and prints `listening on IP:PORT`
/// like the server.
pub fn listen(poll: &Poll) -> io::Result<Listening> {
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
    let mut listener = TcpListener::bind(listen)?;
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    let mut signals = signal_hook_mio::v1_0::Signals::new([
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGINT,
    ])?;
    poll.registry()
        .register(&mut signals, SIGNALS, Interest::READABLE)?;
    println!("listening on {}", listener.local_addr()?);
    io::stdout().flush()?;
    Ok(Listening {
        listener,
        _signals: signals,
    })
}

/// Accepts one pending connection with TCP_NODELAY; `None` when there is
/// none (WouldBlock) or the process is out of descriptors: wait for the next event.
pub fn accept(listener: &TcpListener) -> Option<TcpStream> {
    loop {
        match listener.accept() {
            Ok((stream, _)) => {
                let _ = stream.set_nodelay(true);
                return Some(stream);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return None,
        }
    }
}

/// The one WELCOME every connection gets, encoded once: protocol 1, a
/// heartbeat of 10 minutes (a floor answers no PING it does not have to),
/// the largest frames, one fixed session id.
pub fn welcome_frame() -> bytes::Bytes {
    Welcome {
        version: tether::protocol::PROTOCOL_V1,
        resumed: false,
        lost: false,
        heartbeat_ms: 600_000,
        idle_timeout_ms: 1_800_000,
        max_frame: u16::MAX,
        max_message: 1 << 20,
        session: SessionId([0x5a; 16]),
    }
    .encode_frame()
}

/// Skips the HELLO frame a connection starts with, reading only its length:
/// no magic, CRC or version check.
#[derive(Debug, Default)]
pub struct HelloSkip {
    /// Bytes of the HELLO frame seen.
    seen: usize,
    /// Its payload length, once bytes 2 and 3 are in.
    len: usize,
}

impl HelloSkip {
    /// Consumes HELLO bytes from the front of `data`; returns the bytes after
    /// the HELLO once it is complete, `None` while it is not.
    pub fn skip<'a>(&mut self, mut data: &'a [u8]) -> Option<&'a [u8]> {
        loop {
            if self.seen >= HEADER_LEN && self.seen == HEADER_LEN + self.len {
                return Some(data);
            }
            let (&byte, rest) = data.split_first()?;
            data = rest;
            match self.seen {
                2 => self.len = usize::from(byte) << 8,
                3 => self.len |= usize::from(byte),
                _ => {}
            }
            self.seen += 1;
        }
    }
}
