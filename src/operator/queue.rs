//! The work queue: keys (namespaces, the catalog) are triggered by watch events and
//! timers; triggers are coalesced for a short debounce; a key runs at most once at a time
//! (a trigger while it runs makes it run once more afterwards); different keys run
//! concurrently up to a limit; a failed or panicked run is retried with exponential
//! backoff, and never stops other keys.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt::Debug;
use std::future::Future;
use std::hash::Hash;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::Error;

/// How the queue paces work.
#[derive(Clone, Copy, Debug)]
pub struct QueueConfig {
    /// Triggers for a key within this long of its first one run it once.
    pub debounce: Duration,
    /// The most keys reconciling at once.
    pub max_concurrent: usize,
    /// The first retry delay after a failure; it doubles with each further failure.
    pub backoff_base: Duration,
    /// The longest retry delay.
    pub backoff_max: Duration,
}

impl Default for QueueConfig {
    fn default() -> Self {
        Self {
            debounce: Duration::from_millis(100),
            max_concurrent: 4,
            backoff_base: Duration::from_secs(1),
            backoff_max: Duration::from_secs(300),
        }
    }
}

/// The result of one run: `Ok(Some(at))` to run again at `at` (the engine's wake-up),
/// `Ok(None)` to wait for the next trigger, `Err` to retry with backoff (the run has
/// already logged and counted its error).
pub type RunResult = Result<Option<Instant>, Error>;

/// A boxed run.
pub type RunFuture = Pin<Box<dyn Future<Output = RunResult> + Send + 'static>>;

/// What the queue runs.
pub trait Reconciler<K>: Send + Sync + 'static {
    /// Runs one key.
    fn reconcile(&self, key: K) -> RunFuture;
    /// Told when a run panicked (the queue retries it with backoff).
    fn panicked(&self, key: &K, message: &str);
}

/// What reaches the queue.
#[derive(Debug, PartialEq, Eq)]
pub enum Signal<K> {
    /// Run this key (after the debounce).
    Trigger(K),
    /// The watches have just listed everything again, as after an outage: the failures
    /// so far say nothing about now, so every key waiting out a backoff runs again after
    /// the debounce instead of at the end of its backoff.
    Resync,
}

/// Where watchers send keys: connected to a running queue, or (while this replica is not
/// the leader, or shutting down) to nothing, in which case keys are dropped.
#[derive(Debug)]
pub struct Sink<K> {
    tx: Mutex<Option<mpsc::UnboundedSender<Signal<K>>>>,
}

impl<K> Default for Sink<K> {
    fn default() -> Self {
        Self {
            tx: Mutex::new(None),
        }
    }
}

impl<K> Sink<K> {
    /// Sends a key to the queue, if one is connected.
    pub fn send(&self, key: K) {
        self.signal(Signal::Trigger(key));
    }

    /// Tells the queue that everything was listed again ([`Signal::Resync`]).
    pub fn resync(&self) {
        self.signal(Signal::Resync);
    }

    fn signal(&self, signal: Signal<K>) {
        if let Ok(guard) = self.tx.lock()
            && let Some(tx) = guard.as_ref()
        {
            // A closed receiver means the queue is stopping: the signal is not needed.
            let _ = tx.send(signal);
        }
    }

    /// Connects a new queue and returns its receiving end.
    pub fn connect(&self) -> mpsc::UnboundedReceiver<Signal<K>> {
        let (tx, rx) = mpsc::unbounded_channel();
        if let Ok(mut guard) = self.tx.lock() {
            *guard = Some(tx);
        }
        rx
    }

    /// Disconnects the queue: it stops once it has taken the keys already sent.
    pub fn disconnect(&self) {
        if let Ok(mut guard) = self.tx.lock() {
            *guard = None;
        }
    }

    /// Whether a queue is connected.
    pub fn is_connected(&self) -> bool {
        self.tx.lock().map(|g| g.is_some()).unwrap_or(false)
    }
}

/// The queue's bookkeeping, separate from its I/O so it can be reasoned about alone.
struct State<K> {
    cfg: QueueConfig,
    due: HashMap<K, Instant>,
    timeline: BTreeSet<(Instant, K)>,
    running: HashSet<K>,
    rerun: HashSet<K>,
    failures: HashMap<K, u32>,
    hold_until: HashMap<K, Instant>,
}

impl<K: Clone + Eq + Hash + Ord> State<K> {
    fn new(cfg: QueueConfig) -> Self {
        Self {
            cfg,
            due: HashMap::new(),
            timeline: BTreeSet::new(),
            running: HashSet::new(),
            rerun: HashSet::new(),
            failures: HashMap::new(),
            hold_until: HashMap::new(),
        }
    }

    /// Runs `key` at `at`, or earlier if it is already due earlier; never before a
    /// failure's backoff has passed.
    fn schedule(&mut self, key: K, at: Instant) {
        let at = self.hold_until.get(&key).map_or(at, |h| at.max(*h));
        if let Some(old) = self.due.get(&key) {
            if *old <= at {
                return;
            }
            self.timeline.remove(&(*old, key.clone()));
        }
        self.due.insert(key.clone(), at);
        self.timeline.insert((at, key));
    }

    fn trigger(&mut self, key: K, now: Instant) {
        if self.running.contains(&key) {
            self.rerun.insert(key);
        } else {
            self.schedule(key, now + self.cfg.debounce);
        }
    }

    /// Forgets every failure: keys waiting out a backoff run after the debounce.
    fn resync(&mut self, now: Instant) {
        self.failures.clear();
        let held: Vec<K> = self.hold_until.drain().map(|(k, _)| k).collect();
        for key in held {
            if !self.running.contains(&key) {
                self.schedule(key, now + self.cfg.debounce);
            }
        }
    }

    fn pop_due(&mut self, now: Instant) -> Option<K> {
        loop {
            let (at, key) = self.timeline.first().cloned()?;
            if at > now {
                return None;
            }
            self.timeline.remove(&(at, key.clone()));
            self.due.remove(&key);
            if self.running.contains(&key) {
                self.rerun.insert(key);
                continue;
            }
            self.running.insert(key.clone());
            return Some(key);
        }
    }

    fn next_due(&self) -> Option<Instant> {
        self.timeline.first().map(|(at, _)| *at)
    }

    fn finish(&mut self, key: K, result: RunResult, now: Instant) {
        self.running.remove(&key);
        match result {
            Ok(wake) => {
                self.failures.remove(&key);
                self.hold_until.remove(&key);
                if let Some(at) = wake {
                    self.schedule(key.clone(), at);
                }
            }
            Err(_) => {
                let n = self.failures.entry(key.clone()).or_insert(0);
                *n = n.saturating_add(1);
                let delay = backoff(self.cfg, *n);
                self.hold_until.insert(key.clone(), now + delay);
                self.schedule(key.clone(), now + delay);
            }
        }
        if self.rerun.remove(&key) {
            self.schedule(key, now + self.cfg.debounce);
        }
    }
}

/// The delay before the `failures`-th retry.
fn backoff(cfg: QueueConfig, failures: u32) -> Duration {
    let factor = 2u32.saturating_pow(failures.saturating_sub(1).min(20));
    cfg.backoff_base.saturating_mul(factor).min(cfg.backoff_max)
}

/// Runs the queue until `stop` turns true or every sender of `rx` is gone; then waits for
/// the runs in flight to finish (it starts no new ones).
pub async fn run<K, R>(
    mut rx: mpsc::UnboundedReceiver<Signal<K>>,
    reconciler: Arc<R>,
    cfg: QueueConfig,
    mut stop: watch::Receiver<bool>,
) where
    K: Clone + Eq + Hash + Ord + Debug + Send + 'static,
    R: Reconciler<K>,
{
    let mut state: State<K> = State::new(cfg);
    let mut tasks: JoinSet<(K, RunResult)> = JoinSet::new();
    let mut ids: HashMap<tokio::task::Id, K> = HashMap::new();
    loop {
        if *stop.borrow() {
            break;
        }
        let now = Instant::now();
        while tasks.len() < cfg.max_concurrent.max(1) {
            let Some(key) = state.pop_due(now) else { break };
            let r = Arc::clone(&reconciler);
            let k = key.clone();
            let handle = tasks.spawn(async move {
                let out = r.reconcile(k.clone()).await;
                (k, out)
            });
            ids.insert(handle.id(), key);
        }
        let next = state.next_due();
        tokio::select! {
            changed = stop.changed() => {
                if changed.is_err() {
                    break;
                }
            }
            Some(joined) = tasks.join_next_with_id(), if !tasks.is_empty() => {
                match joined {
                    Ok((id, (key, result))) => {
                        ids.remove(&id);
                        state.finish(key, result, Instant::now());
                    }
                    Err(e) => {
                        if let Some(key) = ids.remove(&e.id()) {
                            reconciler.panicked(&key, &panic_message(&e));
                            let failed = Error::Task(panic_message(&e));
                            state.finish(key, Err(failed), Instant::now());
                        }
                    }
                }
            }
            msg = rx.recv() => match msg {
                Some(Signal::Trigger(key)) => state.trigger(key, Instant::now()),
                Some(Signal::Resync) => state.resync(Instant::now()),
                None => break,
            },
            _ = tokio::time::sleep_until(next.unwrap_or(now)), if next.is_some() => {}
        }
    }
    while let Some(joined) = tasks.join_next_with_id().await {
        if let Err(e) = joined
            && let Some(key) = ids.remove(&e.id())
        {
            reconciler.panicked(&key, &panic_message(&e));
        }
    }
}

fn panic_message(e: &tokio::task::JoinError) -> String {
    if e.is_cancelled() {
        return "cancelled".into();
    }
    e.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[derive(Default)]
    struct Recorder {
        runs: Mutex<Vec<(String, Instant)>>,
        panics: AtomicUsize,
        /// Keys whose run sleeps this long.
        slow: Mutex<HashMap<String, Duration>>,
        /// Keys whose run asks to run again at this offset from its start.
        wake: Mutex<HashMap<String, Duration>>,
        /// Keys whose runs panic (the first n of them).
        panic_first: Mutex<HashMap<String, usize>>,
        fail_first: Mutex<HashMap<String, usize>>,
    }

    impl Reconciler<String> for Recorder {
        fn reconcile(&self, key: String) -> RunFuture {
            let start = Instant::now();
            if let Ok(mut runs) = self.runs.lock() {
                runs.push((key.clone(), start));
            }
            let slow = self.slow.lock().ok().and_then(|m| m.get(&key).copied());
            let wake = self.wake.lock().ok().and_then(|m| m.get(&key).copied());
            let panic = self
                .panic_first
                .lock()
                .ok()
                .and_then(|mut m| m.get_mut(&key).map(|n| (*n > 0).then(|| *n -= 1)))
                .flatten()
                .is_some();
            let fail = self
                .fail_first
                .lock()
                .ok()
                .and_then(|mut m| m.get_mut(&key).map(|n| (*n > 0).then(|| *n -= 1)))
                .flatten()
                .is_some();
            Box::pin(async move {
                if let Some(d) = slow {
                    tokio::time::sleep(d).await;
                }
                if panic {
                    panic!("boom");
                }
                if fail {
                    return Err(Error::Task("failed".into()));
                }
                Ok(wake.map(|w| start + w))
            })
        }

        fn panicked(&self, _key: &String, _message: &str) {
            self.panics.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn runs_of(r: &Recorder, key: &str) -> Vec<Instant> {
        r.runs
            .lock()
            .map(|v| {
                v.iter()
                    .filter(|(k, _)| k == key)
                    .map(|(_, t)| *t)
                    .collect()
            })
            .unwrap_or_default()
    }

    fn start(
        r: &Arc<Recorder>,
    ) -> (
        Arc<Sink<String>>,
        watch::Sender<bool>,
        tokio::task::JoinHandle<()>,
    ) {
        let tx = Arc::new(Sink::default());
        let rx = tx.connect();
        let (stop_tx, stop_rx) = watch::channel(false);
        // The mechanics, at a debounce of 500 ms (the timings below count with it).
        let cfg = QueueConfig {
            debounce: Duration::from_millis(500),
            ..QueueConfig::default()
        };
        let h = tokio::spawn(run(rx, Arc::clone(r), cfg, stop_rx));
        (tx, stop_tx, h)
    }

    #[tokio::test(start_paused = true)]
    async fn triggers_within_the_debounce_run_once() {
        let r = Arc::new(Recorder::default());
        let (tx, _stop, _h) = start(&r);
        let t0 = Instant::now();
        for _ in 0..10 {
            tx.send("acme".into());
            tokio::time::sleep(Duration::from_millis(40)).await;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        let runs = runs_of(&r, "acme");
        assert_eq!(runs.len(), 1, "{runs:?}");
        assert_eq!(runs[0] - t0, Duration::from_millis(500));
    }

    #[tokio::test(start_paused = true)]
    async fn a_key_runs_once_at_a_time_and_once_more_after_a_trigger_during_its_run() {
        let r = Arc::new(Recorder::default());
        r.slow
            .lock()
            .unwrap()
            .insert("acme".into(), Duration::from_secs(3));
        let (tx, _stop, _h) = start(&r);
        tx.send("acme".into());
        tx.send("globex".into());
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(runs_of(&r, "acme").len(), 1);
        assert_eq!(
            runs_of(&r, "globex").len(),
            1,
            "other keys run concurrently"
        );
        for _ in 0..5 {
            tx.send("acme".into());
        }
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert_eq!(runs_of(&r, "acme").len(), 1, "not while it runs");
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert_eq!(runs_of(&r, "acme").len(), 2, "once more afterwards");
    }

    #[tokio::test(start_paused = true)]
    async fn a_run_asking_to_be_woken_runs_again_at_that_instant() {
        let r = Arc::new(Recorder::default());
        r.wake
            .lock()
            .unwrap()
            .insert("acme".into(), Duration::from_secs(60));
        let (tx, _stop, _h) = start(&r);
        tx.send("acme".into());
        tokio::time::sleep(Duration::from_secs(61)).await;
        let runs = runs_of(&r, "acme");
        assert_eq!(runs.len(), 2);
        assert_eq!(
            runs[1] - runs[0],
            Duration::from_secs(60),
            "no debounce on timers"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_panic_is_retried_with_backoff_and_other_keys_go_on() {
        let r = Arc::new(Recorder::default());
        r.panic_first.lock().unwrap().insert("acme".into(), 2);
        r.fail_first.lock().unwrap().insert("globex".into(), 1);
        let (tx, _stop, h) = start(&r);
        tx.send("acme".into());
        tx.send("globex".into());
        tokio::time::sleep(Duration::from_secs(10)).await;
        let runs = runs_of(&r, "acme");
        assert_eq!(runs.len(), 3, "two panics, then success");
        assert_eq!(runs[1] - runs[0], Duration::from_secs(1));
        assert_eq!(runs[2] - runs[1], Duration::from_secs(2), "doubling");
        assert_eq!(r.panics.load(Ordering::SeqCst), 2);
        assert_eq!(runs_of(&r, "globex").len(), 2, "a failure is retried");
        // Triggers during a backoff do not bring the retry forward.
        r.fail_first.lock().unwrap().insert("initech".into(), 3);
        tx.send("initech".into());
        tokio::time::sleep(Duration::from_millis(600)).await;
        tx.send("initech".into());
        tokio::time::sleep(Duration::from_millis(700)).await;
        assert_eq!(runs_of(&r, "initech").len(), 1);
        assert!(!h.is_finished(), "the queue lives on");
    }

    #[tokio::test(start_paused = true)]
    async fn a_resync_ends_every_backoff() {
        let r = Arc::new(Recorder::default());
        r.fail_first.lock().unwrap().insert("acme".into(), 6);
        let (tx, _stop, _h) = start(&r);
        tx.send("acme".into());
        // Runs at 0.5 s, then after 1, 2, 4 and 8 s: the fifth run at 15.5 s, and the
        // next one would wait 16 s more.
        tokio::time::sleep(Duration::from_secs(16)).await;
        assert_eq!(runs_of(&r, "acme").len(), 5);
        let t = Instant::now();
        tx.resync();
        tokio::time::sleep(Duration::from_secs(1)).await;
        let runs = runs_of(&r, "acme");
        assert_eq!(runs.len(), 6, "{runs:?}");
        assert_eq!(
            runs[5] - t,
            Duration::from_millis(500),
            "after the debounce"
        );
        // The failure count started again: the next retry waits 1 s, not 32 s.
        tokio::time::sleep(Duration::from_millis(1100)).await;
        assert_eq!(runs_of(&r, "acme").len(), 7);
    }

    #[tokio::test(start_paused = true)]
    async fn stopping_finishes_the_runs_in_flight_and_starts_no_more() {
        let r = Arc::new(Recorder::default());
        r.slow
            .lock()
            .unwrap()
            .insert("acme".into(), Duration::from_secs(5));
        let (tx, stop, h) = start(&r);
        tx.send("acme".into());
        tokio::time::sleep(Duration::from_secs(1)).await;
        tx.send("globex".into());
        stop.send(true).unwrap();
        let t = Instant::now();
        h.await.unwrap();
        assert!(
            Instant::now() - t >= Duration::from_millis(4400),
            "waited for acme"
        );
        assert!(runs_of(&r, "globex").is_empty());
    }

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        let cfg = QueueConfig::default();
        assert_eq!(backoff(cfg, 1), Duration::from_secs(1));
        assert_eq!(backoff(cfg, 4), Duration::from_secs(8));
        assert_eq!(backoff(cfg, 40), Duration::from_secs(300));
    }
}
