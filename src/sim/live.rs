//! A live tenant as the preview's input (`simulate HEAD --from-cluster -n NS`): the
//! cluster's objects made fresh manifests, its ManagedDevices made simulated devices that
//! start from what their agents report, and the head's manifests applied over them.
//!
//! Pure: [`super::cluster`] reads the cluster; this module only turns what it read into
//! the two sides' worlds. See `docs/preview.md` for the rules as a user reads them.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use jiff::{RoundMode, Timestamp, Unit, ZonedRound};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

use crate::api::{DevicePatchStatus, ManagedDevice, ManagedDeviceStatus, PatchState};
use crate::manifest::{Object, Problem, Source};
use crate::report::cluster::Objects;

use super::fleet::FleetSpec;
use super::load::{SimLoadError, world_from};
use super::run::Options;
use super::world::World;

/// The annotation `kubectl apply` keeps its last manifest in: not part of the object.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// The days a preview against a cluster plays unless told otherwise.
pub const DEFAULT_DAYS: u32 = 30;

/// Where an object read from a cluster comes from, as warnings name it (line 0: no
/// file; [`warning`] prints it without one).
pub fn cluster_source(namespace: &str) -> Source {
    Source {
        file: PathBuf::from(format!("cluster namespace {namespace}")),
        document: 0,
        line: 0,
    }
}

/// A cross-object problem as a warning line: `file:line: …` for a manifest, without the
/// line for an object read from the cluster.
pub fn warning(p: &Problem) -> String {
    if p.source.line > 0 {
        return format!("warning: {p}");
    }
    let field = if p.field.is_empty() {
        String::new()
    } else {
        format!("{}: ", p.field)
    };
    format!(
        "warning: {}: {}: {field}{}",
        p.source.file.display(),
        p.object,
        p.message
    )
}

/// An object's metadata as a manifest gives it: name, namespace, labels, annotations
/// (not kubectl's copy of the last manifest applied) and the creation time (an
/// exception's length counts from it). Nothing the API server keeps for itself: uid,
/// resourceVersion, generation, managedFields, owners, finalizers.
pub fn fresh_meta(meta: ObjectMeta) -> ObjectMeta {
    let annotations = meta
        .annotations
        .map(|mut a| {
            a.remove(LAST_APPLIED);
            a
        })
        .filter(|a| !a.is_empty());
    ObjectMeta {
        name: meta.name,
        namespace: meta.namespace,
        labels: meta.labels,
        annotations,
        creation_timestamp: meta.creation_timestamp,
        ..ObjectMeta::default()
    }
}

/// One patch report as a simulated device starts with it: an install in flight
/// (`Installing`) is back to `Missing` (its rollout is not carried over, so a fresh one
/// starts it again); one waiting for a reboot (`PendingReboot`) is `Installed`; an
/// installed patch without an install time was installed at `start` (as a Fleet group's
/// `installed` patches are); no time is after `start`, and no plan attempt is echoed.
pub fn starting_report(mut r: DevicePatchStatus, start: Timestamp) -> DevicePatchStatus {
    match r.state {
        PatchState::Installing => {
            r.state = PatchState::Missing;
            r.installed_at = None;
        }
        PatchState::PendingReboot => r.state = PatchState::Installed,
        PatchState::Missing
        | PatchState::Installed
        | PatchState::Failed
        | PatchState::RolledBack => {}
    }
    if r.state == PatchState::Installed {
        r.installed_at = Some(r.installed_at.unwrap_or(start));
    }
    r.installed_at = r.installed_at.map(|t| t.min(start));
    r.last_attempt_at = r.last_attempt_at.map(|t| t.min(start));
    r.attempt = None;
    r
}

/// A device read from a cluster as the simulator starts it: its name, labels, host name
/// and OS; an empty plan (the rollouts that wrote it are not carried over); its reports
/// as [`starting_report`] makes them; seen at `start`; the operator's compliance summary
/// left for the simulated operator to write.
pub fn starting_device(d: ManagedDevice, start: Timestamp) -> ManagedDevice {
    let status = d.status.unwrap_or_default();
    ManagedDevice {
        metadata: fresh_meta(d.metadata),
        spec: crate::api::ManagedDeviceSpec {
            plan: Default::default(),
            ..d.spec
        },
        status: Some(ManagedDeviceStatus {
            last_seen: Some(start),
            patches: status
                .patches
                .into_iter()
                .map(|r| starting_report(r, start))
                .collect(),
            reboot_pending: false,
            agent: status.agent,
            compliance: None,
        }),
    }
}

/// The objects read from a cluster as fresh manifests (no status on policies, rings and
/// exceptions; devices as [`starting_device`] makes them; Patches with their status,
/// which keeps each patch's first release time). Its PatchRollouts are not among them:
/// a preview plays a fresh month.
pub fn fresh_objects(live: Objects, start: Timestamp) -> Vec<(Source, Object)> {
    let source = cluster_source(&live.namespace);
    let mut out: Vec<Object> = Vec::new();
    out.extend(live.policies.into_iter().map(|mut p| {
        p.metadata = fresh_meta(p.metadata);
        p.status = None;
        Object::Policy(p)
    }));
    out.extend(live.rings.into_iter().map(|mut r| {
        r.metadata = fresh_meta(r.metadata);
        r.status = None;
        Object::Ring(r)
    }));
    out.extend(live.exceptions.into_iter().map(|mut e| {
        e.metadata = fresh_meta(e.metadata);
        e.status = None;
        Object::Exception(e)
    }));
    out.extend(
        live.devices
            .into_iter()
            .map(|d| Object::Device(starting_device(d, start))),
    );
    out.extend(live.patches.into_iter().map(|mut p| {
        p.metadata = fresh_meta(p.metadata);
        Object::Patch(p)
    }));
    out.extend(live.approvals.into_iter().map(|mut a| {
        a.metadata = fresh_meta(a.metadata);
        Object::Approval(a)
    }));
    out.extend(live.freezes.into_iter().map(|mut f| {
        f.metadata = fresh_meta(f.metadata);
        Object::Freeze(f)
    }));
    out.into_iter().map(|o| (source.clone(), o)).collect()
}

/// The two sides of a preview against a live tenant, as objects.
#[derive(Clone, Debug)]
pub struct Sides {
    /// The cluster's objects, fresh.
    pub baseline: Vec<(Source, Object)>,
    /// The cluster's objects with the head's applied over them, and the head's Fleet.
    pub head: Vec<(Source, Object)>,
    /// What the reader should know about how the head was made.
    pub notes: Vec<String>,
}

/// The tenant's configuration kinds, which a GitOps repository holds: a kind the head
/// holds at all replaces the cluster's objects of that kind.
const CONFIGURATION: [&str; 3] = ["PatchPolicy", "DeploymentRing", "PatchException"];

/// Applies the head's manifests over the cluster's objects (`live`, from
/// [`fresh_objects`]) for tenant `namespace`:
///
/// - PatchPolicies, DeploymentRings and PatchExceptions: a kind the head holds replaces
///   the cluster's objects of that kind (so a deletion in the head is previewed as one;
///   each cluster object left out is named in a note); a kind it does not hold is the
///   cluster's.
/// - ManagedDevices, Patches, PatchApprovals and PatchFreezes are applied one by one,
///   never removed: a head object of the same name (a Patch: the same `spec.id`) replaces
///   the cluster's spec and labels, one the cluster has not is added. (Agents, catalog
///   imports and people's levers own them, not the repository.)
/// - An object the cluster has keeps its creation time and status (apply leaves both).
/// - PatchRollouts and PatchReports in the head are left out (a preview plays a fresh
///   month); the head's Fleet is kept.
/// - The head's objects are the tenant's: when they name one other namespace, they are
///   moved to `namespace` (a note says so). Several namespaces are left for
///   [`world_from`] to refuse.
pub fn sides(live: Vec<(Source, Object)>, head: Vec<(Source, Object)>, namespace: &str) -> Sides {
    let mut notes = Vec::new();
    let head = rehome(head, namespace, &mut notes);
    let mut merged = configuration(&live, &head, &mut notes);
    merged.extend(apply_each(&live, &head, "ManagedDevice", &mut notes));
    merged.extend(apply_each(&live, &head, "Patch", &mut notes));
    // People's levers live on the cluster, not in Git: the cluster's hold on both sides,
    // and the head's are added (or replace one of the same name).
    merged.extend(apply_each(&live, &head, "PatchApproval", &mut notes));
    merged.extend(apply_each(&live, &head, "PatchFreeze", &mut notes));
    for (source, object) in head {
        match object {
            Object::Rollout(_) | Object::Report(_) => notes.push(format!(
                "{source}: {} {} is not played: a preview plays a fresh month",
                object.kind(),
                object.name().unwrap_or("")
            )),
            Object::Extension { .. } => merged.push((source, object)),
            _ => {}
        }
    }
    Sides {
        baseline: live,
        head: merged,
        notes,
    }
}

/// The configuration kinds on the head's side: each kind the head holds replaces the
/// cluster's ([`replace_kind`]); the others are the cluster's (one note lists them).
fn configuration(
    live: &[(Source, Object)],
    head: &[(Source, Object)],
    notes: &mut Vec<String>,
) -> Vec<(Source, Object)> {
    let held: BTreeSet<&str> = head.iter().map(|(_, o)| o.kind()).collect();
    let mut merged = Vec::new();
    let mut from_cluster = Vec::new();
    for kind in CONFIGURATION {
        let ours: Vec<&(Source, Object)> = live.iter().filter(|(_, o)| o.kind() == kind).collect();
        if held.contains(kind) {
            merged.extend(replace_kind(kind, &ours, head, notes));
        } else {
            from_cluster.push(format!("{} ({})", plural(kind), ours.len()));
            merged.extend(ours.into_iter().cloned());
        }
    }
    if !from_cluster.is_empty() {
        notes.push(format!(
            "the head holds no {}: the cluster's are played on both sides",
            from_cluster.join(", ")
        ));
    }
    merged
}

/// The head's objects of `kind`, each keeping the creation time of the cluster's object
/// of its name (`ours`); a note names the cluster's objects the head has not.
fn replace_kind(
    kind: &str,
    ours: &[&(Source, Object)],
    head: &[(Source, Object)],
    notes: &mut Vec<String>,
) -> Vec<(Source, Object)> {
    let theirs: Vec<(Source, Object)> = head
        .iter()
        .filter(|(_, o)| o.kind() == kind)
        .cloned()
        .map(|(s, o)| (s, keep_created(o, ours)))
        .collect();
    let left_out: Vec<&str> = ours
        .iter()
        .filter_map(|(_, o)| o.name())
        .filter(|n| !theirs.iter().any(|(_, t)| t.name() == Some(*n)))
        .collect();
    if !left_out.is_empty() {
        notes.push(format!(
            "the head's {} replace the cluster's: {kind} {} not in the head, so not played on the head's side",
            plural(kind),
            left_out.join(", ")
        ));
    }
    theirs
}

/// The head's objects moved into `namespace` when they all name one other namespace.
fn rehome(
    head: Vec<(Source, Object)>,
    namespace: &str,
    notes: &mut Vec<String>,
) -> Vec<(Source, Object)> {
    let named: BTreeSet<String> = head
        .iter()
        .filter(|(_, o)| !matches!(o, Object::Extension { .. } | Object::Patch(_)))
        .filter_map(|(_, o)| o.namespace().map(str::to_string))
        .collect();
    let mut all = named.iter();
    let (Some(other), None) = (all.next(), all.next()) else {
        return head;
    };
    if other == namespace {
        return head;
    }
    notes.push(format!(
        "the head's manifests are in namespace {other}: they are previewed as namespace {namespace}'s"
    ));
    head.into_iter()
        .map(|(s, mut o)| {
            if let Some(meta) = meta_mut(&mut o)
                && meta.namespace.is_some()
            {
                meta.namespace = Some(namespace.to_string());
            }
            (s, o)
        })
        .collect()
}

/// An object's metadata, for the ringmaster kinds.
fn meta_mut(o: &mut Object) -> Option<&mut ObjectMeta> {
    Some(match o {
        Object::Policy(x) => &mut x.metadata,
        Object::Ring(x) => &mut x.metadata,
        Object::Exception(x) => &mut x.metadata,
        Object::Device(x) => &mut x.metadata,
        Object::Patch(x) => &mut x.metadata,
        Object::Rollout(x) => &mut x.metadata,
        Object::Report(x) => &mut x.metadata,
        Object::Approval(x) => &mut x.metadata,
        Object::Freeze(x) => &mut x.metadata,
        Object::Extension { .. } => return None,
    })
}

/// The creation time of the cluster's object of the same name, unless the head's sets
/// one: applying a manifest to an object keeps its creation time.
fn keep_created(mut o: Object, live: &[&(Source, Object)]) -> Object {
    let created: Option<Time> = o
        .name()
        .and_then(|n| live.iter().find(|(_, l)| l.name() == Some(n)))
        .and_then(|(_, l)| meta(l)?.creation_timestamp.clone());
    if let Some(meta) = meta_mut(&mut o) {
        meta.creation_timestamp = meta.creation_timestamp.take().or(created);
    }
    o
}

/// An object's metadata, for the ringmaster kinds.
fn meta(o: &Object) -> Option<&ObjectMeta> {
    Some(match o {
        Object::Policy(x) => &x.metadata,
        Object::Ring(x) => &x.metadata,
        Object::Exception(x) => &x.metadata,
        Object::Device(x) => &x.metadata,
        Object::Patch(x) => &x.metadata,
        Object::Rollout(x) => &x.metadata,
        Object::Report(x) => &x.metadata,
        Object::Approval(x) => &x.metadata,
        Object::Freeze(x) => &x.metadata,
        Object::Extension { .. } => return None,
    })
}

/// A kind's plural, as notes name several objects of it.
fn plural(kind: &str) -> String {
    match kind.strip_suffix('y') {
        Some(stem) => format!("{stem}ies"),
        None => format!("{kind}s"),
    }
}

/// The key one object of a kind applied one by one is matched on: a Patch's `spec.id`
/// (the catalog's key), another object's name.
fn key(o: &Object) -> String {
    match o {
        Object::Patch(p) => p.spec.id.clone(),
        other => other.name().unwrap_or("").to_string(),
    }
}

/// The cluster's objects of `kind` with the head's applied one by one: the head's spec
/// and labels, the cluster's creation time and status.
fn apply_each(
    live: &[(Source, Object)],
    head: &[(Source, Object)],
    kind: &str,
    notes: &mut Vec<String>,
) -> Vec<(Source, Object)> {
    let mut out: BTreeMap<String, (Source, Object)> = live
        .iter()
        .filter(|(_, o)| o.kind() == kind)
        .map(|(s, o)| (key(o), (s.clone(), o.clone())))
        .collect();
    let (mut replaced, mut added) = (0usize, 0usize);
    for (source, object) in head.iter().filter(|(_, o)| o.kind() == kind) {
        let k = key(object);
        let applied = match out.get(&k) {
            Some((_, old)) => {
                replaced += 1;
                over(object.clone(), old)
            }
            None => {
                added += 1;
                object.clone()
            }
        };
        out.insert(k, (source.clone(), applied));
    }
    if replaced + added > 0 {
        notes.push(format!(
            "the head's {} are applied over the cluster's: {replaced} replaced, {added} added",
            plural(kind)
        ));
    }
    out.into_values().collect()
}

/// `new` applied over `old` (of the same kind): `new`'s spec, labels and annotations,
/// `old`'s creation time and status.
fn over(new: Object, old: &Object) -> Object {
    match (new, old) {
        (Object::Device(mut n), Object::Device(o)) => {
            n.metadata.creation_timestamp = o.metadata.creation_timestamp.clone();
            n.status = o.status.clone();
            Object::Device(n)
        }
        (Object::Patch(mut n), Object::Patch(o)) => {
            n.metadata.creation_timestamp = o.metadata.creation_timestamp.clone();
            n.status = n.status.or_else(|| o.status.clone());
            Object::Patch(n)
        }
        (n, _) => n,
    }
}

/// The head's Fleet as both sides play it against a cluster: its defaults, behaviours,
/// failure rules and actions; not its groups (the cluster's devices are the inventory)
/// nor its period (the preview's is now, or `--start`, for `--days`). Notes say what was
/// set aside.
pub fn shared_fleet(mut fleet: FleetSpec) -> (FleetSpec, Vec<String>) {
    let mut notes = Vec::new();
    if !fleet.groups.is_empty() {
        let devices: u32 = fleet.groups.iter().map(|g| g.count).sum();
        notes.push(format!(
            "the head's Fleet generates {devices} devices in {} groups: not played, the cluster's ManagedDevices are the inventory (the Fleet's defaults, behaviours, failures and actions are)",
            fleet.groups.len()
        ));
        fleet.groups.clear();
    }
    let period = [
        ("start", fleet.start.take().map(|t| t.to_string())),
        ("days", fleet.days.take().map(|d| d.to_string())),
        ("timeZone", fleet.time_zone.take()),
    ];
    for (field, value) in period {
        if let Some(v) = value {
            notes.push(format!(
                "the head's Fleet sets {field} {v}: not used, the period is the preview's (--start, --days, --time-zone, else now, {DEFAULT_DAYS} days and the namespace's time zone)"
            ));
        }
    }
    (fleet, notes)
}

/// The first instant of a preview against a cluster when `--start` is not given: the
/// next whole hour in the tenant's time zone (so every report read from the cluster is
/// from before it, and two runs in the same hour play the same period).
pub fn default_start(now: Timestamp, zone: &jiff::tz::TimeZone) -> Timestamp {
    now.to_zoned(zone.clone())
        .round(ZonedRound::new().smallest(Unit::Hour).mode(RoundMode::Ceil))
        .map_or(now, |z| z.timestamp())
}

/// Both sides of a preview against a cluster, ready to play.
#[derive(Clone, Debug)]
pub struct Prepared {
    /// The cluster's tenant.
    pub baseline: World,
    /// The cluster's tenant with the head applied.
    pub head: World,
    /// The Fleet both sides play with ([`shared_fleet`]).
    pub fleet: FleetSpec,
    /// The period and seed of both runs.
    pub options: Options,
    /// Notes for the reader, in the order they arose.
    pub notes: Vec<String>,
    /// The head's cross-object problems (as `validate` reports them), judged at the start.
    pub warnings: Vec<Problem>,
}

/// Makes both sides' worlds: the cluster's objects fresh ([`fresh_objects`]) at
/// `options.start`, the head applied over them ([`sides`]), one Fleet ([`shared_fleet`]).
pub fn prepare(
    live: Objects,
    head: Vec<(Source, Object)>,
    options: Options,
) -> Result<Prepared, SimLoadError> {
    let namespace = live.namespace.clone();
    let read = format!(
        "baseline: namespace {namespace} as the cluster holds it (PatchPolicies {}, DeploymentRings {}, PatchExceptions {}, ManagedDevices {}, Patches {}); its PatchRollouts are not carried over: both sides play a fresh month from what the devices report",
        live.policies.len(),
        live.rings.len(),
        live.exceptions.len(),
        live.devices.len(),
        live.patches.len()
    );
    let fresh = fresh_objects(live, options.start);
    let sides = sides(fresh, head, &namespace);
    let (baseline, head) = (sides.baseline, sides.head);
    let mut notes = vec![read];
    notes.extend(sides.notes);
    let warnings = crate::validate::cross_check(&head, options.start);
    let (baseline, _) = world_from(baseline)?;
    let (head, fleet) = world_from(head)?;
    let (fleet, fleet_notes) = shared_fleet(fleet);
    notes.extend(fleet_notes);
    Ok(Prepared {
        baseline,
        head,
        fleet,
        options,
        notes,
        warnings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{DeploymentRing, Patch, PatchException, PatchPolicy};

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    /// Manifests as the loader reads them from a file `file`.
    fn manifests(file: &str, yaml: &str) -> Vec<(Source, Object)> {
        let docs = crate::manifest::parse_yaml(std::path::Path::new(file), yaml).unwrap();
        let (objects, problems) = crate::manifest::parse_documents(docs);
        assert!(problems.is_empty(), "{problems:?}");
        objects
    }

    const POLICY: &str = "
apiVersion: patching.ringmaster.dev/v1alpha1
kind: PatchPolicy
metadata: {name: NAME, namespace: acme}
spec:
  deviceSelector: {matchLabels: {class: CLASS}}
  sla: [{tier: default, critical: 3d, high: 7d, medium: 30d, low: 60d}]
  approval: {default: Approve}
  rings: [broad]
";

    fn policy(name: &str, class: &str) -> String {
        POLICY.replace("NAME", name).replace("CLASS", class)
    }

    const RING: &str = "
apiVersion: patching.ringmaster.dev/v1alpha1
kind: DeploymentRing
metadata: {name: broad, namespace: acme}
spec: {deviceSelector: {}, maxConcurrent: 5}
";

    const EXCEPTION: &str = "
apiVersion: patching.ringmaster.dev/v1alpha1
kind: PatchException
metadata: {name: kiosks, namespace: acme}
spec:
  patches: [KB1]
  devices: {names: [d1]}
  reason: a demo
  owner: carol@acme.example
  expiresAt: \"2023-12-20T23:00:00Z\"
";

    const PATCH: &str = "
apiVersion: patching.ringmaster.dev/v1alpha1
kind: Patch
metadata: {name: kb1}
spec: {id: KB1, vendor: Microsoft, classification: Security, cvssScore: 7.5, releasedAt: \"2023-11-01T00:00:00Z\"}
";

    fn device(name: &str, ring: &str) -> String {
        format!(
            "
apiVersion: patching.ringmaster.dev/v1alpha1
kind: ManagedDevice
metadata: {{name: {name}, namespace: acme, labels: {{class: workstation, ring: {ring}}}}}
spec: {{os: {{family: linux}}}}
"
        )
    }

    /// A live tenant: the objects as an API server holds them, with server-side fields.
    fn live() -> Objects {
        let mut o = Objects {
            namespace: "acme".into(),
            ..Objects::default()
        };
        let server_side = |meta: &mut ObjectMeta| {
            meta.uid = Some("1f0c".into());
            meta.resource_version = Some("4711".into());
            meta.generation = Some(3);
            meta.creation_timestamp = Some(Time(ts("2023-10-01T00:00:00Z")));
            meta.managed_fields = Some(vec![Default::default()]);
        };
        for yaml in [
            policy("workstations", "workstation"),
            policy("servers", "server"),
            RING.into(),
            EXCEPTION.into(),
            PATCH.into(),
            device("d1", "broad"),
            device("d2", "broad"),
        ] {
            for (_, object) in manifests("cluster.yaml", &yaml) {
                match object {
                    Object::Policy(mut p) => {
                        server_side(&mut p.metadata);
                        p.status = Some(Default::default());
                        o.policies.push(p);
                    }
                    Object::Ring(mut r) => {
                        server_side(&mut r.metadata);
                        r.status = Some(Default::default());
                        o.rings.push(r);
                    }
                    Object::Exception(mut e) => {
                        server_side(&mut e.metadata);
                        e.status = Some(Default::default());
                        o.exceptions.push(e);
                    }
                    Object::Patch(mut p) => {
                        server_side(&mut p.metadata);
                        p.status = Some(crate::api::PatchStatus {
                            first_released_at: Some(ts("2023-10-15T00:00:00Z")),
                            severity: None,
                        });
                        o.patches.push(p);
                    }
                    Object::Device(mut d) => {
                        server_side(&mut d.metadata);
                        d.status = Some(ManagedDeviceStatus {
                            patches: vec![DevicePatchStatus::missing("KB1")],
                            ..Default::default()
                        });
                        o.devices.push(d);
                    }
                    _ => unreachable!(),
                }
            }
        }
        o
    }

    const START: &str = "2023-11-20T00:00:00Z";

    fn names<'a>(objects: &'a [(Source, Object)], kind: &str) -> Vec<&'a str> {
        objects
            .iter()
            .filter(|(_, o)| o.kind() == kind)
            .filter_map(|(_, o)| o.name())
            .collect()
    }

    fn find<'a>(objects: &'a [(Source, Object)], kind: &str, name: &str) -> &'a Object {
        objects
            .iter()
            .map(|(_, o)| o)
            .find(|o| o.kind() == kind && o.name() == Some(name))
            .unwrap_or_else(|| panic!("{kind} {name}"))
    }

    #[test]
    fn what_the_server_keeps_is_dropped_and_the_creation_time_kept() {
        let mut meta = ObjectMeta {
            name: Some("x".into()),
            namespace: Some("acme".into()),
            uid: Some("u".into()),
            resource_version: Some("9".into()),
            generation: Some(4),
            managed_fields: Some(vec![Default::default()]),
            finalizers: Some(vec!["f".into()]),
            creation_timestamp: Some(Time(ts("2023-10-01T00:00:00Z"))),
            labels: Some([("a".to_string(), "b".to_string())].into()),
            annotations: Some(
                [
                    (LAST_APPLIED.to_string(), "{…}".to_string()),
                    ("team".to_string(), "ops".to_string()),
                ]
                .into(),
            ),
            ..Default::default()
        };
        let fresh = fresh_meta(meta.clone());
        assert_eq!(fresh.uid, None);
        assert_eq!(fresh.resource_version, None);
        assert_eq!(fresh.generation, None);
        assert_eq!(fresh.managed_fields, None);
        assert_eq!(fresh.finalizers, None);
        assert_eq!(fresh.labels, meta.labels);
        assert_eq!(fresh.creation_timestamp, meta.creation_timestamp);
        assert_eq!(
            fresh.annotations,
            Some([("team".to_string(), "ops".to_string())].into())
        );
        meta.annotations = Some([(LAST_APPLIED.to_string(), "{}".to_string())].into());
        assert_eq!(fresh_meta(meta).annotations, None);
    }

    #[test]
    fn a_live_device_starts_from_what_it_reports() {
        let start = ts(START);
        let report = |id: &str, state: PatchState| DevicePatchStatus {
            state,
            attempts: 1,
            last_attempt_at: Some(ts("2023-11-19T02:00:00Z")),
            attempt: Some("old.rollout@3".into()),
            ..DevicePatchStatus::missing(id)
        };
        let mut d: ManagedDevice = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "d1", "namespace": "acme", "uid": "u", "resourceVersion": "7",
                "labels": {"ring": "broad"}},
            "spec": {"hostname": "d1.acme", "os": {"family": "linux"},
                "plan": {"install": {"KB1": {"rollout": "old.rollout", "notBefore": "2023-11-19T00:00:00Z"}}}},
        }))
        .unwrap();
        d.status = Some(ManagedDeviceStatus {
            last_seen: Some(ts("2023-11-19T03:00:00Z")),
            reboot_pending: true,
            agent: Some("ringmaster-agent/0.1.0".into()),
            compliance: Some(Default::default()),
            patches: vec![
                report("INSTALLING", PatchState::Installing),
                report("REBOOT", PatchState::PendingReboot),
                DevicePatchStatus {
                    installed_at: Some(ts("2023-11-25T00:00:00Z")),
                    ..report("LATER", PatchState::Installed)
                },
                DevicePatchStatus {
                    installed_at: Some(ts("2023-11-02T00:00:00Z")),
                    ..report("EARLIER", PatchState::Installed)
                },
                DevicePatchStatus {
                    message: Some("0x80070643".into()),
                    ..report("FAILED", PatchState::Failed)
                },
                DevicePatchStatus::missing("MISSING"),
            ],
        });
        let s = starting_device(d, start);
        assert_eq!(s.metadata.uid, None);
        assert_eq!(s.metadata.resource_version, None);
        assert_eq!(s.metadata.labels.as_ref().unwrap()["ring"], "broad");
        assert_eq!(s.spec.hostname.as_deref(), Some("d1.acme"));
        assert_eq!(s.spec.os.as_ref().unwrap().family, "linux");
        assert!(s.spec.plan.install.is_empty(), "the plan is the operator's");
        let status = s.status.unwrap();
        assert_eq!(status.last_seen, Some(start));
        assert!(!status.reboot_pending);
        assert_eq!(status.compliance, None);
        assert_eq!(status.agent.as_deref(), Some("ringmaster-agent/0.1.0"));
        let by = |id: &str| status.patches.iter().find(|p| p.id == id).unwrap();
        assert_eq!(by("INSTALLING").state, PatchState::Missing);
        assert_eq!(by("INSTALLING").installed_at, None);
        assert_eq!(by("REBOOT").state, PatchState::Installed);
        assert_eq!(by("REBOOT").installed_at, Some(start));
        assert_eq!(
            by("LATER").installed_at,
            Some(start),
            "never after the start"
        );
        assert_eq!(by("EARLIER").installed_at, Some(ts("2023-11-02T00:00:00Z")));
        assert_eq!(by("FAILED").state, PatchState::Failed);
        assert_eq!(by("FAILED").message.as_deref(), Some("0x80070643"));
        assert_eq!(by("FAILED").attempts, 1);
        assert_eq!(by("MISSING"), &DevicePatchStatus::missing("MISSING"));
        assert!(status.patches.iter().all(|p| p.attempt.is_none()));
    }

    #[test]
    fn cluster_objects_are_fresh_and_their_rollouts_left_out() {
        let mut l = live();
        l.rollouts.push(crate::api::PatchRollout::new(
            "workstations.kb1",
            serde_json::from_value(serde_json::json!({"policy": "workstations", "patch": "KB1"}))
                .unwrap(),
        ));
        let fresh = fresh_objects(l, ts(START));
        assert_eq!(names(&fresh, "PatchRollout"), Vec::<&str>::new());
        for (source, o) in &fresh {
            assert_eq!(source.line, 0);
            let meta = meta(o).unwrap();
            assert_eq!((meta.uid.as_ref(), meta.generation), (None, None), "{o:?}");
            match o {
                Object::Policy(PatchPolicy { status, .. }) => assert!(status.is_none()),
                Object::Ring(DeploymentRing { status, .. }) => assert!(status.is_none()),
                Object::Exception(PatchException { status, .. }) => assert!(status.is_none()),
                Object::Patch(Patch { status, .. }) => assert!(
                    status.as_ref().unwrap().first_released_at.is_some(),
                    "a patch keeps its first release"
                ),
                Object::Device(d) => assert_eq!(d.status.as_ref().unwrap().patches.len(), 1),
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn a_kind_the_head_holds_replaces_the_cluster_s_and_the_others_are_the_cluster_s() {
        let fresh = fresh_objects(live(), ts(START));
        // The head changes one policy and drops the other, and holds the exception.
        let head = manifests(
            "head/policies.yaml",
            &format!("{}---{EXCEPTION}", policy("workstations", "desktop")),
        );
        let Sides {
            baseline,
            head,
            notes,
        } = sides(fresh.clone(), head, "acme");
        assert_eq!(baseline.len(), fresh.len(), "the baseline is the cluster's");
        assert_eq!(names(&head, "PatchPolicy"), ["workstations"]);
        let Object::Policy(p) = find(&head, "PatchPolicy", "workstations") else {
            unreachable!()
        };
        assert_eq!(
            p.spec.device_selector.match_labels.as_ref().unwrap()["class"],
            "desktop"
        );
        assert!(
            notes.contains(&"the head's PatchPolicies replace the cluster's: PatchPolicy servers not in the head, so not played on the head's side".to_string()),
            "{notes:?}"
        );
        assert_eq!(
            names(&head, "DeploymentRing"),
            ["broad"],
            "from the cluster"
        );
        assert!(
            notes.contains(
                &"the head holds no DeploymentRings (1): the cluster's are played on both sides"
                    .to_string()
            ),
            "{notes:?}"
        );
        // The head's exception is the cluster's object applied: its creation time stays.
        let created = |o: &Object| meta(o).unwrap().creation_timestamp.clone();
        assert_eq!(
            created(find(&head, "PatchException", "kiosks")),
            Some(Time(ts("2023-10-01T00:00:00Z")))
        );
        assert_eq!(names(&head, "ManagedDevice"), ["d1", "d2"]);
        assert_eq!(names(&head, "Patch"), ["kb1"]);
    }

    #[test]
    fn devices_and_patches_are_applied_one_by_one_and_never_removed() {
        let fresh = fresh_objects(live(), ts(START));
        let yaml = format!(
            "{}---{}---{}",
            device("d1", "pilot"),
            device("d9", "pilot"),
            PATCH.replace("cvssScore: 7.5", "cvssScore: 9.8")
        );
        let s = sides(fresh, manifests("head/devices.yaml", &yaml), "acme");
        assert_eq!(names(&s.head, "ManagedDevice"), ["d1", "d2", "d9"]);
        let Object::Device(d1) = find(&s.head, "ManagedDevice", "d1") else {
            unreachable!()
        };
        assert_eq!(d1.metadata.labels.as_ref().unwrap()["ring"], "pilot");
        assert_eq!(
            d1.status.as_ref().unwrap().patches,
            [DevicePatchStatus::missing("KB1")],
            "what the agent reports stays"
        );
        let Object::Patch(p) = find(&s.head, "Patch", "kb1") else {
            unreachable!()
        };
        assert_eq!(p.spec.cvss_score, Some(9.8));
        assert!(p.status.is_some(), "the cluster's status stays");
        assert!(
            s.notes.contains(
                &"the head's ManagedDevices are applied over the cluster's: 1 replaced, 1 added"
                    .to_string()
            ),
            "{:?}",
            s.notes
        );
        // Policies, rings and exceptions: the cluster's, as the head holds none.
        assert_eq!(names(&s.head, "PatchPolicy"), ["workstations", "servers"]);
        // The baseline is untouched.
        let Object::Device(b1) = find(&s.baseline, "ManagedDevice", "d1") else {
            unreachable!()
        };
        assert_eq!(b1.metadata.labels.as_ref().unwrap()["ring"], "broad");
    }

    #[test]
    fn the_head_s_objects_are_the_tenant_s_and_its_rollouts_are_not_played() {
        let fresh = fresh_objects(live(), ts(START));
        let yaml = format!(
            "{}---
apiVersion: patching.ringmaster.dev/v1alpha1
kind: PatchRollout
metadata: {{name: servers.kb1, namespace: staging}}
spec: {{policy: servers, patch: KB1}}
",
            RING.replace("namespace: acme", "namespace: staging")
        );
        let s = sides(fresh, manifests("head/rings.yaml", &yaml), "acme");
        assert_eq!(
            s.head
                .iter()
                .filter_map(|(_, o)| o.namespace())
                .collect::<BTreeSet<_>>(),
            ["acme"].into()
        );
        assert_eq!(names(&s.head, "PatchRollout"), Vec::<&str>::new());
        assert!(
            s.notes.iter().any(|n| n
                == "the head's manifests are in namespace staging: they are previewed as namespace acme's"),
            "{:?}",
            s.notes
        );
        assert!(
            s.notes.iter().any(|n| n.starts_with("head/rings.yaml:")
                && n.ends_with(
                    "PatchRollout servers.kb1 is not played: a preview plays a fresh month"
                )),
            "{:?}",
            s.notes
        );
    }

    #[test]
    fn the_head_s_fleet_gives_behaviour_not_devices_nor_period() {
        let fleet: FleetSpec = serde_json::from_value(serde_json::json!({
            "start": "2023-11-13T00:00:00Z", "days": 10, "timeZone": "Europe/Paris",
            "defaults": {"checkIn": "30m"},
            "groups": [{"prefix": "ws", "count": 3}, {"prefix": "srv", "count": 2}],
            "failures": [{"patch": "KB1", "rate": 0.5}],
        }))
        .unwrap();
        let (shared, notes) = shared_fleet(fleet.clone());
        assert!(shared.groups.is_empty());
        assert_eq!(
            (shared.start, shared.days, shared.time_zone),
            (None, None, None)
        );
        assert_eq!(shared.defaults, fleet.defaults);
        assert_eq!(shared.failures, fleet.failures);
        assert_eq!(notes.len(), 4, "{notes:?}");
        assert!(
            notes[0].starts_with("the head's Fleet generates 5 devices in 2 groups: not played")
        );
        assert_eq!(shared_fleet(FleetSpec::default()).1, Vec::<String>::new());
    }

    #[test]
    fn the_default_start_is_the_next_whole_hour_in_the_tenant_s_zone() {
        let utc = jiff::tz::TimeZone::UTC;
        let kolkata = jiff::tz::TimeZone::get("Asia/Kolkata").unwrap();
        let now = ts("2026-05-04T15:20:07Z");
        assert_eq!(default_start(now, &utc), ts("2026-05-04T16:00:00Z"));
        // 20:50:07 in Kolkata (UTC+5:30): its next whole hour is 21:00 there.
        assert_eq!(default_start(now, &kolkata), ts("2026-05-04T15:30:00Z"));
        let on_the_hour = ts("2026-05-04T16:00:00Z");
        assert_eq!(default_start(on_the_hour, &utc), on_the_hour);
    }

    #[test]
    fn prepare_makes_both_worlds_with_one_fleet() {
        let head = manifests(
            "head/fleet.yaml",
            &format!(
                "{}---
apiVersion: sim.ringmaster.dev/v1alpha1
kind: Fleet
metadata: {{name: f, namespace: acme}}
spec: {{defaults: {{checkIn: 1h}}, groups: [{{prefix: ws, count: 2}}]}}
",
                policy("workstations", "workstation")
            ),
        );
        let options = Options {
            start: ts(START),
            days: 7,
            seed: 3,
        };
        let p = prepare(live(), head, options).unwrap();
        assert_eq!(p.baseline.namespace, "acme");
        assert_eq!(p.baseline.policies.len(), 2);
        assert_eq!(p.head.policies.len(), 1);
        assert_eq!(
            p.baseline.devices.keys().collect::<Vec<_>>(),
            p.head.devices.keys().collect::<Vec<_>>()
        );
        assert!(p.fleet.groups.is_empty());
        assert_eq!(p.fleet.defaults.check_in, Some("1h".parse().unwrap()));
        assert!(p.notes[0].starts_with(
            "baseline: namespace acme as the cluster holds it (PatchPolicies 2, DeploymentRings 1, PatchExceptions 1, ManagedDevices 2, Patches 1)"
        ));
    }
}
