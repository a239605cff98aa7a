//! The engine: the write path and the live stream, knowing no transport.
//! A publish goes to its conversation's owner shard ([`owner`]), which
//! sequences and group-commits it; committed batches cross the [`mesh`] to
//! every shard with subscribers, where [`live`] hands them to local sinks.

pub mod live;
pub mod mesh;
pub mod owner;
pub mod presence;
pub mod publish;
