#!/usr/bin/env bash
# Offline checks of the deployment files (run by scripts/test.sh; no cluster, no Docker engine):
#   1. hadolint on Dockerfile.api and Dockerfile.detector; yamllint on compose.yaml, k8s/ and the
#      chart's values; the images' scripts parse (bash -n)
#   2. helm lint --strict and helm template of helm/argus for the defaults (plus the required
#      image.registry) and every documented variant (helm/argus/ci/*-values.yaml); values the
#      chart must refuse are refused, the bare defaults (no image.registry) among them
#   3. k8s/base is what the chart renders (scripts/k8s/gen_kustomize.py --check) and
#      kubectl kustomize renders every overlay
#   4. every rendered document validated against the Kubernetes 1.27 and 1.34 schemas (strict)
#      and the KEDA / Prometheus-operator CRD schemas; assertions on what matters (GPU request,
#      autoscaler target, probes, grace periods, secrets never in a ConfigMap, the storage
#      volume in all three roles, ...); each kustomize overlay equal to its chart variant
#   5. the Grafana dashboard and the alert rules: every metric they query is one the Rust code
#      registers, every query parses (promtool), and the alerts pass their promtool unit tests
#      (scripts/k8s/alerts.test.yaml: each alert fires, and stays quiet, where it must)
#   6. compose.yaml and compose.cpu.yaml loaded by Docker Compose v2 (the Compose Specification's
#      schema), their hardening, GPU / CPU detector and documented ARGUS_* variables asserted
# Tools: scripts/setup-k8s-tools.sh and scripts/k8s/setup-more-tools.sh (promtool,
# docker-compose) install them when missing; idempotent.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$repo/scripts/env.sh"
tools="${ARGUS_K8S_TOOLS:-$ARGUS_HOME/k8s-tools}"
"$repo/scripts/setup-k8s-tools.sh"
"$repo/scripts/k8s/setup-more-tools.sh"
export PATH="$tools/bin:$tools/venv/bin:$PATH" ARGUS_K8S_NODE="$tools/node"
say() { printf '[check-k8s] %s\n' "$*" >&2; }
cd "$repo"
start=$(date +%s)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
kube=1.34.0
crds=(--api-versions keda.sh/v1alpha1 --api-versions monitoring.coreos.com/v1)
chart=helm/argus
# image.registry is required (no public registry serves the Argus images): the defaults' renders
# name the placeholder registry k8s/base is generated with (scripts/k8s/gen_kustomize.py).
registry=(--set image.registry=registry.example.com/argus)

# --- 1. lint ------------------------------------------------------------------------------------
hadolint Dockerfile.api Dockerfile.detector
yamllint -s -c scripts/k8s/yamllint.yaml compose.yaml compose.cpu.yaml k8s "$chart/Chart.yaml" "$chart/values.yaml" \
  "$chart/ci"
bash -n scripts/k8s/rootfs.sh scripts/setup-k8s-tools.sh scripts/k8s/setup-more-tools.sh
say "Dockerfiles, YAML and scripts lint clean"

# --- 2. the chart, every variant ------------------------------------------------------------------
render() { # name, helm args...
  local name=$1; shift
  helm lint --strict --quiet "$chart" "$@" >"$out/lint.log" 2>&1 || { cat "$out/lint.log" >&2; exit 1; }
  helm template argus "$chart" --kube-version "$kube" "${crds[@]}" "$@" >"$out/$name.yaml"
}
render helm-default "${registry[@]}"
variants=(default)
for values in "$chart"/ci/*-values.yaml; do
  v=$(basename "$values" -values.yaml)
  render "helm-$v" -f "$values"
  variants+=("$v")
done
# The variants the kustomize overlays must equal (the Secret is yours there: existingSecret).
render eq-gpu "${registry[@]}" --set secrets.existingSecret=argus
render eq-cpu -f "$chart/ci/cpu-values.yaml" --set secrets.existingSecret=argus
render eq-keda -f "$chart/ci/keda-values.yaml" --set secrets.existingSecret=argus
# Values the chart must refuse, each with the reason it gives.
refusals=0
refuse() { # expected message, helm args...
  refusals=$((refusals + 1))
  local want=$1; shift
  if helm template argus "$chart" --kube-version "$kube" "${registry[@]}" "$@" >"$out/refused.log" 2>&1; then
    say "accepted what it must refuse: $*"; exit 1
  fi
  grep -q -- "$want" "$out/refused.log" || { say "refused $* without saying '$want':"; cat "$out/refused.log" >&2; exit 1; }
}
refuse "image.registry is required" --set image.registry=
refuse "image.registry is required" --set image.registry= --set image.api.repository=registry.example.com/argus-api
refuse "is a secret" --set config.extra.ARGUS_JWT_SECRET=0123456789abcdef0123456789abcdef
refuse "is a secret" --set config.extra.ARGUS_DATABASE_URL=postgres://u:p@db/argus
refuse "set detector.decodeThreads instead" --set config.extra.ARGUS_DECODE_THREADS=2
refuse "set config.model instead" --set config.extra.ARGUS_MODEL=other
refuse "additional properties 'replica' not allowed" --set detector.replica=3
refuse "does not match pattern" --set secrets.jwtSecret=short
refuse "scale to zero needs mode keda" --set detector.autoscaling.minReplicas=0
refuse "value must be one of" --set detector.autoscaling.mode=vpa
refuse "exceeds maxReplicas" --set detector.autoscaling.minReplicas=9
refuse "does not match pattern" --set secrets.seed=short
refuse "needs serviceMonitor.enabled" --set prometheusRule.enabled=true
refuse "value must be one of" --set 'prometheusRule.disabled[0]=ArgusApiDwn'
refuse "mounts no volume of the pod" --set 'api.extraVolumeMounts[0].name=certs' \
  --set 'api.extraVolumeMounts[0].mountPath=/etc/certs'
refuse "name of the chart's own volume" --set 'detector.extraVolumes[0].name=storage' \
  --set 'detector.extraVolumes[0].emptyDir.medium=Memory'
# Detector groups (detectorGroups): each needs a name (a DNS label of its own) and a model of its
# own other than config.model's; hpa needs a metric of its own (argus_detector_backlog is queue
# detector's); a group's keys are the detector's.
faces=(--set 'detectorGroups[0].name=faces' --set 'detectorGroups[0].model=bench-null'
  --set 'detectorGroups[0].autoscaling.mode=keda')
refuse "a detector group needs a name and a model" --set 'detectorGroups[0].name=faces'
refuse "is not a DNS label" --set 'detectorGroups[0].name=Faces' --set 'detectorGroups[0].model=bench-null'
refuse "more than one detector group named \"faces\"" "${faces[@]}" --set 'detectorGroups[1].name=faces' \
  --set 'detectorGroups[1].model=plates' --set 'detectorGroups[1].autoscaling.mode=none'
refuse "is config.model" --set 'detectorGroups[0].name=coco' --set 'detectorGroups[0].model=coco-centernet' \
  --set 'detectorGroups[0].autoscaling.mode=none'
refuse "is served by group faces already" "${faces[@]}" --set 'detectorGroups[1].name=more-faces' \
  --set 'detectorGroups[1].model=bench-null' --set 'detectorGroups[1].autoscaling.mode=none'
refuse "needs a metric of its own" --set 'detectorGroups[0].name=faces' --set 'detectorGroups[0].model=bench-null'
refuse "additional properties 'replica' not allowed" "${faces[@]}" --set 'detectorGroups[0].replica=3'
# Without image.registry, repositories that name their registry are enough.
helm template argus "$chart" --kube-version "$kube" --set image.api.repository=registry.example.com/argus-api \
  --set image.detector.repository=registry.example.com/argus-detector >/dev/null ||
  { say "image.registry refused although both repositories name their registry"; exit 1; }
say "helm lint + template: ${variants[*]} (and $refusals refusals)"

# GitOps renders (no cluster to look generated values up in): with secrets.seed every generated
# value is the same on every render, in-chart services included; without, each render differs.
secret_of() { helm template argus "$chart" --kube-version "$kube" -f "$chart/ci/quickstart-values.yaml" \
  --show-only templates/secret.yaml "$@"; }
seed=gitops-seed-0123456789abcdef0123456789
[ "$(secret_of --set secrets.seed=$seed)" = "$(secret_of --set secrets.seed=$seed)" ] \
  || { say "secrets.seed: two renders gave different Secrets"; exit 1; }
[ "$(secret_of --set secrets.seed=$seed)" != "$(secret_of --set secrets.seed=${seed}x)" ] \
  || { say "secrets.seed: another seed gave the same Secret"; exit 1; }
[ "$(secret_of)" != "$(secret_of)" ] || { say "without a seed, generated secrets must be random"; exit 1; }
say "secrets.seed: the same Secret on every render"

# prometheusRule.disabled leaves out exactly the alerts it names.
alerts_of() { helm template argus "$chart" --kube-version "$kube" -f "$chart/ci/ingress-values.yaml" \
  --show-only templates/prometheusrule.yaml "$@" | sed -n 's/^ *- alert: //p' | sort; }
all_alerts=$(alerts_of)
[ "$(alerts_of --set 'prometheusRule.disabled={ArgusPodRestarting,ArgusVideosStalled}')" = \
  "$(grep -vx -e ArgusPodRestarting -e ArgusVideosStalled <<<"$all_alerts")" ] ||
  { say "prometheusRule.disabled did not leave out exactly the two alerts it names"; exit 1; }
say "prometheusRule: $(wc -l <<<"$all_alerts") alerts, prometheusRule.disabled leaves out what it names"

# --- 3. kustomize -------------------------------------------------------------------------------
python scripts/k8s/gen_kustomize.py --check
for overlay in k8s/overlays/*/; do
  o=$(basename "$overlay")
  kubectl kustomize "$overlay" >"$out/kustomize-$o.yaml"
done
# The monitoring component on its own (it is added to an overlay by the user).
mkdir -p "$out/monitoring"
cp -r k8s/components/monitoring "$out/monitoring/component"
printf 'apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\ncomponents: [component]\n' \
  >"$out/monitoring/kustomization.yaml"
kubectl kustomize "$out/monitoring" >"$out/kustomize-monitoring.yaml"
say "k8s/base is up to date with the chart; kustomize: $(ls k8s/overlays | tr '\n' ' ')"

# --- 4. schemas and assertions ------------------------------------------------------------------
python scripts/k8s/check_render.py "$out"
node scripts/k8s/validate_crds.mjs "$out"/*.yaml

# --- 5. dashboard and alerts --------------------------------------------------------------------
python scripts/k8s/check_monitoring.py "$out"

# --- 6. Docker Compose --------------------------------------------------------------------------
python scripts/k8s/check_compose.py compose.yaml compose.cpu.yaml
say "ok ($(($(date +%s) - start)) s)"
