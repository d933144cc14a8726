//! Socket activation: the listening sockets systemd opened and passed to
//! this process from fd 3 (`LISTEN_PID`, `LISTEN_FDS`, `LISTEN_FDNAMES`),
//! checked to be listening TCP sockets, made non-blocking and
//! close-on-exec, and the variables unset so nothing started later takes
//! them for its own.

use std::os::fd::{BorrowedFd, FromRawFd, OwnedFd, RawFd};

use socket2::{Domain, Protocol, SockRef, Type};

use super::{listen_fd_names, LISTEN_FDS_START, TLS_FD_NAME};

/// One socket passed by systemd.
#[derive(Debug)]
pub struct InheritedListener {
    /// The listening socket, non-blocking and close-on-exec.
    pub socket: std::net::TcpListener,
    /// Its descriptor number as passed (3, 4, ...), for messages.
    pub fd: RawFd,
    /// Its `LISTEN_FDNAMES` name (`FileDescriptorName=`), `unknown` if none.
    pub name: String,
    /// Named [`TLS_FD_NAME`]: connections accepted on it speak TLS.
    pub tls: bool,
}

/// Why the inherited sockets cannot be used; names the variable or the fd.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActivationError(pub String);

impl std::fmt::Display for ActivationError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "socket activation: {}", self.0)
    }
}

impl std::error::Error for ActivationError {}

/// Takes the sockets systemd passed to this process, if any (empty when
/// `LISTEN_PID`/`LISTEN_FDS` are unset or meant for another process), and
/// unsets `LISTEN_PID`, `LISTEN_FDS` and `LISTEN_FDNAMES`. Call it early,
/// while the process is single-threaded (it changes the environment).
pub fn take_listen_fds() -> Result<Vec<InheritedListener>, ActivationError> {
    let var = |name: &str| std::env::var(name).ok();
    let (pid, fds, names) = (var("LISTEN_PID"), var("LISTEN_FDS"), var("LISTEN_FDNAMES"));
    let names = listen_fd_names(
        pid.as_deref(),
        fds.as_deref(),
        names.as_deref(),
        std::process::id(),
    )
    .map_err(ActivationError)?;
    if pid.as_deref().and_then(|p| p.trim().parse::<u32>().ok()) == Some(std::process::id()) {
        for name in ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"] {
            std::env::remove_var(name);
        }
    }
    let mut taken = Vec::with_capacity(names.len());
    for (fd, name) in (LISTEN_FDS_START..).zip(names) {
        let socket = adopt(fd).map_err(|e| ActivationError(format!("fd {fd} ({name}): {e}")))?;
        let tls = name == TLS_FD_NAME;
        taken.push(InheritedListener {
            socket,
            fd,
            name,
            tls,
        });
    }
    Ok(taken)
}

/// Checks that `fd` is an open, listening TCP socket, and takes ownership
/// of it, non-blocking and close-on-exec. Unsafe inside, necessarily: a
/// descriptor number from the environment becomes an owned socket.
#[allow(unsafe_code)]
fn adopt(fd: RawFd) -> Result<std::net::TcpListener, String> {
    // SAFETY: F_GETFD only reads the descriptor's flags; EBADF if not open.
    if unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
        return Err(format!("not open: {}", std::io::Error::last_os_error()));
    }
    // SAFETY: the descriptor is open (checked above) and stays open while
    // borrowed: nothing else in this process knows of it yet.
    let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
    let sock = SockRef::from(&borrowed);
    let kind = sock.r#type().map_err(|e| match e.raw_os_error() {
        Some(libc::ENOTSOCK) => "not a socket".to_string(),
        _ => format!("not a socket: {e}"),
    })?;
    if kind != Type::STREAM {
        return Err("not a stream socket (a TCP listener is expected)".into());
    }
    let domain = sock.domain().map_err(|e| format!("socket domain: {e}"))?;
    if domain != Domain::IPV4 && domain != Domain::IPV6 {
        return Err("not a TCP socket (an IPv4 or IPv6 listener is expected)".into());
    }
    if sock
        .protocol()
        .map_err(|e| format!("SO_PROTOCOL: {e}"))?
        .is_some_and(|p| p != Protocol::TCP)
    {
        return Err("not a TCP socket (another stream protocol)".into());
    }
    if !sock
        .is_listener()
        .map_err(|e| format!("SO_ACCEPTCONN: {e}"))?
    {
        return Err("not listening (ListenStream= sockets are; Accept=no is needed)".into());
    }
    sock.set_nonblocking(true)
        .map_err(|e| format!("setting non-blocking: {e}"))?;
    sock.set_cloexec(true)
        .map_err(|e| format!("setting close-on-exec: {e}"))?;
    // SAFETY: an open socket that this process now owns (systemd passed it
    // for us alone); nothing else closes it.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    Ok(std::net::TcpListener::from(owned))
}
