{{/* Chart name, truncated to the 63-char DNS label limit. */}}
{{- define "trainforge.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Fully qualified app name: <release>-trainforge unless the release already contains it. */}}
{{- define "trainforge.fullname" -}}
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

{{- define "trainforge.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels on every object. */}}
{{- define "trainforge.labels" -}}
helm.sh/chart: {{ include "trainforge.chart" . }}
{{ include "trainforge.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: trainforge
{{- end }}

{{/* Selector labels of the operator pod (immutable once deployed). */}}
{{- define "trainforge.selectorLabels" -}}
app.kubernetes.io/name: {{ include "trainforge.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{- define "trainforge.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "trainforge.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "trainforge.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* True ("true") when the cluster serves the Prometheus operator API. Tests pass
     `--api-versions monitoring.coreos.com/v1` to helm template to simulate it. */}}
{{- define "trainforge.hasMonitoringAPI" -}}
{{- if .Capabilities.APIVersions.Has "monitoring.coreos.com/v1" }}true{{ end }}
{{- end }}

{{/* The operator's config file (TRAINFORGE_CONFIG), keys as in trainforge_operator/config.py. */}}
{{- define "trainforge.config" -}}
{{- $cfg := dict
  "defaultImage" .Values.config.defaultImage
  "imagePullPolicy" .Values.config.imagePullPolicy
  "defaultNodePool" .Values.config.defaultNodePool
  "nodePools" (default dict .Values.config.nodePools)
  "namespaces" (default list .Values.watchNamespaces)
  "logLevel" .Values.operator.logLevel
  "logFormat" .Values.operator.logFormat
  "metricsPort" .Values.metrics.port
  "healthPort" .Values.healthPort
  "peering" (.Values.operator.peering | default nil)
  "imagePullBackOffSeconds" (.Values.config.imagePullBackOffSeconds | default 300)
  "kueue" (and .Values.kueue .Values.kueue.enabled | default false)
}}
{{- toYaml (merge $cfg (default dict .Values.config.extra)) }}
{{- end }}
