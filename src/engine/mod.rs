//! Engines: where publications and history live (placeholder docs).
pub mod redis;
