//! Engines: where publications, stream numbering and history live, and how
//! publications reach subscribers on other nodes (issue 12).
//!
//! The pub/sub app reaches its engine through
//! [`crate::app::pubsub::engine::Engine`]: the in-memory one by default, or
//! [`crate::app::pubsub::redis_engine::RedisEngine`] (`--engine redis://`),
//! which drives [`redis`], the sans-io core that joins tether nodes through
//! a shared Redis (standalone; Redis Cluster is still to be wired).
pub mod redis;
