//! The connections' table: lookups by [`ConnId`], the answers apps may ask
//! for ([`Conns`]), and settling a connection after it was touched (write,
//! shut, re-arm, reap).

use mio::net::TcpStream;
use mio::{Interest, Poll, Token};
use slab::Slab;
use std::collections::HashMap;
use std::io::ErrorKind;
use std::net::SocketAddr;

use super::io::{shutdown_write, write_front};
use super::pacing::PerIpCounts;
use super::stats::Stats;
use super::tls::{flush_tls, ready_to_shut, TlsConn, TlsScratch};
use super::TimerKind;
use crate::app::{ConnId, Conns};
use crate::config::Config;
use crate::conn::{ConnLimits, State};
use crate::protocol::GoawayCode;
use crate::time::Tick;
use crate::tls::PeerIdentity;
use crate::wheel::{TimerId, Wheel};

/// One slot of the table: the socket and its state machine.
pub(super) struct Entry {
    pub(super) id: ConnId,
    pub(super) stream: TcpStream,
    pub(super) conn: crate::conn::Conn,
    /// The wheel entry covering this connection's deadline (its tick is in the wheel).
    pub(super) timer: Option<TimerId>,
    /// Interest currently registered with the poll.
    pub(super) interest: Interest,
    /// Already on the dirty list this turn.
    pub(super) dirty: bool,
    /// Already on the reap list.
    pub(super) reaping: bool,
    /// On the read backlog (its budget ran out with input left to read).
    pub(super) backlogged: bool,
    /// Accepted only to be told SERVER_FULL.
    pub(super) refused: bool,
    /// Counted in `Core::handshaking` (accepted, not yet open or closed).
    pub(super) handshaking: bool,
    /// Accepted on a TLS listener: its session is in `Core::tls` (kept
    /// there, not here, so a plain connection pays nothing for TLS).
    pub(super) tls: bool,
}

/// Generations wrap within 30 bits, keeping connection tokens below every reserved token.
pub(super) const GENERATION_MASK: u32 = (1 << 30) - 1;

/// A `Token` holds the slab key in its low 32 bits and the generation above.
pub(super) fn id_to_token(id: ConnId) -> Token {
    Token((id.generation as usize) << 32 | id.key as usize)
}

/// The inverse of [`id_to_token`].
pub(super) fn token_to_id(token: Token) -> ConnId {
    ConnId {
        key: (token.0 & 0xFFFF_FFFF) as u32,
        generation: (token.0 >> 32) as u32,
    }
}

/// The table of connections and the turn's bookkeeping.
pub(super) struct Core {
    pub(super) conns: Slab<Entry>,
    /// Connections touched this turn, to be settled before the loop sleeps.
    pub(super) dirty: Vec<ConnId>,
    /// Closed connections whose slots are reclaimed at the end of the turn.
    pub(super) reap: Vec<ConnId>,
    /// Entries accepted only to be refused with SERVER_FULL, still closing.
    pub(super) refusing: usize,
    /// Connections in their handshake (TLS and HELLO): accepted, not yet
    /// open, not closed; bounded by `max_handshakes`.
    pub(super) handshaking: usize,
    /// Connections held per peer address (`max_connections_per_ip`).
    pub(super) per_ip: PerIpCounts,
    pub(super) config: Config,
    /// What every connection obeys, in ticks and bytes (from `config`).
    pub(super) limits: ConnLimits,
    /// The current tick, read once per turn.
    pub(super) now: Tick,
    /// The TLS side of each connection accepted on a TLS listener, by slab key.
    pub(super) tls: HashMap<u32, Box<TlsConn>>,
    /// Buffers TLS connections borrow while they read or write.
    pub(super) tls_scratch: TlsScratch,
}

impl Core {
    pub(super) fn new(config: Config) -> Core {
        Core {
            limits: ConnLimits::from_config(&config),
            conns: Slab::new(),
            dirty: Vec::new(),
            reap: Vec::new(),
            refusing: 0,
            handshaking: 0,
            per_ip: PerIpCounts::default(),
            config,
            now: 0,
            tls: HashMap::new(),
            tls_scratch: TlsScratch::default(),
        }
    }

    /// The entry for `id`, unless the slot is empty or belongs to a newer connection.
    pub(super) fn entry(&self, id: ConnId) -> Option<&Entry> {
        self.conns
            .get(id.key as usize)
            .filter(|e| e.id.generation == id.generation)
    }

    /// [`Core::entry`], mutably.
    pub(super) fn entry_mut(&mut self, id: ConnId) -> Option<&mut Entry> {
        self.conns
            .get_mut(id.key as usize)
            .filter(|e| e.id.generation == id.generation)
    }

    /// The entry for `id` together with the limits and the current tick, as
    /// separate borrows so a connection method can take all three.
    pub(super) fn parts(&mut self, id: ConnId) -> Option<(&mut Entry, &ConnLimits, Tick)> {
        let now = self.now;
        let limits = &self.limits;
        self.conns
            .get_mut(id.key as usize)
            .filter(|e| e.id.generation == id.generation)
            .map(|e| (e, limits, now))
    }

    /// [`Core::parts`] with the connection's TLS side, for a TLS connection.
    pub(super) fn tls_parts(
        &mut self,
        id: ConnId,
    ) -> Option<(&mut Entry, &mut TlsConn, &ConnLimits, Tick)> {
        let now = self.now;
        let limits = &self.limits;
        let e = self
            .conns
            .get_mut(id.key as usize)
            .filter(|e| e.id.generation == id.generation && e.tls)?;
        let tls = self.tls.get_mut(&id.key)?;
        Some((e, tls, limits, now))
    }

    /// The TLS side of a live TLS connection.
    pub(super) fn tls_of(&self, id: ConnId) -> Option<&TlsConn> {
        self.entry(id).filter(|e| e.tls)?;
        self.tls.get(&id.key).map(|t| &**t)
    }

    pub(super) fn remove(&mut self, id: ConnId) -> Option<Entry> {
        self.entry_mut(id)?;
        self.tls.remove(&id.key);
        self.per_ip.remove(id.key);
        let entry = self.conns.try_remove(id.key as usize)?;
        if entry.handshaking {
            self.handshaking -= 1;
        }
        Some(entry)
    }

    pub(super) fn mark_dirty(&mut self, id: ConnId) {
        if let Some(e) = self.entry_mut(id) {
            if !e.dirty {
                e.dirty = true;
                self.dirty.push(id);
            }
        }
    }

    pub(super) fn close(&mut self, id: ConnId, code: GoawayCode, reason: &str) {
        if let Some((e, limits, now)) = self.parts(id) {
            e.conn.close(code, reason, now, limits);
            self.mark_dirty(id);
        }
    }

    /// Writes what is queued, shuts the write side once a close is flushed,
    /// re-registers interest if it changed, moves the deadline earlier if it
    /// did (later deadlines are re-checked lazily when the old one fires),
    /// and queues the slot for reaping once closed.
    pub(super) fn settle_one(
        &mut self,
        id: ConnId,
        poll: &Poll,
        wheel: &mut Wheel<TimerKind>,
        stats: &mut Stats,
    ) {
        let limits = &self.limits;
        let scratch = &mut self.tls_scratch;
        let Some(e) = self.conns.get_mut(id.key as usize).filter(|e| e.id == id) else {
            return;
        };
        let mut tls = if e.tls {
            self.tls.get_mut(&id.key).map(|t| &mut **t)
        } else {
            None
        };
        e.dirty = false;
        if e.handshaking && e.conn.state() != State::Handshake {
            // Welcomed or closing: a handshake slot is free again.
            e.handshaking = false;
            self.handshaking -= 1;
        }
        let counts = e.conn.take_counts();
        stats.frames_in += u64::from(counts.frames_in);
        stats.frames_out += u64::from(counts.frames_out);
        stats.pings += u64::from(counts.pings_in);
        flush(e, tls.as_deref_mut(), limits, stats, scratch);
        if e.conn.enforce_output_limit(self.now, limits) {
            // the GOAWAY, after the frame in flight
            flush(e, tls.as_deref_mut(), limits, stats, scratch);
        }
        if e.conn.wants_shutdown_write()
            && tls
                .as_deref_mut()
                .is_none_or(|tls| ready_to_shut(e, tls, limits, stats, scratch))
        {
            match shutdown_write(&e.stream) {
                Ok(()) => e.conn.handle_write_shut(),
                Err(err) => {
                    log::debug!("{id} shutdown: {err}");
                    e.conn.handle_reset();
                }
            }
        }
        if e.conn.is_closed() {
            if !e.reaping {
                e.reaping = true;
                self.reap.push(id);
            }
            return;
        }
        let wanted = if e.conn.wants_write() || tls.is_some_and(|t| t.wants_write()) {
            Interest::READABLE | Interest::WRITABLE
        } else {
            Interest::READABLE
        };
        if wanted != e.interest {
            match poll
                .registry()
                .reregister(&mut e.stream, id_to_token(id), wanted)
            {
                Ok(()) => e.interest = wanted,
                Err(err) => log::warn!("{id} reregister: {err}"),
            }
        }
        let deadline = e.conn.deadline(limits);
        let armed_at = e.timer.and_then(|t| wheel.deadline(t));
        match armed_at {
            // Armed no later than needed: if the deadline moved on, the entry
            // fires early and is re-armed then (lazy deadlines).
            Some(at) if at <= deadline => {}
            _ => {
                if let Some(old) = e.timer.take() {
                    wheel.cancel(old);
                }
                e.timer = Some(wheel.insert(deadline, TimerKind::Conn(id)));
            }
        }
    }
}

/// Writes queued output until it is all out or the socket is full.
fn flush(
    e: &mut Entry,
    tls: Option<&mut TlsConn>,
    limits: &ConnLimits,
    stats: &mut Stats,
    scratch: &mut TlsScratch,
) {
    if let Some(tls) = tls {
        flush_tls(e, tls, limits, stats, scratch);
        return;
    }
    while e.conn.wants_write() {
        match write_front(&mut e.stream, e.conn.output()) {
            Ok(0) => {
                e.conn.handle_reset();
                break;
            }
            Ok(n) => {
                stats.bytes_out += n as u64;
                e.conn.handle_written(n, limits);
            }
            Err(err) if err.kind() == ErrorKind::WouldBlock => break,
            Err(err) => {
                log::debug!("{} write: {err}", e.id);
                e.conn.handle_reset();
                break;
            }
        }
    }
}

impl Conns for Core {
    fn is_open(&self, conn: ConnId) -> bool {
        self.entry(conn)
            .is_some_and(|e| e.conn.state() == State::Open)
    }

    fn peer_addr(&self, conn: ConnId) -> Option<SocketAddr> {
        self.entry(conn)
            .filter(|e| !e.conn.is_closed())
            .and_then(|e| e.stream.peer_addr().ok())
    }

    fn data_since_rx(&self, conn: ConnId) -> bool {
        self.entry(conn).is_some_and(|e| e.conn.has_data_since_rx())
    }

    fn peer_identity(&self, conn: ConnId) -> Option<PeerIdentity> {
        self.tls_of(conn)?.session.peer_identity()
    }

    fn version(&self, conn: ConnId) -> Option<u8> {
        self.entry(conn)
            .map(|e| e.conn.version())
            .filter(|&v| v != 0)
    }

    fn output_raise(&self, conn: ConnId) -> usize {
        self.entry(conn).map_or(0, |e| e.conn.output_raise())
    }
}
