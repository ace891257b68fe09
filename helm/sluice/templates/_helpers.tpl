{{/*
Names, labels and shared snippets of the sluice chart.
*/}}

{{- define "sluice.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "sluice.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "sluice.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "sluice.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- if .Values.commonLabels }}
{{ toYaml .Values.commonLabels }}
{{- end }}
{{- end -}}

{{/* Selector labels; call with (dict "root" $ "component" "coordinator"). */}}
{{- define "sluice.selectorLabels" -}}
app.kubernetes.io/name: {{ include "sluice.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "sluice.coordinatorName" -}}
{{- printf "%s-coordinator" (include "sluice.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "sluice.workerName" -}}
{{- printf "%s-worker" (include "sluice.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "sluice.redisName" -}}
{{- printf "%s-redis" (include "sluice.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "sluice.configName" -}}
{{- printf "%s-config" (include "sluice.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The Secret holding worker/admin tokens. */}}
{{- define "sluice.authSecretName" -}}
{{- if .Values.auth.existingSecret -}}
{{- .Values.auth.existingSecret -}}
{{- else -}}
{{- printf "%s-auth" (include "sluice.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* The Secret and key holding the Redis password. */}}
{{- define "sluice.redisSecretName" -}}
{{- if .Values.redis.auth.existingSecret -}}
{{- .Values.redis.auth.existingSecret -}}
{{- else -}}
{{- printf "%s-redis" (include "sluice.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "sluice.redisSecretKey" -}}
{{- if .Values.redis.auth.existingSecret -}}
{{- .Values.redis.auth.existingSecretKey -}}
{{- else -}}
redis-password
{{- end -}}
{{- end -}}

{{/* DNS name of the coordinator Service, the default TLS server name. */}}
{{- define "sluice.coordinatorHost" -}}
{{- printf "%s.%s.svc" (include "sluice.coordinatorName" .) .Release.Namespace -}}
{{- end -}}

{{- define "sluice.tlsServerName" -}}
{{- default (include "sluice.coordinatorHost" .) .Values.tls.serverName -}}
{{- end -}}

{{- define "sluice.image" -}}
{{- printf "%s:%s" .image.repository (default .root.Chart.AppVersion .image.tag) -}}
{{- end -}}

{{/*
The --store URL. The Redis password is in neither the manifest nor argv nor
the environment: the coordinator reads it from the mounted Secret file
(password_file=), so /proc/PID/cmdline shows only the path.
*/}}
{{- define "sluice.storeUrl" -}}
{{- if eq .Values.store.type "sqlite" -}}
sqlite:///var/lib/sluice/state.db
{{- else -}}
{{- $host := .Values.redis.external.host -}}
{{- $port := .Values.redis.external.port -}}
{{- if .Values.redis.bundled -}}
{{- $host = printf "%s.%s.svc" (include "sluice.redisName" .) .Release.Namespace -}}
{{- $port = 6379 -}}
{{- end -}}
{{- $auth := "" -}}
{{- if .Values.redis.auth.enabled -}}
{{- $auth = "&password_file=/etc/sluice/redis/redis-password" -}}
{{- end -}}
{{- printf "redis://%s:%v/%v?namespace=%s%s" $host $port .Values.redis.db .Values.redis.keyNamespace $auth -}}
{{- end -}}
{{- end -}}

{{/*
Flags the operator CLI needs to reach the coordinator from inside its pod:
exported as $SLUICE_CLI_ARGS in the coordinator container.
*/}}
{{- define "sluice.cliArgs" -}}
--coordinator localhost:{{ .Values.coordinator.port }}
{{- if .Values.auth.enabled }} --token-file /etc/sluice/auth/admin-token{{ end }}
{{- if .Values.tls.enabled }} --tls-ca /etc/sluice/tls/ca.crt --tls-server-name {{ include "sluice.tlsServerName" . }}{{ end }}
{{- if and .Values.tls.enabled .Values.tls.requireClientCerts }} --tls-cert /etc/sluice/tls/tls.crt --tls-key /etc/sluice/tls/tls.key{{ end }}
{{- end -}}

{{/*
A probe; call with (dict "probe" .Values.coordinator.probes.readiness "root" $).
grpc: kubelet's native gRPC health probe; it cannot speak TLS, so with
tls.enabled it falls back to http (when metrics.enabled) or tcp.
http: GET /healthz on the metrics port (200 while SERVING, 503 otherwise).
*/}}
{{- define "sluice.probe" -}}
{{- $type := .probe.type -}}
{{- if not (has $type (list "grpc" "http" "tcp")) -}}
{{- fail (printf "coordinator probe type must be grpc, http or tcp, not %q" $type) -}}
{{- end -}}
{{- if and (eq $type "grpc") .root.Values.tls.enabled -}}
{{- $type = ternary "http" "tcp" .root.Values.metrics.enabled -}}
{{- end -}}
{{- if and (eq $type "http") (not .root.Values.metrics.enabled) -}}
{{- fail "coordinator probe type http needs metrics.enabled (/healthz is served on the metrics port)" -}}
{{- end -}}
{{- if eq $type "grpc" }}
grpc:
  port: {{ .root.Values.coordinator.port }}
  service: {{ .probe.service | quote }}
{{- else if eq $type "http" }}
httpGet:
  path: /healthz
  port: metrics
{{- else }}
tcpSocket:
  port: grpc
{{- end }}
{{- end -}}
