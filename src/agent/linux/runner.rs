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

/// Runs `cmd` on tokio's blocking pool (for async callers: health checks, reboots).
pub async fn run_blocking(
    runner: std::sync::Arc<dyn Runner>,
    cmd: Cmd,
) -> Result<Output, RunError> {
    let program = cmd.program.clone();
    tokio::task::spawn_blocking(move || runner.run(&cmd))
        .await
        .unwrap_or_else(|e| {
            Err(RunError::Spawn {
                program,
                source: std::io::Error::other(e.to_string()),
            })
        })
}

/// Runs every command through a prefix, e.g. `nsenter --target 1 --mount --uts --ipc
/// --net --pid --` for an agent in a container that acts on its node's host.
#[derive(Clone, Debug)]
pub struct Prefixed<R> {
    /// The prefix's program and arguments.
    pub prefix: Vec<String>,
    /// The runner that runs the prefixed command.
    pub inner: R,
}

impl<R: Runner> Runner for Prefixed<R> {
    fn run(&self, cmd: &Cmd) -> Result<Output, RunError> {
        let Some((program, args)) = self.prefix.split_first() else {
            return self.inner.run(cmd);
        };
        let mut prefixed = cmd.clone();
        prefixed.program = program.clone();
        prefixed.args = args
            .iter()
            .cloned()
            .chain(std::iter::once(cmd.program.clone()))
            .chain(cmd.args.iter().cloned())
            .collect();
        self.inner.run(&prefixed)
    }
}

impl<R: Runner + ?Sized> Runner for std::sync::Arc<R> {
    fn run(&self, cmd: &Cmd) -> Result<Output, RunError> {
        (**self).run(cmd)
    }
}

/// Runs real commands: each in a process group of its own, its output read as it comes,
/// and the whole group killed (SIGTERM, then SIGKILL a few seconds later) when it runs
/// over its time limit.
#[derive(Clone, Debug, Default)]
pub struct SystemRunner;

/// How long a timed-out group has between SIGTERM and SIGKILL.
const KILL_GRACE: Duration = Duration::from_secs(5);
/// How often a running command is polled.
const POLL: Duration = Duration::from_millis(20);

impl Runner for SystemRunner {
    fn run(&self, cmd: &Cmd) -> Result<Output, RunError> {
        use std::os::unix::process::CommandExt;
        use std::process::{Command, Stdio};

        let mut command = Command::new(&cmd.program);
        command
            .args(&cmd.args)
            .envs(cmd.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        if let Some(dir) = &cmd.dir {
            command.current_dir(dir);
        }
        let mut child = command.spawn().map_err(|source| RunError::Spawn {
            program: cmd.program.clone(),
            source,
        })?;
        let stdout = drain(child.stdout.take());
        let stderr = drain(child.stderr.take());
        let deadline = std::time::Instant::now() + cmd.timeout;
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break Some(status),
                Ok(None) if std::time::Instant::now() >= deadline => break None,
                Ok(None) => std::thread::sleep(POLL),
                Err(source) => {
                    kill_group(child.id(), &mut child);
                    return Err(RunError::Spawn {
                        program: cmd.program.clone(),
                        source,
                    });
                }
            }
        };
        let Some(status) = status else {
            kill_group(child.id(), &mut child);
            return Err(RunError::TimedOut {
                command: cmd.display(),
                after: cmd.timeout,
                partial: Output {
                    code: None,
                    stdout: join(stdout),
                    stderr: join(stderr),
                },
            });
        };
        Ok(Output {
            code: status.code(),
            stdout: join(stdout),
            stderr: join(stderr),
        })
    }
}

/// Reads a pipe to its end on a thread of its own, so a chatty command never blocks on a
/// full pipe while the runner waits for it.
fn drain<R: std::io::Read + Send + 'static>(
    pipe: Option<R>,
) -> Option<std::thread::JoinHandle<String>> {
    pipe.map(|mut pipe| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            String::from_utf8_lossy(&bytes).into_owned()
        })
    })
}

fn join(reader: Option<std::thread::JoinHandle<String>>) -> String {
    reader.and_then(|r| r.join().ok()).unwrap_or_default()
}

/// SIGTERM to the command's process group, SIGKILL after [`KILL_GRACE`] if the leader
/// has not gone, then reaps the leader. Descendants that left the group (a daemon a
/// maintainer script started) are not followed.
fn kill_group(pid: u32, child: &mut std::process::Child) {
    use nix::sys::signal::{Signal, killpg};
    use nix::unistd::Pid;

    let Ok(raw) = i32::try_from(pid) else {
        let _ = child.kill();
        let _ = child.wait();
        return;
    };
    let group = Pid::from_raw(raw);
    let _ = killpg(group, Signal::SIGTERM);
    let until = std::time::Instant::now() + KILL_GRACE;
    while std::time::Instant::now() < until {
        if matches!(child.try_wait(), Ok(Some(_))) {
            // The leader is gone; make sure the rest of its group is too.
            let _ = killpg(group, Signal::SIGKILL);
            return;
        }
        std::thread::sleep(POLL);
    }
    let _ = killpg(group, Signal::SIGKILL);
    let _ = child.wait();
}

/// The last `lines` lines of what a command printed (standard error after standard
/// output), for a report's message: the package manager's own last word.
pub fn tail(output: &Output, lines: usize) -> String {
    let text = format!("{}\n{}", output.stdout, output.stderr);
    let kept: Vec<&str> = text
        .lines()
        .map(str::trim_end)
        .filter(|l| !l.trim().is_empty())
        .collect();
    kept[kept.len().saturating_sub(lines)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str, timeout: Duration) -> Result<Output, RunError> {
        SystemRunner.run(&Cmd::new("sh", ["-c", script], timeout))
    }

    #[test]
    fn output_and_exit_code_come_back() {
        let out = sh("echo out; echo err >&2; exit 3", Duration::from_secs(10)).expect("runs");
        assert_eq!(out.code, Some(3));
        assert_eq!(out.stdout, "out\n");
        assert_eq!(out.stderr, "err\n");
        assert!(!out.success());
    }

    #[test]
    fn a_missing_program_is_a_spawn_error() {
        let err = SystemRunner
            .run(&Cmd::new(
                "/nonexistent/ringmaster-test",
                Vec::<String>::new(),
                Duration::from_secs(1),
            ))
            .expect_err("no such program");
        assert!(matches!(err, RunError::Spawn { .. }), "{err:?}");
    }

    /// A command that hangs, with a child of its own that hangs too (as apt-get's dpkg
    /// would), is killed whole at its limit, and what it printed is kept.
    #[test]
    fn a_hung_command_and_its_children_are_killed_at_the_limit() {
        let dir = std::env::temp_dir().join(format!("ringmaster-runner-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let pidfile = dir.join("child.pid");
        let script = format!(
            "echo started; sleep 300 & echo $! > {}; wait",
            pidfile.display()
        );
        let began = std::time::Instant::now();
        let err = sh(&script, Duration::from_millis(500)).expect_err("times out");
        assert!(began.elapsed() < Duration::from_secs(30), "it returned");
        let RunError::TimedOut { partial, .. } = err else {
            panic!("not a time-out: {err:?}");
        };
        assert_eq!(partial.stdout, "started\n");
        let child: i32 = std::fs::read_to_string(&pidfile)
            .expect("pid written")
            .trim()
            .parse()
            .expect("a pid");
        // The grandchild got the group's signal: it is gone (or a zombie being reaped).
        // A signal is delivered asynchronously: on a busy machine the process may still
        // be on its way out when the runner returns, so it gets a moment to go.
        let alive = || {
            std::fs::read_to_string(format!("/proc/{child}/stat"))
                .map(|s| !s.contains(") Z "))
                .unwrap_or(false)
        };
        let gone_by = std::time::Instant::now() + Duration::from_secs(5);
        while alive() && std::time::Instant::now() < gone_by {
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(!alive(), "the command's child {child} survived");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_prefix_runs_the_command_through_it() {
        let runner = Prefixed {
            prefix: vec!["env".into(), "RINGMASTER_PREFIXED=1".into()],
            inner: SystemRunner,
        };
        let out = runner
            .run(&Cmd::new(
                "sh",
                ["-c", "echo $RINGMASTER_PREFIXED"],
                Duration::from_secs(10),
            ))
            .expect("runs");
        assert_eq!(out.stdout, "1\n");
    }

    #[test]
    fn the_tail_keeps_the_last_lines_of_both_streams() {
        let out = Output {
            code: Some(100),
            stdout: "a\nb\n\nc\n".into(),
            stderr: "E: d\n".into(),
        };
        assert_eq!(tail(&out, 2), "c\nE: d");
        assert_eq!(tail(&out, 10), "a\nb\nc\nE: d");
    }
}
