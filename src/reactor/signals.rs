//! SIGTERM, SIGINT and SIGHUP delivered as readiness on the reactor's own
//! `Poll` (signal-hook's self-pipe), so a stop or a reload is handled
//! between events like any other input, never inside a signal handler.

use mio::{Interest, Registry, Token};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook_mio::v1_0::Signals;
use std::io;

/// The signals the server acts on, registered in the reactor's `Poll`.
pub struct ServerSignals {
    signals: Signals,
}

/// What arrived since the last look.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pending {
    /// SIGTERM and SIGINT: stop (a second one: stop now).
    pub stops: usize,
    /// SIGHUP: reload what can be reloaded.
    pub reload: bool,
}

impl ServerSignals {
    /// Installs handlers for SIGTERM, SIGINT and SIGHUP and registers them under `token`.
    pub fn register(registry: &Registry, token: Token) -> io::Result<ServerSignals> {
        let mut signals = Signals::new([SIGTERM, SIGINT, SIGHUP])?;
        registry.register(&mut signals, token, Interest::READABLE)?;
        Ok(ServerSignals { signals })
    }

    /// The signals that arrived since the last call.
    pub fn take_pending(&mut self) -> Pending {
        let mut pending = Pending::default();
        for signal in self.signals.pending() {
            match signal {
                SIGHUP => pending.reload = true,
                _ => pending.stops += 1,
            }
        }
        pending
    }
}
