//! The fake API server's built-in kinds, for enrollment's tests: Namespaces,
//! ServiceAccounts (with the TokenRequest subresource answering a JWT that says who and
//! until when), the four RBAC kinds, and SubjectAccessReviews judged against the stored
//! ClusterRoleBindings. Objects are kept by path; merge patches change the whole object.
//! No watches.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::{Method, StatusCode};
use serde_json::{Value, json};

use super::{Reply, State, created_now, failure, merge};

const CORE: &str = "/api/v1/";
const RBAC: &str = "/apis/rbac.authorization.k8s.io/v1/";
const SAR: &str = "/apis/authorization.k8s.io/v1/subjectaccessreviews";

/// A JWT like the API server's for ServiceAccount `ns/name`, issued now, valid for
/// `seconds` (signed by nobody).
pub fn service_account_jwt(ns: &str, name: &str, seconds: i64) -> (String, i64) {
    let iat = jiff::Timestamp::now().as_second();
    let exp = iat + seconds;
    let enc = |v: Value| URL_SAFE_NO_PAD.encode(v.to_string());
    let token = format!(
        "{}.{}.{}",
        enc(json!({"alg": "RS256", "kid": "fake"})),
        enc(json!({
            "aud": ["https://kubernetes.default.svc"],
            "iss": "https://kubernetes.default.svc",
            "sub": format!("system:serviceaccount:{ns}:{name}"),
            "iat": iat, "nbf": iat, "exp": exp,
            "jti": format!("{name}-{iat}"),
            "kubernetes.io": {"namespace": ns, "serviceaccount": {"name": name, "uid": format!("uid-{name}")}},
        })),
        URL_SAFE_NO_PAD.encode("not a signature")
    );
    (token, exp)
}

impl super::Fake {
    /// Stores a built-in object (a Namespace, …) at its API path, as the cluster holds it.
    pub fn insert_builtin(&self, path: &str, obj: Value) {
        let mut s = self.0.lock().expect("lock");
        bump(&mut s, path.to_string(), obj);
    }
}

/// Whether the path is one of the kinds served here.
pub fn serves(path: &str) -> bool {
    path.starts_with(CORE) || path.starts_with(RBAC) || path == SAR
}

/// Answers a request for a built-in kind.
pub(super) fn handle(s: &mut State, method: &Method, path: &str, body: &Value) -> Reply {
    if path == SAR {
        return review(s, body);
    }
    let rest = path
        .strip_prefix(CORE)
        .or_else(|| path.strip_prefix(RBAC))
        .unwrap_or_default();
    let segments: Vec<&str> = rest.split('/').filter(|p| !p.is_empty()).collect();
    // A collection has an odd number of parts ([plural] or [namespaces, ns, plural]),
    // the namespaces collection and its objects excepted.
    let collection = match segments.as_slice() {
        [_] | ["namespaces", _, _] => true,
        [_, _] | ["namespaces", _, _, _] => false,
        ["namespaces", ns, "serviceaccounts", name, "token"] if *method == Method::POST => {
            return token(s, ns, name, body);
        }
        _ => return failure(404, "NotFound"),
    };
    match (method.clone(), collection) {
        (Method::GET, false) => match s.objects.get(path) {
            Some(v) => Reply::Json(StatusCode::OK, v.clone()),
            None => failure(404, "NotFound"),
        },
        (Method::POST, true) => create(s, path, body),
        (Method::PATCH, false) => patch(s, path, body),
        (m, _) => panic!("the fake serves no {m} {path}"),
    }
}

fn bump(s: &mut State, path: String, mut obj: Value) -> Value {
    s.version += 1;
    obj["metadata"]["resourceVersion"] = s.version.to_string().into();
    s.objects.insert(path, obj.clone());
    obj
}

fn create(s: &mut State, collection: &str, body: &Value) -> Reply {
    let name = body["metadata"]["name"]
        .as_str()
        .expect("a name")
        .to_string();
    let path = format!("{collection}/{name}");
    if s.objects.contains_key(&path) {
        return failure(409, "AlreadyExists");
    }
    let mut obj = body.clone();
    obj["metadata"]["uid"] = format!("uid-{name}").into();
    obj["metadata"]["creationTimestamp"] = created_now();
    Reply::Json(StatusCode::CREATED, bump(s, path, obj))
}

fn patch(s: &mut State, path: &str, body: &Value) -> Reply {
    let Some(old) = s.objects.get(path).cloned() else {
        return failure(404, "NotFound");
    };
    let mut obj = old.clone();
    merge(&mut obj, body);
    if obj == old {
        return Reply::Json(StatusCode::OK, obj);
    }
    Reply::Json(StatusCode::OK, bump(s, path.to_string(), obj))
}

fn token(s: &mut State, ns: &str, name: &str, body: &Value) -> Reply {
    if !s
        .objects
        .contains_key(&format!("{CORE}namespaces/{ns}/serviceaccounts/{name}"))
    {
        return failure(404, "NotFound");
    }
    let seconds = body["spec"]["expirationSeconds"].as_i64().unwrap_or(3600);
    let (token, exp) = service_account_jwt(ns, name, seconds);
    let expires = jiff::Timestamp::from_second(exp)
        .expect("a time")
        .to_string();
    let mut answer = body.clone();
    answer["status"] = json!({"token": token, "expirationTimestamp": expires});
    Reply::Json(StatusCode::CREATED, answer)
}

fn contains(list: &Value, item: &str) -> bool {
    list.as_array()
        .is_some_and(|l| l.iter().any(|v| v.as_str() == Some(item)))
}

/// Allowed when a stored ClusterRoleBinding binds the user or one of its groups to a
/// stored ClusterRole with a rule covering the group, resource and verb asked about.
fn review(s: &State, body: &Value) -> Reply {
    let spec = &body["spec"];
    let attrs = &spec["resourceAttributes"];
    let (group, resource, verb) = (
        attrs["group"].as_str().unwrap_or(""),
        attrs["resource"].as_str().unwrap_or(""),
        attrs["verb"].as_str().unwrap_or(""),
    );
    let bound = |b: &Value| {
        b["subjects"].as_array().is_some_and(|subjects| {
            subjects.iter().any(|sub| match sub["kind"].as_str() {
                Some("Group") => contains(&spec["groups"], sub["name"].as_str().unwrap_or("")),
                Some("User") => spec["user"] == sub["name"],
                _ => false,
            })
        })
    };
    let grants = |role: &Value| {
        role["rules"].as_array().is_some_and(|rules| {
            rules.iter().any(|r| {
                contains(&r["apiGroups"], group)
                    && contains(&r["resources"], resource)
                    && contains(&r["verbs"], verb)
            })
        })
    };
    let allowed = s
        .objects
        .iter()
        .filter(|(p, _)| p.starts_with(&format!("{RBAC}clusterrolebindings/")))
        .filter(|(_, b)| bound(b))
        .filter_map(|(_, b)| {
            let role = b["roleRef"]["name"].as_str()?;
            s.objects.get(&format!("{RBAC}clusterroles/{role}"))
        })
        .any(grants);
    let mut answer = body.clone();
    answer["status"] = json!({"allowed": allowed});
    Reply::Json(StatusCode::CREATED, answer)
}
