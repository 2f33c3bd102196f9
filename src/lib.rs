//! ringmaster: risk-based patch management, run declaratively as a Kubernetes operator.
//!
//! - [`api`]: the custom resources.
//! - [`engine`]: pure decisions over a snapshot of them and an instant.
//! - [`manifest`]: loading manifest files and checking them against the CRDs offline.

pub mod api;
pub mod crds;
pub mod manifest;
