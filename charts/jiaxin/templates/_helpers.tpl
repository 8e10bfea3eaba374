{{/* Names, labels and the per-service settings every template shares. */}}

{{- define "jiaxin.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "jiaxin.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if contains (include "jiaxin.name" .) .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name (include "jiaxin.name" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* The six services in start order, and the topics each consumes (docs/operations.md). */}}
{{- define "jiaxin.serviceNames" -}}
identity pledges points council benefits bank
{{- end -}}

{{- define "jiaxin.consumedTopics" -}}
{{- $topics := dict
  "identity" (list)
  "pledges" (list "identity")
  "points" (list "identity" "pledges" "council" "bank")
  "council" (list "identity" "pledges" "points")
  "benefits" (list "identity" "pledges" "points" "bank")
  "bank" (list "identity" "pledges" "points" "benefits")
-}}
{{- get $topics . | join " " -}}
{{- end -}}

{{/* The gRPC service name each service reports in grpc.health.v1. */}}
{{- define "jiaxin.grpcServiceName" -}}
{{- printf "jiaxin.%s.v1.%sService" . (title .) -}}
{{- end -}}

{{/* A service's settings: serviceDefaults overlaid with services.<name>. Call with
     (dict "root" $ "name" "points"); returns YAML. */}}
{{- define "jiaxin.serviceValues" -}}
{{- $own := get .root.Values.services .name | default dict -}}
{{- toYaml (mergeOverwrite (deepCopy .root.Values.serviceDefaults) (deepCopy $own)) -}}
{{- end -}}

{{- define "jiaxin.componentName" -}}
{{- printf "%s-%s" (include "jiaxin.fullname" .root) .name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "jiaxin.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "jiaxin.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: jiaxin
{{- end -}}

{{/* Selector labels of one service's pods; call with (dict "root" $ "name" "points"). */}}
{{- define "jiaxin.selectorLabels" -}}
app.kubernetes.io/name: {{ include "jiaxin.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .name }}
{{- end -}}

{{- define "jiaxin.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "jiaxin.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "jiaxin.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* The Secret that holds the shared settings when devSecrets.create is on. */}}
{{- define "jiaxin.devSecretName" -}}
{{- printf "%s-dev" (include "jiaxin.fullname" .) -}}
{{- end -}}

{{/* Where a service's database URL comes from: (dict "root" $ "svc" <service values>). */}}
{{- define "jiaxin.databaseSecretRef" -}}
{{- $db := .svc.database | default dict -}}
{{- if $db.existingSecret -}}
name: {{ $db.existingSecret }}
key: {{ $db.urlKey | default "url" }}
{{- else if .root.Values.database.existingSecret -}}
name: {{ .root.Values.database.existingSecret }}
key: {{ .root.Values.database.urlKey }}
{{- else -}}
name: {{ include "jiaxin.devSecretName" .root }}
key: database-url
{{- end -}}
{{- end -}}

{{- define "jiaxin.fieldKeySecretRef" -}}
{{- if .Values.fieldKey.existingSecret -}}
name: {{ .Values.fieldKey.existingSecret }}
key: {{ .Values.fieldKey.key }}
{{- else -}}
name: {{ include "jiaxin.devSecretName" . }}
key: field-key
{{- end -}}
{{- end -}}

{{/* The environment every jiaxin container gets: (dict "root" $ "name" "points" "svc" <values>). */}}
{{- define "jiaxin.env" -}}
- name: JIAXIN_DATABASE_URL
  valueFrom:
    secretKeyRef:
      {{- include "jiaxin.databaseSecretRef" (dict "root" .root "svc" .svc) | nindent 6 }}
- name: JIAXIN_FIELD_KEY
  valueFrom:
    secretKeyRef:
      {{- include "jiaxin.fieldKeySecretRef" .root | nindent 6 }}
{{- if eq .name "identity" }}
{{- if .root.Values.bootstrap.adminPasswordSecret }}
- name: JIAXIN_BOOTSTRAP_ADMIN_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ .root.Values.bootstrap.adminPasswordSecret }}
      key: {{ .root.Values.bootstrap.adminPasswordKey }}
{{- else if and .root.Values.devSecrets.create .root.Values.devSecrets.adminPassword }}
- name: JIAXIN_BOOTSTRAP_ADMIN_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "jiaxin.devSecretName" .root }}
      key: admin-password
{{- end }}
{{- end }}
{{- end -}}

{{/* The pod-level fields shared by Deployments and migration Jobs. */}}
{{- define "jiaxin.podCommon" -}}
serviceAccountName: {{ include "jiaxin.serviceAccountName" . }}
automountServiceAccountToken: false
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* Pod annotations and labels that put the pod in the service mesh. */}}
{{- define "jiaxin.meshAnnotations" -}}
{{- if eq .Values.tls.mesh "linkerd" -}}
linkerd.io/inject: enabled
{{- end -}}
{{- end -}}

{{- define "jiaxin.meshLabels" -}}
{{- if eq .Values.tls.mesh "istio" -}}
sidecar.istio.io/inject: "true"
{{- end -}}
{{- end -}}

{{/* What `jiaxin migrate` needs, and nothing more (no field key): inline, because a pre-install
     hook runs before the release's ConfigMaps exist. (dict "root" $ "svc" <service values>). */}}
{{- define "jiaxin.migrateEnv" -}}
- name: JIAXIN_DATABASE_URL
  valueFrom:
    secretKeyRef:
      {{- include "jiaxin.databaseSecretRef" (dict "root" .root "svc" .svc) | nindent 6 }}
- name: JIAXIN_DATABASE_SCHEMA_PREFIX
  value: {{ .root.Values.database.schemaPrefix | quote }}
- name: JIAXIN_DATABASE_MAX_CONNECTIONS
  value: "2"
- name: JIAXIN_LOG_FORMAT
  value: {{ .root.Values.telemetry.logFormat | quote }}
- name: JIAXIN_DATA_DIR
  value: /tmp/jiaxin
{{- end -}}

{{/* Egress rules every jiaxin pod needs: DNS and its database. */}}
{{- define "jiaxin.egressDnsAndDatabase" -}}
- to:
    {{- toYaml .Values.networkPolicy.dns.peers | nindent 4 }}
  ports:
    - {port: 53, protocol: UDP}
    - {port: 53, protocol: TCP}
- to:
    {{- toYaml .Values.networkPolicy.database.peers | nindent 4 }}
  ports:
    {{- range .Values.networkPolicy.database.ports }}
    - {port: {{ . }}, protocol: TCP}
    {{- end }}
{{- end -}}
