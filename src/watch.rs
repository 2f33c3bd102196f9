//! Watches that come back by themselves after an API server outage, for the operator and
//! for the agents alike.
//!
//! A failed watch waits before it tries again, longer after each failure, at one of two
//! paces ([`Pace`]). Either way, a watch whose resource version has expired (410 Gone,
//! which every watch gets from an API server that has just restarted) lists again at
//! once, as client-go's reflector does: the server answered, and waiting out a backoff
//! built up while it was down only delays the watcher's return by up to a minute.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::{Stream, TryStreamExt};
use kube::runtime::WatchStreamExt;
use kube::runtime::utils::{Backoff, ResetTimerBackoff};
use kube::runtime::watcher::{self, ExponentialBackoff};

/// How soon a failed watch tries again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pace {
    /// From 0.5 s doubling to at most 2 s: the operator's few watches, so that it is
    /// watching again within seconds of the API server coming back. A handful of watches
    /// retrying every 2 s are no burden on a server that is down.
    Operator,
    /// kube's and client-go's default: from 0.8 s doubling to 30 s, with up to as much
    /// again at random. Every device runs an agent; a fleet of 100,000 retrying every 2 s
    /// would hold a recovering server down.
    Agent,
}

impl Pace {
    fn backoff(self) -> ExponentialBackoff {
        match self {
            Self::Operator => backon::ExponentialBuilder::default()
                .with_min_delay(Duration::from_millis(500))
                .with_max_delay(Duration::from_secs(2))
                .with_factor(2.0)
                .without_max_times()
                .into(),
            Self::Agent => backon::ExponentialBuilder::default()
                .with_min_delay(Duration::from_millis(800))
                .with_max_delay(Duration::from_secs(30))
                .with_factor(2.0)
                .with_jitter()
                .without_max_times()
                .into(),
        }
    }
}

/// Retries `stream` (a watcher, or a reflector over one) at `pace`, and lists again at
/// once after a 410 Gone. The delay starts again from the shortest after two minutes
/// without a failure.
pub fn recovering<S, T>(
    stream: S,
    pace: Pace,
) -> impl Stream<Item = Result<T, watcher::Error>> + Send
where
    S: Stream<Item = Result<T, watcher::Error>> + Send,
    T: Send,
{
    let gone = Arc::new(AtomicBool::new(false));
    let seen_gone = Arc::clone(&gone);
    stream
        .inspect_err(move |e| {
            if is_gone(e) {
                seen_gone.store(true, Ordering::Relaxed);
            }
        })
        .backoff(WatchBackoff::new(pace, gone))
}

/// A backoff that skips its wait once after a 410 Gone (`gone`, set by the stream when it
/// sees one).
struct WatchBackoff {
    backoff: ResetTimerBackoff<ExponentialBackoff>,
    gone: Arc<AtomicBool>,
}

impl WatchBackoff {
    /// At `pace`, starting again from the shortest delay after two minutes without a
    /// failure.
    fn new(pace: Pace, gone: Arc<AtomicBool>) -> Self {
        Self {
            backoff: ResetTimerBackoff::new(pace.backoff(), Duration::from_secs(120)),
            gone,
        }
    }
}

impl Iterator for WatchBackoff {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        if self.gone.swap(false, Ordering::Relaxed) {
            return Some(Duration::ZERO);
        }
        self.backoff.next()
    }
}

impl Backoff for WatchBackoff {
    fn reset(&mut self) {
        self.backoff.reset();
    }
}

/// Whether a watch error says its resource version has expired.
fn is_gone(e: &watcher::Error) -> bool {
    matches!(e, watcher::Error::WatchError(status) if status.code == 410)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backoff(pace: Pace) -> (WatchBackoff, Arc<AtomicBool>) {
        let gone = Arc::new(AtomicBool::new(false));
        (WatchBackoff::new(pace, Arc::clone(&gone)), gone)
    }

    #[test]
    fn the_operator_retries_within_two_seconds() {
        let (mut b, _) = backoff(Pace::Operator);
        let delays: Vec<Duration> = b.by_ref().take(6).collect();
        assert_eq!(delays[0], Duration::from_millis(500));
        assert!(
            delays.iter().all(|d| *d <= Duration::from_secs(2)),
            "{delays:?}"
        );
    }

    #[test]
    fn an_agent_backs_off_to_half_a_minute_and_more() {
        let (mut b, _) = backoff(Pace::Agent);
        let delays: Vec<Duration> = b.by_ref().take(10).collect();
        assert!(delays[0] >= Duration::from_millis(800), "{delays:?}");
        assert!(delays[9] >= Duration::from_secs(30), "{delays:?}");
        assert!(
            delays.iter().all(|d| *d <= Duration::from_secs(60)),
            "{delays:?}"
        );
    }

    #[test]
    fn a_gone_watch_lists_again_at_once_whatever_its_backoff() {
        for pace in [Pace::Operator, Pace::Agent] {
            let (mut b, gone) = backoff(pace);
            let built_up = b.by_ref().take(8).last();
            assert!(built_up > Some(Duration::from_secs(1)), "{built_up:?}");
            gone.store(true, Ordering::Relaxed);
            assert_eq!(b.next(), Some(Duration::ZERO), "{pace:?}");
            // Once: a failure after that waits as before.
            assert!(b.next() > Some(Duration::from_secs(1)), "{pace:?}");
        }
    }

    #[test]
    fn only_a_410_is_gone() {
        let status = |code| {
            watcher::Error::WatchError(Box::new(kube::core::Status {
                code,
                ..Default::default()
            }))
        };
        assert!(is_gone(&status(410)));
        assert!(!is_gone(&status(403)));
        assert!(!is_gone(&status(500)));
    }
}
