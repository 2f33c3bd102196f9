#!/usr/bin/env python3
"""Checks the chart's renders that .ci/chart leaves in target/chart/.

Usage: chart-check.py REPO_ROOT RENDER_DIR

Rules for every render:
- no Role or ClusterRole rule has a "*" in its verbs, resources, apiGroups, resourceNames
  or nonResourceURLs;
- every Deployment's pods and containers run with the restricted security context
  (runAsNonRoot, runAsUser 65532, readOnlyRootFilesystem, allowPrivilegeEscalation false,
  capabilities drop ALL, seccompProfile RuntimeDefault), with requests and limits, and
  ask for their ServiceAccount token themselves (the ServiceAccounts mount none);
- the same for the pods of every CronJob;
- the node agent's DaemonSet (agent.nodeMode), the one privileged workload, only where
  node mode is on: hostPID, privileged, the host's root read-only at /host, its node's
  name from the downward API, every taint tolerated, `agent --backend=auto --node-mode`
  with `--host-exec` and the nsenter prefix, the operator's image;
- the operator, the simulated agent, the node agent and the catalog imports get exactly
  the permissions they need: the expected set is written out below from the contract, and any permission
  more or less is a failure; the operator in particular deletes nothing and has no access
  to Secrets, and reads only the watched Namespaces in namespaced mode;
- the CRDs the operator may check are exactly the files in the chart's crds/;
- the evidence packets (reports.*): by default a PersistentVolumeClaim kept on uninstall
  (helm.sh/resource-policy: keep), mounted read-write at /var/lib/ringmaster/reports and
  named by --report-store, the container's only writable mount; with an existing claim
  that claim and no PVC; with the s3 store no PVC and no volume, the bucket in
  --report-store and the endpoint, region and credentials (from the Secret, never
  inline) in the environment; with reports off none of it; the signing key mounted
  read-only from its Secret (signing.key only), readable by the operator's user through
  fsGroup and by nobody else, and named by --report-sign-key;
- one catalog CronJob per enabled source and none for the others (none by default), each
  running `catalog import <source> <urls…> <args…>` on its schedule with the operator's
  image, as the catalog ServiceAccount, whose ClusterRole holds get, list, create and
  patch on patches and nothing else;
- no name is longer than the API server takes (a CronJob's 52: its Jobs get an
  11-character suffix; a Service's 63; label values 63), even with the longest full name
  (the long-name render);
- the PrometheusRule only with alerts.enabled: every alert with a severity, a summary, a
  description and a runbook_url to its section of docs/alerts.md, selecting the metrics
  Service's job, and promtool cases in ci/alerts-test.yaml that fire it and that do not;
- and what each configuration promises (leader election, strategy, namespaces, admission
  policies, ServiceMonitor, alerts, dashboard, simulated agent, node agent, catalog imports)
  is there, and nothing else.
Prints every failure and exits 1 if there is any.
"""

import json
import os
import sys

import yaml

ROOT, OUT = sys.argv[1], sys.argv[2]
CHART = os.path.join(ROOT, "charts", "ringmaster")
RELEASE_NS = "ringmaster-system"
FULLNAME = "ringmaster"
OPERATOR_SA = ("ServiceAccount", RELEASE_NS, "ringmaster")
AGENT_SA = ("ServiceAccount", RELEASE_NS, "ringmaster-agent-simulator")
NODE_AGENT_SA = ("ServiceAccount", RELEASE_NS, "ringmaster-node-agent")
NODE_AGENT_USER = f"system:serviceaccount:{RELEASE_NS}:ringmaster-node-agent"
HOST_EXEC = "/busybox nsenter --target 1 --mount --uts --ipc --net --pid --"
CATALOG_SOURCES = ["msrc", "osv", "kev", "epss"]
# The import lists Patches and server-side applies them: an apply is a PATCH, and the API
# server checks `create` as well when the Patch does not exist yet. `get` reads one.
CATALOG_VERBS = ["get", "list", "create", "patch"]
GROUP = "patching.ringmaster.dev"
NAMESPACED_KINDS = ["patchpolicies", "deploymentrings", "patchexceptions", "manageddevices", "patchrollouts",
                    "patchreports", "patchapprovals", "patchfreezes"]
LEVER_KINDS = ["patchapprovals", "patchfreezes"]
ALL_KINDS = NAMESPACED_KINDS + ["patches"]
CRD_NAMES = sorted(f"{k}.{GROUP}" for k in ALL_KINDS)
METRICS = [
    "ringmaster_sla_compliance_ratio",
    "ringmaster_time_to_install_seconds",
    "ringmaster_ring_failure_rate",
    "ringmaster_ring_rollback_rate",
    "ringmaster_exceptions",
    "ringmaster_rollouts",
    "ringmaster_devices",
    "ringmaster_reconcile_total",
    "ringmaster_reconcile_duration_seconds",
]

# The alerts of the PrometheusRule (alerts.enabled), each with a runbook section in
# docs/alerts.md and promtool cases in ci/alerts-test.yaml that fire it and that do not.
ALERTS = [
    "RingmasterSlaBreachImminent",
    "RingmasterSlaBreached",
    "RingmasterExceptionExpiringSoon",
    "RingmasterRingHalted",
    "RingmasterRolloutStalled",
    "RingmasterAgentsUnreachable",
    "RingmasterOperatorNotReconciling",
    "RingmasterOperatorReconcileErrors",
]

# The catalog sources of the all-on render (ci/all-on-values.yaml): schedule, urls, args.
ALL_ON_CATALOG = {
    "msrc": dict(schedule="7 */6 * * *", urls=[], args=[]),
    "osv": dict(schedule="@daily", urls=[], args=[]),
    "kev": dict(schedule="23 * * * *",
                urls=["https://mirror.example.com/cisa/known_exploited_vulnerabilities.json"],
                args=["-o", "json"]),
    "epss": dict(schedule="45 15 * * *", urls=[], args=[]),
}

# Where the operator keeps packets, and the file of the signing key.
REPORTS_DIR = "/var/lib/ringmaster/reports"
SIGNING_KEY = "/etc/ringmaster/report-signing/signing.key"

# The reports settings of a render (`reports` in RENDERS): the --report-store wanted
# (None: reports off), the PersistentVolumeClaim the operator mounts (None: none) and
# whether the chart creates it (with its size, storage class and access modes), the
# environment the s3 store gets (name -> a value, or ("secret", name, key, optional)),
# and the Secret of the signing key (None: unsigned).
DEFAULT_REPORTS = dict(store=REPORTS_DIR, claim="ringmaster-reports", created=True,
                       size="5Gi", storage_class=None, access_modes=["ReadWriteOnce"],
                       env={}, signing=None)
S3_REPORTS = dict(store="s3://ringmaster-evidence/clusters/prod", claim=None, created=False,
                  env={"AWS_ENDPOINT_URL": "https://minio.example.com:9000",
                       "AWS_REGION": "eu-central-1",
                       "AWS_ACCESS_KEY_ID": ("secret", "ringmaster-s3", "AWS_ACCESS_KEY_ID", None),
                       "AWS_SECRET_ACCESS_KEY": ("secret", "ringmaster-s3", "AWS_SECRET_ACCESS_KEY", None),
                       "AWS_SESSION_TOKEN": ("secret", "ringmaster-s3", "AWS_SESSION_TOKEN", True)},
                  signing="ringmaster-report-signing")

# The write pacing flags by default: --max-concurrent-writes, --write-qps, --write-burst
# (None: the flag is absent).
DEFAULT_WRITES = ("32", None, None)

# What each render of .ci/chart is expected to hold. `catalog` is the enabled catalog
# sources; `catalog_sa` their ServiceAccount (None: "<fullname>-catalog") and whether the
# chart creates it; `reports` as above (absent: DEFAULT_REPORTS).
RENDERS = {
    "default": dict(watch=[], replicas=1, leader=False, lease=None, vap=False, actions=None,
                    service_monitor=False, dashboard=False, agent=None, node=None, log_format="json",
                    catalog={}),
    "default-vap": dict(watch=[], replicas=1, leader=False, lease=None, vap=True, actions=["Deny"],
                        service_monitor=False, dashboard=False, agent=None, node=None, log_format="json",
                        catalog={}),
    "all-on": dict(watch=["team-a", "team-b"], replicas=2, leader=True, lease="ringmaster-leader",
                   vap=True, actions=["Deny", "Audit"], service_monitor=True, dashboard=True, alerts=True,
                   agent="team-a", node="team-b", log_format="json",
                   catalog=ALL_ON_CATALOG, catalog_sa=(None, True), time_zone="Etc/UTC",
                   writes=("64", "50", "20"),
                   reports=dict(DEFAULT_REPORTS, size="20Gi", storage_class="shared-nfs",
                                access_modes=["ReadWriteMany"], signing="ringmaster-report-signing")),
    "namespaced-single": dict(watch=["tenant-a"], replicas=1, leader=True, lease="ringmaster-tenant-a",
                              vap=True, actions=["Deny"], service_monitor=False, dashboard=False,
                              agent=None, node=None, log_format="text", catalog={}),
    # Three replicas over three shards: --shards and the three shard Leases.
    "sharded": dict(watch=[], replicas=3, leader=True, lease="ringmaster-leader", shards=3, vap=False,
                    actions=None, service_monitor=False, dashboard=False, agent=None, node=None,
                    log_format="json", catalog={}),
    "vap-off": dict(watch=[], replicas=1, leader=False, lease=None, vap=False, actions=None,
                    service_monitor=False, dashboard=False, agent=None, node=None, log_format="json",
                    catalog={}),
    # Two sources on with the defaults otherwise, as an existing ServiceAccount, with the
    # schedules in kube-controller-manager's time zone.
    "catalog-partial": dict(watch=[], replicas=1, leader=False, lease=None, vap=False, actions=None,
                            service_monitor=False, dashboard=False, agent=None, node=None, log_format="json",
                            catalog={"kev": dict(schedule="23 * * * *", urls=[], args=[]),
                                     "epss": dict(schedule="45 15 * * *", urls=[], args=["--dry-run"])},
                            catalog_sa=("patch-feeder", False), time_zone=None),
    # Node mode on, everything else by default.
    "node-mode": dict(watch=[], replicas=1, leader=False, lease=None, vap=True, actions=["Deny"],
                      service_monitor=False, dashboard=False, agent=None, node=RELEASE_NS,
                      log_format="json", catalog={}),
    # The evidence packets in a bucket of an S3-compatible server, with static credentials
    # and a signing key (ci/reports-s3-values.yaml).
    "reports-s3": dict(watch=[], replicas=1, leader=False, lease=None, vap=False, actions=None,
                       service_monitor=False, dashboard=False, agent=None, node=None, log_format="json",
                       catalog={}, reports=S3_REPORTS),
    # In AWS S3 with the pod's own credentials (IRSA, instance): nothing but the bucket.
    "reports-s3-irsa": dict(watch=[], replicas=1, leader=False, lease=None, vap=False, actions=None,
                            service_monitor=False, dashboard=False, agent=None, node=None,
                            log_format="json", catalog={},
                            reports=dict(S3_REPORTS, store="s3://ringmaster-evidence", env={}, signing=None)),
    # On a claim the user made.
    "reports-existing-claim": dict(watch=[], replicas=1, leader=False, lease=None, vap=False, actions=None,
                                   service_monitor=False, dashboard=False, agent=None, node=None,
                                   log_format="json", catalog={},
                                   reports=dict(DEFAULT_REPORTS, claim="evidence", created=False)),
    # Reports off: no store, no volume, no key.
    "reports-off": dict(watch=[], replicas=1, leader=False, lease=None, vap=False, actions=None,
                        service_monitor=False, dashboard=False, agent=None, node=None, log_format="json",
                        catalog={}, reports=dict(store=None, claim=None, created=False, env={}, signing=None)),
}
# Renders checked only for the length of their names (another full name than FULLNAME).
NAME_RENDERS = ["long-name"]

failures = []


def fail(render, what):
    failures.append(f"[{render}] {what}")


def load(render):
    with open(os.path.join(OUT, f"{render}.yaml")) as f:
        return [d for d in yaml.safe_load_all(f) if d]


def key(obj):
    md = obj.get("metadata", {})
    return (obj.get("kind"), md.get("namespace"), md.get("name"))


# ---- RBAC ----

def check_no_wildcards(render, docs):
    for obj in docs:
        if obj.get("kind") not in ("Role", "ClusterRole"):
            continue
        for i, rule in enumerate(obj.get("rules") or []):
            for field in ("verbs", "resources", "apiGroups", "resourceNames", "nonResourceURLs"):
                for item in rule.get(field) or []:
                    if "*" in item:
                        fail(render, f"{key(obj)} rule {i}: {field} contains {item!r}")
            if not rule.get("verbs"):
                fail(render, f"{key(obj)} rule {i}: no verbs")
        if obj.get("aggregationRule"):
            fail(render, f"{key(obj)}: the chart defines no aggregating roles")


def grants(render, docs, subject):
    """Every (scope, apiGroup, resource, verb, resourceName) the subject is granted."""
    kind, ns, name = subject
    roles = {key(o): o for o in docs if o.get("kind") in ("Role", "ClusterRole")}
    out = set()
    for b in docs:
        if b.get("kind") not in ("RoleBinding", "ClusterRoleBinding"):
            continue
        if not any(s.get("kind") == kind and s.get("name") == name and s.get("namespace") == ns
                   for s in b.get("subjects") or []):
            continue
        ref = b["roleRef"]
        if ref.get("apiGroup") != "rbac.authorization.k8s.io":
            fail(render, f"{key(b)}: roleRef apiGroup {ref.get('apiGroup')!r}")
        if ref["kind"] == "ClusterRole":
            role = roles.get(("ClusterRole", None, ref["name"]))
        else:
            role = roles.get(("Role", b["metadata"]["namespace"], ref["name"]))
        if role is None:
            fail(render, f"{key(b)} binds {ref['kind']} {ref['name']}, which the chart does not render")
            continue
        scope = "cluster" if b["kind"] == "ClusterRoleBinding" else b["metadata"]["namespace"]
        for rule in role.get("rules") or []:
            for g in rule.get("apiGroups") or []:
                for r in rule.get("resources") or []:
                    for v in rule.get("verbs") or []:
                        for n in rule.get("resourceNames") or [None]:
                            out.add((scope, g, r, v, n))
    return out


def expected_operator_grants(exp):
    want = set()
    scopes = exp["watch"] or ["cluster"]
    for scope in scopes:
        for r in NAMESPACED_KINDS:
            for v in ("get", "list", "watch"):
                want.add((scope, GROUP, r, v, None))
            # People's lever objects have no status.
            if r not in LEVER_KINDS:
                want.add((scope, GROUP, f"{r}/status", "patch", None))
        want.add((scope, GROUP, "manageddevices", "patch", None))
        want.add((scope, GROUP, "patchrollouts", "create", None))
        want.add((scope, GROUP, "patchrollouts", "patch", None))
        # A PatchReport per tenant and month; its status is written whole (PUT).
        want.add((scope, GROUP, "patchreports", "create", None))
        want.add((scope, GROUP, "patchreports/status", "update", None))
        want.add((scope, "events.k8s.io", "events", "create", None))
        want.add((scope, "events.k8s.io", "events", "patch", None))
        # The devices' check-in Leases, read only.
        for v in ("get", "list", "watch"):
            want.add((scope, "coordination.k8s.io", "leases", v, None))
    for v in ("get", "list", "watch"):
        want.add(("cluster", GROUP, "patches", v, None))
    want.add(("cluster", GROUP, "patches/status", "patch", None))
    for crd in CRD_NAMES:
        want.add(("cluster", "apiextensions.k8s.io", "customresourcedefinitions", "get", crd))
    # The tenants' time zones: a GET of each watched Namespace (any, when all are watched).
    for ns in exp["watch"] or [None]:
        want.add(("cluster", "", "namespaces", "get", ns))
    if exp["leader"]:
        want.add((RELEASE_NS, "coordination.k8s.io", "leases", "create", None))
        shards = exp.get("shards", 1)
        leases = [f"{exp['lease']}-shard-{i}" for i in range(shards)] if shards > 1 else [exp["lease"]]
        for lease in leases:
            for v in ("get", "update", "patch"):
                want.add((RELEASE_NS, "coordination.k8s.io", "leases", v, lease))
    return want


def expected_agent_grants(exp):
    want = set()
    ns = exp["agent"]
    if ns is None:
        return want
    for v in ("get", "list", "watch", "create", "patch"):
        want.add((ns, GROUP, "manageddevices", v, None))
    want.add((ns, GROUP, "manageddevices/status", "patch", None))
    for v in ("get", "create", "patch"):
        want.add((ns, "coordination.k8s.io", "leases", v, None))
    for v in ("get", "list", "watch"):
        want.add(("cluster", GROUP, "patches", v, None))
    return want


def expected_node_agent_grants(exp):
    want = set()
    ns = exp["node"]
    if ns is None:
        return want
    for v in ("get", "patch"):
        want.add(("cluster", "", "nodes", v, None))
    want.add(("cluster", "", "pods", "list", None))
    want.add(("cluster", "", "pods/eviction", "create", None))
    for v in ("get", "list", "watch"):
        want.add(("cluster", GROUP, "patches", v, None))
        want.add((ns, GROUP, "deploymentrings", v, None))
    for v in ("get", "list", "watch", "create"):
        want.add((ns, GROUP, "manageddevices", v, None))
    want.add((ns, GROUP, "manageddevices/status", "patch", None))
    for v in ("get", "create", "patch"):
        want.add((ns, "coordination.k8s.io", "leases", v, None))
    return want


def check_exact(render, who, got, want):
    for g in sorted(got - want, key=str):
        fail(render, f"{who} is granted more than it needs: {g}")
    for g in sorted(want - got, key=str):
        fail(render, f"{who} lacks a permission it needs: {g}")


def check_user_roles(render, docs):
    roles = {o["metadata"]["name"]: o for o in docs if o.get("kind") == "ClusterRole"}
    agg = "rbac.authorization.k8s.io/aggregate-to-"

    def flat(role):
        return {(g, r, v) for rule in role.get("rules") or [] for g in rule["apiGroups"]
                for r in rule["resources"] for v in rule["verbs"]}

    def labels(role):
        return {k for k, v in (role["metadata"].get("labels") or {}).items()
                if k.startswith(agg) and v == "true"}

    expect = {
        "ringmaster-view": ({agg + "view"},
                            {(GROUP, r, v) for r in ALL_KINDS for v in ("get", "list", "watch")}),
        "ringmaster-edit": ({agg + "edit"},
                            {(GROUP, r, v) for r in ("patchpolicies", "deploymentrings", "patchexceptions",
                                                     "patchapprovals", "patchfreezes")
                             for v in ("create", "update", "patch", "delete")}
                            | {(GROUP, "patchrollouts", "patch")}
                            # Closing a month on demand; never a report's status.
                            | {(GROUP, "patchreports", v) for v in ("create", "delete")}),
        "ringmaster-catalog-editor": (set(),
                                      {(GROUP, "patches", v) for v in
                                       ("get", "list", "watch", "create", "update", "patch", "delete")}),
    }
    expect["ringmaster-admin"] = ({agg + "admin"},
                                  expect["ringmaster-edit"][1] | {(GROUP, "patchrollouts", "delete")})
    # A status is the operator's: no role for people writes one (a report's above all).
    for name in expect:
        for g, r, v in sorted(flat(roles[name]) if name in roles else ()):
            if r.endswith("/status"):
                fail(render, f"ClusterRole {name} grants {v} on {r}: statuses are the operator's")
    for name, (want_labels, want_rules) in expect.items():
        role = roles.get(name)
        if role is None:
            fail(render, f"ClusterRole {name} is missing")
            continue
        if labels(role) != want_labels:
            fail(render, f"ClusterRole {name}: aggregation labels {sorted(labels(role))}, want {sorted(want_labels)}")
        if flat(role) != want_rules:
            fail(render, f"ClusterRole {name}: rules differ: more {sorted(flat(role) - want_rules)}, "
                         f"less {sorted(want_rules - flat(role))}")


# ---- workloads ----

def effective(pod_sc, c_sc, field):
    return c_sc[field] if field in c_sc else pod_sc.get(field)


def check_deployments(render, docs):
    sas = {o["metadata"]["name"]: o for o in docs if o.get("kind") == "ServiceAccount"}
    for sa in sas.values():
        if sa.get("automountServiceAccountToken") is not False:
            fail(render, f"{key(sa)}: ServiceAccount must set automountServiceAccountToken: false")
    for d in docs:
        if d.get("kind") != "Deployment":
            continue
        where = key(d)
        pod = d["spec"]["template"]["spec"]
        if pod.get("serviceAccountName") not in sas:
            fail(render, f"{where}: serviceAccountName {pod.get('serviceAccountName')!r} is not rendered")
        selector = d["spec"]["selector"]["matchLabels"]
        pod_labels = d["spec"]["template"]["metadata"]["labels"]
        if any(pod_labels.get(k) != v for k, v in selector.items()):
            fail(render, f"{where}: the selector does not match the pod labels")
        check_pod(render, where, pod)
    # CronJobs' pods: the same rules (their ServiceAccount is checked by check_catalog,
    # since it may be one the chart does not create).
    for cj in docs:
        if cj.get("kind") == "CronJob":
            check_pod(render, key(cj), cj["spec"]["jobTemplate"]["spec"]["template"]["spec"])


def check_pod(render, where, pod):
    """The restricted security context, resources, a pinned image and an explicit token."""
    psc = pod.get("securityContext") or {}
    for field in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(field):
            fail(render, f"{where}: {field}")
    if pod.get("automountServiceAccountToken") is not True:
        fail(render, f"{where}: the pod must ask for its token explicitly (it talks to the API)")
    for v in pod.get("volumes") or []:
        if "hostPath" in v:
            fail(render, f"{where}: hostPath volume {v.get('name')}")
    containers = pod.get("containers", []) + pod.get("initContainers", [])
    if not containers:
        fail(render, f"{where}: no containers")
    for c in containers:
        cw = f"{where} container {c['name']}"
        csc = c.get("securityContext") or {}
        if effective(psc, csc, "runAsNonRoot") is not True:
            fail(render, f"{cw}: runAsNonRoot is not true")
        if effective(psc, csc, "runAsUser") != 65532:
            fail(render, f"{cw}: runAsUser is not 65532")
        if csc.get("readOnlyRootFilesystem") is not True:
            fail(render, f"{cw}: readOnlyRootFilesystem is not true")
        if csc.get("allowPrivilegeEscalation") is not False:
            fail(render, f"{cw}: allowPrivilegeEscalation is not false")
        if csc.get("privileged"):
            fail(render, f"{cw}: privileged")
        caps = csc.get("capabilities") or {}
        if "ALL" not in (caps.get("drop") or []):
            fail(render, f"{cw}: capabilities do not drop ALL")
        if caps.get("add"):
            fail(render, f"{cw}: capabilities add {caps['add']}")
        seccomp = csc.get("seccompProfile") or psc.get("seccompProfile") or {}
        if seccomp.get("type") != "RuntimeDefault":
            fail(render, f"{cw}: seccompProfile is not RuntimeDefault")
        res = c.get("resources") or {}
        for kind in ("requests", "limits"):
            for r in ("cpu", "memory"):
                if r not in (res.get(kind) or {}):
                    fail(render, f"{cw}: no {kind}.{r}")
        if (c.get("image") or "").endswith(":latest") or ":" not in (c.get("image") or "").split("/")[-1] \
                and "@" not in (c.get("image") or ""):
            fail(render, f"{cw}: image {c.get('image')!r} is not pinned to a tag or digest")


def env_field(container, name):
    for e in container.get("env") or []:
        if e["name"] == name:
            return (((e.get("valueFrom") or {}).get("fieldRef") or {}).get("fieldPath")) or e.get("value")
    return None


def check_operator(render, docs, exp):
    deps = [d for d in docs if d.get("kind") == "Deployment" and d["metadata"]["name"] == FULLNAME]
    if len(deps) != 1:
        fail(render, "no operator Deployment")
        return
    d = deps[0]
    pod = d["spec"]["template"]["spec"]
    c = pod["containers"][0]
    args = c.get("args") or []
    if d["spec"]["replicas"] != exp["replicas"]:
        fail(render, f"replicas {d['spec']['replicas']}, want {exp['replicas']}")
    if args[:1] != ["run"]:
        fail(render, f"operator args do not start with `run`: {args}")
    opts = {}
    for a in args[1:]:
        if a.startswith("--"):
            k, _, v = a.partition("=")
            opts.setdefault(k, []).append(v)
    if opts.get("--namespace", []) != exp["watch"]:
        fail(render, f"--namespace flags {opts.get('--namespace')}, want {exp['watch']}")
    if opts.get("--log-format") != [exp["log_format"]]:
        fail(render, f"--log-format {opts.get('--log-format')}")
    writes = tuple((opts.get(f) or [None])[0] for f in ("--max-concurrent-writes", "--write-qps", "--write-burst"))
    if writes != exp.get("writes", DEFAULT_WRITES):
        fail(render, f"write pacing flags {writes}, want {exp.get('writes', DEFAULT_WRITES)}")
    leader = "--leader-elect" in opts
    if leader != exp["leader"]:
        fail(render, f"--leader-elect is {'on' if leader else 'off'}, want {'on' if exp['leader'] else 'off'}")
    if exp["replicas"] > 1 and not leader:
        fail(render, "more than one replica without --leader-elect")
    if leader and opts.get("--lease-name") != [exp["lease"]]:
        fail(render, f"--lease-name {opts.get('--lease-name')}, want {exp['lease']}")
    shards = exp.get("shards", 1)
    want_shards = [str(shards)] if shards > 1 else None
    if opts.get("--shards") != want_shards:
        fail(render, f"--shards {opts.get('--shards')}, want {want_shards}")
    strategy = d["spec"].get("strategy", {}).get("type")
    want_strategy = "Recreate" if (exp["replicas"] == 1 and not leader) else "RollingUpdate"
    if strategy != want_strategy:
        fail(render, f"strategy {strategy}, want {want_strategy}")
    ports = {p["name"]: p["containerPort"] for p in c.get("ports") or []}
    for flag, port in (("--metrics-addr", "metrics"), ("--health-addr", "health")):
        if opts.get(flag) != [f"0.0.0.0:{ports.get(port)}"]:
            fail(render, f"{flag} {opts.get(flag)} does not match the {port} port {ports.get(port)}")
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        get = (c.get(probe) or {}).get("httpGet") or {}
        if get.get("path") != path or get.get("port") not in ("health", ports.get("health")):
            fail(render, f"{probe} is not GET {path} on the health port: {get}")
    if env_field(c, "POD_NAME") != "metadata.name" or env_field(c, "POD_NAMESPACE") != "metadata.namespace":
        fail(render, "POD_NAME / POD_NAMESPACE do not come from the downward API")
    if not env_field(c, "RUST_LOG"):
        fail(render, "no RUST_LOG")

    # The metrics Service selects the operator pods, and only them.
    svcs = [o for o in docs if o.get("kind") == "Service"]
    if len(svcs) != 1:
        fail(render, f"{len(svcs)} Services, want the metrics Service only")
    for svc in svcs:
        sel = svc["spec"]["selector"]
        for dep in (o for o in docs if o.get("kind") == "Deployment"):
            labels = dep["spec"]["template"]["metadata"]["labels"]
            selected = all(labels.get(k) == v for k, v in sel.items())
            if selected != (dep is d):
                fail(render, f"Service {svc['metadata']['name']} {'selects' if selected else 'misses'} "
                             f"Deployment {dep['metadata']['name']}")
        for cj in (o for o in docs if o.get("kind") == "CronJob"):
            labels = cj["spec"]["jobTemplate"]["spec"]["template"]["metadata"]["labels"]
            if all(labels.get(k) == v for k, v in sel.items()):
                fail(render, f"Service {svc['metadata']['name']} selects the pods of CronJob {cj['metadata']['name']}")
        if [p.get("targetPort") for p in svc["spec"]["ports"]] != ["metrics"]:
            fail(render, "the Service does not target the metrics port")

    # Namespaced mode: the operator ClusterRole holds nothing namespaced.
    for o in docs:
        if o.get("kind") == "ClusterRole" and o["metadata"]["name"] == f"{FULLNAME}-operator" and exp["watch"]:
            for rule in o["rules"]:
                if set(rule.get("resources") or []) & set(NAMESPACED_KINDS + ["events"]):
                    fail(render, f"namespaced mode, but the operator ClusterRole grants {rule['resources']}")


def check_agent(render, docs, exp):
    deps = [d for d in docs if d.get("kind") == "Deployment" and d["metadata"]["name"] != FULLNAME]
    if exp["agent"] is None:
        if deps:
            fail(render, f"unexpected Deployments {[d['metadata']['name'] for d in deps]}")
        return
    if len(deps) != 1:
        fail(render, "no simulated agent Deployment")
        return
    args = deps[0]["spec"]["template"]["spec"]["containers"][0]["args"]
    if args[:2] != ["agent", "--simulate"] or f"--namespace={exp['agent']}" not in args:
        fail(render, f"simulated agent args {args}")


def check_node_agent(render, docs, exp):
    """The node agent's DaemonSet: rendered only with node mode, privileged on purpose."""
    dss = [d for d in docs if d.get("kind") == "DaemonSet"]
    if exp["node"] is None:
        if dss:
            fail(render, f"unexpected DaemonSets {[d['metadata']['name'] for d in dss]}")
        return
    if len(dss) != 1 or dss[0]["metadata"]["name"] != NODE_AGENT_SA[2]:
        fail(render, f"DaemonSets {[d['metadata']['name'] for d in dss]}, want {NODE_AGENT_SA[2]} alone")
        return
    ds = dss[0]
    where = key(ds)
    pod = ds["spec"]["template"]["spec"]
    selector = ds["spec"]["selector"]["matchLabels"]
    if any(ds["spec"]["template"]["metadata"]["labels"].get(k) != v for k, v in selector.items()):
        fail(render, f"{where}: the selector does not match the pod labels")
    if pod.get("serviceAccountName") != NODE_AGENT_SA[2]:
        fail(render, f"{where}: serviceAccountName {pod.get('serviceAccountName')!r}")
    if pod.get("automountServiceAccountToken") is not True:
        fail(render, f"{where}: the pod must ask for its token explicitly (it talks to the API)")
    if pod.get("hostPID") is not True:
        fail(render, f"{where}: no hostPID (nsenter --target 1 must find the host's init)")
    if pod.get("hostNetwork") or pod.get("hostIPC"):
        fail(render, f"{where}: hostNetwork or hostIPC (nsenter joins them for host commands only)")
    if {"operator": "Exists"} not in (pod.get("tolerations") or []):
        fail(render, f"{where}: does not tolerate every taint: {pod.get('tolerations')}")
    containers = pod.get("containers") or []
    if len(containers) != 1 or pod.get("initContainers"):
        fail(render, f"{where}: {len(containers)} containers, want the agent alone")
        return
    c = containers[0]
    args = c.get("args") or []
    if args[:3] != ["agent", "--backend=auto", "--node-mode"]:
        fail(render, f"{where}: args {args}")
    if "--host-exec" not in args or args[args.index("--host-exec") + 1:][:1] != [HOST_EXEC]:
        fail(render, f"{where}: --host-exec is not followed by {HOST_EXEC!r}: {args}")
    if "--host-root=/host" not in args:
        fail(render, f"{where}: no --host-root=/host (the agent would read the image's os-release): {args}")
    for want in (f"--namespace={exp['node']}", "--name=$(NODE_NAME)"):
        if want not in args:
            fail(render, f"{where}: no {want} in {args}")
    if env_field(c, "NODE_NAME") != "spec.nodeName":
        fail(render, f"{where}: NODE_NAME does not come from the downward API (spec.nodeName)")
    sc = c.get("securityContext") or {}
    if sc.get("privileged") is not True or sc.get("readOnlyRootFilesystem") is not True:
        fail(render, f"{where}: want privileged with a read-only root filesystem: {sc}")
    mounts = {m["name"]: m for m in c.get("volumeMounts") or []}
    volumes = {v["name"]: v for v in pod.get("volumes") or []}
    host = [n for n, v in volumes.items() if (v.get("hostPath") or {}).get("path") == "/"]
    if len(host) != 1 or (mounts.get(host[0]) or {}).get("mountPath") != "/host" \
            or (mounts.get(host[0]) or {}).get("readOnly") is not True:
        fail(render, f"{where}: the host's root is not mounted read-only at /host")
    res = c.get("resources") or {}
    for kind in ("requests", "limits"):
        for r in ("cpu", "memory"):
            if r not in (res.get(kind) or {}):
                fail(render, f"{where}: no {kind}.{r}")
    operator = next((o for o in docs if o.get("kind") == "Deployment" and o["metadata"]["name"] == FULLNAME), None)
    if operator and c.get("image") != operator["spec"]["template"]["spec"]["containers"][0].get("image"):
        fail(render, f"{where}: image {c.get('image')} is not the operator's")
    for svc in (o for o in docs if o.get("kind") == "Service"):
        if all(ds["spec"]["template"]["metadata"]["labels"].get(k) == v for k, v in svc["spec"]["selector"].items()):
            fail(render, f"Service {svc['metadata']['name']} selects the node agent's pods")


# ---- the operator's limits ----

def check_operator_limits(render, got):
    """Beyond the exact set: the operator deletes nothing and never touches a Secret."""
    for scope, g, r, v, n in sorted(got, key=str):
        if v in ("delete", "deletecollection"):
            fail(render, f"the operator may {v} {r} ({scope}): it never deletes")
        if r == "secrets" or r.startswith("secrets/"):
            fail(render, f"the operator may {v} {r} ({scope}): it reads no Secret, they are mounted")
        if r == "namespaces" and v != "get":
            fail(render, f"the operator may {v} namespaces: it only GETs a tenant's Namespace")


def check_crd_names():
    """The CRDs the checks expect are the chart's crds/, file for file."""
    files = sorted(f[:-len(".yaml")] for f in os.listdir(os.path.join(CHART, "crds")) if f.endswith(".yaml"))
    if files != CRD_NAMES:
        fail("crds", f"charts/ringmaster/crds/ holds {files}, the checks expect {CRD_NAMES}")


# ---- evidence packets ----

def check_reports(render, docs, exp):
    want = exp.get("reports", DEFAULT_REPORTS)
    deps = [d for d in docs if d.get("kind") == "Deployment" and d["metadata"]["name"] == FULLNAME]
    if len(deps) != 1:
        return
    pod = deps[0]["spec"]["template"]["spec"]
    c = pod["containers"][0]
    args = c.get("args") or []
    where = "the operator"

    def flag(name):
        return [a.partition("=")[2] for a in args if a.partition("=")[0] == name]

    store = flag("--report-store")
    if store != ([want["store"]] if want["store"] else []):
        fail(render, f"{where}: --report-store {store}, want {want['store']}")

    # The PersistentVolumeClaims: the chart's own, only when it creates it, and kept.
    pvcs = {o["metadata"]["name"]: o for o in docs if o.get("kind") == "PersistentVolumeClaim"}
    want_pvcs = {want["claim"]} if want["created"] else set()
    if set(pvcs) != want_pvcs:
        fail(render, f"PersistentVolumeClaims {sorted(pvcs)}, want {sorted(want_pvcs)}")
    for name in sorted(want_pvcs & set(pvcs)):
        pvc = pvcs[name]
        md = pvc["metadata"]
        if md.get("namespace") != RELEASE_NS:
            fail(render, f"PVC {name}: namespace {md.get('namespace')}, want {RELEASE_NS}")
        if (md.get("annotations") or {}).get("helm.sh/resource-policy") != "keep":
            fail(render, f"PVC {name}: no helm.sh/resource-policy: keep (helm uninstall would delete the evidence)")
        spec = pvc["spec"]
        if spec.get("accessModes") != want["access_modes"]:
            fail(render, f"PVC {name}: accessModes {spec.get('accessModes')}, want {want['access_modes']}")
        if spec.get("storageClassName") != want["storage_class"]:
            fail(render, f"PVC {name}: storageClassName {spec.get('storageClassName')!r}, "
                         f"want {want['storage_class']!r} (absent: the cluster's default)")
        size = ((spec.get("resources") or {}).get("requests") or {}).get("storage")
        if size != want["size"]:
            fail(render, f"PVC {name}: storage {size}, want {want['size']}")

    # Volumes and mounts: the claim read-write at REPORTS_DIR, the only writable mount.
    volumes = {v["name"]: v for v in pod.get("volumes") or []}
    mounts = c.get("volumeMounts") or []
    claims = {n: v["persistentVolumeClaim"]["claimName"] for n, v in volumes.items() if "persistentVolumeClaim" in v}
    if sorted(claims.values()) != ([want["claim"]] if want["claim"] else []):
        fail(render, f"{where} mounts the claims {sorted(claims.values())}, want {want['claim']}")
    writable = [m for m in mounts if not m.get("readOnly")]
    want_writable = [REPORTS_DIR] if want["claim"] else []
    if [m["mountPath"] for m in writable] != want_writable:
        fail(render, f"{where}: writable mounts {[m['mountPath'] for m in writable]}, want {want_writable}")
    for m in writable:
        if m["name"] not in claims:
            fail(render, f"{where}: {m['mountPath']} is writable but not the reports claim")
    if want["claim"]:
        psc = pod.get("securityContext") or {}
        if psc.get("fsGroup") != 65532:
            fail(render, f"{where}: fsGroup {psc.get('fsGroup')}, want 65532 (the reports volume would be root's)")

    # The s3 store's environment: exactly the variables wanted, credentials by reference.
    env = {}
    for e in c.get("env") or []:
        if not e["name"].startswith("AWS_"):
            continue
        ref = (e.get("valueFrom") or {}).get("secretKeyRef")
        env[e["name"]] = ("secret", ref["name"], ref["key"], ref.get("optional")) if ref else e.get("value")
    if env != want["env"]:
        fail(render, f"{where}: AWS_* environment {env}, want {want['env']}")
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        if isinstance(env.get(name), str):
            fail(render, f"{where}: {name} is written into the Deployment, not taken from a Secret")
    if c.get("envFrom"):
        fail(render, f"{where}: envFrom {c['envFrom']} (every key of a Secret would become a variable)")

    # The signing key: read-only, from its Secret, signing.key alone, readable by the
    # operator's user (65532, through fsGroup) and by nobody else.
    sign = flag("--report-sign-key")
    secrets = {n: v["secret"] for n, v in volumes.items() if "secret" in v}
    if not want["signing"]:
        if sign or secrets:
            fail(render, f"{where}: --report-sign-key {sign}, Secret volumes {sorted(secrets)}, want none")
        return
    if sign != [SIGNING_KEY]:
        fail(render, f"{where}: --report-sign-key {sign}, want {SIGNING_KEY}")
    if len(secrets) != 1:
        fail(render, f"{where}: Secret volumes {sorted(secrets)}, want the signing key's alone")
        return
    vol_name, sec = next(iter(secrets.items()))
    if sec.get("secretName") != want["signing"]:
        fail(render, f"{where}: the signing key comes from Secret {sec.get('secretName')}, want {want['signing']}")
    if sec.get("items") != [{"key": "signing.key", "path": "signing.key"}]:
        fail(render, f"{where}: the signing key volume holds {sec.get('items')}, want signing.key alone")
    key_mounts = [m for m in mounts if m["name"] == vol_name]
    if [(m["mountPath"], m.get("readOnly")) for m in key_mounts] != [(os.path.dirname(SIGNING_KEY), True)]:
        fail(render, f"{where}: the signing key is mounted {key_mounts}, want read-only at {os.path.dirname(SIGNING_KEY)}")
    mode = sec.get("defaultMode")
    psc = pod.get("securityContext") or {}
    user = effective(psc, c.get("securityContext") or {}, "runAsUser")
    # Secret files belong to root; with fsGroup, to that group too, and the kubelet adds
    # group read. The operator reads the key if it is root (it is not), or through the
    # group, or through "other" (which would let anyone in the pod read it).
    if not isinstance(mode, int):
        fail(render, f"{where}: the signing key volume has no defaultMode")
    else:
        readable = user == 0 or (psc.get("fsGroup") == 65532 and user == 65532) or mode & 0o004
        if not readable:
            fail(render, f"{where}: the signing key (mode {mode:o}, fsGroup {psc.get('fsGroup')}) "
                         f"is not readable by user {user}")
        if mode & 0o077 & ~0o040:
            fail(render, f"{where}: the signing key's mode {mode:o} gives more than the group read")


# ---- catalog imports ----

def check_catalog(render, docs, exp, fullname=FULLNAME):
    """One CronJob per enabled source, running the import as the catalog ServiceAccount,
    which may get, list, create and patch Patches and nothing else; nothing when none is."""
    want = exp["catalog"]
    cronjobs = {o["metadata"]["name"]: o for o in docs if o.get("kind") == "CronJob"}
    jobs = [key(o) for o in docs if o.get("kind") in ("Job", "Pod")]
    if jobs:
        fail(render, f"bare Jobs or Pods rendered: {jobs}")
    short = fullname[:39]
    short = short[:-1] if short.endswith("-") else short
    want_names = {f"{short}-catalog-{s}": s for s in want}
    if set(cronjobs) != set(want_names):
        fail(render, f"CronJobs {sorted(cronjobs)}, want {sorted(want_names)}")
    catalog_objs = [key(o) for o in docs
                    if ((o.get("metadata") or {}).get("labels") or {}).get("app.kubernetes.io/component", "")
                    .startswith("catalog")]
    sa_name, sa_created = exp.get("catalog_sa", (None, False))
    sa_name = sa_name or f"{fullname}-catalog"
    sa_subject = ("ServiceAccount", RELEASE_NS, sa_name)
    got = grants(render, docs, sa_subject)
    if not want:
        if catalog_objs:
            fail(render, f"no catalog source is enabled, but {catalog_objs} are rendered")
        if got:
            fail(render, f"no catalog source is enabled, but {sa_subject} is granted {sorted(got, key=str)}")
        return
    # The ServiceAccount: rendered (without a token of its own) only when the chart creates it.
    sas = {o["metadata"]["name"]: o for o in docs if o.get("kind") == "ServiceAccount"}
    if sa_created != (sa_name in sas):
        fail(render, f"catalog ServiceAccount {sa_name} is {'' if sa_name in sas else 'not '}rendered, "
                     f"want {'it' if sa_created else 'an existing one'}")
    if f"{fullname}-catalog" in sas and not sa_created:
        fail(render, f"ServiceAccount {fullname}-catalog rendered with catalog.serviceAccount.create false")
    # Its permissions, from every binding: exactly these, cluster-wide.
    check_exact(render, "the catalog imports", got,
                {("cluster", GROUP, "patches", v, None) for v in CATALOG_VERBS})
    role = next((o for o in docs if o.get("kind") == "ClusterRole"
                 and o["metadata"]["name"] == f"{fullname}-catalog"), None)
    if role is None:
        fail(render, f"ClusterRole {fullname}-catalog is missing")
    else:
        flat = sorted((g, r, v, n) for rule in role.get("rules") or [] for g in rule.get("apiGroups") or []
                      for r in rule.get("resources") or [] for v in rule.get("verbs") or []
                      for n in rule.get("resourceNames") or [None])
        want_flat = sorted((GROUP, "patches", v, None) for v in CATALOG_VERBS)
        if flat != want_flat or any(rule.get("nonResourceURLs") for rule in role.get("rules") or []):
            fail(render, f"ClusterRole {fullname}-catalog grants {flat}, want exactly {want_flat}")
    operator = next((o for o in docs if o.get("kind") == "Deployment" and o["metadata"]["name"] == fullname), None)
    op_c = operator["spec"]["template"]["spec"]["containers"][0] if operator else {}
    for name, source in sorted(want_names.items()):
        cj = cronjobs.get(name)
        if cj is None:
            continue
        where = f"CronJob {name}"
        w = want[source]
        component = f"catalog-{source}"
        if cj.get("apiVersion") != "batch/v1":
            fail(render, f"{where}: apiVersion {cj.get('apiVersion')}")
        spec = cj["spec"]
        job = spec["jobTemplate"]["spec"]
        tmpl = job["template"]
        pod = tmpl["spec"]
        for what, labels in (("the CronJob", cj["metadata"].get("labels")),
                             ("its Jobs", (spec["jobTemplate"].get("metadata") or {}).get("labels")),
                             ("its pods", tmpl["metadata"].get("labels"))):
            if (labels or {}).get("app.kubernetes.io/component") != component:
                fail(render, f"{where}: {what} are not labelled app.kubernetes.io/component: {component}")
        if spec.get("schedule") != w["schedule"]:
            fail(render, f"{where}: schedule {spec.get('schedule')!r}, want {w['schedule']!r}")
        if spec.get("timeZone") != exp.get("time_zone"):
            fail(render, f"{where}: timeZone {spec.get('timeZone')!r}, want {exp.get('time_zone')!r}")
        if spec.get("concurrencyPolicy") != "Forbid":
            fail(render, f"{where}: concurrencyPolicy {spec.get('concurrencyPolicy')}, want Forbid")
        for field in ("successfulJobsHistoryLimit", "failedJobsHistoryLimit", "startingDeadlineSeconds"):
            if not isinstance(spec.get(field), int):
                fail(render, f"{where}: no {field}")
        for field in ("backoffLimit", "activeDeadlineSeconds"):
            if not isinstance(job.get(field), int):
                fail(render, f"{where}: its Jobs have no {field}")
        if pod.get("restartPolicy") != "Never":
            fail(render, f"{where}: restartPolicy {pod.get('restartPolicy')}, want Never")
        rules = (job.get("podFailurePolicy") or {}).get("rules") or []
        fail_on_1 = [r for r in rules if r.get("action") == "FailJob"
                     and (r.get("onExitCodes") or {}).get("operator") == "In"
                     and (r.get("onExitCodes") or {}).get("values") == [1]]
        if not fail_on_1:
            fail(render, f"{where}: a partial import (exit 1) does not fail the Job at once")
        if any(2 in ((r.get("onExitCodes") or {}).get("values") or []) for r in rules):
            fail(render, f"{where}: exit 2 (nothing imported) must be retried, not handled by the podFailurePolicy")
        if pod.get("serviceAccountName") != sa_name:
            fail(render, f"{where}: serviceAccountName {pod.get('serviceAccountName')!r}, want {sa_name!r}")
        containers = pod.get("containers") or []
        if len(containers) != 1 or pod.get("initContainers"):
            fail(render, f"{where}: {len(containers)} containers, want the import alone")
            continue
        c = containers[0]
        if "command" in c:
            fail(render, f"{where}: sets command {c['command']}; the image's entrypoint is ringmaster")
        want_args = ["catalog", "import", source] + w["urls"] + w["args"]
        if c.get("args") != want_args:
            fail(render, f"{where}: args {c.get('args')}, want {want_args}")
        if operator and (c.get("image"), c.get("imagePullPolicy")) != (op_c.get("image"), op_c.get("imagePullPolicy")):
            fail(render, f"{where}: image {c.get('image')} ({c.get('imagePullPolicy')}), "
                         f"not the operator's {op_c.get('image')} ({op_c.get('imagePullPolicy')})")
        if operator and pod.get("imagePullSecrets") != operator["spec"]["template"]["spec"].get("imagePullSecrets"):
            fail(render, f"{where}: imagePullSecrets differ from the operator's")


# The longest name the API server takes: a CronJob's Jobs append 11 characters to its
# name and a Job's name is a label value (63); a Service's name is a DNS label; the rest
# are DNS subdomains.
NAME_LIMITS = {"CronJob": 52, "Service": 63}


def check_names(render, docs):
    for o in docs:
        name = (o.get("metadata") or {}).get("name") or ""
        limit = NAME_LIMITS.get(o.get("kind"), 253)
        if len(name) > limit:
            fail(render, f"{key(o)}: name is {len(name)} characters, more than {limit}")
        spec = o.get("spec") or {}
        tmpl = ((spec.get("jobTemplate") or {}).get("spec") or spec).get("template") or {}
        for where, labels in (("label", (o.get("metadata") or {}).get("labels")),
                              ("pod label", (tmpl.get("metadata") or {}).get("labels"))):
            for k, v in (labels or {}).items():
                if len(str(v)) > 63:
                    fail(render, f"{key(o)}: {where} {k} is {len(str(v))} characters, more than 63")


# ---- admission, monitoring ----

def check_admission(render, docs, exp):
    policies = {o["metadata"]["name"]: o for o in docs if o.get("kind") == "ValidatingAdmissionPolicy"}
    bindings = {o["metadata"]["name"]: o for o in docs if o.get("kind") == "ValidatingAdmissionPolicyBinding"}
    if not exp["vap"]:
        if policies or bindings:
            fail(render, f"admission policies rendered: {sorted(policies) + sorted(bindings)}")
        return
    ours = dict(apiGroups=[GROUP], apiVersions=["v1alpha1"], operations=["CREATE", "UPDATE"])
    want_policies = [("device-agent", dict(ours, resources=["manageddevices", "manageddevices/status"]), True),
                     ("device-lease", dict(apiGroups=["coordination.k8s.io"], apiVersions=["v1"],
                                           operations=["CREATE", "UPDATE"], resources=["leases"]), True),
                     ("exception-approval", dict(ours, resources=["patchexceptions"]), True),
                     ("lever-objects", dict(ours, resources=["patchapprovals", "patchfreezes"]), True),
                     ("rollout-levers", dict(ours, resources=["patchrollouts"]), True)]
    if exp["node"] is not None:
        want_policies.append(("node-agent", dict(apiGroups=[""], apiVersions=["v1"], operations=["UPDATE"],
                                                 resources=["nodes"]), False))
    want_names = {f"{FULLNAME}-{short}" for short, _, _ in want_policies}
    if set(policies) != want_names or set(bindings) != want_names:
        fail(render, f"admission policies {sorted(policies)}, bindings {sorted(bindings)}, want {sorted(want_names)}")
    for short, rule, namespaced in want_policies:
        name = f"{FULLNAME}-{short}"
        p, b = policies.get(name), bindings.get(name)
        if p is None or b is None:
            fail(render, f"ValidatingAdmissionPolicy or binding {name} missing")
            continue
        if p["apiVersion"] != "admissionregistration.k8s.io/v1" or b["apiVersion"] != "admissionregistration.k8s.io/v1":
            fail(render, f"{name}: not admissionregistration.k8s.io/v1")
        spec = p["spec"]
        if spec.get("failurePolicy") != "Fail":
            fail(render, f"{name}: failurePolicy {spec.get('failurePolicy')}")
        rules = spec["matchConstraints"]["resourceRules"]
        if rules != [rule]:
            fail(render, f"{name}: resourceRules {rules}")
        with open(os.path.join(CHART, "files", "admission", f"{short}.yaml")) as f:
            src = yaml.safe_load(f)
        variables = spec.get("variables") or []
        if variables[len(variables) - len(src["variables"]):] != src["variables"]:
            fail(render, f"{name}: the rendered variables do not end with files/admission/{short}.yaml's")
        if spec.get("validations") != src["validations"]:
            fail(render, f"{name}: the rendered validations are not files/admission/{short}.yaml's")
        if spec.get("matchConditions") != src.get("matchConditions"):
            fail(render, f"{name}: the rendered matchConditions are not files/admission/{short}.yaml's")
        for v in variables:
            if not v.get("expression"):
                fail(render, f"{name}: variable {v.get('name')} has no expression")
        if b["spec"].get("policyName") != name:
            fail(render, f"binding {name} names policy {b['spec'].get('policyName')}")
        if b["spec"].get("validationActions") != exp["actions"]:
            fail(render, f"binding {name}: validationActions {b['spec'].get('validationActions')}")
        ns_sel = (b["spec"].get("matchResources") or {}).get("namespaceSelector")
        if exp["watch"] and namespaced:
            want = {"matchExpressions": [{"key": "kubernetes.io/metadata.name", "operator": "In",
                                          "values": exp["watch"]}]}
            if ns_sel != want:
                fail(render, f"binding {name}: namespaceSelector {ns_sel}, want the watched namespaces")
        elif ns_sel:
            fail(render, f"binding {name}: namespaceSelector {ns_sel} with every namespace watched")
    for short in ("device-agent", "device-lease"):
        operator = [v for v in policies.get(f"{FULLNAME}-{short}", {}).get("spec", {}).get("variables", [])
                    if v["name"] == "operatorUsername"]
        if operator and operator[0]["expression"] != json.dumps(f"system:serviceaccount:{RELEASE_NS}:{OPERATOR_SA[2]}"):
            fail(render, f"{short}: operatorUsername is {operator[0]['expression']}")
    # The node agent's user name: the policies know it exactly when node mode is on.
    want_user = json.dumps(NODE_AGENT_USER if exp["node"] is not None else "")
    for name, p in policies.items():
        for v in p["spec"].get("variables") or []:
            if v["name"] == "nodeAgentUsername" and v["expression"] != want_user:
                fail(render, f"{name}: nodeAgentUsername is {v['expression']}, want {want_user}")


def check_monitoring(render, docs, exp):
    sms = [o for o in docs if o.get("kind") == "ServiceMonitor"]
    if bool(sms) != exp["service_monitor"]:
        fail(render, f"{len(sms)} ServiceMonitors")
    svc = next((o for o in docs if o.get("kind") == "Service"), None)
    for sm in sms:
        sel = sm["spec"]["selector"]["matchLabels"]
        if svc is None or any(svc["metadata"]["labels"].get(k) != v for k, v in sel.items()):
            fail(render, "the ServiceMonitor does not select the metrics Service")
        if [e.get("port") for e in sm["spec"]["endpoints"]] != ["metrics"]:
            fail(render, "the ServiceMonitor does not scrape the metrics port")
        if not all(e.get("honorLabels") for e in sm["spec"]["endpoints"]):
            fail(render, "the ServiceMonitor does not honour the tenant `namespace` label")

    rules = [o for o in docs if o.get("kind") == "PrometheusRule"]
    if len(rules) != (1 if exp.get("alerts") else 0):
        fail(render, f"{len(rules)} PrometheusRules")
    for pr in rules:
        check_alerts(render, pr, svc)

    cms = [o for o in docs if o.get("kind") == "ConfigMap"]
    if bool(cms) != exp["dashboard"]:
        fail(render, f"{len(cms)} dashboard ConfigMaps")
    for cm in cms:
        if cm["metadata"]["labels"].get("grafana_dashboard") != "1":
            fail(render, 'the dashboard ConfigMap lacks grafana_dashboard: "1"')
        try:
            dash = json.loads(cm["data"]["ringmaster.json"])
        except (KeyError, ValueError) as e:
            fail(render, f"the dashboard is not JSON: {e}")
            continue
        panels = [p for p in dash["panels"] if p.get("type") != "row"]
        ids = [p["id"] for p in dash["panels"]]
        if len(ids) != len(set(ids)):
            fail(render, "dashboard panel ids repeat")
        exprs = " ".join(t["expr"] for p in panels for t in p.get("targets", []))
        for m in METRICS:
            if m not in exprs:
                fail(render, f"no dashboard panel shows {m}")
        for p in panels:
            if not p.get("targets"):
                fail(render, f"dashboard panel {p.get('title')!r} has no query")


def check_alerts(render, pr, svc):
    alerts = [r for g in pr["spec"]["groups"] for r in g["rules"] if "alert" in r]
    names = [r["alert"] for r in alerts]
    if sorted(names) != sorted(ALERTS):
        fail(render, f"the PrometheusRule's alerts are {names}, want {ALERTS}")
    with open(os.path.join(ROOT, "docs", "alerts.md")) as f:
        runbooks = f.read()
    with open(os.path.join(CHART, "ci", "alerts-test.yaml")) as f:
        tests = yaml.safe_load(f)["tests"]
    fires, silent = set(), set()
    for t in tests:
        for case in t.get("alert_rule_test") or []:
            (fires if case.get("exp_alerts") else silent).add(case["alertname"])
    job = f'job="{svc["metadata"]["name"]}"' if svc else None
    for r in alerts:
        name = r["alert"]
        if r.get("labels", {}).get("severity") not in ("critical", "warning", "info"):
            fail(render, f"{name} has no severity")
        ann = r.get("annotations") or {}
        for a in ("summary", "description", "runbook_url"):
            if not ann.get(a):
                fail(render, f"{name} has no {a}")
        if not ann.get("runbook_url", "").endswith(f"docs/alerts.md#{name.lower()}"):
            fail(render, f"{name}'s runbook_url is {ann.get('runbook_url')}")
        if f"\n## {name}\n" not in runbooks:
            fail(render, f"docs/alerts.md has no section ## {name}")
        if job and job not in r["expr"]:
            fail(render, f"{name} does not select the metrics Service's job ({job})")
        if name not in fires:
            fail(render, f"ci/alerts-test.yaml has no case that fires {name}")
        if name not in silent:
            fail(render, f"ci/alerts-test.yaml has no case where {name} stays silent")


# ---- everything ----

def check_common(render, docs):
    seen = set()
    for o in docs:
        k = (o.get("apiVersion"),) + key(o)
        if k in seen:
            fail(render, f"{k} rendered twice")
        seen.add(k)
        labels = (o.get("metadata") or {}).get("labels") or {}
        for label in ("app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/version",
                      "app.kubernetes.io/managed-by", "app.kubernetes.io/part-of", "helm.sh/chart"):
            if label not in labels:
                fail(render, f"{key(o)} has no {label} label")
        if o.get("kind") in ("CustomResourceDefinition",):
            fail(render, "CRDs belong in crds/, not templates/")


def main():
    check_crd_names()
    for render, exp in RENDERS.items():
        path = os.path.join(OUT, f"{render}.yaml")
        if not os.path.exists(path):
            fail(render, f"{path} was not rendered")
            continue
        docs = load(render)
        check_common(render, docs)
        check_no_wildcards(render, docs)
        check_deployments(render, docs)
        check_operator(render, docs, exp)
        check_agent(render, docs, exp)
        operator_grants = grants(render, docs, OPERATOR_SA)
        check_exact(render, "the operator", operator_grants, expected_operator_grants(exp))
        check_operator_limits(render, operator_grants)
        check_reports(render, docs, exp)
        check_exact(render, "the simulated agent", grants(render, docs, AGENT_SA), expected_agent_grants(exp))
        check_exact(render, "the node agent", grants(render, docs, NODE_AGENT_SA), expected_node_agent_grants(exp))
        check_node_agent(render, docs, exp)
        check_user_roles(render, docs)
        check_admission(render, docs, exp)
        check_monitoring(render, docs, exp)
        check_catalog(render, docs, exp)
        check_names(render, docs)
        kinds = {}
        for o in docs:
            kinds[o["kind"]] = kinds.get(o["kind"], 0) + 1
        print(f"    {render}: {len(docs)} objects ({', '.join(f'{n} {k}' for k, n in sorted(kinds.items()))})")
    for render in NAME_RENDERS:
        path = os.path.join(OUT, f"{render}.yaml")
        if not os.path.exists(path):
            fail(render, f"{path} was not rendered")
            continue
        docs = load(render)
        check_names(render, docs)
        fullname = next(o["metadata"]["name"] for o in docs if o.get("kind") == "Deployment"
                        and (o["metadata"].get("labels") or {}).get("app.kubernetes.io/component") == "operator")
        check_catalog(render, docs, RENDERS["all-on"], fullname=fullname)
        print(f"    {render}: {len(docs)} objects, full name {len(fullname)} characters, every name short enough")
    if failures:
        print(f"{len(failures)} problem(s) in the rendered chart:", file=sys.stderr)
        for f in failures:
            print(f"  {f}", file=sys.stderr)
        return 1
    print("    every render: no RBAC wildcard, restricted security contexts, exact permissions, "
          "catalog CronJobs and evidence store as configured")
    return 0


if __name__ == "__main__":
    sys.exit(main())
