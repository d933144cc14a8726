//! The work of one turn after `poll`: reading ready connections within their
//! budget, handing bytes to the state machines and messages to the app,
//! firing timers, then settling (write, shut, re-arm) and reaping.

use super::core::Core;
use super::io::{read_once, ReadOutcome};
use super::stats::{Gauges, Stats};
use super::{
    Reactor, TimerKind, EXPIRIES_PER_TURN, READ_BYTES_PER_TURN, READ_CALLS_PER_TURN,
    TLS_HANDSHAKE_TIME_PER_TURN,
};
use crate::app::{App, CloseEvent, ConnId, HelloEvent, MessageEvent};
use crate::conn::ConnEvent;
use crate::exposition::Exposition;
use crate::protocol::GoawayCode;
use crate::wheel::Wheel;
use std::time::Instant;

/// When a read loop may stop before its budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ReadUntil {
    /// At `WouldBlock`: the documented edge-triggered contract, for reads not
    /// prompted by a plain readable event (backlog, a fresh accept) and for
    /// events that also report the peer's FIN or an error, which bring no
    /// further edge and must be read to the end.
    WouldBlock,
    /// At a read shorter than the buffer: the receive queue is empty, and on
    /// Linux epoll any byte that arrives later raises a new edge. Saves the
    /// `recv` that would only return EAGAIN: one syscall per request/reply.
    ShortRead,
}

impl<A: App> Reactor<A> {
    /// Reads the first `carried` connections of the backlog: those whose
    /// budget ran out in an earlier turn. Those cut off in this turn wait for
    /// the next one, so no connection gets two budgets in a turn.
    pub(super) fn serve_backlog(&mut self, carried: usize) {
        for _ in 0..carried {
            let Some(id) = self.backlog.pop_front() else {
                break;
            };
            if let Some(e) = self.core.entry_mut(id) {
                e.backlogged = false;
            }
            self.read_conn(id, ReadUntil::WouldBlock);
            self.core.mark_dirty(id);
        }
    }

    /// Reads a connection after a readiness event, unless it is on the
    /// backlog, which reads it (to `WouldBlock`) later in this turn anyway.
    pub(super) fn read_ready(&mut self, id: ConnId, until: ReadUntil) {
        if self.core.entry(id).is_some_and(|e| !e.backlogged) {
            self.read_conn(id, until);
        }
        self.core.mark_dirty(id);
    }

    /// Reads a connection until `until` says the socket is drained, or EOF,
    /// an error, or its budget.
    pub(super) fn read_conn(&mut self, id: ConnId, until: ReadUntil) {
        let handshaking = self
            .core
            .tls_of(id)
            .is_some_and(|t| t.session.is_handshaking());
        if handshaking && self.defer_tls_handshake(id) {
            return;
        }
        let timed = handshaking.then(Instant::now);
        self.read_conn_now(id, until);
        if let Some(began) = timed {
            self.tls_handshake_spent += began.elapsed();
        }
    }

    /// Puts a TLS connection in its handshake on the backlog, unread, once
    /// this turn has spent [`TLS_HANDSHAKE_TIME_PER_TURN`] on handshakes (a
    /// storm of ClientHellos must not hold the established connections for
    /// tens of milliseconds); it is read first thing next turn.
    fn defer_tls_handshake(&mut self, id: ConnId) -> bool {
        if self.tls_handshake_spent < TLS_HANDSHAKE_TIME_PER_TURN {
            return false;
        }
        let Some(e) = self.core.entry_mut(id) else {
            return false;
        };
        if !e.backlogged {
            e.backlogged = true;
            self.backlog.push_back(id);
        }
        self.stats.tls_handshakes_deferred += 1;
        true
    }

    fn read_conn_now(&mut self, id: ConnId, until: ReadUntil) {
        let mut buf = std::mem::take(&mut self.read_buf);
        let mut taken = 0;
        for call in 0.. {
            let Some((e, limits, now)) = self.core.parts(id) else {
                break;
            };
            if !e.conn.wants_read() {
                break;
            }
            if call == READ_CALLS_PER_TURN || taken >= READ_BYTES_PER_TURN {
                if !e.backlogged {
                    e.backlogged = true;
                    self.backlog.push_back(id);
                }
                break;
            }
            let tls = e.tls;
            match read_once(&mut e.stream, &mut buf) {
                ReadOutcome::Data(n) => {
                    taken += n;
                    self.stats.bytes_in += n as u64;
                    if tls {
                        self.tls_input(id, &mut buf[..n]);
                    } else {
                        self.handle_input(id, &buf[..n]);
                    }
                    if n < buf.len() && until == ReadUntil::ShortRead {
                        break;
                    }
                }
                ReadOutcome::Eof if tls => {
                    self.tls_eof(id);
                    break;
                }
                ReadOutcome::Eof => {
                    e.conn.handle_eof(now, limits);
                    break;
                }
                ReadOutcome::WouldBlock => break,
                ReadOutcome::Failed(err) => {
                    log::debug!("{id} read: {err}");
                    e.conn.handle_reset();
                    break;
                }
            }
        }
        self.read_buf = buf;
    }

    /// Feeds bytes to a connection and its events to the app, in order.
    pub(super) fn handle_input(&mut self, id: ConnId, mut input: &[u8]) {
        loop {
            let Some((e, limits, now)) = self.core.parts(id) else {
                return;
            };
            let Some(event) = e.conn.handle_bytes(&mut input, now, limits) else {
                return;
            };
            let session = e.conn.session();
            match event {
                ConnEvent::Hello(hello) => {
                    let fresh = match self.random.session_id() {
                        Ok(fresh) => fresh,
                        Err(err) => {
                            log::error!("reading the OS random source: {err}");
                            self.core
                                .close(id, GoawayCode::ServerFull, "cannot create a session");
                            continue;
                        }
                    };
                    let identity = self
                        .core
                        .tls_of(id)
                        .and_then(|tls| tls.session.peer_identity());
                    let event = HelloEvent {
                        conn: id,
                        hello: &hello,
                        fresh,
                        peer_identity: identity.as_ref(),
                    };
                    self.call_app(|app, ctx| app.on_hello(&event, ctx));
                }
                ConnEvent::Message(message) => {
                    let Some(session) = session else {
                        continue; // messages only come on open connections
                    };
                    let event = MessageEvent {
                        conn: id,
                        session,
                        version: e.conn.version(),
                        message,
                    };
                    self.call_app(|app, ctx| app.on_message(event, ctx));
                }
                ConnEvent::PeerGoaway(goaway) => {
                    log::debug!("{id} peer GOAWAY {} {:?}", goaway.code, goaway.reason)
                }
            }
        }
    }

    pub(super) fn fire_timers(&mut self) {
        let mut expired = std::mem::take(&mut self.expired);
        self.timers_pending = self
            .wheel
            .advance(self.core.now, EXPIRIES_PER_TURN, &mut expired);
        for kind in expired.drain(..) {
            match kind {
                TimerKind::ResumeAccept => {
                    self.accept_paused = false;
                    self.accept_pending = true;
                }
                TimerKind::App(key) => {
                    self.app_timers.remove(&key);
                    self.call_app(|app, ctx| app.on_timer(key, ctx));
                }
                TimerKind::Scraper(id) => {
                    if let Some(m) = self.metrics.as_mut() {
                        m.expire(id, self.poll.registry());
                    }
                }
                TimerKind::Conn(id) => {
                    if let Some((e, limits, now)) = self.core.parts(id) {
                        e.timer = None;
                        e.conn.handle_timeout(now, limits);
                        self.core.mark_dirty(id);
                    }
                }
            }
        }
        self.expired = expired;
    }

    /// Writes, shuts down, re-arms and reaps every connection touched this turn.
    pub(super) fn settle(&mut self) {
        loop {
            // What the app held back to batch goes out with this write.
            self.call_app(|app, ctx| app.on_flush(ctx));
            self.flush_links();
            if self.core.dirty.is_empty() {
                break;
            }
            let dirty = std::mem::take(&mut self.core.dirty);
            for id in &dirty {
                self.core
                    .settle_one(*id, &self.poll, &mut self.wheel, &mut self.stats);
            }
            self.core.dirty = dirty;
            self.core.dirty.clear();
            self.reap();
        }
    }

    fn reap(&mut self) {
        let reaped = std::mem::take(&mut self.core.reap);
        for id in &reaped {
            // The app hears of the close while the entry is still there (it
            // can still ask about the connection; sends to it are ignored).
            let close = self.core.entry(*id).and_then(|e| {
                Some(CloseEvent {
                    conn: *id,
                    reason: e.conn.close_reason()?,
                    session: e.conn.session(),
                    data_since_rx: e.conn.has_data_since_rx(),
                })
            });
            if let Some(close) = close {
                self.call_app(|app, ctx| app.on_close(&close, ctx));
            }
            let reason = close.map(|c| c.reason);
            let Some(mut entry) = self.core.remove(*id) else {
                continue;
            };
            if let Some(timer) = entry.timer.take() {
                self.wheel.cancel(timer);
            }
            let _ = self.poll.registry().deregister(&mut entry.stream);
            if entry.refused {
                self.core.refusing -= 1;
            }
            if entry.conn.was_truncated_at_eof() {
                self.stats.truncated_at_eof += 1;
            }
            self.stats.record_close(reason);
            log::debug!(
                "{id} closed: {}",
                reason.map_or("unknown".to_string(), |r| r.to_string())
            );
        }
        let mut reaped = reaped;
        reaped.clear();
        if self.core.reap.is_empty() {
            self.core.reap = reaped;
        }
    }
}

/// Renders every metric: the reactor's counters and gauges, then the app's.
pub(super) fn render_metrics<A: App>(
    stats: &Stats,
    core: &Core,
    wheel: &Wheel<TimerKind>,
    app: &A,
) -> String {
    let gauges = Gauges {
        connections: core.conns.len(),
        output_bytes: core.conns.iter().map(|(_, e)| e.conn.output_len()).sum(),
        wheel_entries: wheel.len(),
        tls_connections: core.tls.len(),
        handshakes: core.handshaking,
    };
    let mut out = Exposition::with_capacity(4096);
    stats.write_metrics(&gauges, &mut out);
    app.write_metrics(&mut out);
    out.into_string()
}
