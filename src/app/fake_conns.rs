//! A connection table made of plain sets, for testing apps without a reactor.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;

use super::{ConnId, Conns};
use crate::tls::PeerIdentity;

/// Answers [`Conns`] questions from sets the test fills in.
#[derive(Debug, Default)]
pub struct FakeConns {
    /// Connections that are open.
    pub open: HashSet<ConnId>,
    /// Peer addresses of connections that are there.
    pub addrs: HashMap<ConnId, SocketAddr>,
    /// Connections with data sent since their peer last spoke.
    pub data_since_rx: HashSet<ConnId>,
    /// Mutual-TLS identities.
    pub identities: HashMap<ConnId, PeerIdentity>,
    /// Protocol versions of connections past their handshake.
    pub versions: HashMap<ConnId, u8>,
}

impl Conns for FakeConns {
    fn is_open(&self, conn: ConnId) -> bool {
        self.open.contains(&conn)
    }
    fn peer_addr(&self, conn: ConnId) -> Option<SocketAddr> {
        self.addrs.get(&conn).copied()
    }
    fn data_since_rx(&self, conn: ConnId) -> bool {
        self.data_since_rx.contains(&conn)
    }
    fn peer_identity(&self, conn: ConnId) -> Option<PeerIdentity> {
        self.identities.get(&conn).cloned()
    }
    fn version(&self, conn: ConnId) -> Option<u8> {
        self.versions.get(&conn).copied()
    }
}
