//! `inputs.json`: what produced a packet, so that an auditor can tell which objects, in
//! which state, a month's figures were computed from.
//!
//! Each input object is named by kind, name, uid, resourceVersion and generation, and
//! pinned by the sha256 of its canonical JSON ([`object_digest`]): keys sorted at every
//! level, no insignificant whitespace, and without the bookkeeping a client or the API
//! server adds on a write that changes nothing the object says (`metadata.managedFields`
//! and the `kubectl.kubernetes.io/last-applied-configuration` annotation).

use serde::{Deserialize, Serialize};

use super::month::Month;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// The `schema` of every `inputs.json` this version writes.
pub const SCHEMA: &str = "https://ringmaster.dev/schemas/report-inputs/v1";

/// The annotation `kubectl apply` keeps its last applied copy of an object in.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// The statement of what produced a packet, written as its `inputs.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Inputs {
    /// Always [`SCHEMA`] for this layout.
    pub schema: String,
    /// The ringmaster version that rendered the packet.
    pub ringmaster_version: String,
    /// The tenant: the namespace the packet reports on.
    pub namespace: String,
    /// The month reported on, `YYYY-MM`.
    pub month: String,
    /// The tenant's IANA time zone, in which the month begins and ends.
    pub time_zone: String,
    /// The period's first instant (inclusive), RFC 3339 with the zone's offset.
    pub period_start: String,
    /// The period's end (exclusive): the first instant of the next month, when the month
    /// closes, RFC 3339 with the zone's offset.
    pub period_end: String,
    /// Every object the figures were computed from, sorted by kind, name and uid.
    pub objects: Vec<InputObject>,
}

/// One object a packet was computed from, and the digest of the state it was in.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InputObject {
    /// Its kind (`PatchPolicy`, `ManagedDevice`, …).
    pub kind: String,
    /// Its name.
    pub name: String,
    /// Its uid; null for an object that never was in a cluster (a simulation's).
    pub uid: Option<String>,
    /// Its resourceVersion when it was read; null outside a cluster.
    pub resource_version: Option<String>,
    /// Its metadata.generation when it was read; null when the object has none.
    pub generation: Option<i64>,
    /// [`object_digest`] of the object as it was read.
    pub sha256: String,
}

impl Inputs {
    /// The inputs of `namespace`'s packet for `month`, stamped with this ringmaster's
    /// version; `objects` are sorted.
    pub fn for_month(namespace: &str, month: &Month, mut objects: Vec<InputObject>) -> Inputs {
        objects.sort();
        Inputs {
            schema: SCHEMA.to_string(),
            ringmaster_version: env!("CARGO_PKG_VERSION").to_string(),
            namespace: namespace.to_string(),
            month: month.label(),
            time_zone: month.time_zone().to_string(),
            period_start: rfc3339(&month.zoned(month.start())),
            period_end: rfc3339(&month.zoned(month.end())),
            objects,
        }
    }

    /// The bytes of `inputs.json`: pretty JSON, keys in the struct's order, with a final
    /// newline.
    pub fn to_json(&self) -> Vec<u8> {
        // Only strings, integers, options and a list of those: serde_json cannot fail.
        let mut out = serde_json::to_vec_pretty(self).expect("Inputs always serializes");
        out.push(b'\n');
        out
    }
}

impl InputObject {
    /// The entry for a Kubernetes object: its identity from its metadata, its digest from
    /// [`object_digest`].
    pub fn of<K>(obj: &K) -> InputObject
    where
        K: kube::Resource<DynamicType = ()> + Serialize,
    {
        let meta = obj.meta();
        InputObject {
            kind: K::kind(&()).into_owned(),
            name: meta.name.clone().unwrap_or_default(),
            uid: meta.uid.clone(),
            resource_version: meta.resource_version.clone(),
            generation: meta.generation,
            sha256: object_digest(obj),
        }
    }
}

/// RFC 3339 with the zone's offset at that instant (no bracketed zone name).
fn rfc3339(z: &jiff::Zoned) -> String {
    z.timestamp().display_with_offset(z.offset()).to_string()
}

/// The sha256 (lowercase hex) of `obj`'s canonical JSON: serde_json's compact form with
/// the keys of every object sorted, after removing `metadata.managedFields` and the
/// `kubectl.kubernetes.io/last-applied-configuration` annotation (and an annotation map
/// left empty by that), so that bookkeeping writes do not change the digest.
pub fn object_digest<K: Serialize>(obj: &K) -> String {
    let bytes = canonical_json(obj);
    hex(&Sha256::digest(&bytes))
}

/// `obj`'s canonical JSON bytes, as [`object_digest`] hashes them. A value serde_json
/// cannot represent (a map with non-string keys) is hashed as its error message, which
/// still differs between different objects of that kind only by the error: such values
/// are not Kubernetes objects.
pub fn canonical_json<K: Serialize>(obj: &K) -> Vec<u8> {
    let value = match serde_json::to_value(obj) {
        Ok(mut v) => {
            strip_bookkeeping(&mut v);
            sorted(v)
        }
        Err(e) => Value::String(format!("unserializable: {e}")),
    };
    value.to_string().into_bytes()
}

/// Removes what the API server and kubectl add on writes from an object's metadata.
fn strip_bookkeeping(v: &mut Value) {
    let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut) else {
        return;
    };
    meta.remove("managedFields");
    let emptied = match meta.get_mut("annotations").and_then(Value::as_object_mut) {
        Some(annotations) => {
            annotations.remove(LAST_APPLIED);
            annotations.is_empty()
        }
        None => false,
    };
    if emptied {
        meta.remove("annotations");
    }
}

/// `v` with every object's keys in byte order, whichever map serde_json was built with
/// (its `preserve_order` feature keeps insertion order; without it maps are sorted).
fn sorted(v: Value) -> Value {
    match v {
        Value::Object(map) => {
            let mut entries: Vec<(String, Value)> = map.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            let map: Map<String, Value> =
                entries.into_iter().map(|(k, v)| (k, sorted(v))).collect();
            Value::Object(map)
        }
        Value::Array(items) => Value::Array(items.into_iter().map(sorted).collect()),
        other => other,
    }
}

/// Lowercase hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn digest_ignores_key_order_and_bookkeeping() {
        let a = json!({"kind": "Patch", "metadata": {"name": "kb1", "uid": "u"}, "spec": {"b": 1, "a": [{"y": 2, "x": 1}]}});
        let b = json!({
            "spec": {"a": [{"x": 1, "y": 2}], "b": 1},
            "metadata": {
                "uid": "u", "name": "kb1",
                "managedFields": [{"manager": "kubectl"}],
                "annotations": {LAST_APPLIED: "{\"spec\":{}}"}
            },
            "kind": "Patch"
        });
        assert_eq!(object_digest(&a), object_digest(&b));
        assert_eq!(
            String::from_utf8(canonical_json(&b)).expect("utf-8"),
            r#"{"kind":"Patch","metadata":{"name":"kb1","uid":"u"},"spec":{"a":[{"x":1,"y":2}],"b":1}}"#
        );
    }

    #[test]
    fn digest_changes_with_what_the_object_says() {
        let a =
            json!({"metadata": {"name": "p", "annotations": {"owner": "ops"}}, "spec": {"a": 1}});
        let b =
            json!({"metadata": {"name": "p", "annotations": {"owner": "ops"}}, "spec": {"a": 2}});
        let c =
            json!({"metadata": {"name": "p", "annotations": {"owner": "dev"}}, "spec": {"a": 1}});
        let d = json!({"metadata": {"name": "p"}, "spec": {"a": 1}});
        let digests = [a, b, c, d].map(|v| object_digest(&v));
        for (i, x) in digests.iter().enumerate() {
            assert_eq!(x.len(), 64);
            for y in &digests[i + 1..] {
                assert_ne!(x, y);
            }
        }
    }

    #[test]
    fn digest_is_sha256_of_the_canonical_bytes() {
        let v = json!({"b": 1, "a": "x"});
        assert_eq!(
            object_digest(&v),
            hex(&Sha256::digest(br#"{"a":"x","b":1}"#))
        );
        // The well-known sha256 of the empty string, to pin the hex encoding.
        assert_eq!(
            hex(&Sha256::digest(b"")),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn month_period_is_the_month_in_the_tenant_zone() {
        let i = Inputs::for_month(
            "acme",
            &Month::parse("2023-11", "America/New_York").expect("month"),
            vec![],
        );
        assert_eq!(i.period_start, "2023-11-01T00:00:00-04:00");
        assert_eq!(i.period_end, "2023-12-01T00:00:00-05:00");
        let i = Inputs::for_month(
            "acme",
            &Month::parse("2023-12", "Europe/Paris").expect("month"),
            vec![],
        );
        assert_eq!(i.period_start, "2023-12-01T00:00:00+01:00");
        assert_eq!(i.period_end, "2024-01-01T00:00:00+01:00");
        assert_eq!(i.schema, SCHEMA);
        assert_eq!(i.ringmaster_version, env!("CARGO_PKG_VERSION"));
    }

    #[test]
    fn inputs_json_is_camel_case_with_sorted_objects() {
        let obj = |kind: &str, name: &str| InputObject {
            kind: kind.into(),
            name: name.into(),
            uid: None,
            resource_version: Some("7".into()),
            generation: Some(2),
            sha256: "0".repeat(64),
        };
        let i = Inputs::for_month(
            "acme",
            &Month::parse("2023-11", "UTC").expect("month"),
            vec![obj("Ring", "b"), obj("Patch", "z"), obj("Ring", "a")],
        );
        let names: Vec<_> = i
            .objects
            .iter()
            .map(|o| format!("{}/{}", o.kind, o.name))
            .collect();
        assert_eq!(names, ["Patch/z", "Ring/a", "Ring/b"]);
        let text = String::from_utf8(i.to_json()).expect("utf-8");
        for key in [
            "\"schema\"",
            "\"ringmasterVersion\"",
            "\"timeZone\"",
            "\"periodStart\"",
            "\"periodEnd\"",
            "\"resourceVersion\"",
            "\"uid\": null",
        ] {
            assert!(text.contains(key), "{key} in {text}");
        }
        assert!(text.ends_with("}\n"));
        let back: Inputs = serde_json::from_str(&text).expect("parses");
        assert_eq!(back, i);
    }

    #[test]
    fn input_object_of_a_resource_reads_its_metadata() {
        let mut p: crate::api::Patch = serde_json::from_value(json!({
            "apiVersion": "patching.ringmaster.dev/v1alpha1", "kind": "Patch",
            "metadata": {"name": "kb5036893", "uid": "1234", "resourceVersion": "99", "generation": 3},
            "spec": {"id": "KB5036893", "vendor": "Microsoft", "classification": "Security", "releasedAt": "2024-04-09T17:00:00Z"}
        }))
        .expect("a Patch");
        let o = InputObject::of(&p);
        assert_eq!((o.kind.as_str(), o.name.as_str()), ("Patch", "kb5036893"));
        assert_eq!(o.uid.as_deref(), Some("1234"));
        assert_eq!(o.resource_version.as_deref(), Some("99"));
        assert_eq!(o.generation, Some(3));
        assert_eq!(o.sha256, object_digest(&p));
        p.metadata.managed_fields = Some(vec![Default::default()]);
        assert_eq!(
            InputObject::of(&p).sha256,
            o.sha256,
            "managedFields do not count"
        );
    }
}
