//! Enrollment's requests: each object read first, then created when missing, patched
//! when it differs, and left alone when it is as wanted (so a second enrollment writes
//! nothing); the catalog access checked by a SubjectAccessReview; the TokenRequest.

use std::fmt::Debug;
use std::path::Path;

use jiff::Timestamp;
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tracing::{debug, info};

use super::names::service_account_user;
use super::token::TokenClaims;
use super::{Change, Enrolled, Enrollment, Error, FIELD_MANAGER, KubeconfigProblem, Step};
use super::{kubeconfig, objects};
use crate::api::{Duration, ManagedDevice};

/// The shortest token the TokenRequest API issues.
pub const MIN_TOKEN_TTL: Duration = Duration::from_secs(600);

fn post_params() -> PostParams {
    PostParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..PostParams::default()
    }
}

fn patch_params() -> PatchParams {
    PatchParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..PatchParams::default()
    }
}

/// `Kind namespace/name` or `Kind name`, for messages.
fn describe<K: Resource<DynamicType = ()>>(obj: &K) -> String {
    match obj.meta().namespace.as_deref() {
        Some(ns) => format!("{} {ns}/{}", K::kind(&()), obj.name_any()),
        None => format!("{} {}", K::kind(&()), obj.name_any()),
    }
}

/// Brings one object in line with `want`: created when missing, patched (a JSON merge
/// patch of what `fix` says differs) when it differs, untouched otherwise.
async fn ensure<K, F>(api: &Api<K>, want: &K, fix: F) -> Result<Step, Error>
where
    K: Resource<DynamicType = ()> + Clone + Serialize + DeserializeOwned + Debug,
    F: Fn(&K) -> Result<Option<Value>, Error>,
{
    let what = describe(want);
    let name = want.name_any();
    let existing = api
        .get_opt(&name)
        .await
        .map_err(|e| Error::kube(format!("reading {what}"), e))?;
    let change = match existing {
        None => match api.create(&post_params(), want).await {
            Ok(_) => Change::Created,
            // Created meanwhile (another enrollment): bring that one in line.
            Err(kube::Error::Api(s)) if s.code == 409 => {
                let now = api
                    .get(&name)
                    .await
                    .map_err(|e| Error::kube(format!("reading {what}"), e))?;
                update(api, &name, &what, fix(&now)?).await?
            }
            Err(e) => return Err(Error::kube(format!("creating {what}"), e)),
        },
        Some(have) => update(api, &name, &what, fix(&have)?).await?,
    };
    debug!(object = %what, ?change, "enrollment");
    Ok(Step {
        object: what,
        change,
    })
}

async fn update<K>(
    api: &Api<K>,
    name: &str,
    what: &str,
    patch: Option<Value>,
) -> Result<Change, Error>
where
    K: Resource<DynamicType = ()> + Clone + Serialize + DeserializeOwned + Debug,
{
    let Some(patch) = patch else {
        return Ok(Change::Unchanged);
    };
    api.patch(name, &patch_params(), &Patch::Merge(&patch))
        .await
        .map_err(|e| Error::kube(format!("updating {what}"), e))?;
    Ok(Change::Updated)
}

/// A binding whose role reference differs cannot be patched (it is immutable).
fn binding_conflict(what: String, has: &str) -> Error {
    Error::RoleRefConflict {
        binding: what,
        has: has.to_string(),
    }
}

async fn ensure_role_binding(client: &Client, want: &RoleBinding) -> Result<Step, Error> {
    let ns = want.metadata.namespace.as_deref().unwrap_or_default();
    let api: Api<RoleBinding> = Api::namespaced(client.clone(), ns);
    ensure(&api, want, |have: &RoleBinding| {
        if !objects::same_role_ref(&have.role_ref, &want.role_ref) {
            return Err(binding_conflict(describe(want), &have.role_ref.name));
        }
        Ok(objects::subjects_patch(
            have.metadata.labels.as_ref(),
            have.subjects.as_ref(),
            want.metadata.labels.as_ref(),
            want.subjects.as_ref(),
        ))
    })
    .await
}

async fn ensure_role(client: &Client, want: &Role) -> Result<Step, Error> {
    let ns = want.metadata.namespace.as_deref().unwrap_or_default();
    let api: Api<Role> = Api::namespaced(client.clone(), ns);
    ensure(&api, want, |have: &Role| {
        Ok(objects::role_patch(have, want))
    })
    .await
}

/// The device's check-in Lease, created when missing so that the agent needs no right to
/// create Leases. One that exists is left as it is, whoever holds it: the agent renews it
/// (a 409 because it was created meanwhile is the same).
async fn ensure_check_in(client: &Client, e: &Enrollment) -> Result<Step, Error> {
    let leases: Api<Lease> = Api::namespaced(client.clone(), &e.namespace);
    ensure(&leases, &objects::check_in_lease(e), |_| Ok(None)).await
}

/// The device's namespace must exist: enrollment creates devices, not tenants.
async fn check_tenant(client: &Client, e: &Enrollment) -> Result<(), Error> {
    let api: Api<Namespace> = Api::all(client.clone());
    match api.get_opt(&e.namespace).await {
        Ok(Some(_)) => Ok(()),
        Ok(None) => Err(Error::NamespaceMissing {
            namespace: e.namespace.clone(),
        }),
        Err(err) => Err(Error::kube(
            format!("reading Namespace {}", e.namespace),
            err,
        )),
    }
}

/// Whether the agents of the enrollment's namespace can read the Patch catalog already
/// (the chart's `agents.rbac.create`, or an earlier enrollment): a SubjectAccessReview
/// for get, list and watch on patches as the agent. An enroller who may not review
/// access gets `false`, and the shared ClusterRole and binding are ensured instead.
async fn catalog_readable(client: &Client, e: &Enrollment) -> Result<bool, Error> {
    let api: Api<SubjectAccessReview> = Api::all(client.clone());
    for verb in ["get", "list", "watch"] {
        let review = SubjectAccessReview {
            spec: SubjectAccessReviewSpec {
                user: Some(e.agent_username()),
                groups: Some(vec![
                    "system:serviceaccounts".into(),
                    super::names::service_accounts_group(&e.agents_namespace),
                    "system:authenticated".into(),
                ]),
                resource_attributes: Some(ResourceAttributes {
                    group: Some("patching.ringmaster.dev".into()),
                    resource: Some("patches".into()),
                    verb: Some(verb.into()),
                    ..ResourceAttributes::default()
                }),
                ..SubjectAccessReviewSpec::default()
            },
            ..SubjectAccessReview::default()
        };
        match api.create(&PostParams::default(), &review).await {
            Ok(r) if r.status.as_ref().is_some_and(|s| s.allowed) => {}
            Ok(_) => return Ok(false),
            Err(kube::Error::Api(s)) if s.code == 403 => return Ok(false),
            Err(err) => return Err(Error::kube("reviewing the agents' catalog access", err)),
        }
    }
    Ok(true)
}

/// The shared ClusterRole reading the catalog and its binding to the agents' group,
/// unless the agents can read the catalog already.
async fn ensure_catalog_access(client: &Client, e: &Enrollment) -> Result<Vec<Step>, Error> {
    if catalog_readable(client, e).await? {
        return Ok(vec![Step {
            object: format!(
                "Patch catalog read access for {}",
                super::names::service_accounts_group(&e.agents_namespace)
            ),
            change: Change::Granted,
        }]);
    }
    let want = objects::catalog_cluster_role();
    let roles: Api<ClusterRole> = Api::all(client.clone());
    let role = ensure(&roles, &want, |have: &ClusterRole| {
        Ok(objects::cluster_role_patch(have, &want))
    })
    .await?;
    let want = objects::catalog_binding(&e.agents_namespace);
    let bindings: Api<ClusterRoleBinding> = Api::all(client.clone());
    let binding = ensure(&bindings, &want, |have: &ClusterRoleBinding| {
        if !objects::same_role_ref(&have.role_ref, &want.role_ref) {
            return Err(binding_conflict(describe(&want), &have.role_ref.name));
        }
        Ok(objects::subjects_patch(
            have.metadata.labels.as_ref(),
            have.subjects.as_ref(),
            want.metadata.labels.as_ref(),
            want.subjects.as_ref(),
        ))
    })
    .await?;
    Ok(vec![role, binding])
}

/// The identity objects: the agents' namespace, the ServiceAccount, the device, its
/// check-in Lease, the Roles and bindings, and the catalog access, in that order.
async fn ensure_objects(client: &Client, e: &Enrollment) -> Result<Vec<Step>, Error> {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ns = objects::agents_namespace(e);
    let mut steps = vec![ensure(&namespaces, &ns, |_| Ok(None)).await?];
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), &e.agents_namespace);
    let sa = objects::service_account(e);
    steps.push(
        ensure(&accounts, &sa, |have: &ServiceAccount| {
            Ok(objects::service_account_patch(have, &sa))
        })
        .await?,
    );
    let devices: Api<ManagedDevice> = Api::namespaced(client.clone(), &e.namespace);
    let device = objects::device(e);
    steps.push(
        ensure(&devices, &device, |have: &ManagedDevice| {
            Ok(objects::device_patch(have, &device))
        })
        .await?,
    );
    steps.push(ensure_check_in(client, e).await?);
    steps.push(ensure_role(client, &objects::device_role(e)).await?);
    steps.push(ensure_role_binding(client, &objects::device_binding(e)).await?);
    steps.push(ensure_role(client, &objects::token_role(e)).await?);
    steps.push(ensure_role_binding(client, &objects::token_binding(e)).await?);
    steps.extend(ensure_catalog_access(client, e).await?);
    Ok(steps)
}

/// A token for ServiceAccount `name` in `namespace`, valid for `ttl` (the API server
/// may shorten it: the expiry returned is the one it granted).
pub async fn request_token(
    client: &Client,
    namespace: &str,
    name: &str,
    ttl: Duration,
) -> Result<(String, Timestamp), Error> {
    if ttl < MIN_TOKEN_TTL {
        return Err(Error::TokenTtl { ttl });
    }
    let api: Api<ServiceAccount> = Api::namespaced(client.clone(), namespace);
    let request = TokenRequest {
        spec: TokenRequestSpec {
            audiences: Vec::new(),
            expiration_seconds: Some(ttl.as_secs()),
            bound_object_ref: None,
        },
        ..TokenRequest::default()
    };
    let what = format!("requesting a token for ServiceAccount {namespace}/{name}");
    let granted = api
        .create_token_request(name, &PostParams::default(), &request)
        .await
        .map_err(|e| Error::kube(what, e))?;
    match granted.status {
        Some(s) if !s.token.is_empty() => Ok((s.token, s.expiration_timestamp.0)),
        _ => Err(Error::NoToken {
            service_account: format!("{namespace}/{name}"),
        }),
    }
}

/// Enrolls a device (see the [module documentation](super)): ensures every object, then
/// requests the agent's first token. Run as an administrator.
pub async fn enroll(client: &Client, e: &Enrollment) -> Result<Enrolled, Error> {
    e.check()?;
    check_tenant(client, e).await?;
    let steps = ensure_objects(client, e).await?;
    let sa = e.service_account();
    let (token, expires_at) = request_token(client, &e.agents_namespace, &sa, e.token_ttl).await?;
    info!(device = %e.name, namespace = %e.namespace, service_account = %sa, %expires_at, "enrolled");
    Ok(Enrolled {
        steps,
        service_account: sa,
        token,
        expires_at,
    })
}

/// Renews the agent's token: a TokenRequest for the ServiceAccount named by the current
/// token's `sub` claim (`system:serviceaccount:<namespace>:<name>`), as that
/// ServiceAccount (`client` is the agent's own), then the kubeconfig at `path` rewritten
/// with the new token, atomically and with mode 0600. Returns when the new token
/// expires. `client` keeps the old token: build a new one from the file afterwards.
pub async fn renew_token(client: &Client, path: &Path, ttl: Duration) -> Result<Timestamp, Error> {
    let mut doc = kubeconfig::read(path)?;
    let in_file = |problem| Error::Kubeconfig {
        path: path.to_path_buf(),
        problem,
    };
    let token = kubeconfig::current_token(&doc)
        .map_err(in_file)?
        .ok_or_else(|| in_file(KubeconfigProblem::NoToken))?;
    let claims = TokenClaims::from_token(&token)
        .map_err(|e| in_file(KubeconfigProblem::Claims(e)))?
        .ok_or_else(|| in_file(KubeconfigProblem::NotAServiceAccountToken))?;
    let (ns, name) = claims
        .service_account()
        .ok_or_else(|| in_file(KubeconfigProblem::NotAServiceAccountToken))?;
    let (fresh, expires_at) = request_token(client, ns, name, ttl).await?;
    kubeconfig::set_current_token(&mut doc, &fresh).map_err(in_file)?;
    let text = serde_yaml::to_string(&doc).map_err(|e| Error::Serialize(e.to_string()))?;
    kubeconfig::write_private(path, text.as_bytes())?;
    info!(service_account = %service_account_user(ns, name), %expires_at, "token renewed");
    Ok(expires_at)
}
