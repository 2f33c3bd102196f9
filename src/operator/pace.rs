//! How fast the operator writes. Every write goes through one [`Pace`], shared by every
//! tenant's reconcile:
//!
//! - at most `concurrent` writes are in flight at once (`--max-concurrent-writes`);
//! - when `qps` is set (`--write-qps`), writes start at most that many a second on
//!   average, in bursts of at most `burst` (`--write-burst`): a token bucket;
//! - when the API server answers 429 (Too Many Requests: its priority and fairness has
//!   no seat for the request), every write waits, and the throttled one is sent again,
//!   up to [`THROTTLE_RETRIES`] times, for as long as the server's `retryAfterSeconds`
//!   says (at most a minute), or else a pause doubling from one second to eight.
//!
//! Without `qps` the API server's priority and fairness is what paces the operator, as
//! kubectl and client-go do when the server has it on (every supported Kubernetes
//! version): a client-side limit below what the server grants only slows a large rollout
//! down.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::time::Instant;
use tracing::warn;

use super::metrics::Metrics;

/// How many times a throttled write is sent again before its failure is returned (the
/// reconcile then retries it with its own backoff).
pub const THROTTLE_RETRIES: u32 = 4;
/// The first pause after a 429.
const FIRST_PAUSE: Duration = Duration::from_secs(1);
/// The longest pause after a 429 that gives no `retryAfterSeconds`.
const LONGEST_PAUSE: Duration = Duration::from_secs(8);
/// The longest `retryAfterSeconds` honoured.
const LONGEST_RETRY_AFTER: Duration = Duration::from_secs(60);

/// Writes in flight at once by default (`--max-concurrent-writes`).
pub const DEFAULT_CONCURRENT: u32 = 32;
/// The most writes started at once under a rate by default (`--write-burst`).
pub const DEFAULT_BURST: u32 = 10;

/// The limits, from `ringmaster run`'s flags.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PaceConfig {
    /// Writes in flight at once, across every tenant (at least 1).
    pub concurrent: usize,
    /// Writes started per second on average; None: no client-side limit.
    pub qps: Option<f64>,
    /// The most writes started at once under `qps` (at least 1).
    pub burst: u32,
}

impl Default for PaceConfig {
    /// `ringmaster run`'s defaults.
    fn default() -> Self {
        Self {
            concurrent: DEFAULT_CONCURRENT as usize,
            qps: None,
            burst: DEFAULT_BURST,
        }
    }
}

/// The operator's write pacing; clones share it.
#[derive(Clone)]
pub struct Pace(Arc<Inner>);

struct Inner {
    concurrent: usize,
    slots: Semaphore,
    bucket: Option<Mutex<Bucket>>,
    /// No write starts before this instant (set by a 429).
    paused_until: Mutex<Option<Instant>>,
    metrics: Arc<Metrics>,
}

/// A token bucket that may go into debt: a write takes a token at once and waits until
/// the bucket would have had it.
struct Bucket {
    qps: f64,
    burst: f64,
    tokens: f64,
    at: Instant,
}

impl Bucket {
    /// Takes a token at `now`; how long to wait before using it.
    fn take(&mut self, now: Instant) -> Duration {
        let refill = now.duration_since(self.at).as_secs_f64() * self.qps;
        self.tokens = (self.tokens + refill).min(self.burst) - 1.0;
        self.at = now;
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / self.qps)
        }
    }
}

impl Pace {
    /// Pacing under `config`, counting throttled writes into `metrics`.
    pub fn new(config: PaceConfig, metrics: Arc<Metrics>) -> Self {
        let bucket = config.qps.filter(|q| q.is_finite() && *q > 0.0).map(|qps| {
            let burst = f64::from(config.burst.max(1));
            Mutex::new(Bucket {
                qps,
                burst,
                tokens: burst,
                at: Instant::now(),
            })
        });
        Self(Arc::new(Inner {
            concurrent: config.concurrent.max(1),
            slots: Semaphore::new(config.concurrent.max(1)),
            bucket,
            paused_until: Mutex::new(None),
            metrics,
        }))
    }

    /// How many writes may be in flight at once.
    pub fn concurrent(&self) -> usize {
        self.0.concurrent
    }

    /// Sends a write made by `request`, within the limits; a 429 pauses every write and
    /// sends it again.
    pub async fn send<T, F, Fut>(&self, mut request: F) -> kube::Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = kube::Result<T>>,
    {
        // The semaphore is never closed: a permit always comes.
        let _permit = self.0.slots.acquire().await.ok();
        let mut pause = FIRST_PAUSE;
        let mut retries = 0;
        loop {
            self.turn().await;
            match request().await {
                Err(kube::Error::Api(s)) if s.code == 429 && retries < THROTTLE_RETRIES => {
                    retries += 1;
                    self.0.metrics.throttled();
                    let wait = retry_after(&s).unwrap_or(pause);
                    warn!(pause = ?wait, reason = %s.message, "the API server throttled a write; every write waits");
                    self.pause(wait);
                    pause = (pause * 2).min(LONGEST_PAUSE);
                }
                other => return other,
            }
        }
    }

    /// Waits until a write may start: after any pause, and for a token of the bucket.
    async fn turn(&self) {
        loop {
            let until = *self
                .0
                .paused_until
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            match until {
                Some(t) if t > Instant::now() => tokio::time::sleep_until(t).await,
                _ => break,
            }
        }
        if let Some(bucket) = &self.0.bucket {
            let wait = bucket
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take(Instant::now());
            if !wait.is_zero() {
                tokio::time::sleep(wait).await;
            }
        }
    }

    /// No write starts for `pause` from now (a later pause already set stands).
    fn pause(&self, pause: Duration) {
        let until = Instant::now() + pause;
        let mut p = self
            .0
            .paused_until
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if p.is_none_or(|t| t < until) {
            *p = Some(until);
        }
    }
}

/// How long a 429 asks the client to wait, when it says.
fn retry_after(s: &kube::core::Status) -> Option<Duration> {
    let secs = s.details.as_ref()?.retry_after_seconds;
    (secs > 0).then(|| Duration::from_secs(secs.into()).min(LONGEST_RETRY_AFTER))
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    fn throttled() -> kube::Error {
        kube::Error::Api(
            kube::core::Status::failure("too many requests", "TooManyRequests")
                .with_code(429)
                .boxed(),
        )
    }

    fn pace(config: PaceConfig) -> (Pace, Arc<Metrics>) {
        let metrics = Arc::new(Metrics::new());
        (Pace::new(config, Arc::clone(&metrics)), metrics)
    }

    #[tokio::test(start_paused = true)]
    async fn no_more_writes_in_flight_than_allowed() {
        let (pace, _) = pace(PaceConfig {
            concurrent: 3,
            ..PaceConfig::default()
        });
        let (now, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let writes = (0..10).map(|_| {
            let (pace, now, most) = (pace.clone(), Arc::clone(&now), Arc::clone(&most));
            tokio::spawn(async move {
                pace.send(|| async {
                    let n = now.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(n, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    now.fetch_sub(1, Ordering::SeqCst);
                    Ok::<_, kube::Error>(())
                })
                .await
            })
        });
        for w in futures::future::join_all(writes).await {
            assert!(matches!(w, Ok(Ok(()))));
        }
        assert_eq!(most.load(Ordering::SeqCst), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn a_rate_limit_spaces_writes_after_a_burst() {
        let (pace, _) = pace(PaceConfig {
            concurrent: 100,
            qps: Some(10.0),
            burst: 5,
        });
        let start = Instant::now();
        for _ in 0..25 {
            pace.send(|| async { Ok::<_, kube::Error>(()) })
                .await
                .expect("sent");
        }
        // Five at once, then twenty at ten a second.
        let took = start.elapsed();
        assert!(
            took >= Duration::from_millis(2000) && took < Duration::from_millis(2100),
            "{took:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_throttled_write_waits_and_is_sent_again() {
        let (pace, metrics) = pace(PaceConfig::default());
        let tries = AtomicUsize::new(0);
        let start = Instant::now();
        let result = pace
            .send(|| async {
                match tries.fetch_add(1, Ordering::SeqCst) {
                    0 | 1 => Err(throttled()),
                    _ => Ok(7),
                }
            })
            .await;
        assert_eq!(result.expect("sent on the third try"), 7);
        // Paused one second, then two.
        assert_eq!(start.elapsed().as_secs(), 3);
        assert!(
            metrics
                .encode()
                .contains("ringmaster_api_throttled_total 2")
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_servers_retry_after_is_honoured() {
        let (pace, _) = pace(PaceConfig::default());
        let tries = AtomicUsize::new(0);
        let start = Instant::now();
        pace.send(|| async {
            if tries.fetch_add(1, Ordering::SeqCst) == 0 {
                // As an API server's priority and fairness sends it.
                let s: kube::core::Status = serde_json::from_value(serde_json::json!({
                    "kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 429,
                    "reason": "TooManyRequests", "message": "Too many requests, please try again later.",
                    "details": {"retryAfterSeconds": 5}
                }))
                .expect("a Status");
                return Err(kube::Error::Api(s.boxed()));
            }
            Ok(())
        })
        .await
        .expect("sent on the second try");
        assert_eq!(start.elapsed().as_secs(), 5);
    }

    #[tokio::test(start_paused = true)]
    async fn a_write_throttled_every_time_fails_in_the_end() {
        let (pace, _) = pace(PaceConfig::default());
        let tries = AtomicUsize::new(0);
        let result: kube::Result<()> = pace
            .send(|| async {
                tries.fetch_add(1, Ordering::SeqCst);
                Err(throttled())
            })
            .await;
        assert!(matches!(result, Err(kube::Error::Api(s)) if s.code == 429));
        assert_eq!(tries.load(Ordering::SeqCst), THROTTLE_RETRIES as usize + 1);
    }
}
