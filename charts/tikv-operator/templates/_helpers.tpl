{{/* The name of namespaced objects: the release name, with the chart name unless it is in it already. */}}
{{- define "tikv-operator.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/*
The name of cluster-scoped objects and of Roles in watched namespaces: prefixed with the release's
namespace, so that releases of the same name in two namespaces never collide.
*/}}
{{- define "tikv-operator.scopedName" -}}
{{- printf "%s-%s" .Release.Namespace (include "tikv-operator.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "tikv-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "tikv-operator.labels" -}}
{{ include "tikv-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "tikv-operator.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}

{{/*
The operator's RBAC rules: what it does in every namespace it watches, with its own resources and, with
discovery.tidbClusters, with tidb-operator's TidbClusters and TidbMonitors (read only). kopf
itself needs nothing more: the operator runs it standalone (no peering objects) with cluster scanning
disabled (it neither lists Namespaces nor watches CRDs; the CRDs must exist when it starts, which Helm
ensures by installing crds/ first). The chart README explains each rule.
*/}}
{{- define "tikv-operator.rules" -}}
{{- $discovery := include "tikv-operator.discovery" . -}}
- apiGroups: ["tikvops.io"]
  resources: ["tikvclusters"]
  {{- if $discovery }}
  # Discovery also creates the TiKVClusters it generates and deletes those whose TidbCluster opts out.
  verbs: ["get", "list", "watch", "patch", "create", "delete"]
  {{- else }}
  verbs: ["get", "list", "watch", "patch"]
  {{- end }}
- apiGroups: ["tikvops.io"]
  resources: ["tikvclusters/status"]
  verbs: ["get", "patch"]
- apiGroups: ["tikvops.io"]
  resources: ["operatortickets"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: ["tikvops.io"]
  resources: ["operatortickets/status"]
  verbs: ["get", "patch"]
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create"]
{{- if $discovery }}
# Discovery (discovery.tidbClusters): read tidb-operator's TidbClusters and TidbMonitors (v1), and v2's
# Clusters and the groups and instances that point at them, nothing more.
- apiGroups: ["pingcap.com"]
  resources: ["tidbclusters", "tidbmonitors"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["core.pingcap.com"]
  resources: ["clusters", "pdgroups", "pds", "tikvgroups", "tikvs", "tiflashgroups", "tiflashes"]
  verbs: ["get", "list", "watch"]
{{- end }}
{{- end -}}

{{/*
Namespaces whose Secrets the operator may read (the PD TLS and Prometheus auth Secrets a TiKVCluster
names): credentialNamespaces, else the watched namespaces. Never cluster-wide: a ClusterRole with
secrets get would reach every ServiceAccount token of kube-system.
*/}}
{{- define "tikv-operator.credentialNamespaces" -}}
{{- .Values.credentialNamespaces | default .Values.watchNamespaces | toJson -}}
{{- end -}}

{{/*
"true" when discovery of TidbClusters is on, else empty. A release upgraded with --reuse-values from a chart
without the discovery key has none: discovery stays off, as it was.
*/}}
{{- define "tikv-operator.discovery" -}}
{{- if (.Values.discovery | default dict).tidbClusters }}true{{ end -}}
{{- end -}}

{{/* The operator's arguments (after the image's `tikv-operator run`). */}}
{{- define "tikv-operator.args" -}}
{{- if .Values.watchNamespaces }}
{{- range .Values.watchNamespaces }}
- --namespace={{ . }}
{{- end }}
{{- else }}
- --all-namespaces
{{- end }}
- --standalone
{{- if .Values.leaderElection.enabled }}
- --leader-elect
- --leader-election-id={{ .Values.leaderElection.id }}
- --leader-election-namespace={{ .Release.Namespace }}
- --leader-election-lease-duration={{ .Values.leaderElection.leaseDuration }}
- --leader-election-renew-deadline={{ .Values.leaderElection.renewDeadline }}
- --leader-election-retry-period={{ .Values.leaderElection.retryPeriod }}
{{- else }}
- --no-leader-elect
{{- end }}
- --metrics-port={{ .Values.metrics.port }}
- --health-port={{ .Values.health.port }}
- --log-format={{ .Values.logFormat }}
- --default-interval={{ .Values.checkInterval }}
{{- if .Values.stallTimeout }}
- --stall-timeout={{ .Values.stallTimeout }}
{{- end }}
{{- range .Values.alertmanager.urls }}
- --alertmanager-url={{ . }}
{{- end }}
- --alert-resend-interval={{ .Values.alertmanager.resendInterval }}
- --silence-duration={{ .Values.alertmanager.silenceDuration }}
{{- if .Values.alertmanager.runbookURL }}
- --runbook-url={{ .Values.alertmanager.runbookURL }}
{{- end }}
{{- if include "tikv-operator.discovery" . }}
- --discover-tidbclusters
- --discovery-interval={{ .Values.discovery.interval }}
{{- with .Values.discovery.prometheusURL }}
- --default-prometheus-url={{ . }}
{{- end }}
{{- end }}
{{- end -}}

{{/*
Values the schema cannot judge alone; included by deployment.yaml so that a bad combination fails
`helm install`/`upgrade`/`template` with a message naming the values.
*/}}
{{- define "tikv-operator.validate" -}}
{{- if not (and (kindIs "map" .Values.leaderElection) (kindIs "map" .Values.podDisruptionBudget) (hasKey .Values "replicas")) }}
{{- fail "replicas, leaderElection and podDisruptionBudget are missing from the values: they come from an older chart (helm upgrade --reuse-values keeps the old chart's defaults). Upgrade with --reset-then-reuse-values (Helm 3.14+), or pass your own values with -f" }}
{{- end }}
{{- if eq (int .Values.metrics.port) (int .Values.health.port) }}
{{- fail "metrics.port and health.port must differ: the operator serves /metrics and /healthz on separate ports" }}
{{- end }}
{{- if and (gt (int .Values.replicas) 1) (not .Values.leaderElection.enabled) }}
{{- fail (printf "replicas=%d needs leaderElection.enabled=true: without a Lease every replica is active and repeats every check, ticket write and Event. Set replicas=1 or leaderElection.enabled=true" (int .Values.replicas)) }}
{{- end }}
{{- $pdb := .Values.podDisruptionBudget }}
{{- if and $pdb.enabled (gt (int .Values.replicas) 1) (not (kindIs "string" $pdb.minAvailable)) (ge (int $pdb.minAvailable) (int .Values.replicas)) }}
{{- fail (printf "podDisruptionBudget.minAvailable=%d must be below replicas=%d: otherwise no node drain can ever evict an operator pod" (int $pdb.minAvailable) (int .Values.replicas)) }}
{{- end }}
{{- end -}}
