{{/* Names and labels shared by every template. */}}

{{- define "valkey-chaos.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "valkey-chaos.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "valkey-chaos.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}

{{/* The Secret holding the target URL and password. */}}
{{- define "valkey-chaos.secretName" -}}
{{- .Values.target.existingSecret | default (printf "%s-target" (include "valkey-chaos.fullname" .)) -}}
{{- end -}}

{{- define "valkey-chaos.configMapName" -}}
{{- .Values.scenarios.existingConfigMap | default (printf "%s-scenarios" (include "valkey-chaos.fullname" .)) -}}
{{- end -}}

{{- define "valkey-chaos.claimName" -}}
{{- .Values.results.existingClaim | default (printf "%s-results" (include "valkey-chaos.fullname" .)) -}}
{{- end -}}

{{/* The results volume: the shared claim, or an emptyDir per pod. */}}
{{- define "valkey-chaos.resultsVolume" -}}
- name: results
{{- if eq .Values.results.persistence "pvc" }}
  persistentVolumeClaim:
    claimName: {{ include "valkey-chaos.claimName" . }}
{{- else if eq .Values.results.persistence "emptyDir" }}
  emptyDir: {}
{{- else }}
{{- fail "results.persistence must be pvc or emptyDir" }}
{{- end }}
{{- end -}}

{{- define "valkey-chaos.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
fsGroup: 10001
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "valkey-chaos.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: [ALL]
{{- end -}}
