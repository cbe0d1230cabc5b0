{{/*
Names. Kubernetes names are limited to 63 characters (DNS labels); every name built here is
truncated to that and stripped of a trailing dash.
*/}}

{{/* The chart name, or nameOverride. */}}
{{- define "inference-pipelines.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The fully qualified name of the release's objects: fullnameOverride, else the release name
when it already contains the chart name, else "<release>-<chart>".
*/}}
{{- define "inference-pipelines.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* "<chart>-<version>" for the helm.sh/chart label. */}}
{{- define "inference-pipelines.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels on every object. */}}
{{- define "inference-pipelines.labels" -}}
helm.sh/chart: {{ include "inference-pipelines.chart" . }}
{{ include "inference-pipelines.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: operator
app.kubernetes.io/part-of: inference-pipelines
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Selector labels: name and instance only, so that they never change on upgrade. */}}
{{- define "inference-pipelines.selectorLabels" -}}
app.kubernetes.io/name: {{ include "inference-pipelines.name" . }}
app.kubernetes.io/instance: {{ .Release.Name | trunc 63 | trimSuffix "-" | quote }}
{{- end }}

{{/* The ServiceAccount the operator runs as. */}}
{{- define "inference-pipelines.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "inference-pipelines.fullname" .) .Values.serviceAccount.name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The operator image: repository[:tag][@digest]; the tag defaults to the appVersion. */}}
{{- define "inference-pipelines.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag }}
{{- if .Values.image.digest }}
{{- printf "%s:%s@%s" .Values.image.repository $tag .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository $tag }}
{{- end }}
{{- end }}

{{/* "true" when the operator watches the whole cluster (watch.namespaces is empty). */}}
{{- define "inference-pipelines.clusterWide" -}}
{{- if not .Values.watch.namespaces }}true{{ end }}
{{- end }}

{{/* "true" when more than one replica runs: they elect the active one through a Lease. */}}
{{- define "inference-pipelines.leaderElection" -}}
{{- if .Values.leaderElection.enabled }}true
{{- else if gt (int .Values.replicas) 1 }}
{{- fail "leaderElection.enabled=false runs one standalone operator: set replicas to 1" }}
{{- end }}
{{- end }}

{{/* The leader Lease's name. */}}
{{- define "inference-pipelines.leaseName" -}}
{{- default (include "inference-pipelines.fullname" .) .Values.leaderElection.leaseName | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The rules every operator needs, in each namespace it watches (a Role there) or in the whole
cluster (the ClusterRole). Keep this in step with pipeline_operator/k8s/client.py and kopf's needs;
docs/operations.md has the same table and tests/delivery/test_chart.py checks it.
*/}}
{{- define "inference-pipelines.namespacedRules" -}}
# The pipelines: read, watch, and patch (removing the finalizer earlier releases kept; commands).
- apiGroups: ["pipelines.inference.dev"]
  resources: ["inferencepipelines"]
  verbs: ["get", "list", "watch", "patch"]
# Status is written by the operator alone.
- apiGroups: ["pipelines.inference.dev"]
  resources: ["inferencepipelines/status"]
  verbs: ["get", "patch"]
# Children: server-side apply (a patch; creating through it also needs create), watch,
# delete of stale revisions.
- apiGroups: ["serving.kserve.io"]
  resources: ["inferenceservices", "inferencegraphs"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
# Revision snapshots for undo: watched (kept in memory), created, pruned.
- apiGroups: ["apps"]
  resources: ["controllerrevisions"]
  verbs: ["list", "watch", "create", "delete"]
# The router Deployments KServe makes for the graphs: read-only, to see when a graph change
# has rolled out to every router replica.
- apiGroups: ["apps"]
  resources: ["deployments"]
  verbs: ["list", "watch"]
# The pods KServe runs for the stages: read-only (watched, only those with the pipeline
# label), to count ready and Pending ones and report why the scheduler cannot place them
# (e.g. Insufficient nvidia.com/gpu).
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["list", "watch"]
# Events on pipelines (the operator's own and kopf's).
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create"]
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create"]
{{- if .Values.gatewayAPI.enabled }}
# Pipelines routed through the Gateway API: each one's HTTPRoute, applied, watched (for the
# Gateways' verdicts) and removed.
- apiGroups: ["gateway.networking.k8s.io"]
  resources: ["httproutes"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
{{- if .Values.gatewayAPI.traefikServices }}
# Pipelines that mirror through Traefik: the TraefikService a mirror step routes the stable
# revision's requests through, applied, watched and removed.
- apiGroups: ["traefik.io"]
  resources: ["traefikservices"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
{{- end }}
{{- end }}
{{- if .Values.rbac.analysisJobs.enabled }}
# Job analysis metrics: each measurement creates one Job and reads it, then the end of the
# log of its pod (found by listing pods, above).
- apiGroups: ["batch"]
  resources: ["jobs"]
  verbs: ["get", "create"]
- apiGroups: [""]
  resources: ["pods/log"]
  verbs: ["get"]
{{- end }}
{{- with .Values.rbac.secretReads }}
{{- if .enabled }}
# Secrets that web analysis metrics name in a header's valueFrom: get only, read at each
# measurement, never listed, watched or cached.
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get"]
  {{- with .names }}
  resourceNames: {{ toJson . }}
  {{- end }}
{{- end }}
{{- end }}
{{- end }}
