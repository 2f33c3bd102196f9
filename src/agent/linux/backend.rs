//! What the agent asks of a package manager: the installed packages, the versions a
//! repository offers, installs and downgrades pinned to versions, and whether the host
//! waits for a reboot. Errors are typed, never message text.

use std::collections::BTreeMap;
use std::time::Duration;

use super::applicability::Candidate;
use super::inventory::{Ecosystem, Inventory};
use super::runner::RunError;

/// A package to bring to one exact version.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Pin {
    /// The binary package's name (with `.arch` for RPM when it matters).
    pub package: String,
    /// The version to install, in the package manager's syntax (dpkg: `[epoch:]upstream[-revision]`;
    /// RPM: `[epoch:]version-release`).
    pub version: String,
}

/// Why the host waits for a reboot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RebootNeed {
    /// No reboot needed.
    None,
    /// A reboot is needed; the reasons in words (the packages in Debian's
    /// `reboot-required.pkgs`, `needs-restarting -r`'s lines, a newer kernel).
    Required(Vec<String>),
}

/// What went wrong in the package manager, typed so that a decision never reads message
/// text. Each carries the tail of what the package manager printed.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// Another process holds the package manager's lock (dpkg's lock, rpm's transaction
    /// lock) past the agent's wait.
    #[error("the package database is locked by another process: {tail}")]
    Locked {
        /// The package manager's last lines.
        tail: String,
    },
    /// The package database is broken or half-configured (`dpkg --configure -a` needed,
    /// rpmdb corrupt).
    #[error("the package database needs repair: {tail}")]
    Broken {
        /// The package manager's last lines.
        tail: String,
    },
    /// No repository offers a version at least the fixed one.
    #[error("no configured repository offers {package} {wanted}: {tail}")]
    Unavailable {
        /// The package.
        package: String,
        /// The version wanted.
        wanted: String,
        /// What the package manager said.
        tail: String,
    },
    /// The command ran and failed (a maintainer script, a dependency problem, …).
    #[error("{command} failed (exit {code:?}): {tail}")]
    Failed {
        /// The command line.
        command: String,
        /// Its exit code.
        code: Option<i32>,
        /// Its last lines.
        tail: String,
    },
    /// It did not finish in time and was killed.
    #[error("{command} did not finish within {after:?} and was killed: {tail}")]
    TimedOut {
        /// The command line.
        command: String,
        /// The limit.
        after: Duration,
        /// Its last lines before it was killed.
        tail: String,
    },
    /// The package manager's program could not be started.
    #[error("{0}")]
    Missing(RunError),
    /// The package manager's output could not be read.
    #[error("could not read {what}: {detail}")]
    Parse {
        /// Which output.
        what: String,
        /// What was wrong with it.
        detail: String,
    },
    /// This package cannot be rolled back by the agent (kernel, glibc, …), or the version
    /// it replaced is no longer in any repository or cache.
    #[error("cannot roll back {package}: {reason}")]
    CannotRollBack {
        /// The package.
        package: String,
        /// Why, in words.
        reason: String,
    },
}

/// A package manager as the agent drives it.
pub trait Backend: Send + Sync {
    /// The backend's name: `apt` or `dnf`.
    fn name(&self) -> &'static str;
    /// The distribution release, as OSV spells its ecosystem.
    fn ecosystem(&self) -> Result<Ecosystem, BackendError>;
    /// Every installed package, read again from the package database.
    fn inventory(&self) -> Result<Inventory, BackendError>;
    /// The versions the configured repositories (and caches) offer for each package,
    /// newest first, each with the version of the source package it was built from (a
    /// Debian advisory's fixed version is a source version, and a binary's own can
    /// differ: `bsdutils 1:2.38.1-5` is built from `util-linux 2.38.1-5`). Refreshes the
    /// repository metadata when `refresh` is set.
    fn available(
        &self,
        packages: &[String],
        refresh: bool,
    ) -> Result<BTreeMap<String, Vec<Candidate>>, BackendError>;
    /// Installs (upgrades to) exactly these versions, non-interactively, keeping local
    /// configuration files. Returns the tail of the package manager's output.
    fn install(&self, pins: &[Pin]) -> Result<String, BackendError>;
    /// Downgrades to exactly these versions (a rollback). Refuses packages that cannot
    /// be rolled back with [`BackendError::CannotRollBack`] before touching anything.
    fn downgrade(&self, pins: &[Pin]) -> Result<String, BackendError>;
    /// Whether the host waits for a reboot.
    fn reboot_required(&self) -> Result<RebootNeed, BackendError>;
}
