{{/* Names ------------------------------------------------------------------------------------ */}}
{{- define "argus.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "argus.fullname" -}}
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

{{/* "argus.componentName" (dict "root" $ "component" "api") -> <fullname>-api */}}
{{- define "argus.componentName" -}}
{{- printf "%s-%s" (include "argus.fullname" .root) .component | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "argus.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "argus.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: argus
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* (dict "root" $ "component" "api") */}}
{{- define "argus.componentLabels" -}}
{{ include "argus.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "argus.selectorLabels" -}}
app.kubernetes.io/name: {{ include "argus.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* Every pod of this release (NetworkPolicy peers). */}}
{{- define "argus.releaseSelector" -}}
app.kubernetes.io/name: {{ include "argus.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "argus.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "argus.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/*
"argus.image" (dict "root" $ "image" .Values.image.api). No public registry serves the Argus
images: without image.registry, a bare repository (argus-api) would be pulled as
docker.io/library/argus-api, which does not exist, so the render fails and says what to set. A
repository that names its registry (or a Docker Hub account: registry.example.com/argus-api,
myorg/argus-api) needs no image.registry.
*/}}
{{- define "argus.image" -}}
{{- $root := .root -}}
{{- $repo := .image.repository -}}
{{- if $root.Values.image.registry -}}
{{- $repo = printf "%s/%s" (trimSuffix "/" $root.Values.image.registry) $repo -}}
{{- else if and (not (contains "/" $repo)) (ne $root.Values.image.pullPolicy "Never") -}}
{{- fail (printf "image.registry is required: no public registry serves the Argus images (without it the pods would pull docker.io/library/%s, which does not exist). Build them from Dockerfile.api and Dockerfile.detector, push them to a registry of yours and set image.registry (e.g. --set image.registry=registry.example.com/argus), or name the registry in image.api.repository and image.detector.repository; images loaded into the nodes (kind load, minikube image load): image.pullPolicy=Never (docs/kubernetes.md, \"Images\")" $repo) -}}
{{- end -}}
{{- if .image.digest -}}
{{- printf "%s@%s" $repo .image.digest -}}
{{- else -}}
{{- printf "%s:%s" $repo (.image.tag | default $root.Values.image.tag | default $root.Chart.AppVersion) -}}
{{- end -}}
{{- end -}}

{{/* Secrets ---------------------------------------------------------------------------------- */}}
{{- define "argus.secretName" -}}
{{- default (include "argus.fullname" .) .Values.secrets.existingSecret -}}
{{- end -}}

{{/*
Every key of the release's Secret, as JSON (computed once per render and cached, so that a
generated password is the same in every place that uses it). A value is the one given in values,
else the one already in the release's Secret (upgrades keep generated passwords), else random.
*/}}
{{- define "argus.secretData" -}}
{{- if not (hasKey .Values "__argusSecretData") -}}
{{- $existing := dict -}}
{{- $found := lookup "v1" "Secret" .Release.Namespace (include "argus.fullname" .) -}}
{{- if and $found $found.data -}}{{- $existing = $found.data -}}{{- end -}}
{{- $pick := dict -}}
{{- $want := dict "ARGUS_JWT_SECRET" (list .Values.secrets.jwtSecret 64) "ARGUS_ADMIN_PASSWORD" (list .Values.secrets.adminPassword 24) -}}
{{- if .Values.rabbitmq.enabled }}{{ $_ := set $want "RABBITMQ_PASSWORD" (list .Values.rabbitmq.password 32) }}{{ end -}}
{{- if .Values.redis.enabled }}{{ $_ := set $want "REDIS_PASSWORD" (list .Values.redis.password 32) }}{{ end -}}
{{- if .Values.postgresql.enabled }}{{ $_ := set $want "POSTGRES_PASSWORD" (list .Values.postgresql.password 32) }}{{ end -}}
{{- range $key, $spec := $want -}}
{{- $value := index $spec 0 -}}
{{- if not $value -}}
{{- if hasKey $existing $key -}}
{{- $value = index $existing $key | b64dec -}}
{{- else if $.Values.secrets.seed -}}
{{- /* The same on every render (helm template, Argo CD, Flux): derived from the seed. */ -}}
{{- $value = sha256sum (printf "argus/%s/%s" $.Values.secrets.seed $key) | trunc (index $spec 1 | int) -}}
{{- else -}}
{{- $value = randAlphaNum (index $spec 1) -}}
{{- end -}}
{{- end -}}
{{- $_ := set $pick $key $value -}}
{{- end -}}
{{- $d := $pick -}}
{{- if .Values.rabbitmq.enabled -}}
{{- $_ := set $d "ARGUS_BROKER_URL" (printf "amqp://%s:%s@%s:5672/%%2f" .Values.rabbitmq.user $d.RABBITMQ_PASSWORD (include "argus.rabbitmqHost" .)) -}}
{{- $_ := set $d "RABBITMQ_MANAGEMENT_URL" (printf "http://%s:%s@%s:15672/" .Values.rabbitmq.user $d.RABBITMQ_PASSWORD (include "argus.rabbitmqHost" .)) -}}
{{- else -}}
{{- $_ := set $d "ARGUS_BROKER_URL" .Values.secrets.brokerUrl -}}
{{- $_ := set $d "RABBITMQ_MANAGEMENT_URL" .Values.secrets.rabbitmqManagementUrl -}}
{{- end -}}
{{- if .Values.redis.enabled -}}
{{- $_ := set $d "ARGUS_RESULT_BACKEND" (printf "redis://:%s@%s:6379/0" $d.REDIS_PASSWORD (include "argus.redisHost" .)) -}}
{{- else -}}
{{- $_ := set $d "ARGUS_RESULT_BACKEND" .Values.secrets.resultBackendUrl -}}
{{- end -}}
{{- if .Values.postgresql.enabled -}}
{{- $_ := set $d "ARGUS_DATABASE_URL" (printf "postgres://%s:%s@%s:5432/%s" .Values.postgresql.user $d.POSTGRES_PASSWORD (include "argus.postgresqlHost" .) .Values.postgresql.database) -}}
{{- else -}}
{{- $_ := set $d "ARGUS_DATABASE_URL" .Values.secrets.databaseUrl -}}
{{- end -}}
{{- if not (include "argus.anyKeda" .) -}}
{{- $_ := unset $d "RABBITMQ_MANAGEMENT_URL" -}}
{{- end -}}
{{- $_ := set .Values "__argusSecretData" $d -}}
{{- end -}}
{{- toJson .Values.__argusSecretData -}}
{{- end -}}

{{/* "true" when a worker role scales with KEDA (it reads RabbitMQ's management API). */}}
{{- define "argus.anyKeda" -}}
{{- if or (eq .Values.detector.autoscaling.mode "keda") (eq .Values.processor.autoscaling.mode "keda") -}}true{{- end -}}
{{- end -}}

{{/* Service host names of the in-chart services. */}}
{{- define "argus.rabbitmqHost" -}}{{ include "argus.componentName" (dict "root" . "component" "rabbitmq") }}{{- end -}}
{{- define "argus.redisHost" -}}{{ include "argus.componentName" (dict "root" . "component" "redis") }}{{- end -}}
{{- define "argus.postgresqlHost" -}}{{ include "argus.componentName" (dict "root" . "component" "postgresql") }}{{- end -}}

{{/* Settings --------------------------------------------------------------------------------- */}}
{{- define "argus.gpuCount" -}}
{{- if .Values.detector.gpu.enabled -}}{{ .Values.detector.gpu.count | int }}{{- else -}}0{{- end -}}
{{- end -}}

{{- define "argus.detectorConcurrency" -}}
{{- if .Values.detector.concurrency -}}
{{- .Values.detector.concurrency | int -}}
{{- else -}}
{{- max 2 (mul 2 (include "argus.gpuCount" . | int)) (mul 2 (include "argus.detectorCpuReplicas" . | int)) -}}
{{- end -}}
{{- end -}}

{{/* CPU mode without detector.torchThreads: one model replica per core the pod requests
     (rounded up); 0 otherwise (GPU mode, or threads given: one replica with them). */}}
{{- define "argus.detectorCpuReplicas" -}}
{{- $d := .Values.detector -}}
{{- $cores := 0 -}}
{{- if and (not $d.torchThreads) (not (include "argus.gpuCount" . | int)) -}}
{{- $cpu := toString (dig "requests" "cpu" "" ($d.resources | default dict)) -}}
{{- if hasSuffix "m" $cpu -}}
{{- $cores = max 1 (div (add (trimSuffix "m" $cpu | int) 999) 1000) -}}
{{- else if $cpu -}}
{{- $cores = max 1 (ceil ($cpu | float64) | int) -}}
{{- end -}}
{{- end -}}
{{- $cores -}}
{{- end -}}

{{- define "argus.tasksPerReplica" -}}
{{- $v := index .root.Values .component -}}
{{- $concurrency := ternary (include "argus.detectorConcurrency" .root) $v.concurrency (eq .component "detector") -}}
{{- $v.autoscaling.tasksPerReplica | default $concurrency | int -}}
{{- end -}}

{{/* A worker's grace period: the value given, else the task time limit + 60 s. */}}
{{- define "argus.workerGrace" -}}
{{- if .value -}}
{{- .value | int -}}
{{- else -}}
{{- add (.root.Values.config.taskTimeLimit | int) 60 -}}
{{- end -}}
{{- end -}}

{{/* The pods' shared pieces ------------------------------------------------------------------ */}}
{{- define "argus.podSpecCommon" -}}
serviceAccountName: {{ include "argus.serviceAccountName" . }}
automountServiceAccountToken: {{ .Values.serviceAccount.automountToken }}
enableServiceLinks: false
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* The secret environment a role needs: (dict "root" $ "keys" (list "ARGUS_BROKER_URL" ...)) */}}
{{- define "argus.secretEnv" -}}
{{- $name := include "argus.secretName" .root -}}
{{- range .keys }}
- name: {{ . }}
  valueFrom:
    secretKeyRef:
      name: {{ $name }}
      key: {{ . }}
{{- end }}
{{- end -}}

{{/* Annotations that roll the pods when settings or secrets change. */}}
{{- define "argus.checksums" -}}
checksum/config: {{ include (print .Template.BasePath "/configmap.yaml") . | sha256sum }}
{{- if not .Values.secrets.existingSecret }}
checksum/secret: {{ include "argus.secretFingerprint" . | sha256sum }}
{{- end }}
{{- end -}}

{{/* What the chart's Secret depends on (not the generated values, which would roll every upgrade). */}}
{{- define "argus.secretFingerprint" -}}
{{- toJson (dict "secrets" .Values.secrets "rabbitmq" .Values.rabbitmq.enabled "redis" .Values.redis.enabled "postgresql" .Values.postgresql.enabled "keda" (include "argus.anyKeda" .)) -}}
{{- end -}}

{{- define "argus.storageClaim" -}}
{{- .Values.storage.existingClaim | default (include "argus.componentName" (dict "root" . "component" "storage")) -}}
{{- end -}}

{{/* The volumes every Argus pod mounts: the shared storage at /data and a scratch /tmp. */}}
{{- define "argus.volumes" -}}
- name: storage
  persistentVolumeClaim:
    claimName: {{ include "argus.storageClaim" . }}
- name: tmp
  emptyDir: {}
{{- with .Values.tls.existingSecret }}
- name: tls
  secret:
    secretName: {{ . }}
    defaultMode: 0440
{{- end }}
{{- end -}}

{{- define "argus.volumeMounts" -}}
- name: storage
  mountPath: /data
- name: tmp
  mountPath: /tmp
{{- if .Values.tls.existingSecret }}
- name: tls
  mountPath: /etc/argus/tls
  readOnly: true
{{- end }}
{{- end -}}

{{/* ARGUS_TLS_* for amqps:// and rediss://, from the Secret tls.existingSecret mounts. */}}
{{- define "argus.tlsEnv" -}}
{{- with .Values.tls }}
{{- if .existingSecret }}
- {name: ARGUS_TLS_CA_FILE, value: {{ printf "/etc/argus/tls/%s" (required "tls.caKey: the key of the CA in tls.existingSecret" .caKey) | quote }}}
{{- if .certKey }}
- {name: ARGUS_TLS_CERT_FILE, value: {{ printf "/etc/argus/tls/%s" .certKey | quote }}}
- {name: ARGUS_TLS_KEY_FILE, value: {{ printf "/etc/argus/tls/%s" (required "tls.keyKey: the client key's key in tls.existingSecret (tls.certKey is set)" .keyKey) | quote }}}
{{- end }}
{{- end }}
{{- end }}
{{- end -}}

{{/* A role's extraVolumes or extraVolumeMounts, after the chart's own: (dict "root" $ "role" "api"
     "kind" "volumes" or "mounts" "indent" 8). A mount must name a volume the pod has. */}}
{{- define "argus.extraVolumes" -}}
{{- $v := index .root.Values .role -}}
{{- $names := list "storage" "tmp" -}}
{{- $paths := list "/data" "/tmp" -}}
{{- if .root.Values.tls.existingSecret }}
{{- $names = append $names "tls" }}{{ $paths = append $paths "/etc/argus/tls" }}
{{- end -}}
{{- if and (eq .role "detector") .root.Values.detector.models.existingClaim }}
{{- $names = append $names "models" }}{{ $paths = append $paths "/models" }}
{{- end -}}
{{- if eq .kind "mounts" -}}
{{- range $v.extraVolumes }}{{ $names = append $names .name }}{{ end -}}
{{- range $v.extraVolumeMounts }}
{{- if not (has .name $names) }}
{{- fail (printf "%s.extraVolumeMounts: %q mounts no volume of the pod (it has %s): add it to %s.extraVolumes" $.role .name (join ", " $names) $.role) }}
{{- end }}
{{- if has (.mountPath | trimSuffix "/") $paths }}
{{- fail (printf "%s.extraVolumeMounts: %s is where the chart mounts its own volume" $.role .mountPath) }}
{{- end }}
{{- end }}
{{- with $v.extraVolumeMounts }}{{ toYaml . | nindent $.indent }}{{ end }}
{{- else -}}
{{- range $v.extraVolumes }}
{{- if has .name $names }}
{{- fail (printf "%s.extraVolumes: %q is the name of the chart's own volume: pick another" $.role .name) }}
{{- end }}
{{- end }}
{{- with $v.extraVolumes }}{{ toYaml . | nindent $.indent }}{{ end }}
{{- end -}}
{{- end -}}

{{/* volumePermissions: an init container that chowns the shared storage to the pods' user, as
     root with CAP_CHOWN only (recursive: CAP_DAC_OVERRIDE too, to walk what it does not own). */}}
{{- define "argus.initContainers" -}}
{{- $vp := .Values.volumePermissions -}}
{{- if $vp.enabled -}}
initContainers:
  - name: volume-permissions
    image: {{ $vp.image }}
    imagePullPolicy: IfNotPresent
    command:
      - chown
      {{- if $vp.recursive }}
      - -R
      {{- end }}
      - {{ printf "%d:%d" (.Values.podSecurityContext.runAsUser | default 10001 | int) (.Values.podSecurityContext.runAsGroup | default 10001 | int) | quote }}
      - /data
    securityContext:
      runAsUser: 0
      runAsGroup: 0
      runAsNonRoot: false
      allowPrivilegeEscalation: false
      readOnlyRootFilesystem: true
      capabilities:
        drop: [ALL]
        add: {{ ternary (list "CHOWN" "DAC_OVERRIDE") (list "CHOWN") $vp.recursive | toJson }}
    resources:
      {{- toYaml $vp.resources | nindent 6 }}
    volumeMounts:
      - name: storage
        mountPath: /data
{{- end -}}
{{- end -}}

{{/* Scheduling of a role: (dict "values" .Values.api) */}}
{{- define "argus.scheduling" -}}
{{- with .values.priorityClassName }}
priorityClassName: {{ . | quote }}
{{- end }}
{{- with .values.runtimeClassName }}
runtimeClassName: {{ . | quote }}
{{- end }}
{{- with .values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.topologySpreadConstraints }}
topologySpreadConstraints:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* The in-chart services' pods: the official images' own non-root user (uid 999). */}}
{{- define "argus.infraPodSpec" -}}
serviceAccountName: {{ include "argus.serviceAccountName" . }}
automountServiceAccountToken: false
enableServiceLinks: false
securityContext:
  runAsNonRoot: true
  runAsUser: 999
  runAsGroup: 999
  fsGroup: 999
  fsGroupChangePolicy: OnRootMismatch
  seccompProfile: {type: RuntimeDefault}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* (dict "root" $ "storage" .Values.redis.storage) */}}
{{- define "argus.infraClaim" -}}
- metadata:
    name: data
  spec:
    accessModes: [ReadWriteOnce]
    {{- with .storage.storageClassName }}
    storageClassName: {{ . | quote }}
    {{- end }}
    resources:
      requests:
        storage: {{ .storage.size | quote }}
{{- end -}}
