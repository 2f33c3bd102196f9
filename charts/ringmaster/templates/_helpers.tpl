{{/*
The chart name, or nameOverride.
*/}}
{{- define "ringmaster.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The full name every object is named after: fullnameOverride, else the release name when it
already contains the chart name, else "<release>-<chart>". Kept to 52 characters so that
the longest suffix added to it ("-catalog-editor", "-agent-simulator") still fits 63.
*/}}
{{- define "ringmaster.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 52 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
"name-version" for the helm.sh/chart label.
*/}}
{{- define "ringmaster.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The labels every object carries.
*/}}
{{- define "ringmaster.labels" -}}
helm.sh/chart: {{ include "ringmaster.chart" . }}
{{ include "ringmaster.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: ringmaster
{{- end }}

{{/*
The labels that pick a release's objects (add app.kubernetes.io/component to pick one part).
*/}}
{{- define "ringmaster.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ringmaster.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
The operator's ServiceAccount name.
*/}}
{{- define "ringmaster.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "ringmaster.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The operator's user name in admission requests.
*/}}
{{- define "ringmaster.operatorUsername" -}}
system:serviceaccount:{{ .Release.Namespace }}:{{ include "ringmaster.serviceAccountName" . }}
{{- end }}

{{/*
The simulated agent's ServiceAccount name.
*/}}
{{- define "ringmaster.agentServiceAccountName" -}}
{{- printf "%s-agent-simulator" (include "ringmaster.fullname" .) }}
{{- end }}

{{/*
The namespace of the simulated agent's ManagedDevices.
*/}}
{{- define "ringmaster.agentNamespace" -}}
{{- default .Release.Namespace .Values.agent.simulate.namespace }}
{{- end }}

{{/*
The node agent's name (its DaemonSet, ServiceAccount and roles).
*/}}
{{- define "ringmaster.nodeAgentName" -}}
{{- printf "%s-node-agent" (include "ringmaster.fullname" .) }}
{{- end }}

{{/*
The namespace of the node agent's ManagedDevices.
*/}}
{{- define "ringmaster.nodeAgentNamespace" -}}
{{- default .Release.Namespace .Values.agent.nodeMode.namespace }}
{{- end }}

{{/*
The node agent's user name in admission requests; empty when node mode is off.
*/}}
{{- define "ringmaster.nodeAgentUsername" -}}
{{- if .Values.agent.nodeMode.enabled }}
{{- printf "system:serviceaccount:%s:%s" .Release.Namespace (include "ringmaster.nodeAgentName" .) }}
{{- end }}
{{- end }}

{{/*
The image reference: repository@digest, else repository:tag (tag defaults to appVersion).
*/}}
{{- define "ringmaster.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/*
"true" when the operator runs with --leader-elect: asked for, more than one replica, or
more than one shard.
*/}}
{{- define "ringmaster.leaderElect" -}}
{{- if or .Values.leaderElection.enabled (gt (int .Values.replicaCount) 1) (gt (int .Values.sharding.shards) 1) }}true{{ end }}
{{- end }}

{{/*
The Leases the operator holds, as a JSON list: the leader Lease, or with more than one
shard the shard Leases <leaseName>-shard-<i>.
*/}}
{{- define "ringmaster.leaseNames" -}}
{{- $base := include "ringmaster.leaseName" . }}
{{- $shards := int .Values.sharding.shards }}
{{- if gt $shards 1 }}
{{- $names := list }}
{{- range $i := until $shards }}
{{- $names = append $names (printf "%s-shard-%d" $base $i) }}
{{- end }}
{{- toJson $names }}
{{- else }}
{{- toJson (list $base) }}
{{- end }}
{{- end }}

{{/*
The Lease the operator holds when leader election is on.
*/}}
{{- define "ringmaster.leaseName" -}}
{{- default (printf "%s-leader" (include "ringmaster.fullname" .)) .Values.leaderElection.leaseName }}
{{- end }}

{{/*
The names of the seven CRDs (the files in crds/ without ".yaml").
*/}}
{{- define "ringmaster.crdNames" -}}
- patchpolicies.patching.ringmaster.dev
- deploymentrings.patching.ringmaster.dev
- patchexceptions.patching.ringmaster.dev
- manageddevices.patching.ringmaster.dev
- patchrollouts.patching.ringmaster.dev
- patchreports.patching.ringmaster.dev
- patches.patching.ringmaster.dev
- patchapprovals.patching.ringmaster.dev
- patchfreezes.patching.ringmaster.dev
{{- end }}

{{/*
Where the reports volume is mounted in the operator container, and the --report-store
that names it. The only writable place in the container.
*/}}
{{- define "ringmaster.reportsDir" -}}
/var/lib/ringmaster/reports
{{- end }}

{{/*
Where the report signing key is mounted (a directory: the Secret's key signing.key is
the file in it).
*/}}
{{- define "ringmaster.reportSigningDir" -}}
/etc/ringmaster/report-signing
{{- end }}

{{/*
The reports PersistentVolumeClaim: reports.volume.existingClaim, else the one the chart
creates, "<fullname>-reports".
*/}}
{{- define "ringmaster.reportsClaimName" -}}
{{- default (printf "%s-reports" (include "ringmaster.fullname" .)) .Values.reports.volume.existingClaim }}
{{- end }}

{{/*
"true" when the chart creates the reports PersistentVolumeClaim.
*/}}
{{- define "ringmaster.reportsCreateClaim" -}}
{{- if and .Values.reports.enabled (eq .Values.reports.store "volume") (not .Values.reports.volume.existingClaim) }}true{{ end }}
{{- end }}

{{/*
The operator's --report-store: the volume's mount path, or s3://<bucket>[/<prefix>].
Empty when reports are off. Fails the render for store s3 without a bucket.
*/}}
{{- define "ringmaster.reportStore" -}}
{{- $r := .Values.reports }}
{{- if $r.enabled }}
{{- if eq $r.store "s3" }}
{{- if not $r.s3.bucket }}
{{- fail "reports.s3.bucket is required when reports.store is s3 (the bucket the evidence packets are kept in); or set reports.store=volume" }}
{{- end }}
{{- printf "s3://%s" $r.s3.bucket }}{{ with $r.s3.prefix }}/{{ . }}{{ end }}
{{- else }}
{{- include "ringmaster.reportsDir" . }}
{{- end }}
{{- end }}
{{- end }}

{{/*
The restricted security context every container runs with. Not a value on purpose: the
chart's checks (.ci/chart) require exactly this.
*/}}
{{- define "ringmaster.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- define "ringmaster.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
readOnlyRootFilesystem: true
allowPrivilegeEscalation: false
privileged: false
capabilities:
  drop:
    - ALL
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/*
"true" when at least one catalog source is enabled (then the catalog ServiceAccount, its
ClusterRole and binding, and one CronJob per enabled source are rendered).
*/}}
{{- define "ringmaster.catalogEnabled" -}}
{{- $on := false }}
{{- range $name, $source := .Values.catalog.sources }}
{{- if $source.enabled }}{{ $on = true }}{{ end }}
{{- end }}
{{- if $on }}true{{ end }}
{{- end }}

{{/*
The catalog imports' ServiceAccount name.
*/}}
{{- define "ringmaster.catalogServiceAccountName" -}}
{{- if .Values.catalog.serviceAccount.create }}
{{- default (printf "%s-catalog" (include "ringmaster.fullname" .)) .Values.catalog.serviceAccount.name }}
{{- else }}
{{- required "catalog.serviceAccount.name is required when catalog.serviceAccount.create is false" .Values.catalog.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The CronJob of one catalog source: "<fullname>-catalog-<source>". A CronJob name may be
at most 52 characters (its Jobs get an 11-character suffix), so the full name is cut to
39 here ("-catalog-msrc" is 13). Call with (list $ "msrc").
*/}}
{{- define "ringmaster.catalogCronJobName" -}}
{{- $root := index . 0 }}
{{- printf "%s-catalog-%s" (include "ringmaster.fullname" $root | trunc 39 | trimSuffix "-") (index . 1) }}
{{- end }}
