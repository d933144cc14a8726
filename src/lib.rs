//! tether: keep very many long-lived TCP connections alive cheaply.
//!
//! The crate is layered; each layer only calls the ones below it:
//!
//! - [`protocol`]: the wire format (frames with a CRC, HELLO/WELCOME, GOAWAY
//!   codes). Pure functions over bytes.
//! - [`wheel`]: a hashed timing wheel that drives every deadline, in ticks.
//! - [`conn`]: one connection's state machine, sans-io: bytes and a tick in,
//!   bytes, events and a deadline out.
//! - [`app`]: what messages mean (echo; later pub/sub and C callbacks).
//! - [`reactor`]: the only layer with syscalls: a single-threaded `mio` loop
//!   over a slab of connections, with half-close, linger and graceful stop.
//! - [`client`]: the client side of the protocol.
//! - [`ffi`]: the C ABI (`include/tether.h`) over the reactor, for C hosts
//!   that run it or nest it in their own event loop. The only `unsafe` code,
//!   besides two small functions in [`systemd`] (adopting an inherited
//!   descriptor, reading CLOCK_MONOTONIC).
//!
//! Time enters through [`time`]: the reactor reads the clock once per turn and
//! passes a tick down, so everything below it runs on a fake clock in tests.
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod app;
pub mod cli;
pub mod client;
pub mod config;
pub mod conn;
pub mod engine;
pub mod exposition;
#[allow(unsafe_code)]
pub mod ffi;
#[doc(hidden)]
pub mod fuzzing;
pub mod protocol;
pub mod random;
pub mod reactor;
pub mod systemd;
pub mod time;
pub mod tls;
pub mod wheel;
