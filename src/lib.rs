//! ringmaster: risk-based patch management, run declaratively as a Kubernetes operator.
//!
//! - [`api`]: the custom resources.
//! - [`cli`]: the command line of `ringmaster` and `kubectl-ringmaster`.
//! - [`engine`]: pure decisions over a snapshot of them and an instant.
//! - [`enroll`]: `ringmaster enroll`, a device agent's identity and its token renewal.
//! - [`lever`]: the daily levers of the command line and the kubectl plugin: the verbs
//!   that change what the operator does, and the read-only `status` and `why`.
//! - [`manifest`]: offline loading and checking of manifests.
//! - [`operator`]: the Kubernetes shell, `ringmaster run`.
//! - [`report`]: the monthly evidence packet and its verification.
//! - [`sim`]: the offline shell that plays the engine forward in virtual time.
//! - [`watch`]: watches that come back by themselves after an API server outage.

pub mod agent;
pub mod api;
pub mod catalog;
pub mod cli;
pub mod contract;
pub mod crds;
pub mod engine;
pub mod enroll;
pub mod lever;
pub mod manifest;
pub mod operator;
pub mod report;
pub mod sim;
pub mod validate;
pub mod watch;
