//! The Redis engine (placeholder docs).
pub mod command;
pub mod conn;
pub mod error;
pub mod frame;
pub mod slot;

pub use command::{Command, PubsubKind, Script};
pub use conn::{RedisConfig, RedisConn, RedisEvent, RedisStats, SendError, Token};
pub use error::{CloseReason, ErrorKind, RedisError, ServerError};
pub use frame::Value;
pub use slot::{slot_of, SLOTS};
