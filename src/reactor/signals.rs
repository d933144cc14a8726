//! SIGTERM and SIGINT delivered as readiness on the reactor's own `Poll`
//! (signal-hook's self-pipe), so a stop is handled between events like any
//! other input, never inside a signal handler.

use mio::{Interest, Registry, Token};
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook_mio::v1_0::Signals;
use std::io;

/// The stop signals, registered in the reactor's `Poll`.
pub struct StopSignals {
    signals: Signals,
}

impl StopSignals {
    /// Installs handlers for SIGTERM and SIGINT and registers them under `token`.
    pub fn register(registry: &Registry, token: Token) -> io::Result<StopSignals> {
        let mut signals = Signals::new([SIGTERM, SIGINT])?;
        registry.register(&mut signals, token, Interest::READABLE)?;
        Ok(StopSignals { signals })
    }

    /// How many stop signals arrived since the last call.
    pub fn take_pending(&mut self) -> usize {
        self.signals.pending().count()
    }
}
