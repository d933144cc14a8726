//! The one home of the integration tests' helpers; every test file that needs
//! one says `mod common;`. Split by concept:
//!
//! - [`server`]: the real `tether` binary (or any program that prints
//!   `listening on IP:PORT`) started on a free port (or a given one, for a restart) and killed on drop, the
//!   fast-timer flags, and runs of the binary that exit on their own;
//! - [`fds`]: how many descriptors the server process holds;
//! - [`client`]: a blocking wire-protocol client over `std::net::TcpStream`;
//! - [`wire`]: hand-made frames and payloads the library would not produce;
//! - [`pubsub`]: the pub/sub message layouts and client conveniences;
//! - [`pubsub_v2`]: the pub/sub v2 requests and checked replies;
//! - [`http`]: raw HTTP for the metrics endpoint;
//! - [`proxy`]: a TCP proxy that blackholes idle connections like a NAT;
//! - [`redis`]: real `redis-server` processes (one, or a three-master
//!   cluster) and the engine's `RedisConn` over a blocking socket;
//! - [`tls`]: certificates made at test time, TLS client configurations and
//!   the raw client over TLS;
//! - [`paths`] and [`temp`]: where the crate and its build live, temporary files;
//! - [`tether_cli`]: runs of the `tether-cli` binary, and subscribers read line by line;
//! - [`tether_load`]: runs of `tether-load` and numbers from its JSON report;
//! - [`systemd`]: a notify socket and socket-activated commands, as systemd
//!   would provide them.
//!
//! Every wait is bounded: reads have a timeout, waits for a process or a
//! condition poll with a deadline, and nothing asserts a tight timing.
// Each test crate compiles all of this and uses only part of it.
#![allow(dead_code)]

pub mod client;
pub mod fds;
pub mod http;
pub mod paths;
pub mod proxy;
pub mod pubsub;
pub mod pubsub_v2;
pub mod redis;
pub mod server;
pub mod systemd;
pub mod temp;
pub mod tether_cli;
pub mod tether_load;
pub mod tls;
pub mod wire;

// Tests name every helper `common::X`; each uses only some of them.
#[allow(unused_imports)]
pub use self::{
    client::*, http::*, paths::*, proxy::*, pubsub::*, pubsub_v2::*, server::*, systemd::*,
    temp::*, tether_cli::*, tether_load::*, wire::*,
};

use std::thread;
use std::time::{Duration, Instant};

/// Polls `cond` every 10 ms until it holds or `timeout` passes.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(10));
    }
}
