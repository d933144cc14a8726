//! The Redis engine's sans-io core: tether nodes share channel streams and
//! fan publications out through Redis, standalone or Redis Cluster.
//!
//! # What it does
//!
//! - [`RedisConn`] is one connection to one Redis server as a state
//!   machine: bytes in ([`RedisConn::handle_bytes`]), bytes out
//!   ([`RedisConn::poll_transmit`]), time in ([`RedisConn::handle_timeout`]),
//!   events out ([`RedisEvent`]: replies matched to the owner's tokens,
//!   pub/sub messages, failures with the command handed back, the close).
//!   It never touches a socket or a clock, so the reactor can register its
//!   sockets in the same `mio::Poll` as the clients', and the tests drive it
//!   over a plain blocking `TcpStream` or with bytes alone.
//! - [`scripts`] holds the Lua scripts that make a publish one atomic step
//!   in Redis (epoch, offset, XADD to the history, PEXPIRE, PUBLISH or
//!   SPUBLISH of the §7.2 PUBLICATION payload) and a recovery read one
//!   atomic step (epoch, top, oldest, the entries after a position), with
//!   [`RedisStreams`] building their calls and reading their replies.
//! - [`recovery::decide`] is the §7.4 table over such a read, a pure function.
//! - [`keys`] names a channel's stream, meta hash and pub/sub channel under
//!   one hash tag (hex of the channel bytes), [`slot_of`] maps a key to its
//!   cluster slot and [`SlotMap`] a slot to its master (from `CLUSTER
//!   SLOTS`, updated by MOVED), [`EngineUrl`] parses `--engine redis://...`
//!   and `redis-cluster://...`.
//!
//! # Why this design
//!
//! - **A codec crate, not a parser**: RESP is decoded by `redis-protocol`
//!   (sans-io: byte slices in, frames out). Its decoder recurses without a
//!   depth limit, so [`frame`] first walks a frame's headers with a bounded
//!   stack; only whole frames within [`frame::MAX_DEPTH`] and the reply size
//!   limit reach the crate.
//! - **RESP3, one connection per server**: `HELLO 3` lets pub/sub pushes and
//!   command replies share one connection, which a RESP2 subscriber
//!   connection cannot (it takes only (UN)SUBSCRIBE and PING). So a node
//!   needs one socket per Redis server (per shard in a cluster), follows a
//!   MOVED the same way for scripts and SSUBSCRIBE, and gets a total order
//!   on that socket: Redis writes a client's pushes and replies in the
//!   order it ran them. When a node sends (S)SUBSCRIBE then the read script
//!   on the same connection, every publication at or below the read's top
//!   arrives before the read's reply and every one above it after, which is
//!   exactly the "start the feed, then read" order §7.5 asks for; merging by
//!   offset (drop ≤ top, and anything of another epoch) stays the rule, so
//!   the order also holds if the owner splits subscriptions onto a second
//!   [`RedisConn`] to the same server to keep large replays from delaying
//!   pushes.
//! - **The payload is the PUBLICATION**: the script builds the §7.2
//!   PUBLICATION DATA payload once; nodes parse it with the protocol's
//!   parser and frame it for their subscribers, the history stores it, and
//!   a replay is the stored payloads unchanged.
//! - **Bounded everywhere**: commands pending per connection (count and
//!   bytes, refused beyond), replies (size, depth), replay per read (count
//!   and bytes, else not recovered), and a liveness timeout, so a slow or
//!   silent Redis costs bounded memory and ends in a clear event.
//!
//! # What the owner does (the reactor and the app)
//!
//! Opens a TCP connection per server and makes a [`RedisConn`]; writes what
//! `poll_transmit` gives, feeds reads to `handle_bytes`, EOF and errors to
//! `handle_eof` / `handle_io_error`, calls `handle_timeout` at
//! `poll_timeout`, and drains `poll_event` after each. It sends
//! [`RedisStreams::load_commands`] first on every new connection, then the
//! script calls; reconnects with backoff after [`RedisEvent::Closed`]; in
//! a cluster, routes by [`KeySpace::slot`] through a [`SlotMap`] and resends
//! a command that failed with [`ErrorKind::Moved`] to the named node
//! (recording it in the map; after `ASKING`, unrecorded, for
//! [`ErrorKind::Ask`]).
pub mod command;
pub mod conn;
pub mod error;
pub mod event;
pub mod frame;
pub mod keys;
pub mod recovery;
pub mod scripts;
pub mod slot;
pub mod url;

pub use command::{Command, PubsubKind, Script};
pub use conn::RedisConn;
pub use error::{CloseReason, ErrorKind, RedisError, ServerError};
pub use event::{RedisConfig, RedisEvent, RedisStats, SendError, Token};
pub use frame::Value;
pub use keys::{ChannelKeys, KeySpace};
pub use recovery::{decide, RecoveryDecision};
pub use scripts::{Published, RedisStreams, ReplyError, StreamRead};
pub use slot::{slot_of, SlotMap, SLOTS};
pub use url::EngineUrl;
