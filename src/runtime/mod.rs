//! Process wiring: CPU placement, shutdown flag, and the topology that connects the
//! pipeline stages.

pub mod placement;
pub mod refresh;
pub mod shutdown;
pub mod topology;
