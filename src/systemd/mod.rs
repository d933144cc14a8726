//! Running under systemd: `Type=notify` readiness and the watchdog
//! ([`Notifier`]), and socket activation ([`take_listen_fds`]).
//!
//! The protocol is a handful of `KEY=VALUE` lines in one datagram to the
//! `NOTIFY_SOCKET` address, and inherited descriptors from fd 3 described by
//! `LISTEN_PID`, `LISTEN_FDS` and `LISTEN_FDNAMES` (sd_notify(3),
//! sd_listen_fds(3)). It is written here in a few lines rather than taken
//! from the `sd-notify` crate because that crate sends with a blocking
//! socket it creates on every call: a receiver whose queue is full would
//! stall the event loop, and the notifier must never block the server.
//! No libsystemd either. What decides (parsing the environment, the
//! messages, when the watchdog is due) is plain functions over values,
//! unit-tested here; [`notify`] and [`activation`] make the syscalls.

pub mod activation;
pub mod notify;

use std::time::{Duration, Instant};

pub use activation::{take_listen_fds, ActivationError, InheritedListener};
pub use notify::Notifier;

/// The `LISTEN_FDNAMES` name that marks an inherited socket as a TLS
/// listener (`FileDescriptorName=tls` in the socket unit); any other name
/// is a plain listener.
pub const TLS_FD_NAME: &str = "tls";

/// The first inherited descriptor (after stdin, stdout and stderr).
pub const LISTEN_FDS_START: i32 = 3;

/// The most inherited sockets taken (the reactor's listener limit).
pub const MAX_LISTEN_FDS: usize = 1024;

/// The state messages tether sends to the service manager.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message<'a> {
    /// Startup or a reload finished; `status` is the one-line `STATUS=`.
    Ready {
        /// What `systemctl status` shows.
        status: &'a str,
    },
    /// A reload begins, at `monotonic_usec` on CLOCK_MONOTONIC (what
    /// `Type=notify-reload` wants with `RELOADING=1`).
    Reloading {
        /// CLOCK_MONOTONIC in microseconds.
        monotonic_usec: u64,
    },
    /// A graceful stop begins.
    Stopping {
        /// What `systemctl status` shows.
        status: &'a str,
    },
    /// The loop is alive; with a fresh `STATUS=`.
    Watchdog {
        /// What `systemctl status` shows.
        status: &'a str,
    },
}

impl Message<'_> {
    /// The datagram: newline-separated `KEY=VALUE` lines. A status with a
    /// newline in it is cut at the newline (it would start a new key).
    pub fn encode(&self) -> String {
        let status_line = |status: &str| {
            let first = status.split('\n').next().unwrap_or_default();
            format!("STATUS={first}")
        };
        match self {
            Message::Ready { status } => format!("READY=1\n{}", status_line(status)),
            Message::Reloading { monotonic_usec } => {
                format!("RELOADING=1\nMONOTONIC_USEC={monotonic_usec}")
            }
            Message::Stopping { status } => format!("STOPPING=1\n{}", status_line(status)),
            Message::Watchdog { status } => format!("WATCHDOG=1\n{}", status_line(status)),
        }
    }
}

/// The `STATUS=` text: the listeners and how many connections are held,
/// e.g. `listening on 127.0.0.1:7600, 0.0.0.0:7643 tls; 12 connections`.
pub fn status_text(listeners: &[(std::net::SocketAddr, bool)], connections: usize) -> String {
    let addrs: Vec<String> = listeners
        .iter()
        .map(|(addr, tls)| format!("{addr}{}", if *tls { " tls" } else { "" }))
        .collect();
    let noun = if connections == 1 {
        "connection"
    } else {
        "connections"
    };
    format!("listening on {}; {connections} {noun}", addrs.join(", "))
}

/// How often to send `WATCHDOG=1`, from `WATCHDOG_USEC` and `WATCHDOG_PID`
/// as found in the environment: half the timeout the unit set, as
/// sd_watchdog_enabled(3) advises. `Ok(None)`: no watchdog (unset, zero, or
/// meant for another process). An unparsable value is an error naming it.
pub fn watchdog_interval(
    usec: Option<&str>,
    pid: Option<&str>,
    our_pid: u32,
) -> Result<Option<Duration>, String> {
    let Some(usec) = usec else {
        return Ok(None);
    };
    let usec: u64 = usec
        .trim()
        .parse()
        .map_err(|_| format!("WATCHDOG_USEC: expected microseconds, got {usec:?}"))?;
    if let Some(pid) = pid {
        let pid: u32 = pid
            .trim()
            .parse()
            .map_err(|_| format!("WATCHDOG_PID: expected a process id, got {pid:?}"))?;
        if pid != our_pid {
            return Ok(None);
        }
    }
    if usec == 0 {
        return Ok(None);
    }
    Ok(Some(
        Duration::from_micros(usec / 2).max(Duration::from_millis(1)),
    ))
}

/// The names of the sockets systemd passed to this process, one per
/// descriptor from fd 3, parsed from `LISTEN_PID`, `LISTEN_FDS` and
/// `LISTEN_FDNAMES`. Empty when there are none or they are for another
/// process (`LISTEN_PID` is not ours). A descriptor without a name is
/// `"unknown"`, as systemd names it. Errors name the variable.
pub fn listen_fd_names(
    listen_pid: Option<&str>,
    listen_fds: Option<&str>,
    fd_names: Option<&str>,
    our_pid: u32,
) -> Result<Vec<String>, String> {
    let (Some(pid), Some(fds)) = (listen_pid, listen_fds) else {
        return Ok(Vec::new());
    };
    let pid: u32 = pid
        .trim()
        .parse()
        .map_err(|_| format!("LISTEN_PID: expected a process id, got {pid:?}"))?;
    if pid != our_pid {
        return Ok(Vec::new());
    }
    let count: usize = fds
        .trim()
        .parse()
        .map_err(|_| format!("LISTEN_FDS: expected a number of descriptors, got {fds:?}"))?;
    if count > MAX_LISTEN_FDS {
        return Err(format!(
            "LISTEN_FDS: {count} descriptors, more than the {MAX_LISTEN_FDS} listeners tether holds"
        ));
    }
    let names: Vec<String> = match fd_names {
        None => vec!["unknown".to_string(); count],
        Some(list) => {
            let names: Vec<String> = if count == 0 && list.is_empty() {
                Vec::new()
            } else {
                list.split(':').map(str::to_string).collect()
            };
            if names.len() != count {
                return Err(format!(
                    "LISTEN_FDNAMES: {} names for {count} descriptors (LISTEN_FDS)",
                    names.len()
                ));
            }
            names
        }
    };
    Ok(names)
}

/// When the next `WATCHDOG=1` is due: every `interval`, measured from the
/// last one sent. Pure: the reactor passes its clock reading in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WatchdogSchedule {
    interval: Duration,
    next: Instant,
}

impl WatchdogSchedule {
    /// A schedule whose first ping is due at once (at `now`).
    pub fn new(interval: Duration, now: Instant) -> WatchdogSchedule {
        WatchdogSchedule {
            interval,
            next: now,
        }
    }

    /// The interval between pings.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// How long the loop may sleep before the next ping is due (zero: now).
    pub fn wait(&self, now: Instant) -> Duration {
        self.next.saturating_duration_since(now)
    }

    /// Whether a ping is due at `now`; if so, the next one is scheduled an
    /// interval from `now` (a late loop does not send a burst to catch up).
    pub fn take_due(&mut self, now: Instant) -> bool {
        if now < self.next {
            return false;
        }
        self.next = now + self.interval;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;

    #[test]
    fn messages_are_key_value_lines() {
        assert_eq!(
            Message::Ready { status: "up" }.encode(),
            "READY=1\nSTATUS=up"
        );
        assert_eq!(
            Message::Reloading {
                monotonic_usec: 1234
            }
            .encode(),
            "RELOADING=1\nMONOTONIC_USEC=1234"
        );
        assert_eq!(
            Message::Stopping { status: "bye" }.encode(),
            "STOPPING=1\nSTATUS=bye"
        );
        assert_eq!(
            Message::Watchdog { status: "ok" }.encode(),
            "WATCHDOG=1\nSTATUS=ok"
        );
    }

    #[test]
    fn a_status_cannot_inject_a_key() {
        assert_eq!(
            Message::Ready {
                status: "x\nSTOPPING=1"
            }
            .encode(),
            "READY=1\nSTATUS=x"
        );
    }

    #[test]
    fn status_names_listeners_and_connections() {
        let plain: SocketAddr = "127.0.0.1:7600".parse().unwrap();
        let tls: SocketAddr = "[::1]:7643".parse().unwrap();
        assert_eq!(
            status_text(&[(plain, false), (tls, true)], 12),
            "listening on 127.0.0.1:7600, [::1]:7643 tls; 12 connections"
        );
        assert_eq!(
            status_text(&[(plain, false)], 1),
            "listening on 127.0.0.1:7600; 1 connection"
        );
    }

    #[test]
    fn watchdog_is_half_the_timeout_for_our_pid_only() {
        let half = Some(Duration::from_millis(100));
        assert_eq!(watchdog_interval(Some("200000"), None, 7), Ok(half));
        assert_eq!(watchdog_interval(Some("200000"), Some("7"), 7), Ok(half));
        assert_eq!(watchdog_interval(Some("200000"), Some("8"), 7), Ok(None));
        assert_eq!(watchdog_interval(None, Some("7"), 7), Ok(None));
        assert_eq!(watchdog_interval(Some("0"), None, 7), Ok(None));
        assert_eq!(
            watchdog_interval(Some("1"), None, 7),
            Ok(Some(Duration::from_millis(1)))
        );
    }

    #[test]
    fn bad_watchdog_values_are_named() {
        let e = watchdog_interval(Some("soon"), None, 7).unwrap_err();
        assert!(e.starts_with("WATCHDOG_USEC:"), "{e}");
        let e = watchdog_interval(Some("100"), Some("me"), 7).unwrap_err();
        assert!(e.starts_with("WATCHDOG_PID:"), "{e}");
    }

    #[test]
    fn listen_fds_for_us_with_and_without_names() {
        assert_eq!(
            listen_fd_names(Some("42"), Some("2"), None, 42),
            Ok(vec!["unknown".to_string(), "unknown".to_string()])
        );
        assert_eq!(
            listen_fd_names(Some("42"), Some("2"), Some("plain:tls"), 42),
            Ok(vec!["plain".to_string(), "tls".to_string()])
        );
        assert_eq!(
            listen_fd_names(Some("42"), Some("0"), Some(""), 42),
            Ok(vec![])
        );
    }

    #[test]
    fn listen_fds_for_another_process_or_absent_are_ignored() {
        assert_eq!(listen_fd_names(Some("41"), Some("2"), None, 42), Ok(vec![]));
        assert_eq!(listen_fd_names(None, Some("2"), None, 42), Ok(vec![]));
        assert_eq!(listen_fd_names(Some("42"), None, None, 42), Ok(vec![]));
    }

    #[test]
    fn bad_listen_values_are_named() {
        let cases = [
            (Some("x"), Some("1"), None, "LISTEN_PID:"),
            (Some("42"), Some("one"), None, "LISTEN_FDS:"),
            (Some("42"), Some("5000"), None, "LISTEN_FDS:"),
            (Some("42"), Some("2"), Some("tls"), "LISTEN_FDNAMES:"),
        ];
        for (pid, fds, names, var) in cases {
            let e = listen_fd_names(pid, fds, names, 42).unwrap_err();
            assert!(e.starts_with(var), "{e}");
        }
    }

    #[test]
    fn watchdog_schedule_pings_once_per_interval() {
        let start = Instant::now();
        let ms = Duration::from_millis;
        let mut w = WatchdogSchedule::new(ms(100), start);
        assert_eq!(w.wait(start), Duration::ZERO);
        assert!(w.take_due(start));
        assert!(!w.take_due(start + ms(99)));
        assert_eq!(w.wait(start + ms(40)), ms(60));
        // Late by 150 ms: one ping, the next an interval later, no catch-up burst.
        assert!(w.take_due(start + ms(250)));
        assert!(!w.take_due(start + ms(251)));
        assert_eq!(w.wait(start + ms(250)), ms(100));
    }
}
