//! One generator connection: its socket, where it is in its life, and the few
//! counters a workload keeps. No buffer is held while a connection is idle:
//! `decoder` and `out` hold no heap except while a frame is split across
//! reads or the kernel's send buffer is full. A TLS connection also holds
//! its rustls session (boxed, so a plaintext connection pays one pointer).

use mio::net::TcpStream;
use std::io::{self, Write};

use crate::stats::ErrorKind;
use crate::wire;
use tether::protocol::FrameDecoder;
pub use tether::reactor::io::{connect_result, start_connect};

/// A connection's TLS session: rustls's buffered client, which holds the
/// records it has read and the ones it has yet to write.
#[derive(Debug)]
pub struct TlsConn {
    /// The rustls session.
    pub session: rustls::ClientConnection,
    /// When the TCP connect completed (ns since the run started): the TLS
    /// handshake's time is measured from here.
    pub connected_ns: u64,
    /// Our close_notify is queued (it goes out before the FIN).
    pub close_notify_sent: bool,
}

/// Where a connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Non-blocking connect in progress.
    Connecting,
    /// HELLO sent, waiting for WELCOME.
    Handshaking,
    /// WELCOME received: the workload runs.
    Open,
    /// We sent GOAWAY and FIN (or the server did): reading to EOF.
    Closing,
    /// Finished; the slot is reclaimed at the end of the turn.
    Dead,
}

/// What a connection does in the workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Pingpong, echo, idle or churn connection.
    Worker,
    /// The fanout publisher.
    Publisher,
    /// A fanout subscriber.
    Subscriber,
    /// A storm client: connects in the storm, then only keeps its connection.
    Storm,
}

/// One connection's state.
#[derive(Debug)]
pub struct Conn {
    /// The socket.
    pub stream: TcpStream,
    /// Distinguishes this connection from earlier users of the same slab key.
    pub generation: u32,
    /// Where it is in its life.
    pub phase: Phase,
    /// What it does.
    pub role: Role,
    /// Frame decoding; holds bytes only of a frame split across reads.
    pub decoder: FrameDecoder,
    /// Bytes the kernel would not take yet (empty, unallocated, otherwise);
    /// over TLS, plaintext that rustls would not take yet.
    pub out: Vec<u8>,
    /// The TLS session, from the TCP connect on; `None` in plaintext.
    pub tls: Option<Box<TlsConn>>,
    /// WRITABLE is in the registered interest.
    pub write_interest: bool,
    /// Shut the write side down once `out` drains (polite close).
    pub fin_pending: bool,
    /// The server sent a GOAWAY.
    pub got_goaway: bool,
    /// When the connect began (ns since the run started).
    pub started_ns: u64,
    /// Last time a frame arrived.
    pub last_rx_ns: u64,
    /// Last time a frame was sent.
    pub last_tx_ns: u64,
    /// Heartbeat interval in force (ns); 0 before WELCOME.
    pub heartbeat_ns: u64,
    /// Requests sent (pingpong, echo) or subscribe sent (fanout).
    pub sent: u64,
    /// Replies received.
    pub received: u64,
    /// Fanout, v2: the SUBSCRIBE was answered OK.
    pub subscribed: bool,
    /// Bytes so far of a DATA message arriving in fragments.
    pub msg_bytes: u32,
    /// Send timestamp carried by the first fragment of that message.
    pub msg_ts_ns: u64,
}

impl Conn {
    /// A connection whose connect has just been started.
    pub fn new(stream: TcpStream, generation: u32, role: Role, now_ns: u64) -> Conn {
        Conn {
            stream,
            generation,
            phase: Phase::Connecting,
            role,
            decoder: wire::decoder(),
            out: Vec::new(),
            tls: None,
            write_interest: true,
            fin_pending: false,
            got_goaway: false,
            started_ns: now_ns,
            last_rx_ns: now_ns,
            last_tx_ns: now_ns,
            heartbeat_ns: 0,
            sent: 0,
            received: 0,
            subscribed: false,
            msg_bytes: 0,
            msg_ts_ns: 0,
        }
    }

    /// Whether WELCOME has not arrived yet (the connect or handshake is in flight).
    pub fn is_connecting(&self) -> bool {
        matches!(self.phase, Phase::Connecting | Phase::Handshaking)
    }

    /// Whether the registered interest should include WRITABLE.
    pub fn wants_write(&self) -> bool {
        self.phase == Phase::Connecting
            || !self.out.is_empty()
            || self.tls.as_ref().is_some_and(|t| t.session.wants_write())
    }
}

/// Writes as much of `data` as the kernel takes; returns how much that was.
pub fn write_some(stream: &mut TcpStream, data: &[u8]) -> io::Result<usize> {
    let mut done = 0;
    while done < data.len() {
        match stream.write(&data[done..]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

/// Sorts a failed connect into an error kind.
pub fn connect_error_kind(e: &io::Error) -> ErrorKind {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => ErrorKind::ConnectRefused,
        io::ErrorKind::TimedOut => ErrorKind::Timeout,
        _ => ErrorKind::ConnectFailed,
    }
}
