//! Standing in for systemd: a datagram socket to pass as `NOTIFY_SOCKET`
//! and read the server's notifications from, and commands that hand the
//! server listening sockets as fd 3 onwards with `LISTEN_FDS` and a
//! `LISTEN_PID` that names the server itself (socket activation).

use std::os::fd::RawFd;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr as UnixAddr, UnixDatagram};
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::time::{Duration, Instant};

use super::server::TETHER;
use super::temp::TempFile;

/// A notify socket bound where the test chose, read with a deadline.
pub struct NotifySocket {
    socket: UnixDatagram,
    /// What to set `NOTIFY_SOCKET` to.
    pub env_value: String,
    /// Keeps the directory of a path socket until the end of the test.
    _dir: Option<TempFile>,
}

impl NotifySocket {
    /// A socket bound to a path in a fresh temporary directory.
    pub fn bind() -> NotifySocket {
        let dir = TempFile::new("README", b"holds the notify socket");
        let path = dir.dir().join("notify");
        let socket = UnixDatagram::bind(&path).expect("bind the notify socket");
        NotifySocket {
            socket,
            env_value: path.to_str().expect("utf-8 temp path").to_string(),
            _dir: Some(dir),
        }
    }

    /// A socket bound to a name in the abstract namespace (`@name`).
    pub fn bind_abstract() -> NotifySocket {
        let name = format!(
            "tether-test-notify-{}-{:?}",
            std::process::id(),
            Instant::now()
        );
        let addr = UnixAddr::from_abstract_name(name.as_bytes()).expect("abstract name");
        let socket = UnixDatagram::bind_addr(&addr).expect("bind the abstract notify socket");
        NotifySocket {
            socket,
            env_value: format!("@{name}"),
            _dir: None,
        }
    }

    /// The next message, if one arrives within `timeout`.
    pub fn recv(&self, timeout: Duration) -> Option<String> {
        self.socket
            .set_read_timeout(Some(timeout.max(Duration::from_millis(1))))
            .expect("set_read_timeout");
        let mut buf = [0u8; 4096];
        let len = self.socket.recv(&mut buf).ok()?;
        Some(String::from_utf8_lossy(&buf[..len]).into_owned())
    }

    /// Waits (at most 10 s) for a message with the line `line` in it
    /// (`READY=1`, ...) and returns it; panics naming what came instead.
    pub fn expect(&self, line: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut seen = Vec::new();
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.recv(left) {
                Some(m) if m.lines().any(|l| l == line) => return m,
                Some(m) => seen.push(m),
                None => break,
            }
        }
        panic!("no {line} notification within 10 s; got {seen:?}");
    }

    /// Every message that arrives within `period`.
    pub fn collect_for(&self, period: Duration) -> Vec<String> {
        let deadline = Instant::now() + period;
        let mut got = Vec::new();
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            if let Some(m) = self.recv(left) {
                got.push(m);
            }
        }
        got
    }
}

/// The value of `KEY=` in a notification, if present.
pub fn notify_field<'a>(message: &'a str, key: &str) -> Option<&'a str> {
    message
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
}

/// `command` (a `tether` command line, see
/// [`tether_command_without_listen`](super::server::tether_command_without_listen))
/// run the way systemd starts a socket-activated service: `fds` become fd 3,
/// 4, ... in the child, `LISTEN_FDS` counts them and `LISTEN_PID` is the
/// child's own pid, set by a shell that then `exec`s the server (the pid is
/// unknown before the fork). `names`, if given, becomes `LISTEN_FDNAMES`.
pub fn socket_activated(command: &Command, fds: &[RawFd], names: Option<&str>) -> Command {
    let mut activated = Command::new("/bin/sh");
    activated
        .arg("-c")
        .arg(r#"LISTEN_PID=$$; export LISTEN_PID; exec "$0" "$@""#)
        .arg(TETHER)
        .args(command.get_args())
        .env("LISTEN_FDS", fds.len().to_string());
    for (key, value) in command.get_envs() {
        match value {
            Some(value) => activated.env(key, value),
            None => activated.env_remove(key),
        };
    }
    if let Some(names) = names {
        activated.env("LISTEN_FDNAMES", names);
    }
    assert!(fds.len() <= MAX_PASSED, "at most {MAX_PASSED} descriptors");
    let fds = fds.to_vec();
    // SAFETY: between fork and exec only async-signal-safe calls (dup2,
    // fcntl) on descriptors the parent keeps open.
    unsafe {
        activated.pre_exec(move || place_fds(&fds));
    }
    activated
}

/// The most descriptors [`socket_activated`] passes.
const MAX_PASSED: usize = 8;

/// In the child: `fds[i]` onto `3 + i`, without close-on-exec. The sources
/// are first moved above the targets so that no dup2 overwrites one still
/// to be placed. No allocation: the parent may have other threads.
fn place_fds(fds: &[RawFd]) -> std::io::Result<()> {
    let base = 3 + fds.len() as RawFd;
    let mut moved = [0; MAX_PASSED];
    for (slot, &fd) in moved.iter_mut().zip(fds) {
        // SAFETY: fcntl on an open descriptor; the result is checked.
        let high = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, base + 64) };
        if high < 0 {
            return Err(std::io::Error::last_os_error());
        }
        *slot = high;
    }
    for (i, &high) in moved[..fds.len()].iter().enumerate() {
        // SAFETY: dup2 onto a fixed descriptor number; the new one has
        // close-on-exec cleared, as an inherited socket must.
        if unsafe { libc::dup2(high, 3 + i as RawFd) } < 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}
