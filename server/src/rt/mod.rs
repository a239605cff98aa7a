//! The shard runtime's building blocks: building a shard's monoio runtime
//! ([`runtime`]), the shutdown latch ([`shutdown`]), counting a shard's open
//! connections ([`tracker`]) and knowing when every shard is quiet ([`quiesce`]).

pub mod admission;
pub mod coarse;
pub mod doorbell;
pub mod latch;
pub mod quiesce;
pub mod rate;
pub mod runtime;
pub mod shutdown;
pub mod tracker;
