//! Process wiring: CPU placement, idle strategy, shutdown flag, and the topology that connects the
//! pipeline stages.

pub mod idle;
pub mod placement;
pub mod shard;
pub mod shutdown;
pub mod topology;
