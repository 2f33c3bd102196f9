//! `ringmaster agent --backend apt|dnf|auto`: the real Linux agent. It speaks only the
//! device contract (`crate::contract`, `docs/agent-contract.md`), so an RMM bridge or any
//! other agent could take its place.
//!
//! | module | holds |
//! | --- | --- |
//! | [`version`] | the Debian (dpkg) and RPM version orderings (pure) |
//! | [`inventory`] | installed packages and the OS release, as the package database says (pure parsers) |
//! | [`applicability`] | which catalog Patches apply to the device, and what an install must upgrade (pure) |
//! | [`runner`] | running a command with a time limit, killing its whole process group when it runs over |
//! | [`backend`] | what the agent asks of a package manager, and its typed errors |
//! | [`apt`], [`dnf`] | the two backends, driving apt-get/dpkg and dnf/rpm through their command lines |
//! | [`reports`] | the device's reports brought in line with the package database (pure) |
//! | [`health`] | the ring's health checks: units, commands, HTTP probes |
//! | [`reboot`] | when a reboot that finishes an install may happen, asking for it, and knowing it happened |
//! | [`agent`] | the check-in loop: look, report, act — one action at a time |
//! | [`run`] | the process: the backend chosen, the catalog and the device watched, check-ins until stopped |
//! | [`state`] | what the agent remembers across restarts and reboots: one small file, replaced whole |
//! | [`identity`] | the agent's credentials: a token file its clients re-read, renewed before it expires |
//! | [`node`] | node mode (a DaemonSet on a cluster's own nodes): cordon and drain before a reboot, uncordon only its own cordon |

pub mod agent;
pub mod applicability;
pub mod apt;
pub mod backend;
pub mod dnf;
pub mod health;
pub mod identity;
pub mod inventory;
pub mod node;
pub mod reboot;
pub mod reports;
pub mod run;
pub mod runner;
pub mod state;
pub mod version;
