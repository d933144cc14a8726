//! The socket calls, each a full match on its outcomes, never a catch-all:
//! `Ok(0)` on read is the peer's EOF, `WouldBlock` means wait for the next
//! edge, `Interrupted` retries the same call, any other error ends that one
//! connection and never the loop.

use bytes::Bytes;
use mio::net::{TcpListener, TcpStream};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use std::collections::VecDeque;
use std::io::{self, IoSlice, Read};
use std::net::{IpAddr, Shutdown, SocketAddr};

/// Most buffers handed to one `writev`: enough to batch many small frames.
const MAX_IOVECS: usize = 64;

/// What one read attempt produced.
#[derive(Debug)]
pub enum ReadOutcome {
    /// `n` bytes are at the front of the buffer.
    Data(usize),
    /// The peer sent FIN.
    Eof,
    /// Nothing more for now; wait for the next readable edge.
    WouldBlock,
    /// The connection failed (reset or otherwise).
    Failed(io::Error),
}

/// Reads once into `buf`, retrying on EINTR.
pub fn read_once(stream: &mut TcpStream, buf: &mut [u8]) -> ReadOutcome {
    loop {
        match stream.read(buf) {
            Ok(0) => return ReadOutcome::Eof,
            Ok(n) => return ReadOutcome::Data(n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return ReadOutcome::WouldBlock,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return ReadOutcome::Failed(e),
        }
    }
}

/// Writes the front of `output` with one `writev` (EINTR retried).
pub fn write_front(stream: &mut TcpStream, output: &VecDeque<Bytes>) -> io::Result<usize> {
    // One buffer is the common case (a turn's batch of a channel): a plain
    // send, without setting up 64 vectors (measured: ~200 instructions).
    if let (1, Some(only)) = (output.len(), output.front()) {
        return send_once(stream, only);
    }
    let mut slices = [IoSlice::new(&[]); MAX_IOVECS];
    let mut count = 0;
    for (slot, buf) in slices.iter_mut().zip(output.iter()) {
        *slot = IoSlice::new(buf);
        count += 1;
    }
    write_vectored_retrying(stream, &slices[..count])
}

fn write_vectored_retrying(stream: &mut TcpStream, slices: &[IoSlice<'_>]) -> io::Result<usize> {
    // sendmsg with MSG_NOSIGNAL rather than writev: a peer that vanished gives
    // EPIPE here instead of SIGPIPE, which would kill a C host process that
    // embeds the reactor without ignoring the signal.
    let socket = socket2::SockRef::from(&*stream);
    loop {
        match socket.send_vectored_with_flags(slices, libc::MSG_NOSIGNAL) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

/// Writes once from `buf` with MSG_NOSIGNAL (see above); EINTR is retried.
pub fn send_once(stream: &TcpStream, buf: &[u8]) -> io::Result<usize> {
    let socket = socket2::SockRef::from(stream);
    loop {
        match socket.send_with_flags(buf, libc::MSG_NOSIGNAL) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

/// Shuts the write side down (sends FIN). A peer that is already gone is not an error here.
pub fn shutdown_write(stream: &TcpStream) -> io::Result<()> {
    match stream.shutdown(Shutdown::Write) {
        Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(()),
        other => other,
    }
}

/// What one accept attempt produced.
#[derive(Debug)]
pub enum AcceptOutcome {
    /// A new connection.
    Accepted(TcpStream, SocketAddr),
    /// The backlog is empty.
    WouldBlock,
    /// Out of file descriptors (EMFILE/ENFILE) or kernel memory: pause accepting.
    OutOfResources(io::Error),
    /// The newcomer died before we took it (ECONNABORTED and the like): try the next.
    Transient(io::Error),
}

/// Accepts one connection, retrying on EINTR, sorting the errors that matter.
pub fn accept_once(listener: &TcpListener) -> AcceptOutcome {
    loop {
        match listener.accept() {
            Ok((stream, addr)) => return AcceptOutcome::Accepted(stream, addr),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return AcceptOutcome::WouldBlock,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return match e.raw_os_error() {
                    Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM) => {
                        AcceptOutcome::OutOfResources(e)
                    }
                    _ => AcceptOutcome::Transient(e),
                }
            }
        }
    }
}

/// A listening socket with SO_REUSEADDR and a large backlog, non-blocking.
pub fn bind_listener(addr: SocketAddr) -> io::Result<TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    // The kernel caps this at net.core.somaxconn.
    socket.listen(65_535)?;
    Ok(TcpListener::from_std(socket.into()))
}

/// Starts a non-blocking connect to `addr`, bound to `source` (port 0) when given.
///
/// Binding a source address spreads sockets over several loopback addresses,
/// each with its own ephemeral port range. (`IP_BIND_ADDRESS_NO_PORT` would
/// defer the port choice to connect(); socket2 0.5 does not expose it, so the
/// port is chosen at bind time.) For load generators and client fleets
/// (`tether-load`, `examples/restart_storm.rs`); the server dials with
/// `links.rs`.
pub fn start_connect(addr: SocketAddr, source: Option<IpAddr>) -> io::Result<TcpStream> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_nonblocking(true)?;
    socket.set_nodelay(true)?;
    if let Some(ip) = source {
        socket.bind(&SockAddr::from(SocketAddr::new(ip, 0)))?;
    }
    match socket.connect(&SockAddr::from(addr)) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
        Err(e) => return Err(e),
    }
    Ok(TcpStream::from_std(socket.into()))
}

/// Whether a connect finished: `Ok(true)` connected, `Ok(false)` not yet
/// (a spurious wakeup), `Err` it failed.
pub fn connect_result(stream: &TcpStream) -> io::Result<bool> {
    if let Some(e) = stream.take_error()? {
        return Err(e);
    }
    match stream.peer_addr() {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(false),
        Err(e) => Err(e),
    }
}
