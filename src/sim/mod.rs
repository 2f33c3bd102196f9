//! The offline shell: an in-memory world and a virtual clock driving the same engine.

pub mod world;

pub use world::World;
