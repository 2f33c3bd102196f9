//! What the agent must remember across its own restarts and the device's reboots: the
//! work under way (an install waiting for its reboot, say), the versions each install
//! replaced (what a rollback returns to), and the installs whose health checks failed.
//! (A node's cordon is remembered on the Node itself, by the agent's annotation.) One small
//! JSON file, written whole to a temporary file and renamed over the old one, so a crash
//! or a power cut leaves either the old state or the new one, never half of each.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// The state file's name in the agent's state directory.
pub const FILE: &str = "state.json";

/// A package and a version (what an install replaced, or brought).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Version {
    /// The binary package.
    pub package: String,
    /// Its version.
    pub version: String,
}

/// Work the agent has started and not finished.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Work {
    /// The patch.
    pub patch: String,
    /// The plan entry's attempt it answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt: Option<String>,
    /// Where it stands.
    pub phase: Phase,
    /// When it started (the agent's clock).
    pub started_at: Timestamp,
}

/// Where started work stands.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "phase")]
pub enum Phase {
    /// The package manager runs (or ran when the agent stopped).
    Installing,
    /// Installed; waiting for the reboot that completes it. `bootId` is the boot the
    /// install happened in: a different one means the device has rebooted.
    AwaitingReboot {
        /// `/proc/sys/kernel/random/boot_id` when the install finished.
        boot_id: String,
        /// When the agent asked for the reboot, if it has.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        requested_at: Option<Timestamp>,
    },
}

/// Everything the agent remembers.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct State {
    /// The work under way, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub work: Option<Work>,
    /// Per patch id, the versions its install replaced: what a rollback returns to.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub replaced: BTreeMap<String, Vec<Version>>,
    /// Patches whose install the agent failed although the packages reached the fixed
    /// version: its health checks failed. Their reports stay Failed until a new attempt
    /// passes or the patch is rolled back.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub failed_checks: BTreeSet<String>,
}

/// Why the state could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The file could not be read, written or renamed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a state file this agent understands.
    #[error("{path}: not a ringmaster agent state file: {source}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
}

/// The state file in a directory.
#[derive(Clone, Debug)]
pub struct Store {
    path: PathBuf,
}

impl Store {
    /// The state file of the agent whose state directory is `dir`.
    pub fn new(dir: &Path) -> Self {
        Self {
            path: dir.join(FILE),
        }
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The state as last saved; empty when there is no file yet.
    pub fn load(&self) -> Result<State, StateError> {
        match std::fs::read(&self.path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|source| StateError::Corrupt {
                path: self.path.clone(),
                source,
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(State::default()),
            Err(source) => Err(self.io(source)),
        }
    }

    /// Saves the state: a temporary file beside it, flushed to disk, renamed over it.
    pub fn save(&self, state: &State) -> Result<(), StateError> {
        use std::io::Write;
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| self.io(e))?;
        }
        let tmp = self.path.with_extension("json.tmp");
        let bytes = serde_json::to_vec_pretty(state).map_err(|source| StateError::Corrupt {
            path: self.path.clone(),
            source,
        })?;
        let mut file = std::fs::File::create(&tmp).map_err(|e| self.io(e))?;
        file.write_all(&bytes).map_err(|e| self.io(e))?;
        file.sync_all().map_err(|e| self.io(e))?;
        std::fs::rename(&tmp, &self.path).map_err(|e| self.io(e))
    }

    fn io(&self, source: std::io::Error) -> StateError {
        StateError::Io {
            path: self.path.clone(),
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> PathBuf {
        let d =
            std::env::temp_dir().join(format!("ringmaster-state-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn no_file_is_an_empty_state_and_a_saved_state_reads_back() {
        let d = dir("roundtrip");
        let store = Store::new(&d);
        assert_eq!(store.load().expect("empty"), State::default());
        let state = State {
            work: Some(Work {
                patch: "DSA-5600-1".into(),
                attempt: Some("servers.dsa-5600-1@1795554000".into()),
                phase: Phase::AwaitingReboot {
                    boot_id: "b1".into(),
                    requested_at: None,
                },
                started_at: "2026-11-24T21:00:00Z".parse().expect("time"),
            }),
            replaced: BTreeMap::from([(
                "DSA-5600-1".into(),
                vec![Version {
                    package: "libc6".into(),
                    version: "2.36-9+deb12u3".into(),
                }],
            )]),
            failed_checks: BTreeSet::from(["DSA-5601-1".to_string()]),
        };
        store.save(&state).expect("saved");
        assert_eq!(store.load().expect("read"), state);
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn a_corrupt_file_is_an_error_naming_it() {
        let d = dir("corrupt");
        std::fs::create_dir_all(&d).expect("dir");
        std::fs::write(d.join(FILE), b"{not json").expect("write");
        let err = Store::new(&d).load().expect_err("corrupt");
        assert!(matches!(err, StateError::Corrupt { .. }));
        assert!(err.to_string().contains("state.json"), "{err}");
        let _ = std::fs::remove_dir_all(&d);
    }
}
