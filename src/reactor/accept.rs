//! Accepting connections: until WouldBlock, a per-turn budget, or a pacing
//! limit (`max_accept_rate`, `max_handshakes`), pausing on descriptor
//! exhaustion and retrying from a timer, never spinning; refusing with
//! SERVER_FULL past `max_connections` or `max_connections_per_ip`.

use mio::Interest;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use super::core::{self, Entry};
use super::io::{accept_once, AcceptOutcome};
use super::stats::REFUSAL_RETRY_AFTER_MS;
use super::tls::TlsConn;
use super::turn::ReadUntil;
use super::{
    Reactor, TimerKind, ACCEPTS_PER_TURN, ACCEPT_PAUSE_MS, ACCEPT_TIME_PER_TURN, MIN_REFUSAL_SLACK,
};
use crate::app::{App, ConnId};
use crate::conn::Conn;
use crate::protocol::GoawayCode;
use crate::time::Span;

/// What holds accepting back while connections wait in the kernel's backlog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum AcceptHold {
    /// `max_accept_rate`: the bucket is empty until it refills.
    Rate,
    /// `max_handshakes`: until a handshake finishes or times out.
    Handshakes,
}

/// Why a newcomer is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    /// `max_connections` are held.
    Full,
    /// Its address holds `max_connections_per_ip`.
    PerIp,
}

impl<A: App> Reactor<A> {
    pub(super) fn accept_all(&mut self) {
        self.accept_pending = false;
        let began = Instant::now();
        for index in 0..self.listeners.len() {
            let mut drained = false;
            for _ in 0..ACCEPTS_PER_TURN {
                if let Some(hold) = self.accept_hold() {
                    self.hold_accepts(hold);
                    return;
                }
                if began.elapsed() >= ACCEPT_TIME_PER_TURN {
                    // The established connections' turn: carry on next turn.
                    self.accept_pending = true;
                    return;
                }
                let Some(listener) = self.listeners.get(index) else {
                    return;
                };
                let tls = listener.tls;
                match accept_once(&listener.socket) {
                    AcceptOutcome::Accepted(stream, addr) => {
                        if let Some(bucket) = self.accept_bucket.as_mut() {
                            bucket.try_take(self.clock_read);
                        }
                        self.admit(stream, addr, tls)
                    }
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
        self.accept_held = None;
    }

    /// The pacing limit that forbids an accept now, if any.
    pub(super) fn accept_hold(&self) -> Option<AcceptHold> {
        let max = self.core.config.max_handshakes;
        if max > 0 && self.core.handshaking >= max {
            return Some(AcceptHold::Handshakes);
        }
        match &self.accept_bucket {
            Some(bucket) if bucket.available(self.clock_read) == 0 => Some(AcceptHold::Rate),
            _ => None,
        }
    }

    /// Stops accepting for now. The listeners not drained may still hold
    /// connections and no new edge will say so: `accept_pending` stays set,
    /// and the poll wakes for the bucket (see `poll_timeout`) or on the
    /// events that end handshakes, never spinning in between.
    fn hold_accepts(&mut self, hold: AcceptHold) {
        self.accept_pending = true;
        if self.accept_held != Some(hold) {
            self.accept_held = Some(hold);
            match hold {
                AcceptHold::Rate => self.stats.accept_rate_waits += 1,
                AcceptHold::Handshakes => self.stats.accept_handshake_waits += 1,
            }
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
        let ip = addr.ip();
        let refusal = if held >= config.max_connections {
            Some(Refusal::Full)
        } else if self.core.per_ip.is_full(ip, config.max_connections_per_ip) {
            Some(Refusal::PerIp)
        } else {
            None
        };
        match refusal {
            Some(Refusal::Full) => self.stats.refused_full += 1,
            Some(Refusal::PerIp) => self.stats.refused_per_ip += 1,
            None => {}
        }
        let slack = MIN_REFUSAL_SLACK.max(config.max_connections / 100);
        if refusal.is_some() && self.core.refusing >= slack {
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
        if let Some(refusal) = refusal {
            // §3.1: at once, before any HELLO, with a hint every client may honour.
            let why = match refusal {
                Refusal::Full => "server is at its connection limit",
                Refusal::PerIp => "too many connections from this address",
            };
            let reason = format!("retry-after-ms={REFUSAL_RETRY_AFTER_MS} {why}");
            conn.close(GoawayCode::ServerFull, &reason, self.core.now, limits);
        }
        let refused = refusal.is_some();
        log::debug!(
            "{id} accepted from {addr}{}",
            match refusal {
                Some(Refusal::Full) => " (refused: full)",
                Some(Refusal::PerIp) => " (refused: per-ip limit)",
                None => "",
            }
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
            refused,
            handshaking: !refused,
            tls: tls.is_some(),
        });
        if refused {
            self.core.refusing += 1;
        } else {
            self.core.handshaking += 1;
            let limit = self.core.config.max_connections_per_ip;
            self.core.per_ip.add(id.key, ip, limit);
        }
        if let Some(tls) = tls {
            self.core.tls.insert(id.key, tls);
        }
        self.core.mark_dirty(id);
        if !refused {
            // Bytes may already be waiting (HELLO sent with the SYN's ACK): read now.
            self.read_conn(id, ReadUntil::WouldBlock);
        }
    }
}
