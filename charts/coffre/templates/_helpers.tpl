{{/* ---- Names and labels ---- */}}

{{- define "coffre.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "coffre.fullname" -}}
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

{{- define "coffre.selectorLabels" -}}
app.kubernetes.io/name: {{ include "coffre.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "coffre.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "coffre.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "coffre.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "coffre.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "coffre.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* The HTTP port inside the pod: [service] listen is forced to 0.0.0.0:9187. */}}
{{- define "coffre.httpPort" -}}9187{{- end -}}

{{/* The admin API, as YAML {enabled, port, tlsSecret}, checked: service mode only, its
own port, the integrity key (it seals the TOTP secrets). */}}
{{- define "coffre.api" -}}
{{- $api := .Values.api | default dict -}}
{{- $tls := ($api.tls | default dict).existingSecret | default "" -}}
{{- $port := int64 ($api.port | default 8080) -}}
{{- if $api.enabled -}}
{{- if ne .Values.mode "service" -}}
{{- fail "api.enabled needs mode: service (the admin API is served by `coffre serve`; CronJobs serve nothing): set api.enabled=false" -}}
{{- end -}}
{{- if eq (toString $port) (include "coffre.httpPort" .) -}}
{{- fail (printf "api.port: %d is the probes/metrics port; give the API another one" $port) -}}
{{- end -}}
{{- end -}}
enabled: {{ $api.enabled | default false }}
port: {{ $port }}
tlsSecret: {{ $tls | quote }}
{{- end -}}

{{/* ---- Secrets ----
Where one secret file comes from, as YAML {name, key}, or "" when not configured.
Args: root, entry ({existingSecret, key, value}), key (the key in the chart's own
Secret), what (for messages). */}}
{{- define "coffre.secretRef" -}}
{{- $e := .entry | default dict -}}
{{- if and $e.existingSecret $e.value -}}
{{- fail (printf "%s: set existingSecret or value, not both" .what) -}}
{{- end -}}
{{- if $e.existingSecret -}}
name: {{ $e.existingSecret | quote }}
key: {{ $e.key | default .defaultKey | default .key | quote }}
{{- else if $e.value -}}
name: {{ include "coffre.fullname" .root | quote }}
key: {{ .key | quote }}
{{- end -}}
{{- end -}}

{{/* The two references of an S3 target's credentials, as YAML {id: {name, key}, secret:
{name, key}}. Args: root, name (target), entry. */}}
{{- define "coffre.s3Refs" -}}
{{- $e := .entry | default dict -}}
{{- $what := printf "secrets.s3.%s" .name -}}
{{- if $e.existingSecret -}}
{{- if or $e.accessKeyId $e.secretAccessKey -}}
{{- fail (printf "%s: set existingSecret or accessKeyId/secretAccessKey, not both" $what) -}}
{{- end -}}
id: {name: {{ $e.existingSecret | quote }}, key: {{ $e.accessKeyIdKey | default "access_key_id" | quote }}}
secret: {name: {{ $e.existingSecret | quote }}, key: {{ $e.secretAccessKeyKey | default "secret_access_key" | quote }}}
{{- else if and $e.accessKeyId $e.secretAccessKey -}}
id: {name: {{ include "coffre.fullname" .root | quote }}, key: {{ printf "s3-%s-access-key-id" .name | quote }}}
secret: {name: {{ include "coffre.fullname" .root | quote }}, key: {{ printf "s3-%s-secret-access-key" .name | quote }}}
{{- else -}}
{{- fail (printf "%s: give existingSecret, or both accessKeyId and secretAccessKey" $what) -}}
{{- end -}}
{{- end -}}

{{/* Environment variable names the chart gives S3 credentials and the webhook token. */}}
{{- define "coffre.s3EnvPrefix" -}}
{{- printf "COFFRE_S3_%s" (. | upper | replace "-" "_") -}}
{{- end -}}

{{/* Resolved references, as YAML: identity, integrity, anonymization, alerts (each
{name, key} or absent), databases (source -> {name, key}), s3 (target -> {id, secret}). */}}
{{- define "coffre.secretRefs" -}}
{{- $s := .Values.secrets -}}
{{- $one := dict
  "identity" (list $s.identity "identity.age" "secrets.identity")
  "integrity" (list $s.integrityKey "integrity.key" "secrets.integrityKey")
  "anonymization" (list $s.anonymizationKey "anonymization.key" "secrets.anonymizationKey")
  "alerts" (list $s.alertsWebhookToken "alerts-webhook-token" "secrets.alertsWebhookToken") -}}
{{- range $name, $args := $one }}
{{- $ref := include "coffre.secretRef" (dict "root" $ "entry" (index $args 0) "key" (index $args 1) "what" (index $args 2)) }}
{{- if $ref }}
{{ $name }}:
  {{- $ref | nindent 2 }}
{{- end }}
{{- end }}
databases:
{{- range $source, $entry := $s.databases }}
{{- $ref := include "coffre.secretRef" (dict "root" $ "entry" $entry "key" (printf "db-%s.pass" $source) "defaultKey" "password" "what" (printf "secrets.databases.%s" $source)) }}
{{- if not $ref }}{{ fail (printf "secrets.databases.%s: give existingSecret or value" $source) }}{{ end }}
  {{ $source }}:
    {{- $ref | nindent 4 }}
{{- end }}
s3:
{{- range $target, $entry := $s.s3 }}
  {{ $target }}:
    {{- include "coffre.s3Refs" (dict "root" $ "name" $target "entry" $entry) | nindent 4 }}
{{- end }}
{{- end -}}

{{/* Whether a pod of this role gets the age identity: drills restore, backups never. */}}
{{- define "coffre.serviceRestores" -}}
{{- if .Values.config.drills }}true{{ end -}}
{{- end -}}

{{/* ---- config.toml ----
The user's config with the keys the chart owns set. Args: root, identity (bool).
Fails on references to unknown sources or targets, and on what cannot work. */}}
{{- define "coffre.config" -}}
{{- $root := .root -}}
{{- $refs := include "coffre.secretRefs" $root | fromYaml -}}
{{- $c := deepCopy ($root.Values.config | default dict) -}}
{{- $_ := set $c "state_dir" "/var/lib/coffre" -}}
{{- $service := $c.service | default dict -}}
{{- $_ := set $service "listen" (printf "0.0.0.0:%s" (include "coffre.httpPort" $root)) -}}
{{- $_ := set $c "service" $service -}}
{{- $encryption := $c.encryption | default dict -}}
{{- if .identity -}}
{{- $_ := set $encryption "identity_file" "/etc/coffre/secrets/identity.age" -}}
{{- end -}}
{{- $_ := set $c "encryption" $encryption -}}
{{- if $refs.integrity -}}
{{- $_ := set $c "integrity" (dict "key_file" "/etc/coffre/secrets/integrity.key") -}}
{{- end -}}
{{- if $refs.anonymization -}}
{{- $_ := set $c "anonymization" (dict "key_file" "/etc/coffre/secrets/anonymization.key") -}}
{{- end -}}
{{- $api := include "coffre.api" $root | fromYaml -}}
{{- if $api.enabled -}}
{{- if not $refs.integrity -}}{{- fail "secrets.integrityKey: the admin API (api.enabled) seals TOTP secrets with the integrity key (existingSecret or value)" -}}{{- end -}}
{{- $a := $c.api | default dict -}}
{{- $_ := set $a "listen" (printf "0.0.0.0:%d" (int64 $api.port)) -}}
{{- if $api.tlsSecret -}}
{{- $_ := set $a "tls_cert" "/etc/coffre/secrets/api/tls.crt" -}}
{{- $_ := set $a "tls_key" "/etc/coffre/secrets/api/tls.key" -}}
{{- else -}}
{{- /* Plain HTTP on 0.0.0.0: TLS is terminated by the Ingress (see README.md). */ -}}
{{- $_ := set $a "allow_plain_http" true -}}
{{- end -}}
{{- $_ := set $c "api" $a -}}
{{- end -}}
{{- if $refs.alerts -}}
{{- $alerts := $c.alerts | default dict -}}
{{- $_ := set $alerts "webhook_token_env" "COFFRE_ALERTS_WEBHOOK_TOKEN" -}}
{{- $_ := set $c "alerts" $alerts -}}
{{- end -}}
{{- $sources := $c.sources | default dict -}}
{{- range $name, $_ := $refs.databases -}}
{{- $src := get $sources $name -}}
{{- if not $src -}}{{- fail (printf "secrets.databases.%s: no source %q in config.sources" $name $name) -}}{{- end -}}
{{- if not (has $src.type (list "postgres" "mysql")) -}}{{- fail (printf "secrets.databases.%s: source %q is of type %s; only postgres and mysql sources take a password" $name $name (toString $src.type)) -}}{{- end -}}
{{- $_ := set $src "password_file" (printf "/etc/coffre/secrets/db/%s.pass" $name) -}}
{{- end -}}
{{- $targets := $c.targets | default dict -}}
{{- range $name, $_ := $refs.s3 -}}
{{- $t := get $targets $name -}}
{{- if not $t -}}{{- fail (printf "secrets.s3.%s: no target %q in config.targets" $name $name) -}}{{- end -}}
{{- if ne $t.type "s3" -}}{{- fail (printf "secrets.s3.%s: target %q is not of type s3" $name $name) -}}{{- end -}}
{{- $prefix := include "coffre.s3EnvPrefix" $name -}}
{{- $_ := set $t "access_key_id_env" (printf "%s_ACCESS_KEY_ID" $prefix) -}}
{{- $_ := set $t "secret_access_key_env" (printf "%s_SECRET_ACCESS_KEY" $prefix) -}}
{{- end -}}
{{- range $name, $_ := ($c.drills | default dict) -}}
{{- if not (hasKey $sources $name) -}}{{- fail (printf "config.drills.%s: no source %q in config.sources" $name $name) -}}{{- end -}}
{{- end -}}
{{- if $sources -}}
{{- if not $encryption.recipients -}}{{- fail "config.encryption.recipients: give at least one age recipient" -}}{{- end -}}
{{- if not $refs.integrity -}}{{- fail "secrets.integrityKey: every backup needs the integrity key (existingSecret or value)" -}}{{- end -}}
{{- end -}}
{{- if and $c.drills (not $refs.identity) -}}
{{- fail "secrets.identity: drills restore backups and need the age identity (existingSecret or value)" -}}
{{- end -}}
# Rendered by the coffre chart from the values' `config`; paths are the pod's.
{{ include "coffre.toml.table" (dict "path" "" "table" $c) }}
{{- end -}}

{{/* ---- A small TOML writer (Helm's toToml writes every number as a float) ---- */}}

{{- define "coffre.toml.key" -}}
{{- if regexMatch "^[A-Za-z0-9_-]+$" . -}}{{ . }}{{- else -}}{{ toJson . }}{{- end -}}
{{- end -}}

{{- define "coffre.toml.value" -}}
{{- $v := . -}}
{{- if kindIs "string" $v -}}
{{- /* Plain when nothing needs escaping; else JSON's escapes, which TOML reads too. */ -}}
{{- if regexMatch "^[^\"\\\\\\x00-\\x1f\\x7f]*$" $v }}"{{ $v }}"{{ else }}{{ toJson $v }}{{ end }}
{{- else if kindIs "bool" $v -}}{{ $v }}
{{- else if or (kindIs "float64" $v) (kindIs "int" $v) (kindIs "int64" $v) -}}
{{- if eq (float64 (int64 $v)) (float64 $v) -}}{{ int64 $v }}{{- else -}}{{ $v }}{{- end -}}
{{- else if kindIs "slice" $v -}}
[{{ range $i, $e := $v }}{{ if $i }}, {{ end }}{{ include "coffre.toml.value" $e }}{{ end }}]
{{- else if kindIs "map" $v -}}
{ {{- range $i, $k := keys $v | sortAlpha }}{{ if $i }},{{ end }} {{ include "coffre.toml.key" $k }} = {{ include "coffre.toml.value" (get $v $k) }}{{ end }} }
{{- else -}}
{{- fail (printf "config: cannot write %v (%s) in TOML" $v (kindOf $v)) -}}
{{- end -}}
{{- end -}}

{{/* Args: path (dotted, "" at the top), table. Scalars first, then sub-tables; a table
holding only sub-tables gets no header of its own; empty tables and null values are
left out (an empty table means the same as an absent one in coffre's config). */}}
{{- define "coffre.toml.table" -}}
{{- $path := .path -}}
{{- $t := .table -}}
{{- $scalars := list -}}
{{- $tables := list -}}
{{- range $k := keys $t | sortAlpha -}}
{{- $v := get $t $k -}}
{{- if kindIs "map" $v -}}{{- if $v }}{{ $tables = append $tables $k }}{{ end -}}
{{- else if not (kindIs "invalid" $v) -}}{{- $scalars = append $scalars $k -}}
{{- end -}}
{{- end -}}
{{- if and $path $scalars }}

[{{ $path }}]
{{- end }}
{{- range $k := $scalars }}
{{ include "coffre.toml.key" $k }} = {{ include "coffre.toml.value" (get $t $k) }}
{{- end }}
{{- range $k := $tables }}
{{- $p := include "coffre.toml.key" $k -}}
{{- if $path }}{{ $p = printf "%s.%s" $path $p }}{{ end }}
{{- include "coffre.toml.table" (dict "path" $p "table" (get $t $k)) }}
{{- end }}
{{- end -}}

{{/* ---- Pods ----
The pod spec of every workload. Args: root, args (coffre's arguments after --config),
identity (bool: mount the age identity), service (bool: probes and the HTTP port),
source (mount only this source's database password; "" = every source's when service,
none otherwise). */}}
{{- define "coffre.podSpec" -}}
{{- $root := .root -}}
{{- $v := $root.Values -}}
{{- $refs := include "coffre.secretRefs" $root | fromYaml -}}
{{- $fullname := include "coffre.fullname" $root -}}
{{- $api := include "coffre.api" $root | fromYaml -}}
serviceAccountName: {{ include "coffre.serviceAccountName" $root }}
automountServiceAccountToken: false
{{- with $v.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  runAsNonRoot: true
  runAsUser: 10001
  runAsGroup: 10001
  fsGroup: 10001
  seccompProfile:
    type: RuntimeDefault
{{- if .service }}
terminationGracePeriodSeconds: {{ add (int64 ($v.config.service | default dict).shutdown_grace_secs | default 60) 30 }}
{{- end }}
{{- with $v.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $v.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $v.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
containers:
  - name: coffre
    image: {{ include "coffre.image" $root | quote }}
    imagePullPolicy: {{ $v.image.pullPolicy }}
    args:
      {{- toYaml (concat (list "--config" "/etc/coffre/config.toml") .args) | nindent 6 }}
    securityContext:
      runAsNonRoot: true
      runAsUser: 10001
      runAsGroup: 10001
      readOnlyRootFilesystem: true
      allowPrivilegeEscalation: false
      privileged: false
      capabilities:
        drop:
          - ALL
      seccompProfile:
        type: RuntimeDefault
    env:
      - name: TMPDIR
        value: /tmp
      {{- range $target, $ref := $refs.s3 }}
      {{- $prefix := include "coffre.s3EnvPrefix" $target }}
      - name: {{ $prefix }}_ACCESS_KEY_ID
        valueFrom:
          secretKeyRef: {{ toJson $ref.id }}
      - name: {{ $prefix }}_SECRET_ACCESS_KEY
        valueFrom:
          secretKeyRef: {{ toJson $ref.secret }}
      {{- end }}
      {{- with $refs.alerts }}
      - name: COFFRE_ALERTS_WEBHOOK_TOKEN
        valueFrom:
          secretKeyRef: {{ toJson . }}
      {{- end }}
      {{- with $v.env }}
      {{- toYaml . | nindent 6 }}
      {{- end }}
    {{- if .service }}
    ports:
      - name: http
        containerPort: {{ include "coffre.httpPort" $root }}
        protocol: TCP
      {{- if $api.enabled }}
      - name: api
        containerPort: {{ int64 $api.port }}
        protocol: TCP
      {{- end }}
    livenessProbe:
      httpGet:
        path: /healthz
        port: http
      initialDelaySeconds: 5
      periodSeconds: 10
      timeoutSeconds: 3
      failureThreshold: 6
    readinessProbe:
      httpGet:
        path: /readyz
        port: http
      periodSeconds: 10
      timeoutSeconds: 3
      failureThreshold: 3
    {{- end }}
    resources:
      {{- toYaml $v.resources | nindent 6 }}
    volumeMounts:
      - name: etc
        mountPath: /etc/coffre
        readOnly: true
      - name: state
        mountPath: /var/lib/coffre
      - name: tmp
        mountPath: /tmp
      {{- with $v.extraVolumeMounts }}
      {{- toYaml . | nindent 6 }}
      {{- end }}
volumes:
  # config.toml, policies/ and secrets/ in one read-only volume at /etc/coffre.
  - name: etc
    projected:
      defaultMode: 0440
      sources:
        - configMap:
            name: {{ $fullname }}-config
            items:
              - key: {{ ternary "config-restore.toml" "config.toml" (eq .identity true) }}
                path: config.toml
        {{- if $v.policies }}
        - configMap:
            name: {{ $fullname }}-policies
            items:
              {{- range $file, $_ := $v.policies }}
              - key: {{ $file }}
                path: policies/{{ $file }}
              {{- end }}
        {{- end }}
        {{- if .identity }}
        - secret:
            name: {{ $refs.identity.name }}
            items:
              - key: {{ $refs.identity.key }}
                path: secrets/identity.age
        {{- end }}
        {{- range $what, $file := dict "integrity" "integrity.key" "anonymization" "anonymization.key" }}
        {{- with get $refs $what }}
        - secret:
            name: {{ .name }}
            items:
              - key: {{ .key }}
                path: secrets/{{ $file }}
        {{- end }}
        {{- end }}
        {{- if and .service $api.enabled $api.tlsSecret }}
        # The admin API's certificate chain and key (a kubernetes.io/tls Secret).
        - secret:
            name: {{ $api.tlsSecret }}
            items:
              - key: tls.crt
                path: secrets/api/tls.crt
              - key: tls.key
                path: secrets/api/tls.key
        {{- end }}
        {{- range $source, $ref := $refs.databases }}
        {{- if or $.service (eq $source ($.source | default "")) }}
        - secret:
            name: {{ $ref.name }}
            items:
              - key: {{ $ref.key }}
                path: secrets/db/{{ $source }}.pass
        {{- end }}
        {{- end }}
  - name: tmp
    emptyDir:
      sizeLimit: {{ $v.tmpSizeLimit }}
  {{- if not (and .service $v.persistence.enabled) }}
  - name: state
    emptyDir: {}
  {{- end }}
  {{- with $v.extraVolumes }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- end -}}

{{/* Annotations that roll the pods when the config or the chart's Secret change. */}}
{{- define "coffre.podAnnotations" -}}
checksum/config: {{ include (print .Template.BasePath "/configmap.yaml") . | sha256sum }}
checksum/secret: {{ include (print .Template.BasePath "/secret.yaml") . | sha256sum }}
{{- with .Values.podAnnotations }}
{{ toYaml . }}
{{- end }}
{{- end -}}
