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

{{/* "true" when a worker role (a detector group included) scales with KEDA (it reads RabbitMQ's
     management API). */}}
{{- define "argus.anyKeda" -}}
{{- $modes := list .Values.processor.autoscaling.mode -}}
{{- include "argus.detectorGroups" . -}}
{{- range .Values.__argusDetectorGroups }}{{ $modes = append $modes .v.autoscaling.mode }}{{ end -}}
{{- if has "keda" $modes -}}true{{- end -}}
{{- end -}}

{{/* Service host names of the in-chart services. */}}
{{- define "argus.rabbitmqHost" -}}{{ include "argus.componentName" (dict "root" . "component" "rabbitmq") }}{{- end -}}
{{- define "argus.redisHost" -}}{{ include "argus.componentName" (dict "root" . "component" "redis") }}{{- end -}}
{{- define "argus.postgresqlHost" -}}{{ include "argus.componentName" (dict "root" . "component" "postgresql") }}{{- end -}}

{{/* Settings --------------------------------------------------------------------------------- */}}
{{/* The settings helpers of a detector group take its values: (dict "root" $ "d" <values>), the
     default group's being .Values.detector (argus.detectorGroups). */}}
{{- define "argus.gpuCount" -}}
{{- if .d.gpu.enabled -}}{{ .d.gpu.count | int }}{{- else -}}0{{- end -}}
{{- end -}}

{{- define "argus.detectorConcurrency" -}}
{{- if .d.concurrency -}}
{{- .d.concurrency | int -}}
{{- else -}}
{{- max 2 (mul 2 (include "argus.gpuCount" . | int)) (mul 2 (include "argus.detectorCpuReplicas" . | int)) -}}
{{- end -}}
{{- end -}}

{{/* CPU mode without detector.torchThreads: one model replica per core the pod requests
     (rounded up); 0 otherwise (GPU mode, or threads given: one replica with them). */}}
{{- define "argus.detectorCpuReplicas" -}}
{{- $d := .d -}}
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

{{/* (dict "root" $ "component" "detector" or "processor" "v" <the role's values>); v left out:
     .Values.<component>. */}}
{{- define "argus.tasksPerReplica" -}}
{{- $v := .v | default (index .root.Values .component) -}}
{{- $concurrency := ternary (include "argus.detectorConcurrency" (dict "root" .root "d" $v)) $v.concurrency (eq .component "detector") -}}
{{- $v.autoscaling.tasksPerReplica | default $concurrency | int -}}
{{- end -}}

{{/* Detector groups ---------------------------------------------------------------------------
The detector groups, one per model, computed and checked once per render (cached in
.Values.__argusDetectorGroups, a list): first the default group (values `detector`, model
config.model, queue `detector`), then one per detectorGroups item, whose values are the item
deep-merged over a copy of `detector` (a key it names wins, false, 0 and null included; lists
are replaced, not appended to). Each group: name ("" for the default), model, queue (what the
Rust workers consume: `detector` for config.model, `detector.<model>` for any other), component
(its pods' app.kubernetes.io/component: the queue's name, as for the other roles), fullname (its
Deployment's), where (its values' path, for messages) and v (its values).
*/}}
{{- define "argus.detectorGroups" -}}
{{- if not (hasKey .Values "__argusDetectorGroups") -}}
{{- $fullname := include "argus.fullname" . -}}
{{- $groups := list (dict "name" "" "model" .Values.config.model "queue" "detector" "component" "detector"
  "fullname" (include "argus.componentName" (dict "root" . "component" "detector")) "where" "detector"
  "v" .Values.detector) -}}
{{- $names := list -}}
{{- $models := dict -}}
{{- range $i, $item := .Values.detectorGroups -}}
{{- $name := toString ($item.name | default "") -}}
{{- $model := toString ($item.model | default "") -}}
{{- if not (and $name $model) -}}
{{- fail (printf "detectorGroups[%d]: a detector group needs a name and a model (e.g. {name: faces, model: bench-null}), got name %q, model %q" $i $name $model) -}}
{{- end -}}
{{- if not (and (regexMatch "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$" $name) (le (len $name) 63)) -}}
{{- fail (printf "detectorGroups[%d].name %q is not a DNS label (lower-case letters, digits and '-', starting and ending with a letter or digit, at most 63 characters): it names the group's Deployment, <release>-detector-<name>" $i $name) -}}
{{- end -}}
{{- if has $name $names -}}
{{- fail (printf "detectorGroups: more than one detector group named %q (each group is a Deployment of its own: give each a name of its own)" $name) -}}
{{- end -}}
{{- $names = append $names $name -}}
{{- $where := printf "detectorGroups[%s]" $name -}}
{{- $deployment := printf "%s-detector-%s" $fullname $name -}}
{{- if gt (len (printf "%s-metrics" $deployment)) 63 -}}
{{- fail (printf "%s: the name is too long: its metrics Service %s-metrics would exceed 63 characters (a shorter group name, or fullnameOverride)" $where $deployment) -}}
{{- end -}}
{{- if not (and (regexMatch "^([A-Za-z0-9_-][A-Za-z0-9._-]*)?[A-Za-z0-9]$" $model) (le (len $model) 54)) -}}
{{- fail (printf "%s.model %q: a model name (letters, digits, '-', '_', '.', not starting with '.') of at most 54 characters that ends with a letter or digit: the group's pods carry it in the label app.kubernetes.io/component=detector.<model>" $where $model) -}}
{{- end -}}
{{- if eq $model $.Values.config.model -}}
{{- fail (printf "%s.model %q is config.model, the model of the default detector group (detector:, queue detector): scale that one (detector.replicas, detector.autoscaling) instead of adding a group for it" $where $model) -}}
{{- end -}}
{{- if hasKey $models $model -}}
{{- fail (printf "%s.model %q is served by group %s already: one group per model (its queue, detector.%s, has one set of consumers); scale that group instead" $where $model (index $models $model) $model) -}}
{{- end -}}
{{- $_ := set $models $model $name -}}
{{- $v := deepCopy $.Values.detector -}}
{{- include "argus.mergeInto" (dict "dst" $v "src" (omit (deepCopy $item) "name" "model")) -}}
{{- $groups = append $groups (dict "name" $name "model" $model "queue" (printf "detector.%s" $model)
  "component" (printf "detector.%s" $model) "fullname" $deployment "where" $where "v" $v "item" $item) -}}
{{- end -}}
{{- /* What only an extra group must not have (once every group is known to be well-formed). */ -}}
{{- $metrics := dict -}}
{{- if eq .Values.detector.autoscaling.mode "hpa" -}}
{{- $_ := set $metrics .Values.detector.autoscaling.hpa.metricName "detector" -}}
{{- end -}}
{{- range $g := rest $groups -}}
{{- if eq $g.v.autoscaling.mode "hpa" -}}
{{- $metric := $g.v.autoscaling.hpa.metricName -}}
{{- if or (eq $metric $.Values.detector.autoscaling.hpa.metricName) (hasKey $metrics $metric) -}}
{{- fail (printf "%s.autoscaling.mode hpa needs a metric of its own: %s counts another queue's work (%s's), not queue %s. Set %s.autoscaling.hpa.metricName to a prometheus-adapter metric of queue %s (docs/kubernetes.md, \"Several models\": its rule), or set %s.autoscaling.mode to keda (KEDA reads queue %s from RabbitMQ) or none (%s.replicas)" $g.where $metric (index $metrics $metric | default "detector") $g.queue $g.where $g.queue $g.where $g.queue $g.where) -}}
{{- end -}}
{{- $_ := set $metrics $metric $g.where -}}
{{- end -}}
{{- $queueName := dig "autoscaling" "keda" "queueName" "" $g.item -}}
{{- if and $queueName (ne $queueName $g.queue) -}}
{{- fail (printf "%s.autoscaling.keda.queueName %q: the group's detectors consume queue %s (its model's), and KEDA reads that one: leave queueName out" $g.where $queueName $g.queue) -}}
{{- end -}}
{{- range $g.v.extraEnv -}}
{{- if has .name (list "ARGUS_MODEL" "ARGUS_DEFAULT_MODEL" "ARGUS_SERVED_MODELS") -}}
{{- fail (printf "%s.extraEnv (or detector.extraEnv) sets %s: the chart sets it (ARGUS_MODEL from %s.model, the others from config.model and detectorGroups)" $g.where .name $g.where) -}}
{{- end -}}
{{- end -}}
{{- $_ := unset $g "item" -}}
{{- end -}}
{{- $_ := set .Values "__argusDetectorGroups" $groups -}}
{{- end -}}
{{- end -}}

{{/* Deep-merges map src into map dst, in place: src wins, false, 0 and null included (sprig's
     merge and mergeOverwrite both skip them); lists are replaced. (dict "dst" $a "src" $b) */}}
{{- define "argus.mergeInto" -}}
{{- $dst := .dst -}}
{{- range $key, $value := .src -}}
{{- if and (kindIs "map" $value) (kindIs "map" (index $dst $key)) -}}
{{- include "argus.mergeInto" (dict "dst" (index $dst $key) "src" $value) -}}
{{- else -}}
{{- $_ := set $dst $key $value -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* A detector group's labels: (dict "root" $ "g" <group>). An extra group's pods carry
     app.kubernetes.io/component detector.<model> (so that the default group's selector, component
     detector, never takes them) and argus.io/detector-group <name>. */}}
{{- define "argus.detectorLabels" -}}
{{ include "argus.componentLabels" (dict "root" .root "component" .g.component) }}
{{- if .g.name }}
argus.io/detector-group: {{ .g.name }}
{{- end }}
{{- end -}}

{{/* A detector group's selector: the default group's as ever (component detector); an extra
     group's by its group label (not its component: a group given another model keeps its
     Deployment, whose selector is immutable). */}}
{{- define "argus.detectorSelectorLabels" -}}
{{- if .g.name -}}
{{ include "argus.releaseSelector" .root }}
argus.io/detector-group: {{ .g.name }}
{{- else -}}
{{ include "argus.selectorLabels" (dict "root" .root "component" "detector") }}
{{- end -}}
{{- end -}}

{{/* The components of the extra detector groups, for selectors that list the roles: ', "detector.x"' ... */}}
{{- define "argus.detectorGroupComponents" -}}
{{- include "argus.detectorGroups" . -}}
{{- range rest .Values.__argusDetectorGroups }}, {{ .component | quote }}{{ end -}}
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
     "kind" "volumes" or "mounts" "indent" 8), and for a detector group "v" its values and
     "where" their path (default: .Values.<role>, <role>). A mount must name a volume the pod has. */}}
{{- define "argus.extraVolumes" -}}
{{- $v := .v | default (index .root.Values .role) -}}
{{- $where := .where | default .role -}}
{{- $names := list "storage" "tmp" -}}
{{- $paths := list "/data" "/tmp" -}}
{{- if .root.Values.tls.existingSecret }}
{{- $names = append $names "tls" }}{{ $paths = append $paths "/etc/argus/tls" }}
{{- end -}}
{{- if and (eq .role "detector") $v.models.existingClaim }}
{{- $names = append $names "models" }}{{ $paths = append $paths "/models" }}
{{- end -}}
{{- if eq .kind "mounts" -}}
{{- range $v.extraVolumes }}{{ $names = append $names .name }}{{ end -}}
{{- range $v.extraVolumeMounts }}
{{- if not (has .name $names) }}
{{- fail (printf "%s.extraVolumeMounts: %q mounts no volume of the pod (it has %s): add it to %s.extraVolumes" $where .name (join ", " $names) $where) }}
{{- end }}
{{- if has (.mountPath | trimSuffix "/") $paths }}
{{- fail (printf "%s.extraVolumeMounts: %s is where the chart mounts its own volume" $where .mountPath) }}
{{- end }}
{{- end }}
{{- with $v.extraVolumeMounts }}{{ toYaml . | nindent $.indent }}{{ end }}
{{- else -}}
{{- range $v.extraVolumes }}
{{- if has .name $names }}
{{- fail (printf "%s.extraVolumes: %q is the name of the chart's own volume: pick another" $where .name) }}
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
