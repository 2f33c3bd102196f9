//! Running a package manager's command with a time limit. A command that runs over is
//! killed with its whole process group (apt-get's dpkg, dpkg's maintainer scripts), so a
//! stuck package manager never hangs the agent.

use std::path::PathBuf;
use std::time::Duration;

/// One command to run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cmd {
    /// The program.
    pub program: String,
    /// Its arguments.
    pub args: Vec<String>,
    /// Extra environment variables (the rest is inherited).
    pub env: Vec<(String, String)>,
    /// The working directory, if not the agent's.
    pub dir: Option<PathBuf>,
    /// How long it may run before it is killed.
    pub timeout: Duration,
}

impl Cmd {
    /// `program args…` with the given time limit.
    pub fn new<I, S>(program: impl Into<String>, args: I, timeout: Duration) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            program: program.into(),
            args: args.into_iter().map(Into::into).collect(),
            env: Vec::new(),
            dir: None,
            timeout,
        }
    }

    /// The command as a person would type it (for logs and messages).
    pub fn display(&self) -> String {
        std::iter::once(self.program.as_str())
            .chain(self.args.iter().map(String::as_str))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// What a finished command said.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Output {
    /// Its exit code (None when a signal ended it).
    pub code: Option<i32>,
    /// Its standard output.
    pub stdout: String,
    /// Its standard error.
    pub stderr: String,
}

impl Output {
    /// Exited with code 0.
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }
}

/// Why a command gave no output to judge.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The program is not there (or not executable).
    #[error("`{program}` could not be started: {source}")]
    Spawn {
        /// The program.
        program: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// It ran over its time limit and was killed with its process group.
    #[error("`{command}` did not finish within {after:?} and was killed")]
    TimedOut {
        /// The command line.
        command: String,
        /// The limit.
        after: Duration,
        /// What it had printed by then (standard output, then standard error).
        partial: Output,
    },
}

/// Runs commands. The agent's backends take one, so tests drive every path with a fake.
pub trait Runner: Send + Sync {
    /// Runs `cmd` to its end or its time limit.
    fn run(&self, cmd: &Cmd) -> Result<Output, RunError>;
}
