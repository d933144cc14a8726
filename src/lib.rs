//! tether: keep very many long-lived TCP connections alive cheaply.
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod protocol;
pub mod time;
pub mod client;
