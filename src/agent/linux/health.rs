//! Post-patch validation beyond the versions: the ring's health checks (systemd units
//! active, commands that must succeed, HTTP probes on the device), run after an install
//! and again after the reboot that completes it. A check that fails makes the install a
//! failure, with the check's own word as the report's message.

use std::sync::Arc;
use std::time::Duration;

use super::runner::{Cmd, RunError, Runner, run_blocking, tail};
use crate::api::HealthChecks;

/// How long a check may take when the ring does not say.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// The first check that failed, and how.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CheckFailed {
    /// A systemd unit is not active.
    #[error("health check: unit {unit} is {state}")]
    Unit {
        /// The unit.
        unit: String,
        /// What `systemctl is-active` said (`failed`, `inactive`, `activating`, …).
        state: String,
    },
    /// A command exited non-zero, or could not run.
    #[error("health check: `{command}` failed ({code}): {tail}")]
    Command {
        /// The command.
        command: String,
        /// Its exit code, or why it had none.
        code: String,
        /// Its last lines.
        tail: String,
    },
    /// An HTTP probe did not answer as expected.
    #[error("health check: {url} {problem}")]
    Http {
        /// The URL.
        url: String,
        /// What it answered, or why it did not.
        problem: String,
    },
}

/// Runs every check, in order (units, commands, probes), and stops at the first failure.
pub async fn run(
    checks: &HealthChecks,
    runner: Arc<dyn Runner>,
    http: &reqwest::Client,
) -> Result<(), CheckFailed> {
    let timeout = checks
        .timeout
        .as_ref()
        .map(|d| d.span().unsigned_abs())
        .unwrap_or(DEFAULT_TIMEOUT);
    if let Some(delay) = checks.delay.as_ref() {
        let delay = delay.span().unsigned_abs();
        tokio::time::sleep(delay).await;
    }
    for unit in &checks.units {
        let cmd = Cmd::new("systemctl", ["is-active", unit.as_str()], timeout);
        let out = run_blocking(runner.clone(), cmd).await;
        match out {
            Ok(o) if o.success() => {}
            Ok(o) => {
                return Err(CheckFailed::Unit {
                    unit: unit.clone(),
                    state: first_word(&o.stdout).unwrap_or("not active").to_string(),
                });
            }
            Err(e) => {
                return Err(CheckFailed::Unit {
                    unit: unit.clone(),
                    state: format!("unknown ({e})"),
                });
            }
        }
    }
    for command in &checks.commands {
        let cmd = Cmd::new("sh", ["-c", command.as_str()], timeout);
        command_check(command, run_blocking(runner.clone(), cmd).await)?;
    }
    for probe in &checks.http {
        http_check(http, &probe.url, probe.expect_status, timeout).await?;
    }
    Ok(())
}

fn first_word(s: &str) -> Option<&str> {
    s.split_whitespace().next()
}

fn command_check(
    command: &str,
    result: Result<super::runner::Output, RunError>,
) -> Result<(), CheckFailed> {
    let failed = |code: String, tail: String| CheckFailed::Command {
        command: command.to_string(),
        code,
        tail,
    };
    match result {
        Ok(o) if o.success() => Ok(()),
        Ok(o) => Err(failed(
            o.code
                .map_or("killed by a signal".to_string(), |c| format!("exit {c}")),
            tail(&o, 5),
        )),
        Err(RunError::TimedOut { after, partial, .. }) => Err(failed(
            format!("no answer within {after:?}"),
            tail(&partial, 5),
        )),
        Err(e) => Err(failed("could not run".to_string(), e.to_string())),
    }
}

async fn http_check(
    http: &reqwest::Client,
    url: &str,
    expect: Option<u16>,
    timeout: Duration,
) -> Result<(), CheckFailed> {
    let failed = |problem: String| CheckFailed::Http {
        url: url.to_string(),
        problem,
    };
    let response = http
        .get(url)
        .timeout(timeout)
        .send()
        .await
        .map_err(|e| failed(format!("did not answer: {e}")))?;
    let status = response.status();
    let ok = match expect {
        Some(code) => status.as_u16() == code,
        None => status.is_success(),
    };
    if ok {
        Ok(())
    } else {
        let wanted = expect.map_or("a 2xx status".to_string(), |c| c.to_string());
        Err(failed(format!("answered {status}, not {wanted}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::linux::runner::SystemRunner;
    use crate::api::HttpCheck;

    fn checks() -> HealthChecks {
        HealthChecks::default()
    }

    #[tokio::test]
    async fn commands_pass_and_fail_with_their_word() {
        let http = reqwest::Client::new();
        let runner: Arc<dyn Runner> = Arc::new(SystemRunner);
        let ok = HealthChecks {
            commands: vec!["true".into()],
            ..checks()
        };
        assert_eq!(run(&ok, runner.clone(), &http).await, Ok(()));
        let bad = HealthChecks {
            commands: vec!["true".into(), "echo 'ledger down' >&2; exit 4".into()],
            ..checks()
        };
        let err = run(&bad, runner, &http).await.expect_err("fails");
        assert_eq!(
            err,
            CheckFailed::Command {
                command: "echo 'ledger down' >&2; exit 4".into(),
                code: "exit 4".into(),
                tail: "ledger down".into(),
            }
        );
    }

    #[tokio::test]
    async fn a_probe_that_nobody_answers_fails() {
        // A port nothing listens on: bind one, note it, close it.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("port")
            .port();
        let probe = HealthChecks {
            http: vec![HttpCheck {
                url: format!("http://127.0.0.1:{port}/healthz"),
                expect_status: None,
            }],
            ..checks()
        };
        let err = run(&probe, Arc::new(SystemRunner), &reqwest::Client::new())
            .await
            .expect_err("nobody answers");
        assert!(matches!(err, CheckFailed::Http { .. }), "{err:?}");
    }

    #[tokio::test]
    async fn a_probe_checks_the_status_it_gets() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let app = axum::Router::new()
            .route("/ok", axum::routing::get(|| async { "ok" }))
            .route(
                "/down",
                axum::routing::get(|| async {
                    (axum::http::StatusCode::SERVICE_UNAVAILABLE, "no")
                }),
            );
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        let probe = |path: &str, expect| HealthChecks {
            http: vec![HttpCheck {
                url: format!("http://{addr}{path}"),
                expect_status: expect,
            }],
            ..checks()
        };
        let http = reqwest::Client::new();
        let runner: Arc<dyn Runner> = Arc::new(SystemRunner);
        assert_eq!(
            run(&probe("/ok", None), runner.clone(), &http).await,
            Ok(())
        );
        assert_eq!(
            run(&probe("/down", Some(503)), runner.clone(), &http).await,
            Ok(())
        );
        let err = run(&probe("/down", None), runner, &http)
            .await
            .expect_err("503");
        assert_eq!(
            err.to_string(),
            format!(
                "health check: http://{addr}/down answered 503 Service Unavailable, not a 2xx status"
            )
        );
    }
}
