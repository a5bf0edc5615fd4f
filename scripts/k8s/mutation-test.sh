#!/usr/bin/env bash
# Proves that scripts/check-k8s.sh can fail: each mutation below breaks one thing that matters in
# a scratch copy of the deployment files, and check-k8s.sh must then fail, saying why.
#
#   scripts/k8s/mutation-test.sh        (~4 min; not part of scripts/test.sh)
#   MUTATIONS_MATCHING=TLS scripts/k8s/mutation-test.sh   (only those whose description says TLS)
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
say() { printf '[mutation] %s\n' "$*" >&2; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$repo/scripts/setup-k8s-tools.sh"

# file @@ old text @@ new text @@ what it breaks   (\n: a newline)
mutations=(
  "helm/argus/values.yaml@@resourceName: nvidia.com/gpu@@resourceName: nvidia.com/gpus@@the detector's GPU request"
  "helm/argus/values.yaml@@  terminationGracePeriodSeconds: null\n  resources:\n    requests: {cpu: 250m@@  terminationGracePeriodSeconds: 600\n  resources:\n    requests: {cpu: 250m@@a processor grace period shorter than a task"
  "helm/argus/templates/configmap.yaml@@  ARGUS_STORAGE_DIR: /data@@  ARGUS_STORAGE_DIR: /data\n  ARGUS_DATABASE_URL: {{ .Values.secrets.databaseUrl | quote }}@@a secret in the ConfigMap"
  "helm/argus/values.yaml@@    periodSeconds: 5\n    failureThreshold: 120@@    periodSeconds: 5\n    failureThreshold: 12@@a startup probe too short for model loading"
  "helm/argus/templates/autoscaling.yaml@@averageValue: {{ \$target | quote }}@@averageValue: \"10\"@@the HPA target"
  "helm/argus/values.yaml@@httpGet: {path: /healthz, port: http}@@httpGet: {paht: /healthz, port: http}@@a misspelt probe field (strict schema)"
  "helm/argus/templates/detector.yaml@@            {{- include \"argus.volumeMounts\" . | nindent 12 }}@@            - {name: tmp, mountPath: /tmp}@@the storage volume in the detector"
  "helm/argus/templates/autoscaling.yaml@@excludeUnacknowledged: \"false\"@@excludeUnacked: \"false\"@@a misspelt KEDA trigger parameter"
  "k8s/overlays/gpu/detector-gpu.yaml@@            limits:\n              nvidia.com/gpu: 1@@            limits:\n              nvidia.com/gpu: 2@@an overlay drifting from the chart"
  "k8s/base/config.env@@ARGUS_TASK_TIME_LIMIT=900@@ARGUS_TASK_TIME_LIMIT=1900@@a hand edit of the generated base"
  "Dockerfile.api@@FROM \${RUST_IMAGE} AS build@@FROM rust:latest AS build@@an unpinned base image"
  "compose.yaml@@  restart: unless-stopped\n  read_only: true@@  restart: unless-stopped\n  restart: always\n  read_only: true@@a duplicate key in compose.yaml"
  "helm/argus/files/grafana-dashboard.json@@(argus_detector_frames_total{@@(argus_detector_frame_total{@@a dashboard query on a metric the code does not export"
  "helm/argus/files/grafana-dashboard.json@@rate(argus_api_uploads_total{@@rate(argus_api_uploads_total{{@@a dashboard query that does not parse"
  "helm/argus/templates/_alerts.tpl@@(rate(argus_worker_tasks_total{ {{- \$s }},outcome=@@(rate(argus_worker_task_total{ {{- \$s }},outcome=@@an alert on a metric the code does not export"
  "helm/argus/templates/_alerts.tpl@@(argus_worker_broker_connected{ {{- \$s }}}) > 0,@@(argus_worker_broker_connected{ {{- \$s }}}) > 1,@@an alert that fires where it must not (promtool test)"
  "helm/argus/templates/_alerts.tpl@@for: {{ \$r.backlogFor }}\n    labels: {severity: warning}\n    annotations:\n      summary: An Argus queue holds@@for: 1h\n    labels: {severity: warning}\n    annotations:\n      summary: An Argus queue holds@@an alert that no longer fires when it must (promtool test)"
  "helm/argus/templates/_alerts.tpl@@replicas_unavailable{ {{- .api }}} > 0@@replicas_unavailable{ {{- .api }}} >> 0@@an alert expression that does not parse (promtool)"
  "helm/argus/templates/_alerts.tpl@@status=~\"queued|splitting|detecting|merging\"@@status=~\"queued|splitting|running|merging\"@@an alert matching a video status the code never sets"
  "helm/argus/templates/_alerts.tpl@@queue=\"argus.dlq\"}) > 0@@queue=\"argus.dlq\"}) > 5@@a dead-letter alert that no longer fires on a few messages (promtool test)"
  "helm/argus/templates/_alerts.tpl@@{{- \$work := printf \"%s,queue!=\\\"argus.dlq\\\"\" \$s -}}@@{{- \$work := \$s -}}@@the queue alerts taking the dead-letter queue for a work queue (promtool test)"
  "helm/argus/templates/_alerts.tpl@@route=\"/api/v1/videos\",method!=\"POST\"}@@route=\"/api/v1/videos\",method!=\"PUT\"}@@the API latency alert counting uploads (promtool test)"
  "helm/argus/templates/_alerts.tpl@@route!=\"/api/v1/videos\"}@@route!=\"/api/v1/uploads\"}@@an alert leaving out a route the API does not have"
  "helm/argus/files/grafana-dashboard.json@@, queue=\\\"argus.dlq\\\"}@@, queue=\\\"argus.dead\\\"}@@a dashboard query on a queue whose depth the API does not export"
  "helm/argus/templates/_helpers.tpl@@{{- else if and (not (contains \"/\" \$repo)) (ne \$root.Values.image.pullPolicy \"Never\") -}}@@{{- else if false -}}@@the chart rendering without image.registry (docker.io/library/argus-api)"
  "helm/argus/templates/_helpers.tpl@@(list \"CHOWN\") \$vp.recursive@@(list \"CHOWN\" \"SYS_ADMIN\") \$vp.recursive@@the volume-permissions init container given another capability"
  "helm/argus/templates/_helpers.tpl@@  mountPath: /etc/argus/tls\n  readOnly: true@@  mountPath: /etc/argus/tls@@the TLS Secret mounted writable"
  "helm/argus/templates/_helpers.tpl@@{{- if .certKey }}\n- {name: ARGUS_TLS_CERT_FILE@@{{- if false }}\n- {name: ARGUS_TLS_CERT_FILE@@the client certificate dropped from a mutual-TLS setup"
  "helm/argus/templates/_helpers.tpl@@\"component\" (printf \"detector.%s\" \$model)@@\"component\" \"detector\"@@a detector group's pods taken by the default group's selector (several models)"
  "helm/argus/templates/autoscaling.yaml@@(ternary \$g.v.autoscaling.keda.queueName \$g.queue (eq \$g.name \"\"))@@\$g.v.autoscaling.keda.queueName@@a detector group's KEDA trigger on the default model's queue (several models)"
  "compose.cpu.yaml@@    entrypoint: [@@    entrypont: [@@a misspelt key in compose.cpu.yaml (the Compose Specification's schema)"
  "compose.cpu.yaml@@    extends: {file: compose.yaml, service: processor}\n    image@@    extends: {file: compose.yaml, service: detector}\n    image@@the CPU detector inheriting the GPU request"
  "compose.cpu.yaml@@      ARGUS_DEVICE: cpu@@      ARGUS_DEVICE: cpu\n      ARGUS_DETECT_FASTER: \"1\"@@an undocumented ARGUS_* variable in compose.cpu.yaml"
)

failed=0
for m in "${mutations[@]}"; do
  file=${m%%@@*}; rest=${m#*@@}; old=${rest%%@@*}; rest=${rest#*@@}; new=${rest%%@@*}; what=${rest#*@@}
  # MUTATIONS_MATCHING=text runs only the mutations whose description contains it.
  case $what in *"${MUTATIONS_MATCHING:-}"*) ;; *) continue ;; esac
  rm -rf "$work/repo"; mkdir -p "$work/repo"
  # The Rust sources and docs/operations.md too: the checks read the metrics and variables there.
  (cd "$repo" && git ls-files -co --exclude-standard -- Dockerfile.api Dockerfile.detector 'compose*.yaml' helm k8s \
    scripts docs/operations.md '*/src/*.rs' |
    xargs -d '\n' cp --parents -t "$work/repo")
  python3 - "$work/repo/$file" "$old" "$new" <<'PY'
import sys
path, old, new = sys.argv[1], sys.argv[2].replace("\\n", "\n"), sys.argv[3].replace("\\n", "\n")
text = open(path).read()
if old not in text:
    sys.exit(f"mutation target not found in {path}: {old!r}")
open(path, "w").write(text.replace(old, new, 1))
PY
  # A chart mutation: regenerate k8s/base as a developer would, so that the check meant to
  # catch it (not the staleness check) has to.
  case $file in helm/*) PATH="$HOME/.cache/argus/k8s-tools/bin:$PATH" \
    "${ARGUS_HOME:-$HOME/.cache/argus}/k8s-tools/venv/bin/python" "$work/repo/scripts/k8s/gen_kustomize.py" \
      >/dev/null 2>&1 || true ;; esac
  if "$work/repo/scripts/check-k8s.sh" >"$work/log" 2>&1; then
    say "NOT CAUGHT: $what ($file)"; failed=1
  else
    why=$(grep -E '^  - ' "$work/log" | head -1 || true)
    [ -n "$why" ] || why=$(grep -E 'rror|DL[0-9]+|stale|refused|accepted' "$work/log" | head -1 || true)
    why=$(echo "$why" | tr -s ' ' | cut -c1-200)
    say "caught: $what -> $why"
  fi
done
[ $failed = 0 ] && say "every mutation failed the check" || { say "some mutations passed the check"; exit 1; }
