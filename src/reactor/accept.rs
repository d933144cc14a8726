//! Accepting connections: until WouldBlock (or a per-turn budget), pausing
//! on descriptor exhaustion and retrying from a timer, never spinning;
//! refusing with SERVER_FULL past `max_connections`.

use mio::Interest;
use std::net::SocketAddr;
use std::sync::Arc;

use super::core::{self, Entry};
use super::io::{accept_once, AcceptOutcome};
use super::tls::TlsConn;
use super::turn::ReadUntil;
use super::{Reactor, TimerKind, ACCEPTS_PER_TURN, ACCEPT_PAUSE_MS, MIN_REFUSAL_SLACK};
use crate::app::{App, ConnId};
use crate::conn::Conn;
use crate::protocol::GoawayCode;
use crate::time::Span;

impl<A: App> Reactor<A> {
    pub(super) fn accept_all(&mut self) {
        self.accept_pending = false;
        for index in 0..self.listeners.len() {
            let mut drained = false;
            for _ in 0..ACCEPTS_PER_TURN {
                let Some(listener) = self.listeners.get(index) else {
                    return;
                };
                let tls = listener.tls;
                match accept_once(&listener.socket) {
                    AcceptOutcome::Accepted(stream, addr) => self.admit(stream, addr, tls),
                    AcceptOutcome::WouldBlock => {
                        drained = true;
                        break;
                    }
                    AcceptOutcome::Transient(e) => log::debug!("accept: {e}"),
                    AcceptOutcome::OutOfResources(e) => {
                        self.pause_accepting(&e);
                        return;
                    }
                }
            }
            // Budget spent with more waiting: carry on next turn (no new edge will come).
            self.accept_pending |= !drained;
        }
    }

    fn pause_accepting(&mut self, error: &std::io::Error) {
        self.accept_paused = true;
        self.stats.accept_pauses += 1;
        let now = self.core.now;
        let second = Span::from_ms(1000, self.core.config.tick_ms);
        if self
            .last_pause_log
            .is_none_or(|t| now >= second.deadline_from(t))
        {
            log::warn!(
                "accept paused for {ACCEPT_PAUSE_MS} ms: {error} ({} connections held, {} pauses so far)",
                self.core.conns.len(),
                self.stats.accept_pauses
            );
            self.last_pause_log = Some(now);
        }
        let retry = Span::from_ms(ACCEPT_PAUSE_MS, self.core.config.tick_ms).deadline_from(now);
        self.wheel.insert(retry, TimerKind::ResumeAccept);
    }

    fn admit(&mut self, mut stream: mio::net::TcpStream, addr: SocketAddr, tls: bool) {
        self.stats.accepted += 1;
        let config = &self.core.config;
        let limits = &self.core.limits;
        // Connections being refused do not count against the limit (they are
        // on their way out); they have a small allowance of their own.
        let held = self.core.conns.len() - self.core.refusing;
        let full = held >= config.max_connections;
        let slack = MIN_REFUSAL_SLACK.max(config.max_connections / 100);
        if full && self.core.refusing >= slack {
            self.stats
                .record_close(Some(crate::conn::CloseReason::Goaway(
                    GoawayCode::ServerFull,
                )));
            return; // dropped: closes the socket
        }
        if let Err(e) = stream.set_nodelay(true) {
            log::debug!("{addr}: TCP_NODELAY: {e}");
        }
        let tls = match (tls, &self.tls_config) {
            (false, _) => None,
            (true, Some(config)) => match TlsConn::new(Arc::clone(config), self.clock_read) {
                Ok(tls) => Some(Box::new(tls)),
                Err(e) => {
                    log::warn!("{addr}: {e}");
                    return;
                }
            },
            (true, None) => {
                log::error!("{addr}: accepted on a TLS listener with no TLS configuration");
                return;
            }
        };
        // Generations use 30 bits so connection tokens stay below the HTTP and listener tokens.
        self.next_generation = (self.next_generation + 1) & core::GENERATION_MASK;
        let entry = self.core.conns.vacant_entry();
        let id = ConnId {
            key: entry.key() as u32,
            generation: self.next_generation,
        };
        if let Err(e) =
            self.poll
                .registry()
                .register(&mut stream, core::id_to_token(id), Interest::READABLE)
        {
            log::warn!("{addr}: register: {e}");
            return;
        }
        let mut conn = Conn::new(self.core.now, limits);
        if full {
            conn.close(
                GoawayCode::ServerFull,
                "server is at its connection limit",
                self.core.now,
                limits,
            );
        }
        log::debug!(
            "{id} accepted from {addr}{}",
            if full { " (refused: full)" } else { "" }
        );
        entry.insert(Entry {
            id,
            stream,
            conn,
            timer: None,
            interest: Interest::READABLE,
            dirty: false,
            reaping: false,
            backlogged: false,
            refused: full,
            tls: tls.is_some(),
        });
        if full {
            self.core.refusing += 1;
        }
        if let Some(tls) = tls {
            self.core.tls.insert(id.key, tls);
        }
        self.core.mark_dirty(id);
        if !full {
            // Bytes may already be waiting (HELLO sent with the SYN's ACK): read now.
            self.read_conn(id, ReadUntil::WouldBlock);
        }
    }
}
