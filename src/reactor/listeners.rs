//! The listening sockets, plain and TLS, bound here or inherited (systemd), and the TLS configuration that new
//! TLS connections handshake with (reloaded in place on SIGHUP).

use mio::net::TcpListener;
use mio::{Interest, Token};
use std::net::SocketAddr;

use super::{io, Reactor, LISTENER_BASE, MAX_LISTENERS};
use crate::app::App;
use crate::tls::{load_server_config, ConfigError};

/// One listening socket.
pub(super) struct Listener {
    pub(super) socket: TcpListener,
    /// Connections accepted here speak TLS.
    pub(super) tls: bool,
}

impl<A: App> Reactor<A> {
    /// Adds a plain listening socket (SO_REUSEADDR, large backlog) and
    /// returns the address it is bound to: the real port when asked for port 0.
    pub fn listen(&mut self, addr: SocketAddr) -> std::io::Result<SocketAddr> {
        self.add_listener(addr, false)
    }

    /// Adds a TLS listening socket; the reactor must have a TLS
    /// configuration (`Config::tls`).
    pub fn listen_tls(&mut self, addr: SocketAddr) -> std::io::Result<SocketAddr> {
        if self.tls_config.is_none() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "a TLS listener needs a TLS certificate and key",
            ));
        }
        self.add_listener(addr, true)
    }

    /// Adds a listening socket opened elsewhere (one systemd passed, see
    /// [`crate::systemd::take_listen_fds`]); it must be non-blocking. With
    /// `tls`, connections accepted on it speak TLS, which needs a TLS
    /// configuration. Returns the address it is bound to.
    pub fn adopt_listener(
        &mut self,
        socket: std::net::TcpListener,
        tls: bool,
    ) -> std::io::Result<SocketAddr> {
        if tls && self.tls_config.is_none() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "a TLS listener needs a TLS certificate and key",
            ));
        }
        self.register_listener(TcpListener::from_std(socket), tls)
    }

    fn add_listener(&mut self, addr: SocketAddr, tls: bool) -> std::io::Result<SocketAddr> {
        self.register_listener(io::bind_listener(addr)?, tls)
    }

    fn register_listener(
        &mut self,
        mut socket: TcpListener,
        tls: bool,
    ) -> std::io::Result<SocketAddr> {
        if self.listeners.len() >= MAX_LISTENERS {
            return Err(std::io::Error::other("too many listeners"));
        }
        let bound = socket.local_addr()?;
        let token = Token(LISTENER_BASE - self.listeners.len());
        self.poll
            .registry()
            .register(&mut socket, token, Interest::READABLE)?;
        self.listeners.push(Listener { socket, tls });
        self.accept_pending = true;
        Ok(bound)
    }

    /// The address of the first listener (the real port when asked for port 0).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.listeners
            .first()
            .and_then(|l| l.socket.local_addr().ok())
    }

    /// Every listener's bound address and whether it speaks TLS, plain ones
    /// first, each group in the order it was added.
    pub fn listener_addrs(&self) -> Vec<(SocketAddr, bool)> {
        let mut addrs: Vec<(SocketAddr, bool)> = self
            .listeners
            .iter()
            .filter_map(|l| Some((l.socket.local_addr().ok()?, l.tls)))
            .collect();
        addrs.sort_by_key(|(_, tls)| *tls);
        addrs
    }

    /// Re-reads the TLS certificate, key and client CA: new handshakes use
    /// them, open connections keep what they started with. On an error (it
    /// names the file) the old configuration stays. `Ok(false)`: no TLS here.
    pub fn reload_tls(&mut self) -> Result<bool, ConfigError> {
        let Some(files) = &self.core.config.tls else {
            return Ok(false);
        };
        let config = load_server_config(files)?;
        self.tls_config = Some(config);
        Ok(true)
    }
}
