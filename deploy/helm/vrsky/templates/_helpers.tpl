{{/* The objects' name: <release>-vrsky, or fullnameOverride. */}}
{{- define "vrsky.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if contains "vrsky" .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-vrsky" .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* The pods' selector. app.kubernetes.io/name is always vrsky: the
tenant instances' NetworkPolicies (platform/provision/k8s) admit it. */}}
{{- define "vrsky.selectorLabels" -}}
app.kubernetes.io/name: vrsky
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: server
{{- end -}}

{{- define "vrsky.labels" -}}
{{ include "vrsky.selectorLabels" . }}
app.kubernetes.io/version: {{ include "vrsky.tag" . | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "vrsky.tag" -}}
{{- .Values.image.tag | default .Chart.AppVersion -}}
{{- end -}}

{{- define "vrsky.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- .Values.serviceAccount.name | default (include "vrsky.fullname" .) -}}
{{- else -}}
{{- .Values.serviceAccount.name | default "default" -}}
{{- end -}}
{{- end -}}

{{/* The NATS URL: the NATS chart's Service, or externalNats.url. */}}
{{- define "vrsky.natsURL" -}}
{{- if .Values.nats.enabled -}}
{{- printf "nats://%s-nats:4222" .Release.Name -}}
{{- else -}}
{{- required "externalNats.url is required when nats.enabled is false" .Values.externalNats.url -}}
{{- end -}}
{{- end -}}

{{/* A secretKeyRef for secrets.<entry>: its own name or existingSecret. */}}
{{- define "vrsky.secretRef" -}}
{{- $entry := index .root.Values.secrets .entry -}}
secretKeyRef:
  name: {{ $entry.name | default .root.Values.secrets.existingSecret | required (printf "secrets.%s.name or secrets.existingSecret is required" .entry) }}
  key: {{ $entry.key }}
{{- end -}}

{{/* The labels of the tenants' dedicated NATS pods (platform/provision/k8s). */}}
{{- define "vrsky.tenantNatsLabels" -}}
app.kubernetes.io/managed-by: vrsky
app.kubernetes.io/component: tenant-nats
{{- end -}}

{{/* The pods of the NATS chart installed with this release. */}}
{{- define "vrsky.natsPodLabels" -}}
app.kubernetes.io/name: nats
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: nats
{{- end -}}

{{/* NetworkPolicy ports: each of .ports with .protocol (TCP by default). */}}
{{- define "vrsky.ports" -}}
{{- range .ports }}
- protocol: {{ get $ "protocol" | default "TCP" }}
  port: {{ . }}
{{- end }}
{{- end -}}

{{/* A NetworkPolicy rule's peers, .to: never empty, which would admit
everyone; .msg is the render's error then. */}}
{{- define "vrsky.peers" -}}
{{- if not .to }}{{ fail .msg }}{{ end -}}
{{- toYaml .to -}}
{{- end -}}
