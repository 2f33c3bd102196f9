//! From raw documents to typed objects: kind dispatch, metadata rules, the OpenAPI
//! schema, defaults, CEL rules, typed decoding and duplicate detection.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::fmt;

use kube::Resource;
use kube::core::cel::{CompiledSchema, RootContext, Validator, compile_schema};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::load::{Document, Source};
use super::schema::{self, Finding, Patterns};
use crate::api::{
    self, DeploymentRing, ManagedDevice, Patch, PatchApproval, PatchException, PatchFreeze,
    PatchPolicy, PatchReport, PatchRollout,
};

/// The API group of the simulator's own kinds; documents of this group are passed
/// through as [`Object::Extension`] without any check.
pub const EXTENSION_GROUP: &str = "sim.ringmaster.dev";

/// A document that passed every check, as its typed resource.
#[derive(Clone, Debug)]
// Each object is built once and moved into place, so boxing the larger kinds buys nothing.
#[allow(clippy::large_enum_variant)]
pub enum Object {
    /// A `PatchPolicy`.
    Policy(PatchPolicy),
    /// A `DeploymentRing`.
    Ring(DeploymentRing),
    /// A `PatchException`.
    Exception(PatchException),
    /// A `ManagedDevice`.
    Device(ManagedDevice),
    /// A `Patch` (cluster-scoped).
    Patch(Patch),
    /// A `PatchRollout`.
    Rollout(PatchRollout),
    /// A `PatchReport` (a month to close; the simulator closes months by itself).
    Report(PatchReport),
    /// A `PatchApproval`: a person's decision about a patch under a policy.
    Approval(PatchApproval),
    /// A `PatchFreeze`: a person's change freeze on the tenant or some rings.
    Freeze(PatchFreeze),
    /// A document of the [`EXTENSION_GROUP`] group, exactly as written (not checked, not
    /// defaulted).
    Extension {
        /// Its `apiVersion`, e.g. `sim.ringmaster.dev/v1alpha1`.
        api_version: String,
        /// Its `kind`.
        kind: String,
        /// The whole document.
        value: Value,
    },
}

impl Object {
    /// The object's kind, e.g. `PatchPolicy`.
    pub fn kind(&self) -> &str {
        match self {
            Object::Policy(_) => "PatchPolicy",
            Object::Ring(_) => "DeploymentRing",
            Object::Exception(_) => "PatchException",
            Object::Device(_) => "ManagedDevice",
            Object::Patch(_) => "Patch",
            Object::Rollout(_) => "PatchRollout",
            Object::Report(_) => "PatchReport",
            Object::Approval(_) => "PatchApproval",
            Object::Freeze(_) => "PatchFreeze",
            Object::Extension { kind, .. } => kind,
        }
    }

    /// `metadata.name` (always set on a ringmaster kind).
    pub fn name(&self) -> Option<&str> {
        match self {
            Object::Extension { value, .. } => value.pointer("/metadata/name")?.as_str(),
            _ => self.meta()?.name.as_deref(),
        }
    }

    /// `metadata.namespace`: set (to `default` if the document had none) on every
    /// namespaced ringmaster kind, unset on a `Patch`.
    pub fn namespace(&self) -> Option<&str> {
        match self {
            Object::Extension { value, .. } => value.pointer("/metadata/namespace")?.as_str(),
            _ => self.meta()?.namespace.as_deref(),
        }
    }

    fn meta(&self) -> Option<&kube::core::ObjectMeta> {
        Some(match self {
            Object::Policy(o) => o.meta(),
            Object::Ring(o) => o.meta(),
            Object::Exception(o) => o.meta(),
            Object::Device(o) => o.meta(),
            Object::Patch(o) => o.meta(),
            Object::Rollout(o) => o.meta(),
            Object::Report(o) => o.meta(),
            Object::Approval(o) => o.meta(),
            Object::Freeze(o) => o.meta(),
            Object::Extension { .. } => return None,
        })
    }
}

/// Something wrong with one document, located well enough to fix it.
///
/// Displayed as `file:line: object: field: message`, e.g.
/// `policies.yaml:12: PatchPolicy acme/workstations: spec.approval.rules[0].delay: must
/// match ^[0-9]{1,7}(s|m|h|d|w)$` (the field part is left out when the problem is
/// the document as a whole).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// The document (the line is where it starts).
    pub source: Source,
    /// The object: `PatchPolicy acme/workstations`, `Patch kb5036893`, or
    /// `document 3` when the document names no object.
    pub object: String,
    /// The field, as a path: `spec.approval.rules[0].delay`; map entries are written
    /// `spec.plan.install[KB1]` by the schema checks. Empty for the whole document.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: ", self.source, self.object)?;
        if !self.field.is_empty() {
            write!(f, "{}: ", self.field)?;
        }
        f.write_str(&self.message)
    }
}

/// Compares strings with runs of digits taken as numbers, so `rules[2]` sorts before
/// `rules[10]`.
fn natural_cmp(a: &str, b: &str) -> Ordering {
    let (mut a, mut b) = (a.as_bytes(), b.as_bytes());
    loop {
        match (a.first(), b.first()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) if x.is_ascii_digit() && y.is_ascii_digit() => {
                let na = a.iter().take_while(|c| c.is_ascii_digit()).count();
                let nb = b.iter().take_while(|c| c.is_ascii_digit()).count();
                let (da, ra) = a.split_at(na);
                let (db, rb) = b.split_at(nb);
                let ta = &da[da.iter().take_while(|c| **c == b'0').count()..];
                let tb = &db[db.iter().take_while(|c| **c == b'0').count()..];
                let ord = ta.len().cmp(&tb.len()).then(ta.cmp(tb)).then(na.cmp(&nb));
                if ord != Ordering::Equal {
                    return ord;
                }
                (a, b) = (ra, rb);
            }
            (Some(x), Some(y)) => {
                if x != y {
                    return x.cmp(y);
                }
                (a, b) = (&a[1..], &b[1..]);
            }
        }
    }
}

fn problem_order(a: &Problem, b: &Problem) -> Ordering {
    a.source
        .file
        .cmp(&b.source.file)
        .then(a.source.document.cmp(&b.source.document))
        .then_with(|| natural_cmp(&a.field, &b.field))
        .then_with(|| a.message.cmp(&b.message))
}

/// One ringmaster kind as the API server knows it.
struct KindSchema {
    kind: String,
    group: String,
    version: String,
    namespaced: bool,
    /// The `openAPIV3Schema` as JSON.
    schema: Option<Value>,
    /// Its CEL rules, compiled.
    cel: Option<CompiledSchema>,
}

impl KindSchema {
    fn api_version(&self) -> String {
        format!("{}/{}", self.group, self.version)
    }
}

/// The CRD schemas of every ringmaster kind, with their patterns and CEL rules compiled
/// once; build one to check many batches of documents.
pub struct Schemas {
    kinds: Vec<KindSchema>,
    patterns: Patterns,
    cel: Validator,
}

impl fmt::Debug for Schemas {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Schemas")
            .field(
                "kinds",
                &self.kinds.iter().map(|k| &k.kind).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl Default for Schemas {
    fn default() -> Self {
        Self::new()
    }
}

/// What checking one document gave.
struct Outcome {
    /// How problems name the object.
    label: String,
    /// Kind, namespace (empty when cluster-scoped) and name, for duplicate detection.
    identity: Option<(String, String, String)>,
    findings: Vec<Finding>,
    object: Option<Object>,
}

fn finding(field: &str, message: impl Into<String>) -> Finding {
    Finding {
        field: field.to_string(),
        message: message.into(),
    }
}

/// The fields of `metadata` (ObjectMeta); any other is a typo an API server would
/// refuse under strict validation.
const OBJECT_META_FIELDS: &[&str] = &[
    "annotations",
    "creationTimestamp",
    "deletionGracePeriodSeconds",
    "deletionTimestamp",
    "finalizers",
    "generateName",
    "generation",
    "labels",
    "managedFields",
    "name",
    "namespace",
    "ownerReferences",
    "resourceVersion",
    "selfLink",
    "uid",
];

/// A lowercase RFC 1123 label (`a-z`, `0-9`, `-`; alphanumeric at both ends).
fn is_dns_label(s: &str, max: usize) -> bool {
    let bytes = s.as_bytes();
    let alnum = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    !bytes.is_empty()
        && bytes.len() <= max
        && bytes.iter().all(|b| alnum(b) || *b == b'-')
        && bytes.first().is_some_and(alnum)
        && bytes.last().is_some_and(alnum)
}

/// A lowercase RFC 1123 subdomain: dot-separated labels, 253 characters at most.
fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(|label| is_dns_label(label, 253))
}

/// Reads a required string field of the document root.
fn root_string(map: &Map<String, Value>, key: &str, findings: &mut Vec<Finding>) -> Option<String> {
    match map.get(key) {
        None | Some(Value::Null) => {
            findings.push(finding(key, "required field is missing"));
            None
        }
        Some(Value::String(s)) if s.is_empty() => {
            findings.push(finding(key, "required field is missing"));
            None
        }
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => {
            findings.push(finding(
                key,
                format!("must be a string, found {}", schema::found(other)),
            ));
            None
        }
    }
}

/// Decodes a checked document into its typed resource; a decoding error names the field.
fn typed<T: DeserializeOwned>(value: &Value) -> Result<T, Finding> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." { String::new() } else { path };
        Finding {
            field,
            message: e.into_inner().to_string(),
        }
    })
}

fn decode(kind: &str, value: &Value) -> Result<Object, Finding> {
    if kind == PatchPolicy::kind(&()) {
        typed(value).map(Object::Policy)
    } else if kind == DeploymentRing::kind(&()) {
        typed(value).map(Object::Ring)
    } else if kind == PatchException::kind(&()) {
        typed(value).map(Object::Exception)
    } else if kind == ManagedDevice::kind(&()) {
        typed(value).map(Object::Device)
    } else if kind == Patch::kind(&()) {
        typed(value).map(Object::Patch)
    } else if kind == PatchRollout::kind(&()) {
        typed(value).map(Object::Rollout)
    } else if kind == PatchReport::kind(&()) {
        typed(value).map(Object::Report)
    } else if kind == PatchApproval::kind(&()) {
        typed(value).map(Object::Approval)
    } else if kind == PatchFreeze::kind(&()) {
        typed(value).map(Object::Freeze)
    } else {
        Err(finding("kind", format!("{kind} has no typed form")))
    }
}

impl Schemas {
    /// Compiles the schemas of every CRD in [`api::crds()`].
    pub fn new() -> Self {
        let mut kinds = Vec::new();
        let mut patterns = Patterns::default();
        for crd in api::crds() {
            let version = crd
                .spec
                .versions
                .iter()
                .find(|v| v.storage)
                .or_else(|| crd.spec.versions.first());
            let schema = version
                .and_then(|v| v.schema.as_ref())
                .and_then(|s| s.open_api_v3_schema.as_ref())
                .and_then(|s| serde_json::to_value(s).ok());
            if let Some(schema) = &schema {
                patterns.add_schema(schema);
            }
            kinds.push(KindSchema {
                kind: crd.spec.names.kind.clone(),
                group: crd.spec.group.clone(),
                version: version.map(|v| v.name.clone()).unwrap_or_default(),
                namespaced: crd.spec.scope == "Namespaced",
                cel: schema.as_ref().map(compile_schema),
                schema,
            });
        }
        Self {
            kinds,
            patterns,
            cel: Validator::new(),
        }
    }

    /// Checks every document and returns the objects that passed, in input order, and
    /// every problem found, sorted by file, document and field. A document with any
    /// problem yields no object. See [`parse_documents`].
    pub fn parse_documents(&self, docs: Vec<Document>) -> (Vec<(Source, Object)>, Vec<Problem>) {
        let mut objects = Vec::new();
        let mut problems = Vec::new();
        let mut first_seen: HashMap<(String, String, String), Source> = HashMap::new();
        for doc in docs {
            let source = doc.source.clone();
            let mut outcome = self.check(doc);
            if let Some(identity) = outcome.identity.take() {
                match first_seen.get(&identity) {
                    Some(first) => outcome.findings.push(finding(
                        "metadata.name",
                        format!("duplicate object, first defined at {first}"),
                    )),
                    None => {
                        first_seen.insert(identity, source.clone());
                    }
                }
            }
            if outcome.findings.is_empty() {
                if let Some(object) = outcome.object {
                    objects.push((source, object));
                }
            } else {
                problems.extend(outcome.findings.into_iter().map(|f| Problem {
                    source: source.clone(),
                    object: outcome.label.clone(),
                    field: f.field,
                    message: f.message,
                }));
            }
        }
        problems.sort_by(problem_order);
        (objects, problems)
    }

    fn check(&self, doc: Document) -> Outcome {
        let mut outcome = Outcome {
            label: format!("document {}", doc.source.document),
            identity: None,
            findings: Vec::new(),
            object: None,
        };
        let mut map = match doc.value {
            Value::Object(map) => map,
            other => {
                outcome.findings.push(finding(
                    "",
                    format!(
                        "a manifest must be a mapping with apiVersion, kind and metadata, found {}",
                        schema::found(&other)
                    ),
                ));
                return outcome;
            }
        };
        let api_version = root_string(&map, "apiVersion", &mut outcome.findings);
        let kind = root_string(&map, "kind", &mut outcome.findings);
        let (Some(api_version), Some(kind)) = (api_version, kind) else {
            return outcome;
        };
        let group = api_version.split_once('/').map_or("", |(g, _)| g);
        if group == EXTENSION_GROUP {
            outcome.object = Some(Object::Extension {
                api_version,
                kind,
                value: Value::Object(map),
            });
            return outcome;
        }

        let meta = map.get("metadata").and_then(Value::as_object);
        let text = |key: &str| {
            meta.and_then(|m| m.get(key))
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
        };
        let (name, namespace) = (text("name"), text("namespace"));

        let Some(ks) = self.kinds.iter().find(|k| k.kind == kind) else {
            if let Some(name) = &name {
                outcome.label = match &namespace {
                    Some(ns) => format!("{kind} {ns}/{name}"),
                    None => format!("{kind} {name}"),
                };
            }
            let hint = match schema::suggest(&kind, self.kinds.iter().map(|k| k.kind.as_str())) {
                Some(near) => format!("did you mean {near}?"),
                None => {
                    let known: Vec<&str> = self.kinds.iter().map(|k| k.kind.as_str()).collect();
                    format!(
                        "expected {}/{} {} or a {EXTENSION_GROUP} kind",
                        api::GROUP,
                        api::VERSION,
                        known.join(", ")
                    )
                }
            };
            outcome.findings.push(finding(
                "kind",
                format!("unknown kind {api_version} {kind} ({hint})"),
            ));
            return outcome;
        };

        let namespace = if ks.namespaced {
            Some(namespace.unwrap_or_else(|| "default".to_string()))
        } else {
            None
        };
        if let Some(name) = &name {
            outcome.label = match &namespace {
                Some(ns) => format!("{kind} {ns}/{name}"),
                None => format!("{kind} {name}"),
            };
        }

        if api_version != ks.api_version() {
            outcome.findings.push(finding(
                "apiVersion",
                format!(
                    "unknown kind {api_version} {kind} ({kind} is {})",
                    ks.api_version()
                ),
            ));
            return outcome;
        }
        if let Some(name) = &name {
            outcome.identity = Some((
                kind.clone(),
                namespace.clone().unwrap_or_default(),
                name.clone(),
            ));
        }

        self.check_metadata(ks, &mut map, &mut outcome.findings);

        let Some(schema) = &ks.schema else {
            outcome
                .findings
                .push(finding("", format!("the {kind} CRD has no schema")));
            return outcome;
        };
        let mut value = Value::Object(map);
        schema::apply_defaults(schema, &mut value);
        outcome
            .findings
            .extend(schema::validate(schema, &value, &self.patterns));
        if !outcome.findings.is_empty() {
            // CEL rules assume a value of the right shape; run them once it is.
            return outcome;
        }

        schema::strip_nulls(schema, &mut value);
        if let Some(cel) = &ks.cel {
            let root = RootContext {
                api_version: api_version.clone(),
                api_group: ks.group.clone(),
                kind: kind.clone(),
            };
            if let Err(errors) =
                self.cel
                    .validate_compiled_with_context(cel, &value, None, Some(&root))
            {
                outcome.findings.extend(
                    errors
                        .into_iter()
                        .map(|e| finding(&e.field_path, e.message.clone())),
                );
                return outcome;
            }
        }

        match decode(&kind, &value) {
            Ok(object) => outcome.object = Some(object),
            Err(f) => outcome.findings.push(f),
        }
        outcome
    }

    /// `metadata`: a name is required; a namespace is refused on cluster-scoped kinds and
    /// set to `default` on namespaced ones when absent; a field ObjectMeta does not have
    /// is unknown. The values of the other fields are not checked here (typed decoding
    /// still refuses values of the wrong type).
    fn check_metadata(
        &self,
        ks: &KindSchema,
        map: &mut Map<String, Value>,
        findings: &mut Vec<Finding>,
    ) {
        if map.get("metadata").is_none_or(Value::is_null) {
            map.insert("metadata".to_string(), Value::Object(Map::new()));
        }
        let meta = match map.get_mut("metadata") {
            Some(Value::Object(meta)) => meta,
            Some(other) => {
                findings.push(finding(
                    "metadata",
                    format!("must be a mapping, found {}", schema::found(other)),
                ));
                return;
            }
            None => return,
        };
        for key in meta.keys() {
            if !OBJECT_META_FIELDS.contains(&key.as_str()) {
                let message = match schema::suggest(key, OBJECT_META_FIELDS.iter().copied()) {
                    Some(near) => format!("unknown field (did you mean {near}?)"),
                    None => "unknown field".to_string(),
                };
                findings.push(finding(&format!("metadata.{key}"), message));
            }
        }
        match meta.get("name") {
            None | Some(Value::Null) => {
                findings.push(finding("metadata.name", "required field is missing"));
            }
            Some(Value::String(name)) if name.is_empty() => {
                findings.push(finding("metadata.name", "required field is missing"));
            }
            Some(Value::String(name)) => {
                if !is_dns_subdomain(name) {
                    findings.push(finding(
                        "metadata.name",
                        "must be a lowercase RFC 1123 subdomain: lowercase letters, digits, '-' and '.', \
                         starting and ending with a letter or digit, at most 253 characters",
                    ));
                }
            }
            Some(other) => findings.push(finding(
                "metadata.name",
                format!("must be a string, found {}", schema::found(other)),
            )),
        }
        match meta.get("namespace") {
            None | Some(Value::Null) => {}
            Some(Value::String(ns)) if ns.is_empty() => {}
            Some(Value::String(ns)) => {
                if !ks.namespaced {
                    findings.push(finding(
                        "metadata.namespace",
                        format!("{} is cluster-scoped and takes no namespace", ks.kind),
                    ));
                } else if !is_dns_label(ns, 63) {
                    findings.push(finding(
                        "metadata.namespace",
                        "must be a lowercase RFC 1123 label: lowercase letters, digits and '-', \
                         starting and ending with a letter or digit, at most 63 characters",
                    ));
                }
            }
            Some(other) => findings.push(finding(
                "metadata.namespace",
                format!("must be a string, found {}", schema::found(other)),
            )),
        }
        if ks.namespaced
            && meta
                .get("namespace")
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
        {
            meta.insert(
                "namespace".to_string(),
                Value::String("default".to_string()),
            );
        }
    }
}

/// Checks every document against the ringmaster CRDs and decodes the good ones.
///
/// For each document, in order: `apiVersion` and `kind` pick the kind (documents of the
/// [`EXTENSION_GROUP`] group are passed through untouched as [`Object::Extension`]; any
/// other unknown kind is a problem); `metadata.name` is required; namespaced kinds
/// without `metadata.namespace` get `default`, and a namespace on a cluster-scoped kind
/// is a problem; the OpenAPI schema of the kind's CRD is checked after its defaults are
/// applied, as an API server does; then its CEL rules; then the document is decoded
/// into its typed resource. A second object with the kind, namespace and name of an
/// earlier one is a problem.
///
/// Returns the objects that passed every check, in input order, and every problem,
/// sorted by file, document and field. A document with a problem yields no object.
/// Builds a [`Schemas`] for the call; keep one to check several batches.
pub fn parse_documents(docs: Vec<Document>) -> (Vec<(Source, Object)>, Vec<Problem>) {
    Schemas::new().parse_documents(docs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn natural_order_compares_numbers_as_numbers() {
        let mut fields = vec![
            "spec.rules[10].delay",
            "spec.rules[2].delay",
            "",
            "spec.rings",
            "spec.rules[02].a",
            "metadata.name",
        ];
        fields.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(
            fields,
            vec![
                "",
                "metadata.name",
                "spec.rings",
                "spec.rules[2].delay",
                "spec.rules[02].a",
                "spec.rules[10].delay",
            ]
        );
    }

    #[test]
    fn dns_names() {
        assert!(is_dns_subdomain("workstations"));
        assert!(is_dns_subdomain("kb5036893.v2"));
        assert!(!is_dns_subdomain("Workstations"));
        assert!(!is_dns_subdomain("-a"));
        assert!(!is_dns_subdomain("a..b"));
        assert!(!is_dns_subdomain(&"a".repeat(254)));
        assert!(is_dns_label("acme", 63));
        assert!(!is_dns_label("acme.corp", 63));
        assert!(!is_dns_label(&"a".repeat(64), 63));
    }

    #[test]
    fn every_crd_is_known_with_its_scope() {
        let schemas = Schemas::new();
        let scopes: Vec<(&str, bool)> = schemas
            .kinds
            .iter()
            .map(|k| (k.kind.as_str(), k.namespaced))
            .collect();
        assert_eq!(
            scopes,
            vec![
                ("PatchPolicy", true),
                ("DeploymentRing", true),
                ("PatchException", true),
                ("ManagedDevice", true),
                ("Patch", false),
                ("PatchRollout", true),
                ("PatchReport", true),
                ("PatchApproval", true),
                ("PatchFreeze", true),
            ]
        );
        assert!(schemas.kinds.iter().all(|k| k.schema.is_some()));
        assert!(
            schemas
                .kinds
                .iter()
                .all(|k| k.api_version() == "patching.ringmaster.dev/v1alpha1")
        );
    }
}
