//! ringmaster: risk-based patch management, run declaratively as a Kubernetes operator.
//!
//! - [`api`]: the custom resources.
//! - [`engine`]: pure decisions over a snapshot of them and an instant.

pub mod api;
pub mod crds;
pub mod engine;
pub mod sim;
