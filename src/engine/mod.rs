//! Engines: where publications, stream numbering and history live, and how
//! publications reach subscribers on other nodes (issue 12).
//!
//! Today the pub/sub app keeps its streams in memory ([`crate::app::pubsub`]);
//! [`redis`] is the sans-io core of the Redis engine that joins tether
//! nodes through a shared Redis (standalone or Redis Cluster). The engine
//! interface between the app and either engine is still to be wired.
pub mod redis;
