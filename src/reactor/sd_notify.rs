//! The loop's side of systemd's notify protocol (see [`crate::systemd`]):
//! READY=1 once started, WATCHDOG=1 from the loop itself (so a loop that is
//! stuck stops petting the watchdog and systemd restarts it), STOPPING=1
//! when a graceful stop begins, RELOADING=1 then READY=1 around a reload.
//! Without a notifier every call here does nothing.

use super::Reactor;
use crate::app::App;
use crate::systemd::{notify::monotonic_usec, status_text, Message, Notifier};

impl<A: App> Reactor<A> {
    /// Sends READY=1 with a `STATUS=` line (the listeners, the connection
    /// count) through `notifier` and keeps it: from then on the loop sends
    /// WATCHDOG=1 when the unit asks for it, STOPPING=1 when a graceful stop
    /// begins and RELOADING=1/READY=1 around a SIGHUP reload. Call it once
    /// every listener is bound and announced.
    pub fn notify_ready(&mut self, mut notifier: Notifier) {
        let status = self.systemd_status();
        notifier.send(&Message::Ready { status: &status });
        self.notifier = Some(notifier);
    }

    /// What `systemctl status` shows: the listeners and connections, or the
    /// stop in progress.
    fn systemd_status(&self) -> String {
        let connections = self.core.conns.len();
        if self.stop_deadline.is_some() {
            format!("stopping: {connections} connections left")
        } else {
            status_text(&self.listener_addrs(), connections)
        }
    }

    /// Sends WATCHDOG=1 if one is due at this turn's clock reading.
    pub(super) fn pet_watchdog(&mut self) {
        let now = self.clock_read;
        if !self.notifier.as_mut().is_some_and(|n| n.watchdog_due(now)) {
            return;
        }
        let status = self.systemd_status();
        if let Some(n) = self.notifier.as_mut() {
            n.send(&Message::Watchdog { status: &status });
        }
    }

    /// STOPPING=1, as a graceful stop begins.
    pub(super) fn notify_stopping(&mut self) {
        if self.notifier.is_none() {
            return;
        }
        let status = format!("stopping: closing {} connections", self.core.conns.len());
        if let Some(n) = self.notifier.as_mut() {
            n.send(&Message::Stopping { status: &status });
        }
    }

    /// RELOADING=1 with MONOTONIC_USEC, as a reload begins.
    pub(super) fn notify_reloading(&mut self) {
        if let Some(n) = self.notifier.as_mut() {
            n.send(&Message::Reloading {
                monotonic_usec: monotonic_usec(),
            });
        }
    }

    /// READY=1 again, once a reload is done (whether or not it succeeded:
    /// a failed reload keeps the old configuration and the server serves on).
    pub(super) fn notify_reloaded(&mut self) {
        if self.notifier.is_none() {
            return;
        }
        let status = self.systemd_status();
        if let Some(n) = self.notifier.as_mut() {
            n.send(&Message::Ready { status: &status });
        }
    }
}
