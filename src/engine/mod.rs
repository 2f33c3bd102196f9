//! Pure decisions: approval, SLA clocks, membership, windows, exceptions and the
//! rollout state machine. No I/O, no async, no clock: `now` is a parameter.
//!
//! [`decide`] takes a [`Snapshot`] of one tenant's objects and an instant and returns
//! [`Decisions`]: statuses, plan changes, rollouts to create, Events and the next instant
//! the engine must run again. The operator and the simulator are thin loops around it.

#![forbid(unsafe_code)]

pub mod approval;
pub mod cache;
pub mod decision;
pub mod exceptions;
pub mod history;
pub mod rollout;
pub mod selector;
pub mod severity;
pub mod sla;
pub mod tenant;
pub mod windows;
pub mod writes;

pub use cache::Cache;
pub use decision::{
    Decisions, DueSoon, Event, EventType, Kind, NewRollout, PlanChange, PlanList, Reason,
};
pub use tenant::ledger;
pub use tenant::{
    Changed, Snapshot, SpecProblem, decide, decide_cached, decide_changed, rollout_name,
    spec_problems,
};
