//! Outbound links: TCP connections the app opens to an engine (Redis), in
//! the same `mio::Poll` as everything else, so an engine's replies are just
//! more events of the one loop (no thread, no runtime).
//!
//! The reactor only moves bytes: it connects, writes what the app queued
//! (`Action::Transmit`) with the same vectored `sendmsg` as connections,
//! reads into the shared buffer and hands the bytes to [`App::on_link`] as
//! [`LinkEvent::Data`]. What the bytes mean (RESP, say) is the app's,
//! sans-io. Reads are budgeted per turn like connections' (the rest waits
//! on `link_backlog`), and a link's unsent output is bounded.

use bytes::Bytes;
use mio::net::TcpStream;
use mio::{Interest, Token};
use slab::Slab;
use std::collections::{HashMap, VecDeque};
use std::io::{self, ErrorKind};
use std::net::SocketAddr;

use super::io::{read_once, write_front, ReadOutcome};
use super::{Reactor, READ_BYTES_PER_TURN, READ_CALLS_PER_TURN};
use crate::app::{App, LinkEvent};

/// Tokens with this bit (and not the one above it) are links: below the
/// reserved tokens, above every connection's and scraper's.
pub(super) const LINK_TOKEN_BIT: usize = 1 << 61;

/// The most unsent bytes one link may hold: an engine that stops reading
/// must not grow the server without bound (the app bounds its own queue
/// far below this; reaching it closes the link).
pub(super) const MAX_LINK_OUTPUT: usize = 64 << 20;

struct Link {
    key: u64,
    stream: TcpStream,
    connected: bool,
    out: VecDeque<Bytes>,
    out_len: usize,
    /// Waiting on `link_backlog` for the rest of its input.
    backlogged: bool,
}

/// The open links, by slab index (in the token) and by the app's key.
#[derive(Default)]
pub(super) struct Links {
    slab: Slab<Link>,
    by_key: HashMap<u64, usize>,
    /// Links with output queued this turn, written at settle.
    dirty: Vec<usize>,
    /// Links cut off by their read budget, read first next turn.
    backlog: VecDeque<usize>,
}

impl Links {
    /// Whether a link still has input to read from an earlier turn.
    pub(super) fn has_backlog(&self) -> bool {
        !self.backlog.is_empty()
    }
}

/// The token of slab index `index`.
fn token_of(index: usize) -> Token {
    Token(LINK_TOKEN_BIT | index)
}

/// Whether `token` is a link's, and its slab index.
pub(super) fn link_index(token: Token) -> Option<usize> {
    (token.0 >> 61 == 1).then_some(token.0 & !LINK_TOKEN_BIT)
}

impl<A: App> Reactor<A> {
    /// Opens a link (`Action::Dial`); a failure to even start is a Closed event.
    pub(super) fn dial(&mut self, key: u64, addr: SocketAddr) {
        self.hangup(key);
        let started = TcpStream::connect(addr).and_then(|mut stream| {
            let entry = self.links.slab.vacant_entry();
            self.poll.registry().register(
                &mut stream,
                token_of(entry.key()),
                Interest::READABLE | Interest::WRITABLE,
            )?;
            let index = entry.key();
            entry.insert(Link {
                key,
                stream,
                connected: false,
                out: VecDeque::new(),
                out_len: 0,
                backlogged: false,
            });
            Ok(index)
        });
        match started {
            Ok(index) => {
                self.links.by_key.insert(key, index);
            }
            Err(e) => self.link_closed_event(key, &format!("connect to {addr}: {e}")),
        }
    }

    /// Queues bytes on a link (`Action::Transmit`); over the bound it closes.
    pub(super) fn transmit(&mut self, key: u64, bytes: Bytes) {
        let Some(&index) = self.links.by_key.get(&key) else {
            log::debug!("transmit on link {key}, which is not open");
            return;
        };
        let link = &mut self.links.slab[index];
        link.out_len += bytes.len();
        link.out.push_back(bytes);
        if link.out_len > MAX_LINK_OUTPUT {
            self.close_link(index, "unsent output above 64 MiB");
            return;
        }
        self.links.dirty.push(index);
    }

    /// Closes a link the app is done with (`Action::Hangup`): no event.
    pub(super) fn hangup(&mut self, key: u64) {
        if let Some(index) = self.links.by_key.remove(&key) {
            let mut link = self.links.slab.remove(index);
            let _ = self.poll.registry().deregister(&mut link.stream);
        }
    }

    /// A readiness event on link `index`.
    pub(super) fn link_ready(&mut self, index: usize, writable: bool) {
        let Some(link) = self.links.slab.get_mut(index) else {
            return; // closed earlier this turn
        };
        if !link.connected {
            match link.stream.take_error() {
                Ok(None) => {}
                Ok(Some(e)) | Err(e) => return self.close_link(index, &format!("connect: {e}")),
            }
            match link.stream.peer_addr() {
                Ok(_) => {
                    link.connected = true;
                    if let Err(e) = link.stream.set_nodelay(true) {
                        log::debug!("link {}: TCP_NODELAY: {e}", link.key);
                    }
                    let key = link.key;
                    self.call_app(|app, ctx| app.on_link(LinkEvent::Connected { link: key }, ctx));
                    self.links.dirty.push(index);
                }
                Err(e) if e.kind() == ErrorKind::NotConnected => return, // still connecting
                Err(e) => return self.close_link(index, &format!("connect: {e}")),
            }
        }
        if writable {
            self.links.dirty.push(index);
        }
        if !self.links.slab.get(index).is_some_and(|l| l.backlogged) {
            self.read_link(index);
        }
    }

    /// Reads links cut off by their budget last turn.
    pub(super) fn serve_link_backlog(&mut self) {
        for _ in 0..self.links.backlog.len() {
            let Some(index) = self.links.backlog.pop_front() else {
                break;
            };
            if let Some(link) = self.links.slab.get_mut(index) {
                link.backlogged = false;
                self.read_link(index);
            }
        }
    }

    /// Reads a connected link to `WouldBlock`, EOF or its budget, handing
    /// each read to the app.
    fn read_link(&mut self, index: usize) {
        let mut buf = std::mem::take(&mut self.read_buf);
        let mut taken = 0;
        for call in 0.. {
            let Some(link) = self.links.slab.get_mut(index).filter(|l| l.connected) else {
                break;
            };
            if call == READ_CALLS_PER_TURN || taken >= READ_BYTES_PER_TURN {
                link.backlogged = true;
                self.links.backlog.push_back(index);
                break;
            }
            let key = link.key;
            match read_once(&mut link.stream, &mut buf) {
                ReadOutcome::Data(n) => {
                    taken += n;
                    self.stats.bytes_in += n as u64;
                    let bytes = &buf[..n];
                    self.call_app(|app, ctx| {
                        app.on_link(LinkEvent::Data { link: key, bytes }, ctx)
                    });
                }
                ReadOutcome::Eof => {
                    self.close_link(index, "closed by the peer");
                    break;
                }
                ReadOutcome::WouldBlock => break,
                ReadOutcome::Failed(e) => {
                    self.close_link(index, &format!("read: {e}"));
                    break;
                }
            }
        }
        self.read_buf = buf;
    }

    /// Writes the output of every link touched this turn.
    pub(super) fn flush_links(&mut self) {
        let mut dirty = std::mem::take(&mut self.links.dirty);
        dirty.sort_unstable();
        dirty.dedup();
        for &index in &dirty {
            if let Err(e) = self.flush_link(index) {
                self.close_link(index, &format!("write: {e}"));
            }
        }
        dirty.clear();
        self.links.dirty = dirty;
    }

    fn flush_link(&mut self, index: usize) -> io::Result<()> {
        let Some(link) = self.links.slab.get_mut(index).filter(|l| l.connected) else {
            return Ok(());
        };
        while !link.out.is_empty() {
            let mut n = match write_front(&mut link.stream, &link.out) {
                Ok(0) => return Err(ErrorKind::WriteZero.into()),
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(()),
                Err(e) => return Err(e),
            };
            self.stats.bytes_out += n as u64;
            link.out_len -= n;
            while n > 0 {
                let Some(front) = link.out.front_mut() else {
                    break;
                };
                if n >= front.len() {
                    n -= front.len();
                    link.out.pop_front();
                } else {
                    bytes::Buf::advance(front, n);
                    n = 0;
                }
            }
        }
        Ok(())
    }

    /// Drops a link and tells the app why.
    fn close_link(&mut self, index: usize, why: &str) {
        let Some(mut link) = self.links.slab.try_remove(index) else {
            return;
        };
        let _ = self.poll.registry().deregister(&mut link.stream);
        self.links.by_key.remove(&link.key);
        self.link_closed_event(link.key, why);
    }

    fn link_closed_event(&mut self, key: u64, why: &str) {
        log::debug!("link {key} closed: {why}");
        self.call_app(|app, ctx| app.on_link(LinkEvent::Closed { link: key, why }, ctx));
    }
}
