{{/* The chart's name, and the release's full name (used for every object). */}}
{{- define "claimsvc.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "claimsvc.fullname" -}}
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

{{- define "claimsvc.selectorLabels" -}}
app.kubernetes.io/name: {{ include "claimsvc.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* The serving pods: the Service, the PDB and the Deployment select these (not the migration Job's pods). */}}
{{- define "claimsvc.serverSelectorLabels" -}}
{{ include "claimsvc.selectorLabels" . }}
app.kubernetes.io/component: server
{{- end }}

{{- define "claimsvc.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "claimsvc.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | trunc 63 | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: claimsvc
{{- end }}

{{- define "claimsvc.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}
{{- end }}

{{- define "claimsvc.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "claimsvc.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "claimsvc.secretName" -}}
{{- default (include "claimsvc.fullname" .) .Values.secrets.existingSecret }}
{{- end }}

{{/* Settings that are secrets, and those of them claimsvc can read from a file (X_FILE). */}}
{{- define "claimsvc.secretSettings" -}}
[CLAIMSVC_DATABASE_URL, CLAIMSVC_DATA_KEY, CLAIMSVC_DATA_KEYS, CLAIMSVC_API_KEYS, CLAIMSVC_BROKER_PROBE_TOKEN, CLAIMSVC_TB_PASSWORD, CLAIMSVC_TB_API_KEY]
{{- end }}
{{- define "claimsvc.fileSettings" -}}
[CLAIMSVC_DATABASE_URL, CLAIMSVC_DATA_KEY, CLAIMSVC_DATA_KEYS, CLAIMSVC_BROKER_PROBE_TOKEN, CLAIMSVC_TB_PASSWORD, CLAIMSVC_TB_API_KEY]
{{- end }}

{{/*
Checks the values once, where every template can call it: secrets stay out of
the ConfigMap, the settings the service cannot run safely without come from
the Secret (or from a file the operator mounts, config.X_FILE), and an inline
Secret has a value for every key it must hold.
*/}}
{{- define "claimsvc.validate" -}}
{{- $secretSettings := include "claimsvc.secretSettings" . | fromYamlArray }}
{{- $keys := .Values.secrets.keys | default dict }}
{{- range $k, $v := .Values.config }}
{{- if has $k $secretSettings }}
{{- fail (printf "config.%s is a secret: name it in secrets.keys and put its value in the Secret" $k) }}
{{- end }}
{{- if not (hasPrefix "CLAIMSVC_" $k) }}
{{- fail (printf "config.%s: only CLAIMSVC_* settings belong here" $k) }}
{{- end }}
{{- if hasKey $keys (trimSuffix "_FILE" $k) }}
{{- fail (printf "config.%s and secrets.keys.%s name the same setting: keep one" $k (trimSuffix "_FILE" $k)) }}
{{- end }}
{{- if has $k (list "CLAIMSVC_HTTP_ADDR" "CLAIMSVC_MIGRATE") }}
{{- fail (printf "config.%s is set by the chart (the port is 8080; migration.enabled decides migrations)" $k) }}
{{- end }}
{{- end }}
{{- $has := dict }}
{{- range $setting := list "CLAIMSVC_DATABASE_URL" "CLAIMSVC_DATA_KEY" "CLAIMSVC_DATA_KEYS" }}
{{- $_ := set $has $setting (or (hasKey $keys $setting) (hasKey $.Values.config (printf "%s_FILE" $setting))) }}
{{- end }}
{{- if not (get $has "CLAIMSVC_DATABASE_URL") }}
{{- fail "secrets.keys.CLAIMSVC_DATABASE_URL is required: claimsvc needs it from the Secret" }}
{{- end }}
{{- if and (get $has "CLAIMSVC_DATA_KEY") (get $has "CLAIMSVC_DATA_KEYS") }}
{{- fail "secrets.keys names CLAIMSVC_DATA_KEY and CLAIMSVC_DATA_KEYS: keep one (the keyring, CLAIMSVC_DATA_KEYS, while a rotation is under way)" }}
{{- end }}
{{- if not (or (get $has "CLAIMSVC_DATA_KEY") (get $has "CLAIMSVC_DATA_KEYS")) }}
{{- fail "secrets.keys.CLAIMSVC_DATA_KEY (or the keyring, CLAIMSVC_DATA_KEYS) is required: claimsvc needs it from the Secret" }}
{{- end }}
{{- if and (not (hasKey $keys "CLAIMSVC_API_KEYS")) (ne (toString (index .Values.config "CLAIMSVC_INSECURE_NO_API_KEYS" | default "")) "true") }}
{{- fail "secrets.keys.CLAIMSVC_API_KEYS is required (operator routes need API keys); config.CLAIMSVC_INSECURE_NO_API_KEYS: \"true\" is the explicit opt-out" }}
{{- end }}
{{- range $setting, $key := $keys }}
{{- if not (has $setting $secretSettings) }}
{{- fail (printf "secrets.keys.%s: not a secret setting (put it in config)" $setting) }}
{{- end }}
{{- end }}
{{- if .Values.secrets.create }}
{{- range $setting, $key := $keys }}
{{- if not (index ($.Values.secrets.values | default dict) $key) }}
{{- fail (printf "secrets.create is true but secrets.values has no %q (for %s)" $key $setting) }}
{{- end }}
{{- end }}
{{- end }}
{{- if and .Values.autoscaling.enabled (lt (int .Values.autoscaling.minReplicas) 2) }}
{{- fail "autoscaling.minReplicas below 2 leaves no pod serving while one restarts" }}
{{- end }}
{{- end }}

{{/*
The settings that come from the Secret: environment variables from it, or,
with secrets.asFiles, CLAIMSVC_*_FILE paths into its mount for the settings
claimsvc reads from files. only: a list restricting the settings (the
migration Job needs the database URL alone).
*/}}
{{- define "claimsvc.secretEnv" -}}
{{- $root := .root }}
{{- $fileSettings := include "claimsvc.fileSettings" $root | fromYamlArray }}
{{- range $setting, $key := $root.Values.secrets.keys }}
{{- if or (not $.only) (has $setting $.only) }}
{{- if and $root.Values.secrets.asFiles (has $setting $fileSettings) }}
- name: {{ $setting }}_FILE
  value: /etc/claimsvc/secrets/{{ $key }}
{{- else }}
- name: {{ $setting }}
  valueFrom:
    secretKeyRef:
      name: {{ include "claimsvc.secretName" $root }}
      key: {{ $key }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{- define "claimsvc.secretVolume" -}}
- name: secrets
  secret:
    secretName: {{ include "claimsvc.secretName" . }}
    defaultMode: 0440
{{- end }}
