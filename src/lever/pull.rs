//! The levers people pull from a terminal (`ringmaster approve|reject|promote|pause|
//! resume|abort|freeze|except`, the same under `kubectl ringmaster`): each one a small
//! object of its own or a patch of a rollout's spec, never a field Git keeps.
//!
//! Who pulls a lever is asked of the API server itself (a SelfSubjectReview) and written
//! where the chart's admission policies check it against the request's user: the
//! `ringmaster.dev/created-by` annotation of a new PatchApproval, PatchFreeze or
//! PatchException, and the `ringmaster.dev/lever-by` annotation in the same patch as a
//! rollout's lever.

use jiff::Timestamp;
use k8s_openapi::api::authentication::v1::SelfSubjectReview;
use kube::api::{Api, Patch as KubePatch, PatchParams, PostParams};
use kube::{Client, Resource};
use serde::Serialize;
use serde_json::json;

use crate::api::{
    CREATED_BY, Decision, DeploymentRing, Duration, ExceptionDevices, LEVER_BY, OnExpiry,
    PatchApproval, PatchApprovalSpec, PatchException, PatchExceptionSpec, PatchFreeze,
    PatchFreezeSpec, PatchPolicy, PatchRollout,
};
use crate::report::cluster::config;

/// How a lever failed; [`PullError::exit_code`] is what the command exits with.
#[derive(Debug, thiserror::Error)]
pub enum PullError {
    /// The kubeconfig could not be read or used.
    #[error("kubeconfig: {0}")]
    Config(String),
    /// The arguments do not make a lever.
    #[error("{0}")]
    Usage(String),
    /// An object the lever needs does not exist.
    #[error("{kind} {namespace}/{name} not found")]
    NotFound {
        /// Its kind.
        kind: &'static str,
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
    },
    /// The API server refused the request (forbidden, invalid, admission policy).
    #[error("{what}: the API server refused: {message}")]
    Refused {
        /// What was being done.
        what: String,
        /// The server's message.
        message: String,
    },
    /// The API server could not be reached, or answered with an error of its own.
    #[error("{what}: {source}")]
    Kube {
        /// What was being done.
        what: String,
        /// The client's error.
        #[source]
        source: Box<kube::Error>,
    },
}

impl PullError {
    /// 1 when the cluster said no (not found, forbidden, invalid); 2 when the command
    /// could not be carried out at all (usage, kubeconfig, the API server unreachable).
    pub fn exit_code(&self) -> u8 {
        match self {
            PullError::NotFound { .. } | PullError::Refused { .. } => 1,
            PullError::Config(_) | PullError::Usage(_) | PullError::Kube { .. } => 2,
        }
    }

    /// A client error as the levers classify it: the server's refusal (a 4xx other than
    /// 404) is the cluster saying no; the rest is not reaching it.
    pub(crate) fn kube(what: impl Into<String>, e: kube::Error) -> Self {
        let what = what.into();
        match e {
            kube::Error::Api(s) if (400..500).contains(&s.code) && s.code != 404 => {
                PullError::Refused {
                    what,
                    message: s.message.clone(),
                }
            }
            e => PullError::Kube {
                what,
                source: Box::new(e),
            },
        }
    }
}

/// Where the levers act: kubectl's own flags.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct Target {
    /// The tenant (namespace); default: the kubeconfig context's namespace, else `default`.
    #[arg(short = 'n', long, global = true)]
    pub namespace: Option<String>,
    /// The kubeconfig context to use.
    #[arg(long, global = true)]
    pub context: Option<String>,
    /// The kubeconfig file (default: $KUBECONFIG, else ~/.kube/config).
    #[arg(long, global = true, value_name = "FILE")]
    pub kubeconfig: Option<std::path::PathBuf>,
}

/// How to print the result.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    /// One line, as kubectl says it.
    #[default]
    Text,
    /// The object, as JSON.
    Json,
    /// The object, as YAML.
    Yaml,
}

/// A client for the target, and the namespace it names.
pub async fn connect(target: &Target) -> Result<(Client, String), PullError> {
    let config = config(target.kubeconfig.as_deref(), target.context.as_deref())
        .await
        .map_err(|e| PullError::Config(e.to_string()))?;
    let ns = target
        .namespace
        .clone()
        .unwrap_or_else(|| config.default_namespace.clone());
    let client = Client::try_from(config).map_err(|e| PullError::Config(e.to_string()))?;
    Ok((client, ns))
}

/// Who the API server says the caller is.
pub async fn whoami(client: &Client) -> Result<String, PullError> {
    let api: Api<SelfSubjectReview> = Api::all(client.clone());
    let review = api
        .create(&PostParams::default(), &SelfSubjectReview::default())
        .await
        .map_err(|e| PullError::kube("asking the API server who you are", e))?;
    review
        .status
        .and_then(|s| s.user_info)
        .and_then(|u| u.username)
        .filter(|u| !u.is_empty())
        .ok_or_else(|| PullError::Refused {
            what: "asking the API server who you are".into(),
            message: "the SelfSubjectReview names no user".into(),
        })
}

/// What a lever did, to print.
#[derive(Debug)]
pub struct Pulled {
    /// `kind.group/name`, as kubectl names objects.
    pub reference: String,
    /// What happened, e.g. `created`, `paused`, `unchanged`.
    pub verb: String,
    /// The object after the lever, to print with `-o json|yaml`.
    pub object: serde_json::Value,
}

impl Pulled {
    fn of<K: Resource<DynamicType = ()> + Serialize>(object: &K, verb: impl Into<String>) -> Self {
        let name = object.meta().name.clone().unwrap_or_default();
        Pulled {
            reference: format!("{}.{}/{name}", K::kind(&()).to_lowercase(), K::group(&())),
            verb: verb.into(),
            object: without_managed_fields(serde_json::to_value(object).unwrap_or_default()),
        }
    }

    /// The result as `output` asks.
    pub fn render(&self, output: Output) -> String {
        match output {
            Output::Text => format!("{} {}\n", self.reference, self.verb),
            Output::Json => {
                let mut s = serde_json::to_string_pretty(&self.object).unwrap_or_default();
                s.push('\n');
                s
            }
            Output::Yaml => serde_yaml::to_string(&self.object).unwrap_or_default(),
        }
    }
}

/// The object as kubectl prints it: without `metadata.managedFields`.
fn without_managed_fields(mut object: serde_json::Value) -> serde_json::Value {
    if let Some(meta) = object.get_mut("metadata").and_then(|m| m.as_object_mut()) {
        meta.remove("managedFields");
    }
    object
}

/// The field manager the levers write as.
const FIELD_MANAGER: &str = "kubectl-ringmaster";

/// `approve` / `reject`: a PatchApproval for one patch under one policy. Making the same
/// decision twice changes nothing.
pub async fn decide(
    client: &Client,
    ns: &str,
    policy: &str,
    patch: &str,
    decision: Decision,
    reason: &str,
) -> Result<Pulled, PullError> {
    let policies: Api<PatchPolicy> = Api::namespaced(client.clone(), ns);
    if policies
        .get_opt(policy)
        .await
        .map_err(|e| PullError::kube(format!("reading PatchPolicy {ns}/{policy}"), e))?
        .is_none()
    {
        return Err(not_found("PatchPolicy", ns, policy));
    }
    let user = whoami(client).await?;
    let word = match decision {
        Decision::Approve => "approve",
        Decision::Reject => "reject",
    };
    let name = format!(
        "{policy}.{}.{word}",
        crate::engine::tenant::name_part(patch)
    );
    let mut object = PatchApproval::new(
        &name,
        PatchApprovalSpec {
            policy: policy.to_string(),
            patch: patch.to_string(),
            decision,
            reason: reason.to_string(),
        },
    );
    object.metadata.annotations = Some([(CREATED_BY.to_string(), user)].into());
    create(client, ns, object, &format!("{word}d")).await
}

/// `freeze`: a PatchFreeze on the tenant (no rings) or on some rings, until `until`.
pub async fn freeze(
    client: &Client,
    ns: &str,
    spec: FreezeArgs,
    now: Timestamp,
) -> Result<Pulled, PullError> {
    // Bad arguments are said before anything is sent.
    let until = end(spec.until, spec.duration, now, "--until")?;
    if until <= spec.from.unwrap_or(now) {
        return Err(PullError::Usage(format!(
            "--until {until} is not after the freeze begins"
        )));
    }
    let rings: Api<DeploymentRing> = Api::namespaced(client.clone(), ns);
    for ring in &spec.rings {
        let found = rings
            .get_opt(ring)
            .await
            .map_err(|e| PullError::kube(format!("reading DeploymentRing {ns}/{ring}"), e))?;
        if found.is_none() {
            return Err(not_found("DeploymentRing", ns, ring));
        }
    }
    let user = whoami(client).await?;
    let mut object = PatchFreeze::new(
        "",
        PatchFreezeSpec {
            rings: spec.rings,
            from: spec.from,
            until,
            reason: spec.reason,
            owner: spec.owner.unwrap_or_else(|| user.clone()),
        },
    );
    object.metadata.name = None;
    object.metadata.generate_name = Some("freeze-".into());
    object.metadata.annotations = Some([(CREATED_BY.to_string(), user)].into());
    create(client, ns, object, "created").await
}

/// What `freeze` is given.
#[derive(Clone, Debug, clap::Args)]
pub struct FreezeArgs {
    /// Freeze only this ring (repeat for several); default: every ring of the tenant.
    #[arg(long = "ring", value_name = "RING")]
    pub rings: Vec<String>,
    /// When it lifts itself (RFC 3339).
    #[arg(long, value_name = "TIME", conflicts_with = "duration")]
    pub until: Option<Timestamp>,
    /// How long it lasts from now (`90m`, `12h`, `3d`, `2w`).
    #[arg(long = "for", value_name = "DURATION")]
    pub duration: Option<Duration>,
    /// When it begins (RFC 3339; default: now).
    #[arg(long, value_name = "TIME")]
    pub from: Option<Timestamp>,
    /// Why (incident, holiday, DR test, …).
    #[arg(long)]
    pub reason: String,
    /// Who is accountable for it (default: you).
    #[arg(long)]
    pub owner: Option<String>,
}

/// What `except` is given.
#[derive(Clone, Debug, clap::Args)]
pub struct ExceptArgs {
    /// The exception's name.
    pub name: String,
    /// A patch id the devices may skip (repeat for several).
    #[arg(long = "patch", value_name = "ID", required = true)]
    pub patches: Vec<String>,
    /// A device it covers (repeat for several).
    #[arg(long = "device", value_name = "NAME")]
    pub devices: Vec<String>,
    /// Devices it covers by label: `key=value[,key=value…]`.
    #[arg(long, value_name = "LABELS")]
    pub selector: Option<String>,
    /// Why the devices may skip the patches.
    #[arg(long)]
    pub reason: String,
    /// Who is accountable for it (default: you).
    #[arg(long)]
    pub owner: Option<String>,
    /// The change or risk ticket.
    #[arg(long)]
    pub ticket: Option<String>,
    /// A compensating control (repeat for several).
    #[arg(long = "control", value_name = "TEXT")]
    pub controls: Vec<String>,
    /// When it expires (RFC 3339).
    #[arg(long, value_name = "TIME", conflicts_with = "duration")]
    pub expires: Option<Timestamp>,
    /// How long it lasts from now (`30d`, `2w`, …).
    #[arg(long = "for", value_name = "DURATION")]
    pub duration: Option<Duration>,
    /// At expiry: `Enforce` (release the devices) or `Escalate` (keep them held back while
    /// their SLA clocks run).
    #[arg(long, value_name = "Enforce|Escalate")]
    pub on_expiry: Option<String>,
}

/// `except`: a PatchException from flags, recorded as made by the caller.
pub async fn except(
    client: &Client,
    ns: &str,
    args: ExceptArgs,
    now: Timestamp,
) -> Result<Pulled, PullError> {
    let expires_at = end(args.expires, args.duration, now, "--expires")?;
    let selector = args.selector.as_deref().map(labels).transpose()?;
    if args.devices.is_empty() && selector.is_none() {
        return Err(PullError::Usage(
            "give the devices: --device NAME (repeatable) and/or --selector key=value".into(),
        ));
    }
    let on_expiry = match args.on_expiry.as_deref() {
        None | Some("Enforce") => OnExpiry::Enforce,
        Some("Escalate") => OnExpiry::Escalate,
        Some(other) => {
            return Err(PullError::Usage(format!(
                "--on-expiry {other}: Enforce or Escalate"
            )));
        }
    };
    let user = whoami(client).await?;
    let mut object = PatchException::new(
        &args.name,
        PatchExceptionSpec {
            patches: args.patches,
            devices: ExceptionDevices {
                names: args.devices,
                selector,
            },
            reason: args.reason,
            owner: args.owner.unwrap_or_else(|| user.clone()),
            approved_by: None,
            expires_at,
            compensating_controls: args.controls,
            ticket: args.ticket,
            on_expiry,
        },
    );
    object.metadata.annotations = Some([(CREATED_BY.to_string(), user)].into());
    create(client, ns, object, "created").await
}

/// When something given `flag TIME` or `--for DURATION` ends: exactly one of them (a
/// duration counts from the current whole second).
fn end(
    at: Option<Timestamp>,
    duration: Option<Duration>,
    now: Timestamp,
    flag: &str,
) -> Result<Timestamp, PullError> {
    match (at, duration) {
        (Some(t), None) => Ok(t),
        // From the whole second: an end people read and type again.
        (None, Some(d)) => Timestamp::from_second(now.as_second())
            .and_then(|t| t.checked_add(d.span()))
            .map_err(|e| PullError::Usage(format!("--for {d}: {e}"))),
        _ => Err(PullError::Usage(format!(
            "give {flag} TIME or --for DURATION"
        ))),
    }
}

/// `key=value,…` as a label selector.
fn labels(
    text: &str,
) -> Result<k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector, PullError> {
    let mut match_labels = std::collections::BTreeMap::new();
    for pair in text.split(',').filter(|p| !p.trim().is_empty()) {
        let Some((k, v)) = pair.split_once('=') else {
            return Err(PullError::Usage(format!(
                "--selector {text}: {pair} is not key=value"
            )));
        };
        match_labels.insert(k.trim().to_string(), v.trim().to_string());
    }
    if match_labels.is_empty() {
        return Err(PullError::Usage(format!("--selector {text}: no labels")));
    }
    Ok(
        k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector {
            match_labels: Some(match_labels),
            match_expressions: None,
        },
    )
}

/// A rollout lever: what to change in its spec.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RolloutLever {
    /// Pause the rollout, or one ring.
    Pause(Option<String>),
    /// Resume the rollout, or one ring.
    Resume(Option<String>),
    /// Promote a ring past its manual gate or its halt (default: the current ring).
    Promote(Option<String>),
    /// Abort the rollout for good.
    Abort,
}

/// Pulls a rollout lever: one merge patch of the spec and the `lever-by` annotation,
/// guarded by the resourceVersion it was decided on (retried when someone else wrote
/// the rollout in between). A lever already in place changes nothing.
pub async fn rollout(
    client: &Client,
    ns: &str,
    name: &str,
    lever: &RolloutLever,
) -> Result<Pulled, PullError> {
    let api: Api<PatchRollout> = Api::namespaced(client.clone(), ns);
    let user = whoami(client).await?;
    for _ in 0..5 {
        let current = api
            .get_opt(name)
            .await
            .map_err(|e| PullError::kube(format!("reading PatchRollout {ns}/{name}"), e))?
            .ok_or_else(|| not_found("PatchRollout", ns, name))?;
        let (spec, verb) = changed_spec(&current, lever)?;
        let Some(spec) = spec else {
            return Ok(Pulled::of(&current, format!("{verb} (unchanged)")));
        };
        let body = json!({
            "metadata": {
                "resourceVersion": current.metadata.resource_version,
                "annotations": {LEVER_BY: user},
            },
            "spec": spec,
        });
        match api
            .patch(
                name,
                &PatchParams {
                    field_manager: Some(FIELD_MANAGER.into()),
                    ..PatchParams::default()
                },
                &KubePatch::Merge(&body),
            )
            .await
        {
            Ok(after) => return Ok(Pulled::of(&after, verb)),
            Err(kube::Error::Api(s)) if s.code == 409 => continue,
            Err(e) => {
                return Err(PullError::kube(
                    format!("patching PatchRollout {ns}/{name}"),
                    e,
                ));
            }
        }
    }
    Err(PullError::Refused {
        what: format!("patching PatchRollout {ns}/{name}"),
        message: "it kept changing under the lever (five conflicts); try again".into(),
    })
}

/// The spec fields the lever sets (None: already so), and what to say it did.
fn changed_spec(
    r: &PatchRollout,
    lever: &RolloutLever,
) -> Result<(Option<serde_json::Value>, String), PullError> {
    let spec = &r.spec;
    let rings: Vec<&str> = r
        .status
        .as_ref()
        .map(|s| s.rings.iter().map(|x| x.name.as_str()).collect())
        .unwrap_or_default();
    let known = |ring: &str| {
        if rings.is_empty() || rings.contains(&ring) {
            Ok(())
        } else {
            Err(PullError::Usage(format!(
                "PatchRollout {} has no ring {ring} (its rings: {})",
                r.metadata.name.as_deref().unwrap_or_default(),
                rings.join(", ")
            )))
        }
    };
    let with = |list: &[String], ring: &str, add: bool| -> Option<Vec<String>> {
        let has = list.iter().any(|x| x == ring);
        match (add, has) {
            (true, false) => Some(list.iter().cloned().chain([ring.to_string()]).collect()),
            (false, true) => Some(list.iter().filter(|x| *x != ring).cloned().collect()),
            _ => None,
        }
    };
    Ok(match lever {
        RolloutLever::Pause(None) => (
            (!spec.paused).then(|| json!({"paused": true})),
            "paused".into(),
        ),
        RolloutLever::Resume(None) => (
            spec.paused.then(|| json!({"paused": false})),
            "resumed".into(),
        ),
        RolloutLever::Pause(Some(ring)) => {
            known(ring)?;
            (
                with(&spec.paused_rings, ring, true).map(|l| json!({"pausedRings": l})),
                format!("ring {ring} paused"),
            )
        }
        RolloutLever::Resume(Some(ring)) => {
            known(ring)?;
            (
                with(&spec.paused_rings, ring, false).map(|l| json!({"pausedRings": l})),
                format!("ring {ring} resumed"),
            )
        }
        RolloutLever::Promote(ring) => {
            let ring = match ring {
                Some(r) => r.clone(),
                None => r
                    .status
                    .as_ref()
                    .and_then(|s| s.current_ring.clone())
                    .ok_or_else(|| {
                        PullError::Usage("the rollout has no current ring: give --ring".into())
                    })?,
            };
            known(&ring)?;
            (
                with(&spec.promote, &ring, true).map(|l| json!({"promote": l})),
                format!("ring {ring} promoted"),
            )
        }
        RolloutLever::Abort => (
            (!spec.abort).then(|| json!({"abort": true})),
            "aborted".into(),
        ),
    })
}

/// Creates a lever object; one that exists already with the same spec changes nothing.
async fn create<K>(client: &Client, ns: &str, object: K, verb: &str) -> Result<Pulled, PullError>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + std::fmt::Debug
        + Serialize
        + serde::de::DeserializeOwned,
{
    let api: Api<K> = Api::namespaced(client.clone(), ns);
    let kind = K::kind(&());
    let name = object.meta().name.clone().unwrap_or_default();
    let what = format!("creating {kind} {ns}/{name}");
    let params = PostParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..PostParams::default()
    };
    match api.create(&params, &object).await {
        Ok(made) => Ok(Pulled::of(&made, verb)),
        Err(kube::Error::Api(s)) if s.code == 409 && !name.is_empty() => {
            let existing = api
                .get(&name)
                .await
                .map_err(|e| PullError::kube(what.clone(), e))?;
            Ok(Pulled::of(&existing, "unchanged (it exists)"))
        }
        Err(e) => Err(PullError::kube(what, e)),
    }
}

fn not_found(kind: &'static str, ns: &str, name: &str) -> PullError {
    PullError::NotFound {
        kind,
        namespace: ns.to_string(),
        name: name.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::PatchRolloutSpec;

    #[test]
    fn patch_ids_become_object_names() {
        use crate::engine::tenant::name_part;
        assert_eq!(name_part("KB5036893"), "kb5036893");
        assert_eq!(name_part("ALSA-2024:1234"), "alsa-2024-1234");
        assert_eq!(name_part("USN-6890-1"), "usn-6890-1");
    }

    fn rollout_with(paused_rings: &[&str], promote: &[&str]) -> PatchRollout {
        PatchRollout::new(
            "ws.kb1",
            PatchRolloutSpec {
                policy: "ws".into(),
                patch: "KB1".into(),
                paused: false,
                paused_rings: paused_rings.iter().map(|s| s.to_string()).collect(),
                promote: promote.iter().map(|s| s.to_string()).collect(),
                abort: false,
            },
        )
    }

    #[test]
    fn a_lever_already_in_place_changes_nothing_and_lists_keep_the_others() {
        let r = rollout_with(&["pilot"], &[]);
        let (spec, _) = changed_spec(&r, &RolloutLever::Pause(Some("pilot".into()))).unwrap();
        assert_eq!(spec, None);
        let (spec, verb) = changed_spec(&r, &RolloutLever::Pause(Some("broad".into()))).unwrap();
        assert_eq!(spec, Some(json!({"pausedRings": ["pilot", "broad"]})));
        assert_eq!(verb, "ring broad paused");
        let (spec, _) = changed_spec(&r, &RolloutLever::Resume(Some("pilot".into()))).unwrap();
        assert_eq!(spec, Some(json!({"pausedRings": []})));
        let (spec, _) = changed_spec(&r, &RolloutLever::Resume(None)).unwrap();
        assert_eq!(spec, None, "not paused as a whole");
        assert!(matches!(
            changed_spec(&r, &RolloutLever::Promote(None)),
            Err(PullError::Usage(_))
        ));
        let (spec, _) = changed_spec(&r, &RolloutLever::Promote(Some("it".into()))).unwrap();
        assert_eq!(spec, Some(json!({"promote": ["it"]})));
    }

    #[test]
    fn selectors_are_key_value_pairs() {
        let s = labels("site=paris, role=pos").unwrap();
        assert_eq!(s.match_labels.unwrap().len(), 2);
        assert!(matches!(labels("site"), Err(PullError::Usage(_))));
    }
}
