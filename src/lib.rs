//! tether: keep very many long-lived TCP connections alive cheaply.
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod client;
pub mod config;
pub mod conn;
pub mod protocol;
pub mod time;
