//! What an import changes: per Patch, the fields one feed owns (the server-side apply
//! body of its field manager), and whether the cluster already holds exactly that.
//!
//! Pure: the Patches that exist go in, the changes come out. The same plan is applied to
//! a cluster by `ringmaster catalog import` and to the simulator's world by
//! `ringmaster simulate --catalog`.

use std::collections::{BTreeMap, HashMap};

use serde_json::{Map, Value, json};

use crate::api::{Patch, PatchSpec};

use super::{Source, epss, kev, object_name};

/// What one feed gave, ready to plan with.
#[derive(Clone, Debug)]
pub enum Feed {
    /// Whole Patches (MSRC, OSV).
    Patches(Vec<PatchSpec>),
    /// KEV listings, added to the Patches that fix a listed CVE.
    Kev(kev::Catalog),
    /// EPSS scores, added to the Patches that fix a scored CVE.
    Epss(epss::Scores),
}

/// What an import does to one Patch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Verdict {
    /// The Patch does not exist: the feed creates it.
    Create,
    /// The Patch exists and the feed's fields on it differ.
    Update,
    /// The Patch holds exactly the feed's fields: nothing is sent.
    Unchanged,
}

/// One Patch's change.
#[derive(Clone, Debug, PartialEq)]
pub struct Change {
    /// The Patch's object name.
    pub name: String,
    /// Create, update or leave alone.
    pub verdict: Verdict,
    /// The server-side apply body: apiVersion, kind, metadata.name and the feed's fields.
    pub body: Value,
}

/// The changes a feed makes to the catalog `existing` (by object name), sorted by name.
pub fn plan(source: Source, feed: &Feed, existing: &BTreeMap<String, Patch>) -> Vec<Change> {
    let manager = source.field_manager();
    let mut changes: Vec<Change> = match feed {
        Feed::Patches(specs) => {
            // A Patch someone wrote under another name is still the advisory's Patch.
            let by_id: HashMap<&str, &str> = existing
                .iter()
                .map(|(name, p)| (p.spec.id.as_str(), name.as_str()))
                .collect();
            specs
                .iter()
                .map(|spec| {
                    let name = by_id
                        .get(spec.id.as_str())
                        .map_or_else(|| object_name(&spec.id), |n| n.to_string());
                    let old = existing.get(&name);
                    change(name, whole(spec, old), old, manager)
                })
                .collect()
        }
        Feed::Kev(catalog) => enrich(existing, manager, |p| kev_fields(p, catalog)),
        Feed::Epss(scores) => enrich(existing, manager, |p| epss_fields(p, scores)),
    };
    changes.sort_by(|a, b| a.name.cmp(&b.name));
    // A feed that lists one advisory twice: the last record counts, once.
    changes.dedup_by(|later, earlier| {
        let same = later.name == earlier.name;
        if same {
            std::mem::swap(later, earlier);
        }
        same
    });
    changes
}

/// The changes of a feed that only adds fields to Patches that exist (KEV, EPSS): each
/// Patch the feed has something for, and each it had something for before (its fields
/// are then released).
fn enrich(
    existing: &BTreeMap<String, Patch>,
    manager: &str,
    fields: impl Fn(&Patch) -> Option<Map<String, Value>>,
) -> Vec<Change> {
    existing
        .iter()
        .filter_map(|(name, patch)| {
            let spec = match fields(patch) {
                Some(spec) => spec,
                None if owned(patch, manager).is_some() => Map::new(),
                None => return None,
            };
            Some(change(name.clone(), spec, Some(patch), manager))
        })
        .collect()
}

/// Judges one Patch's change and wraps the feed's fields into an apply body.
fn change(name: String, spec: Map<String, Value>, old: Option<&Patch>, manager: &str) -> Change {
    let verdict = match old {
        None => Verdict::Create,
        Some(p) if holds(p, &spec, manager) => Verdict::Unchanged,
        Some(_) => Verdict::Update,
    };
    let body = json!({
        "apiVersion": "patching.ringmaster.dev/v1alpha1",
        "kind": "Patch",
        "metadata": {"name": name},
        "spec": Value::Object(spec),
    });
    Change {
        name,
        verdict,
        body,
    }
}

/// The fields a Patch feed (MSRC, OSV) owns: all it knows, but the ones other feeds own
/// (`kev`, `epss`, each CVE's `epss`) and `knownExploited` when it does not say so (a
/// `false` from one feed must not fight a `true` from KEV). A Patch that exists keeps
/// its first release time.
fn whole(spec: &PatchSpec, old: Option<&Patch>) -> Map<String, Value> {
    let mut spec = spec.clone();
    if let Some(old) = old.filter(|o| o.spec.released_at < spec.released_at) {
        spec.released_at = old.spec.released_at;
    }
    spec.kev = None;
    spec.epss = None;
    for cve in &mut spec.cves {
        cve.epss = None;
    }
    let mut fields = match serde_json::to_value(&spec) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    };
    if !spec.known_exploited {
        fields.remove("knownExploited");
    }
    fields
}

/// The KEV fields of a Patch: None when none of its CVEs is listed.
fn kev_fields(patch: &Patch, catalog: &kev::Catalog) -> Option<Map<String, Value>> {
    let listing = kev::listing(&patch.spec.cves, catalog)?;
    let mut m = Map::new();
    m.insert("knownExploited".into(), Value::Bool(true));
    m.insert("kev".into(), serde_json::to_value(listing).ok()?);
    Some(m)
}

/// The EPSS fields of a Patch: its highest score, and each scored CVE's own.
fn epss_fields(patch: &Patch, scores: &epss::Scores) -> Option<Map<String, Value>> {
    let (best, per_cve) = epss::score(&patch.spec.cves, scores);
    let best = best?;
    let mut m = Map::new();
    m.insert("epss".into(), serde_json::to_value(best).ok()?);
    let cves: Vec<Value> = per_cve
        .into_iter()
        .map(|(id, score)| json!({"id": id, "epss": score}))
        .collect();
    m.insert("cves".into(), Value::Array(cves));
    Some(m)
}

/// Whether the Patch already holds exactly these fields under this manager: applying
/// them would change nothing (no value differs, and the manager owns no other field).
fn holds(patch: &Patch, spec: &Map<String, Value>, manager: &str) -> bool {
    let Ok(Value::Object(current)) = serde_json::to_value(&patch.spec) else {
        return false;
    };
    if changes(&current, spec) {
        return false;
    }
    let Some(Value::Object(owned)) = owned(patch, manager) else {
        return false;
    };
    owned.len() == 1 && owned.get("f:spec") == Some(&fields_of(spec, true))
}

/// Whether overlaying `patch` onto `target` would change it (as [`overlay`] merges).
fn changes(target: &Map<String, Value>, patch: &Map<String, Value>) -> bool {
    patch
        .iter()
        .any(|(key, v)| match (key.as_str(), target.get(key)) {
            ("cves", Some(Value::Array(old))) if keyed(v) => keyed_changes(old, v),
            (_, Some(Value::Object(old))) => v.as_object().is_none_or(|v| changes(old, v)),
            (_, Some(old)) => old != v,
            (_, None) => true,
        })
}

/// Whether merging a keyed list item by item would change `old`.
fn keyed_changes(old: &[Value], new: &Value) -> bool {
    new.as_array().is_some_and(|items| {
        items.iter().any(|item| {
            let id = item.get("id");
            match (old.iter().find(|o| o.get("id") == id), item.as_object()) {
                (Some(Value::Object(o)), Some(item)) => changes(o, item),
                _ => true,
            }
        })
    })
}

/// The `fieldsV1` a manager's last apply recorded on the Patch.
fn owned<'a>(patch: &'a Patch, manager: &str) -> Option<&'a Value> {
    patch
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .find(|m| m.manager.as_deref() == Some(manager) && m.operation.as_deref() == Some("Apply"))
        .and_then(|m| m.fields_v1.as_ref())
        .map(|f| &f.0)
}

/// The field set (`fieldsV1`) that applying `spec` makes its manager own: objects by
/// key, the spec's keyed `cves` list by id, any other list and every scalar whole.
#[cfg(test)]
fn field_set(spec: &Value) -> Value {
    fields(spec, true)
}

/// The field set of an object; `top` says it is the spec (whose `cves` list is keyed).
fn fields(value: &Value, top: bool) -> Value {
    match value {
        Value::Object(map) => fields_of(map, top),
        _ => json!({}),
    }
}

/// The field set of an object's fields.
fn fields_of(map: &Map<String, Value>, top: bool) -> Value {
    let mut set = Map::new();
    for (key, v) in map {
        let owned = match (key.as_str(), v) {
            ("cves", Value::Array(items)) if top => keyed_items(items),
            (_, Value::Object(_)) => fields(v, false),
            _ => json!({}),
        };
        set.insert(format!("f:{key}"), owned);
    }
    Value::Object(set)
}

/// The field set of a list keyed by `id`: one `k:{"id":…}` entry per item.
fn keyed_items(items: &[Value]) -> Value {
    let mut set = Map::new();
    for item in items {
        let Some(id) = item.get("id") else { continue };
        let mut owned = match fields(item, false) {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        owned.insert(".".into(), json!({}));
        set.insert(format!("k:{}", json!({ "id": id })), Value::Object(owned));
    }
    Value::Object(set)
}

/// Merges `patch` into `target` as server-side apply does for these objects: objects
/// field by field, the `cves` list item by item by id, everything else replaced.
pub fn overlay(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (key, v) in p {
                match (key.as_str(), t.get_mut(key)) {
                    ("cves", Some(Value::Array(old))) if keyed(v) => merge_keyed(old, v),
                    (_, Some(old)) if old.is_object() && v.is_object() => overlay(old, v),
                    _ => {
                        t.insert(key.clone(), v.clone());
                    }
                }
            }
        }
        (t, p) => *t = p.clone(),
    }
}

/// Whether a list is the keyed CVE list (objects with an `id`), not a list of ids such
/// as `kev.cves`, which is replaced whole.
fn keyed(list: &Value) -> bool {
    list.as_array()
        .is_some_and(|items| items.iter().all(|i| i.get("id").is_some()))
}

/// Merges a keyed list item by item: an item with a known id is overlaid, a new one added.
fn merge_keyed(old: &mut Vec<Value>, new: &Value) {
    let Value::Array(items) = new else {
        return;
    };
    for item in items {
        let id = item.get("id");
        match old.iter_mut().find(|o| id.is_some() && o.get("id") == id) {
            Some(o) => overlay(o, item),
            None => old.push(item.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{Classification, CveRef};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{FieldsV1, ManagedFieldsEntry};

    fn spec(id: &str, released: &str) -> PatchSpec {
        PatchSpec {
            id: id.into(),
            title: Some("t".into()),
            vendor: "Debian".into(),
            product: None,
            classification: Classification::Security,
            cvss_score: Some(7.5),
            vendor_severity: None,
            cves: vec![CveRef {
                id: "CVE-2026-1000".into(),
                cvss_score: Some(7.5),
                cvss_vector: None,
                epss: None,
            }],
            known_exploited: false,
            released_at: released.parse().unwrap(),
            reboot_required: false,
            uninstallable: false,
            supersedes: vec![],
            packages: vec![],
            kev: None,
            epss: None,
        }
    }

    /// The Patch as the API server holds it after `manager` applied `change`'s body.
    fn applied(change: &Change, base: Option<&Patch>, manager: &str) -> Patch {
        let mut obj = match base {
            Some(p) => serde_json::to_value(p).unwrap(),
            None => {
                json!({"apiVersion": "patching.ringmaster.dev/v1alpha1", "kind": "Patch", "metadata": {"name": change.name}})
            }
        };
        overlay(&mut obj, &change.body);
        let mut p: Patch = serde_json::from_value(obj).unwrap();
        let entries = p.metadata.managed_fields.get_or_insert_with(Vec::new);
        entries.retain(|m| m.manager.as_deref() != Some(manager));
        entries.push(ManagedFieldsEntry {
            manager: Some(manager.into()),
            operation: Some("Apply".into()),
            fields_v1: Some(FieldsV1(json!({"f:spec": field_set(&change.body["spec"])}))),
            ..Default::default()
        });
        p
    }

    #[test]
    fn a_reimport_of_the_same_data_is_unchanged_and_a_new_one_updates() {
        let feed = Feed::Patches(vec![spec("DSA-1-1", "2026-11-01T00:00:00Z")]);
        let none = BTreeMap::new();
        let first = plan(Source::Osv, &feed, &none);
        assert_eq!(first.len(), 1);
        assert_eq!(first[0].verdict, Verdict::Create);
        assert_eq!(first[0].name, "dsa-1-1");
        assert!(first[0].body["spec"].get("knownExploited").is_none());
        let m = Source::Osv.field_manager();
        let cluster = BTreeMap::from([("dsa-1-1".to_string(), applied(&first[0], None, m))]);
        assert_eq!(
            plan(Source::Osv, &feed, &cluster)[0].verdict,
            Verdict::Unchanged
        );
        let mut newer = spec("DSA-1-1", "2026-11-05T00:00:00Z");
        newer.title = Some("t2".into());
        let again = plan(Source::Osv, &Feed::Patches(vec![newer]), &cluster);
        assert_eq!(again[0].verdict, Verdict::Update);
        assert_eq!(
            again[0].body["spec"]["releasedAt"], "2026-11-01T00:00:00Z",
            "a re-released record keeps its first release time"
        );
    }

    #[test]
    fn an_advisory_written_under_another_name_is_found_by_its_id() {
        let mut p = Patch::new("debian-dsa-1", spec("DSA-1-1", "2026-11-01T00:00:00Z"));
        p.metadata.name = Some("debian-dsa-1".into());
        let cluster = BTreeMap::from([("debian-dsa-1".to_string(), p)]);
        let feed = Feed::Patches(vec![spec("DSA-1-1", "2026-11-01T00:00:00Z")]);
        let changes = plan(Source::Osv, &feed, &cluster);
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].name, "debian-dsa-1");
        assert_eq!(
            changes[0].verdict,
            Verdict::Update,
            "not owned by the feed yet"
        );
    }

    #[test]
    fn a_field_the_feed_no_longer_sends_is_an_update() {
        let mut exploited = spec("DSA-1-1", "2026-11-01T00:00:00Z");
        exploited.known_exploited = true;
        let m = Source::Osv.field_manager();
        let first = plan(
            Source::Osv,
            &Feed::Patches(vec![exploited]),
            &BTreeMap::new(),
        );
        let cluster = BTreeMap::from([("dsa-1-1".to_string(), applied(&first[0], None, m))]);
        let plain = Feed::Patches(vec![spec("DSA-1-1", "2026-11-01T00:00:00Z")]);
        assert_eq!(
            plan(Source::Osv, &plain, &cluster)[0].verdict,
            Verdict::Update
        );
    }

    #[test]
    fn a_list_of_ids_is_replaced_whole() {
        let mut target = json!({"kev": {"cves": ["CVE-1"]}});
        overlay(&mut target, &json!({"kev": {"cves": ["CVE-1"]}}));
        assert_eq!(target, json!({"kev": {"cves": ["CVE-1"]}}));
    }

    #[test]
    fn overlay_merges_cves_by_id_and_keeps_what_others_own() {
        let mut target = json!({"cves": [{"id": "CVE-1", "cvssScore": 5.0}], "title": "mine"});
        overlay(
            &mut target,
            &json!({"cves": [{"id": "CVE-1", "epss": 0.5}, {"id": "CVE-2", "epss": 0.1}]}),
        );
        assert_eq!(
            target,
            json!({"cves": [{"id": "CVE-1", "cvssScore": 5.0, "epss": 0.5}, {"id": "CVE-2", "epss": 0.1}], "title": "mine"})
        );
    }

    #[test]
    fn field_sets_are_what_the_api_server_records() {
        let set = field_set(
            &json!({"kev": {"dueAt": "x", "cves": ["CVE-1"]}, "cves": [{"id": "CVE-1", "epss": 0.5}], "supersedes": ["a"]}),
        );
        // As kube-apiserver v1.36 records them: only the spec's own cves list is keyed.
        assert_eq!(
            set,
            json!({"f:kev": {"f:dueAt": {}, "f:cves": {}}, "f:cves": {"k:{\"id\":\"CVE-1\"}": {".": {}, "f:id": {}, "f:epss": {}}}, "f:supersedes": {}})
        );
    }
}
