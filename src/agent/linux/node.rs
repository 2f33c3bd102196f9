//! Node mode: the agent as a DaemonSet on a cluster's own nodes. Before a reboot it
//! cordons its node and drains it through the Eviction API (so PodDisruptionBudgets
//! hold); after the reboot, once the node is validated, it uncordons it — but only a
//! cordon it placed itself. The ring's `maxConcurrent` is the lock that keeps too many
//! nodes from draining at once; this module only guards the one node it runs on.
//!
//! The annotation [`CORDONED_BY`] is the memory: the agent writes it with the cordon and
//! takes it away with the uncordon, so an agent that restarts (or a node that rebooted)
//! finds its own cordon again and never mistakes someone else's for it.
//!
//! What a drain does, pod by pod (as `kubectl drain --ignore-daemonsets
//! --delete-emptydir-data --force` and kured do):
//! - DaemonSet pods and static (mirror) pods are left alone: evicting them is pointless
//!   (they come back on this node) and the agent itself is one of them;
//! - pods that finished (Succeeded, Failed) are left alone;
//! - pods already terminating are not evicted again, but waited for;
//! - every other pod is evicted (policy/v1 Eviction); a refusal (429: a
//!   PodDisruptionBudget would be violated) is tried again, with back-off, until the
//!   time limit; evicted pods are waited for until they are gone. Pods that appear on the
//!   node during the drain are evicted too.
//!
//! When the drain does not finish in time, [`NodeGuard::prepare`] takes off the cordon it
//! holds (as kured does, so a node that will not reboot goes back to work) and says which
//! pods would not leave; the reboot must not happen.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::api::policy::v1::Eviction;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Client;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::core::{Request, Status};
use serde_json::{Value, json};
use thiserror::Error;
use tokio::time::Instant;

/// The annotation on a Node that says the agent named by its value cordoned it.
pub const CORDONED_BY: &str = "ringmaster.dev/cordoned-by";

/// The identity node agents write in [`CORDONED_BY`] unless told another.
pub const DEFAULT_AGENT: &str = "ringmaster-node-agent";

/// The annotation the kubelet puts on the API server's mirror of a static pod.
pub const MIRROR_POD: &str = "kubernetes.io/config.mirror";

/// How often a node patch is tried again when the node changed between read and write.
const CONFLICT_ATTEMPTS: u32 = 5;

/// A pod, by namespace and name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PodRef {
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
}

impl PodRef {
    /// The pod's namespace and name, if it has both.
    fn of(pod: &Pod) -> Option<Self> {
        Some(Self {
            namespace: pod.metadata.namespace.clone()?,
            name: pod.metadata.name.clone()?,
        })
    }
}

impl fmt::Display for PodRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// Why a drain left a pod where it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SkipReason {
    /// A DaemonSet controls it (it would come straight back; the agent is one).
    DaemonSet,
    /// The API server's mirror of a static pod (the kubelet runs it from a file).
    Mirror,
    /// It has finished (Succeeded or Failed): nothing runs.
    Finished,
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::DaemonSet => "controlled by a DaemonSet",
            Self::Mirror => "a static pod's mirror",
            Self::Finished => "finished",
        })
    }
}

/// What a drain does with one pod.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Disposition {
    /// Leave it alone.
    Skip(SkipReason),
    /// It is terminating already: wait until it is gone, do not evict it again.
    Wait,
    /// Evict it, then wait until it is gone.
    Evict,
}

/// What a drain does with `pod`, from the pod alone.
pub fn classify(pod: &Pod) -> Disposition {
    let mirror = pod
        .metadata
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key(MIRROR_POD));
    if mirror {
        return Disposition::Skip(SkipReason::Mirror);
    }
    let daemon_set = pod.metadata.owner_references.iter().flatten().any(|o| {
        o.kind == "DaemonSet" && o.controller == Some(true) && o.api_version.starts_with("apps/")
    });
    if daemon_set {
        return Disposition::Skip(SkipReason::DaemonSet);
    }
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    if matches!(phase, Some("Succeeded" | "Failed")) {
        return Disposition::Skip(SkipReason::Finished);
    }
    if pod.metadata.deletion_timestamp.is_some() {
        return Disposition::Wait;
    }
    Disposition::Evict
}

/// A node's cordon, as the node says it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeCordon {
    /// `spec.unschedulable`.
    pub unschedulable: bool,
    /// The value of [`CORDONED_BY`], if any.
    pub cordoned_by: Option<String>,
    /// The node's `resourceVersion` when it was read.
    resource_version: Option<String>,
}

impl NodeCordon {
    fn of(node: &Node) -> Self {
        Self {
            unschedulable: node
                .spec
                .as_ref()
                .and_then(|s| s.unschedulable)
                .unwrap_or(false),
            cordoned_by: node
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(CORDONED_BY).cloned()),
            resource_version: node.metadata.resource_version.clone(),
        }
    }

    /// The annotation names `agent`.
    pub fn held_by(&self, agent: &str) -> bool {
        self.cordoned_by.as_deref() == Some(agent)
    }
}

/// Whose cordon a prepared node is under.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cordon {
    /// The agent cordoned the node now.
    Placed,
    /// The agent's own cordon was there already (it restarted, or prepares again).
    Resumed,
    /// Someone else had cordoned the node; the agent did not claim it and will not
    /// uncordon it.
    Others,
}

/// What [`NodeGuard::release`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Released {
    /// It took its own cordon off (and its annotation).
    Uncordoned,
    /// Its annotation was there but someone had uncordoned the node already: it removed
    /// the annotation only.
    AnnotationRemoved,
    /// The node is cordoned, but not by this agent: left as it is.
    NotOurs,
    /// The node is not cordoned and carries no annotation of this agent.
    NothingToRelease,
}

/// A node cordoned and drained, ready for its reboot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Prepared {
    /// The node.
    pub node: String,
    /// Whose cordon it is under.
    pub cordon: Cordon,
    /// The pods evicted (and gone).
    pub evicted: Vec<PodRef>,
    /// The pods left on the node, and why.
    pub skipped: Vec<(PodRef, SkipReason)>,
}

/// Why a pod was still on the node when the drain ran out of time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StuckReason {
    /// Its eviction was refused (429: a PodDisruptionBudget would be violated), with the
    /// API server's message.
    EvictionRefused {
        /// What the API server said.
        message: String,
    },
    /// Its eviction was not tried before the time ran out.
    NotEvicted,
    /// It was evicted (or was terminating already) but has not gone yet.
    Terminating,
}

/// A pod that would not leave.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StuckPod {
    /// The pod.
    pub pod: PodRef,
    /// Why it is still there.
    pub reason: StuckReason,
}

impl fmt::Display for StuckPod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.reason {
            StuckReason::EvictionRefused { message } => {
                write!(f, "{} (eviction refused: {message})", self.pod)
            }
            StuckReason::NotEvicted => write!(f, "{} (not evicted yet)", self.pod),
            StuckReason::Terminating => write!(f, "{} (still terminating)", self.pod),
        }
    }
}

/// What the agent was doing to a node when the API server failed it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Reading it.
    Read,
    /// Cordoning it.
    Cordon,
    /// Uncordoning it.
    Uncordon,
    /// Listing its pods.
    ListPods,
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Read => "read",
            Self::Cordon => "cordon",
            Self::Uncordon => "uncordon",
            Self::ListPods => "list the pods of",
        })
    }
}

fn list(pods: &[StuckPod]) -> String {
    pods.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Why a node could not be prepared or released.
#[derive(Debug, Error)]
pub enum NodeError {
    /// The guard's client could not be built from its configuration.
    #[error("could not build the node guard's API client: {source}")]
    Client {
        /// The client's error.
        #[source]
        source: Box<kube::Error>,
    },
    /// The node does not exist (a wrong `NODE_NAME`?).
    #[error("node {node} does not exist")]
    NotFound {
        /// The node.
        node: String,
    },
    /// The API server refused or failed a request about the node.
    #[error("could not {action} node {node}: {source}")]
    Api {
        /// The node.
        node: String,
        /// What the agent was doing.
        action: Action,
        /// The client's error.
        #[source]
        source: Box<kube::Error>,
    },
    /// The node kept changing between the agent's read and its write.
    #[error("could not {action} node {node}: it changed under the agent {attempts} times in a row")]
    Conflict {
        /// The node.
        node: String,
        /// What the agent was doing.
        action: Action,
        /// How many times it tried.
        attempts: u32,
    },
    /// An eviction failed with something else than a PodDisruptionBudget's refusal.
    #[error(
        "could not evict pod {pod} from node {node} (uncordoned again: {uncordoned}): {source}"
    )]
    Evict {
        /// The node.
        node: String,
        /// The pod.
        pod: PodRef,
        /// Whether the agent took its cordon off again.
        uncordoned: bool,
        /// The client's error.
        #[source]
        source: Box<kube::Error>,
    },
    /// Listing the node's pods failed during the drain.
    #[error("could not list the pods of node {node} (uncordoned again: {uncordoned}): {source}")]
    ListPods {
        /// The node.
        node: String,
        /// Whether the agent took its cordon off again.
        uncordoned: bool,
        /// The client's error.
        #[source]
        source: Box<kube::Error>,
    },
    /// The drain did not finish within its time limit.
    #[error(
        "draining node {node} did not finish within {limit:?} (uncordoned again: {uncordoned}); pods that would not leave: {}",
        list(stuck)
    )]
    DrainTimedOut {
        /// The node.
        node: String,
        /// The time limit.
        limit: Duration,
        /// The pods still on the node, and why.
        stuck: Vec<StuckPod>,
        /// Whether the agent took its cordon off again.
        uncordoned: bool,
    },
}

/// How long a drain waits between its rounds: `first`, doubling up to `max`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pacing {
    /// The first wait.
    pub first: Duration,
    /// The longest wait.
    pub max: Duration,
}

impl Default for Pacing {
    fn default() -> Self {
        Self {
            first: Duration::from_secs(1),
            max: Duration::from_secs(10),
        }
    }
}

/// Cordons, drains and uncordons one agent's node.
#[derive(Clone)]
pub struct NodeGuard {
    client: Client,
    agent: String,
    pacing: Pacing,
}

/// What an eviction request came to.
enum Evicted {
    Accepted,
    Gone,
    Refused(String),
}

/// A failed patch: the node changed since it was read, or something else.
enum PatchFailure {
    Conflict,
    Other(kube::Error),
}

impl NodeGuard {
    /// A guard writing `agent` in [`CORDONED_BY`], with a client of its own built from
    /// `config` without kube's default retries. Use this one: a client built by
    /// `Client::try_default` retries every 429 itself, up to 15 times with a back-off of
    /// up to minutes, so a PodDisruptionBudget's refusal would hold the drain inside one
    /// eviction request (and keep every other pod waiting) instead of coming back to it.
    pub fn from_config(
        mut config: kube::Config,
        agent: impl Into<String>,
    ) -> Result<Self, NodeError> {
        config.default_retry = false;
        let client = Client::try_from(config).map_err(|source| NodeError::Client {
            source: Box::new(source),
        })?;
        Ok(Self::new(client, agent))
    }

    /// A guard writing `agent` in [`CORDONED_BY`] through `client`, which must not retry
    /// 429 answers itself (see [`NodeGuard::from_config`]). Every restart of the agent
    /// must use the same identity, or it will not recognise its own cordon.
    pub fn new(client: Client, agent: impl Into<String>) -> Self {
        Self {
            client,
            agent: agent.into(),
            pacing: Pacing::default(),
        }
    }

    /// The same guard with other waits between drain rounds.
    pub fn with_pacing(mut self, pacing: Pacing) -> Self {
        self.pacing = pacing;
        self
    }

    /// The identity it writes in [`CORDONED_BY`].
    pub fn agent(&self) -> &str {
        &self.agent
    }

    fn nodes(&self) -> Api<Node> {
        Api::all(self.client.clone())
    }

    /// The node's cordon as the API server has it now.
    pub async fn state(&self, node: &str) -> Result<NodeCordon, NodeError> {
        match self.nodes().get_opt(node).await {
            Ok(Some(n)) => Ok(NodeCordon::of(&n)),
            Ok(None) => Err(NodeError::NotFound {
                node: node.to_string(),
            }),
            Err(source) => Err(NodeError::Api {
                node: node.to_string(),
                action: Action::Read,
                source: Box::new(source),
            }),
        }
    }

    /// A merge patch of the node, on condition that it has not changed since `seen`.
    async fn patch(
        &self,
        node: &str,
        seen: &NodeCordon,
        mut body: Value,
    ) -> Result<(), PatchFailure> {
        if let Some(rv) = &seen.resource_version {
            body["metadata"]["resourceVersion"] = json!(rv);
        }
        match self
            .nodes()
            .patch(node, &PatchParams::default(), &Patch::Merge(&body))
            .await
        {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 409 => Err(PatchFailure::Conflict),
            Err(e) => Err(PatchFailure::Other(e)),
        }
    }

    /// Cordons the node and records that this agent did, unless it is cordoned already:
    /// by this agent ([`Cordon::Resumed`]) or by someone else ([`Cordon::Others`], not
    /// claimed). Idempotent.
    pub async fn cordon(&self, node: &str) -> Result<Cordon, NodeError> {
        for _ in 0..CONFLICT_ATTEMPTS {
            let seen = self.state(node).await?;
            if seen.unschedulable {
                return Ok(if seen.held_by(&self.agent) {
                    Cordon::Resumed
                } else {
                    Cordon::Others
                });
            }
            let body = json!({
                "metadata": {"annotations": {CORDONED_BY: self.agent}},
                "spec": {"unschedulable": true},
            });
            match self.patch(node, &seen, body).await {
                Ok(()) => {
                    tracing::info!(node, agent = %self.agent, "cordoned the node");
                    return Ok(Cordon::Placed);
                }
                Err(PatchFailure::Conflict) => continue,
                Err(PatchFailure::Other(source)) => {
                    return Err(NodeError::Api {
                        node: node.to_string(),
                        action: Action::Cordon,
                        source: Box::new(source),
                    });
                }
            }
        }
        Err(NodeError::Conflict {
            node: node.to_string(),
            action: Action::Cordon,
            attempts: CONFLICT_ATTEMPTS,
        })
    }

    /// Uncordons the node if, and only if, this agent's annotation is on it, and removes
    /// the annotation. A cordon of anyone else stays. Idempotent: after a restart or a
    /// reboot the annotation says the cordon is the agent's.
    pub async fn release(&self, node: &str) -> Result<Released, NodeError> {
        for _ in 0..CONFLICT_ATTEMPTS {
            let seen = self.state(node).await?;
            if !seen.held_by(&self.agent) {
                return Ok(if seen.unschedulable {
                    Released::NotOurs
                } else {
                    Released::NothingToRelease
                });
            }
            let mut body = json!({"metadata": {"annotations": {CORDONED_BY: null}}});
            if seen.unschedulable {
                body["spec"] = json!({"unschedulable": false});
            }
            match self.patch(node, &seen, body).await {
                Ok(()) if seen.unschedulable => {
                    tracing::info!(node, agent = %self.agent, "uncordoned the node");
                    return Ok(Released::Uncordoned);
                }
                Ok(()) => return Ok(Released::AnnotationRemoved),
                Err(PatchFailure::Conflict) => continue,
                Err(PatchFailure::Other(source)) => {
                    return Err(NodeError::Api {
                        node: node.to_string(),
                        action: Action::Uncordon,
                        source: Box::new(source),
                    });
                }
            }
        }
        Err(NodeError::Conflict {
            node: node.to_string(),
            action: Action::Uncordon,
            attempts: CONFLICT_ATTEMPTS,
        })
    }

    /// Cordons the node (see [`NodeGuard::cordon`]) and drains it, all within `timeout`.
    /// On any failure of the drain the cordon this agent holds is taken off again (the
    /// node will not reboot, so it goes back to work) and the error says so; the pods
    /// already evicted stay evicted. A cordon of someone else is never touched.
    pub async fn prepare(&self, node: &str, timeout: Duration) -> Result<Prepared, NodeError> {
        let deadline = Instant::now() + timeout;
        let cordon = self.cordon(node).await?;
        let mut drain = Drain::new(self, node);
        let outcome = drain.run(deadline).await;
        let failure = match outcome {
            Ok(()) => {
                tracing::info!(node, evicted = drain.evicted.len(), "drained the node");
                return Ok(Prepared {
                    node: node.to_string(),
                    cordon,
                    evicted: drain.evicted.into_iter().collect(),
                    skipped: drain.skipped.into_iter().collect(),
                });
            }
            Err(failure) => failure,
        };
        let uncordoned = self.undo(node, cordon).await;
        Err(failure.into_error(node, timeout, uncordoned))
    }

    /// Takes off the cordon this agent holds after a failed drain; whether it did.
    async fn undo(&self, node: &str, cordon: Cordon) -> bool {
        if cordon == Cordon::Others {
            return false;
        }
        match self.release(node).await {
            Ok(released) => released == Released::Uncordoned,
            Err(e) => {
                tracing::warn!(node, error = %e, "could not uncordon the node after a failed drain; the next release will");
                false
            }
        }
    }

    /// The pods bound to the node, in every namespace.
    async fn pods_on(&self, node: &str) -> Result<Vec<Pod>, kube::Error> {
        let pods: Api<Pod> = Api::all(self.client.clone());
        let params = ListParams::default().fields(&format!("spec.nodeName={node}"));
        Ok(pods.list(&params).await?.items)
    }

    /// Asks the API server to evict one pod (policy/v1 Eviction).
    async fn evict(&self, pod: &PodRef) -> Result<Evicted, kube::Error> {
        let eviction = Eviction {
            metadata: ObjectMeta {
                name: Some(pod.name.clone()),
                namespace: Some(pod.namespace.clone()),
                ..ObjectMeta::default()
            },
            delete_options: None,
        };
        let body = serde_json::to_vec(&eviction).map_err(kube::Error::SerdeError)?;
        let path = format!(
            "/api/v1/namespaces/{}/pods/{}/eviction",
            pod.namespace, pod.name
        );
        let request = Request::new(path)
            .create(&PostParams::default(), body)
            .map_err(kube::Error::BuildRequest)?;
        match self.client.request::<Status>(request).await {
            Ok(_) => Ok(Evicted::Accepted),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(Evicted::Gone),
            Err(kube::Error::Api(s)) if s.code == 429 => Ok(Evicted::Refused(s.message)),
            Err(e) => Err(e),
        }
    }
}

/// Where one pod the drain waits for stands.
#[derive(Clone, Debug)]
struct Waiting {
    uid: String,
    evicted: bool,
    refusal: Option<String>,
}

/// Why a drain stopped short.
enum DrainFailure {
    TimedOut(Vec<StuckPod>),
    List(kube::Error),
    Evict(PodRef, kube::Error),
}

impl DrainFailure {
    fn into_error(self, node: &str, limit: Duration, uncordoned: bool) -> NodeError {
        let node = node.to_string();
        match self {
            Self::TimedOut(stuck) => NodeError::DrainTimedOut {
                node,
                limit,
                stuck,
                uncordoned,
            },
            Self::List(source) => NodeError::ListPods {
                node,
                uncordoned,
                source: Box::new(source),
            },
            Self::Evict(pod, source) => NodeError::Evict {
                node,
                pod,
                uncordoned,
                source: Box::new(source),
            },
        }
    }
}

/// One drain: rounds of list, evict, wait, until no pod it waits for is left.
struct Drain<'a> {
    guard: &'a NodeGuard,
    node: &'a str,
    waiting: BTreeMap<PodRef, Waiting>,
    evicted: BTreeSet<PodRef>,
    skipped: BTreeMap<PodRef, SkipReason>,
    /// The last failure to list the node's pods, while no list has succeeded since.
    list_failure: Option<kube::Error>,
}

impl<'a> Drain<'a> {
    fn new(guard: &'a NodeGuard, node: &'a str) -> Self {
        Self {
            guard,
            node,
            waiting: BTreeMap::new(),
            evicted: BTreeSet::new(),
            skipped: BTreeMap::new(),
            list_failure: None,
        }
    }

    async fn run(&mut self, deadline: Instant) -> Result<(), DrainFailure> {
        let mut wait = self.guard.pacing.first;
        loop {
            match tokio::time::timeout_at(deadline, self.round()).await {
                Ok(Ok(true)) => return Ok(()),
                Ok(Ok(false)) => {}
                Ok(Err(failure)) => return Err(failure),
                Err(_) => return Err(self.timed_out()),
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(self.timed_out());
            }
            tokio::time::sleep(wait.min(deadline - now)).await;
            wait = (wait * 2).min(self.guard.pacing.max);
        }
    }

    /// Lists the node's pods, evicts those still to evict; whether none is left to wait for.
    async fn round(&mut self) -> Result<bool, DrainFailure> {
        let pods = match self.guard.pods_on(self.node).await {
            Ok(pods) => {
                self.list_failure = None;
                pods
            }
            // The API server is busy (priority and fairness) or briefly away: next round.
            Err(kube::Error::Api(s)) if s.code == 429 || s.code >= 500 => {
                tracing::debug!(
                    node = self.node,
                    code = s.code,
                    "listing the node's pods failed; will try again"
                );
                self.list_failure = Some(kube::Error::Api(s));
                return Ok(false);
            }
            Err(e) => return Err(DrainFailure::List(e)),
        };
        let previous = std::mem::take(&mut self.waiting);
        for pod in &pods {
            let Some(key) = PodRef::of(pod) else { continue };
            let uid = pod.metadata.uid.clone().unwrap_or_default();
            let before = previous.get(&key).filter(|w| w.uid == uid);
            let disposition = classify(pod);
            tracing::debug!(node = self.node, pod = %key, ?disposition, "drain");
            let waiting = match disposition {
                Disposition::Skip(why) => {
                    self.skipped.entry(key).or_insert(why);
                    continue;
                }
                Disposition::Wait => Waiting {
                    uid,
                    evicted: true,
                    refusal: None,
                },
                Disposition::Evict => Waiting {
                    uid,
                    evicted: before.is_some_and(|w| w.evicted),
                    refusal: before.and_then(|w| w.refusal.clone()),
                },
            };
            self.waiting.insert(key, waiting);
        }
        self.evict_waiting().await?;
        Ok(self.waiting.is_empty())
    }

    /// Evicts every pod waited for that is not evicted yet.
    async fn evict_waiting(&mut self) -> Result<(), DrainFailure> {
        let todo: Vec<PodRef> = self
            .waiting
            .iter()
            .filter(|(_, w)| !w.evicted)
            .map(|(k, _)| k.clone())
            .collect();
        for key in todo {
            let outcome = self.guard.evict(&key).await;
            match outcome.map_err(|e| DrainFailure::Evict(key.clone(), e))? {
                Evicted::Accepted => {
                    tracing::info!(node = self.node, pod = %key, "evicted");
                    self.evicted.insert(key.clone());
                    if let Some(w) = self.waiting.get_mut(&key) {
                        w.evicted = true;
                        w.refusal = None;
                    }
                }
                Evicted::Gone => {
                    self.waiting.remove(&key);
                }
                Evicted::Refused(message) => {
                    tracing::debug!(node = self.node, pod = %key, %message, "eviction refused; will try again");
                    if let Some(w) = self.waiting.get_mut(&key) {
                        w.refusal = Some(message);
                    }
                }
            }
        }
        Ok(())
    }

    /// Why the time ran out: the pods still waited for, or, when the pods could not be
    /// listed since the last round that could, the failure to list them.
    fn timed_out(&mut self) -> DrainFailure {
        match self.list_failure.take() {
            Some(e) => DrainFailure::List(e),
            None => DrainFailure::TimedOut(self.stuck()),
        }
    }

    /// The pods still waited for, and why.
    fn stuck(&self) -> Vec<StuckPod> {
        self.waiting
            .iter()
            .map(|(pod, w)| StuckPod {
                pod: pod.clone(),
                reason: match (&w.refusal, w.evicted) {
                    (_, true) => StuckReason::Terminating,
                    (Some(message), false) => StuckReason::EvictionRefused {
                        message: message.clone(),
                    },
                    (None, false) => StuckReason::NotEvicted,
                },
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(extra: Value) -> Pod {
        let mut v = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web-1", "namespace": "shop", "uid": "u1"},
            "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "i"}]},
            "status": {"phase": "Running"}
        });
        merge(&mut v, &extra);
        serde_json::from_value(v).expect("a pod")
    }

    fn merge(target: &mut Value, patch: &Value) {
        if let (Some(t), Some(p)) = (target.as_object_mut(), patch.as_object()) {
            for (k, v) in p {
                match t.get_mut(k) {
                    Some(existing) if existing.is_object() && v.is_object() => merge(existing, v),
                    _ => {
                        t.insert(k.clone(), v.clone());
                    }
                }
            }
        }
    }

    #[test]
    fn a_running_pod_is_evicted() {
        assert_eq!(classify(&pod(json!({}))), Disposition::Evict);
    }

    #[test]
    fn daemon_set_pods_stay_but_other_owners_do_not_protect_a_pod() {
        let ds = json!({"metadata": {"ownerReferences": [{"apiVersion": "apps/v1", "kind": "DaemonSet",
            "name": "fluent-bit", "uid": "d", "controller": true}]}});
        assert_eq!(classify(&pod(ds)), Disposition::Skip(SkipReason::DaemonSet));
        let rs = json!({"metadata": {"ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
            "name": "web-5d9", "uid": "r", "controller": true}]}});
        assert_eq!(classify(&pod(rs)), Disposition::Evict);
        // A DaemonSet that owns a pod without controlling it does not keep it.
        let not_controller = json!({"metadata": {"ownerReferences": [{"apiVersion": "apps/v1",
            "kind": "DaemonSet", "name": "x", "uid": "d"}]}});
        assert_eq!(classify(&pod(not_controller)), Disposition::Evict);
    }

    #[test]
    fn mirror_pods_stay() {
        let mirror = json!({"metadata": {"annotations": {MIRROR_POD: "abc"}}});
        assert_eq!(
            classify(&pod(mirror)),
            Disposition::Skip(SkipReason::Mirror)
        );
    }

    #[test]
    fn finished_pods_stay_and_terminating_ones_are_waited_for() {
        for phase in ["Succeeded", "Failed"] {
            let p = pod(json!({"status": {"phase": phase}}));
            assert_eq!(
                classify(&p),
                Disposition::Skip(SkipReason::Finished),
                "{phase}"
            );
        }
        let terminating = json!({"metadata": {"deletionTimestamp": "2026-11-01T10:00:00Z"}});
        assert_eq!(classify(&pod(terminating)), Disposition::Wait);
    }

    #[test]
    fn a_timed_out_drain_names_its_pods_and_why() {
        let e = NodeError::DrainTimedOut {
            node: "n1".into(),
            limit: Duration::from_secs(60),
            stuck: vec![
                StuckPod {
                    pod: PodRef {
                        namespace: "shop".into(),
                        name: "db-0".into(),
                    },
                    reason: StuckReason::EvictionRefused {
                        message:
                            "Cannot evict pod as it would violate the pod's disruption budget."
                                .into(),
                    },
                },
                StuckPod {
                    pod: PodRef {
                        namespace: "shop".into(),
                        name: "web-1".into(),
                    },
                    reason: StuckReason::Terminating,
                },
            ],
            uncordoned: true,
        };
        let text = e.to_string();
        assert!(
            text.contains("shop/db-0 (eviction refused: Cannot evict pod"),
            "{text}"
        );
        assert!(text.contains("shop/web-1 (still terminating)"), "{text}");
        assert!(text.contains("uncordoned again: true"), "{text}");
    }
}
