//! The datagram socket to the service manager (`NOTIFY_SOCKET`): a
//! non-blocking unbound Unix datagram socket, each message sent to the
//! address with `sendto`, so it never blocks and survives a manager that
//! re-creates its socket. A failed send is logged once (then at debug
//! level) and never stops the server.

use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr as UnixAddr, UnixDatagram};
use std::time::Instant;

use super::{watchdog_interval, Message, WatchdogSchedule};

/// Sends readiness, reload, stop and watchdog messages to systemd.
pub struct Notifier {
    socket: UnixDatagram,
    target: UnixAddr,
    /// The `NOTIFY_SOCKET` value, for log messages.
    name: String,
    watchdog: Option<WatchdogSchedule>,
    /// A send failed already (later failures are logged at debug level only).
    failed: bool,
}

impl Notifier {
    /// The notifier the environment asks for: `None` when `NOTIFY_SOCKET`
    /// is unset or empty (not run by systemd, or not `Type=notify`), or
    /// unusable (logged). The watchdog is on when `WATCHDOG_USEC` is set
    /// (and `WATCHDOG_PID`, if set, is this process); its first ping is due
    /// at `now`.
    pub fn from_env(now: Instant) -> Option<Notifier> {
        let name = std::env::var("NOTIFY_SOCKET")
            .ok()
            .filter(|s| !s.is_empty())?;
        let target = match notify_address(&name) {
            Ok(target) => target,
            Err(e) => {
                log::warn!("NOTIFY_SOCKET={name}: {e}; not notifying systemd");
                return None;
            }
        };
        let socket = match UnixDatagram::unbound().and_then(|s| {
            s.set_nonblocking(true)?;
            Ok(s)
        }) {
            Ok(socket) => socket,
            Err(e) => {
                log::warn!("NOTIFY_SOCKET={name}: creating a datagram socket: {e}");
                return None;
            }
        };
        let usec = std::env::var("WATCHDOG_USEC").ok();
        let pid = std::env::var("WATCHDOG_PID").ok();
        let watchdog = match watchdog_interval(usec.as_deref(), pid.as_deref(), std::process::id())
        {
            Ok(interval) => interval.map(|i| WatchdogSchedule::new(i, now)),
            Err(e) => {
                log::warn!("{e}; no watchdog pings");
                None
            }
        };
        if let Some(w) = &watchdog {
            log::info!(
                "systemd watchdog: pinging every {} ms",
                w.interval().as_millis()
            );
        }
        Some(Notifier {
            socket,
            target,
            name,
            watchdog,
            failed: false,
        })
    }

    /// Sends `message`; never blocks, never fails (see the module docs).
    pub fn send(&mut self, message: &Message<'_>) {
        let datagram = message.encode();
        if let Err(e) = self.socket.send_to_addr(datagram.as_bytes(), &self.target) {
            if self.failed {
                log::debug!("NOTIFY_SOCKET={}: {e}", self.name);
            } else {
                self.failed = true;
                log::warn!(
                    "NOTIFY_SOCKET={}: sending to systemd failed: {e} (further failures are not logged)",
                    self.name
                );
            }
        }
    }

    /// How long the loop may sleep before the next watchdog ping is due
    /// (`None`: no watchdog).
    pub fn watchdog_wait(&self, now: Instant) -> Option<std::time::Duration> {
        self.watchdog.as_ref().map(|w| w.wait(now))
    }

    /// Whether a watchdog ping is due at `now` (scheduling the next one if so).
    pub fn watchdog_due(&mut self, now: Instant) -> bool {
        self.watchdog.as_mut().is_some_and(|w| w.take_due(now))
    }
}

/// The socket address `NOTIFY_SOCKET` names: a path, or `@name` for a name
/// in the abstract namespace.
fn notify_address(value: &str) -> Result<UnixAddr, String> {
    if let Some(abstract_name) = value.strip_prefix('@') {
        UnixAddr::from_abstract_name(abstract_name.as_bytes()).map_err(|e| e.to_string())
    } else if value.starts_with('/') {
        UnixAddr::from_pathname(value).map_err(|e| e.to_string())
    } else {
        Err("expected an absolute path or @abstract-name".to_string())
    }
}

/// CLOCK_MONOTONIC in microseconds, for `MONOTONIC_USEC=` with `RELOADING=1`
/// (`Instant` reads the same clock but does not show its value).
#[allow(unsafe_code)]
pub fn monotonic_usec() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec through a valid pointer.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    if rc != 0 {
        return 0;
    }
    (ts.tv_sec as u64) * 1_000_000 + (ts.tv_nsec as u64) / 1_000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notify_addresses() {
        let path = notify_address("/run/systemd/notify").unwrap();
        assert_eq!(
            path.as_pathname(),
            Some(std::path::Path::new("/run/systemd/notify"))
        );
        let abs = notify_address("@tether/notify").unwrap();
        assert_eq!(abs.as_abstract_name(), Some(&b"tether/notify"[..]));
        assert!(notify_address("vsock:2:1234").is_err());
    }

    #[test]
    fn sends_to_a_bound_datagram_socket_and_survives_a_missing_one() {
        let dir = std::env::temp_dir().join(format!("tether-notify-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join("notify");
        let _ = std::fs::remove_file(&path);
        let receiver = UnixDatagram::bind(&path).unwrap();
        let mut n = Notifier {
            socket: UnixDatagram::unbound().unwrap(),
            target: notify_address(path.to_str().unwrap()).unwrap(),
            name: "test".into(),
            watchdog: None,
            failed: false,
        };
        n.send(&Message::Ready { status: "up" });
        let mut buf = [0u8; 64];
        let len = receiver.recv(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"READY=1\nSTATUS=up");
        drop(receiver);
        std::fs::remove_file(&path).unwrap();
        n.send(&Message::Ready { status: "again" });
        assert!(n.failed);
        let _ = std::fs::remove_dir(&dir);
    }
}
