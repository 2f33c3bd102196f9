//! The offline shell: an in-memory world, a virtual clock and simulated agents driving
//! the very same engine.

pub mod cluster;
pub mod fleet;
pub mod live;
pub mod load;
pub mod preview;
pub mod report;
pub mod run;
pub mod world;

pub use fleet::FleetSpec;
pub use run::{Options, Outcome, Simulation};
pub use world::World;
