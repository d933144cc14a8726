//! The Redis engine (placeholder docs).
pub mod error;
pub mod frame;
pub mod slot;
