#!/usr/bin/env bash
# Builds bench-null into $ARGUS_MODELS_DIR (called by scripts/setup.sh after the default model;
# idempotent): a model with coco-centernet's interface and almost no compute, for benchmarks
# that measure the platform's own cost (cli/benches/scale.rs). Never a default: only
# ARGUS_MODEL=bench-null (or --model bench-null) serves it. Made and checked by
# models/convert_bench_null.py (~10 s); a change to it, to the decoder it borrows
# (models/convert_centernet.py), to coco-centernet's manifest or to this script rebuilds it.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$repo/scripts/env.sh"
say() { printf '[model] %s\n' "$*" >&2; }

out="$ARGUS_MODELS_DIR/bench-null.pt"
manifest="$ARGUS_MODELS_DIR/bench-null.json"
stamp="$ARGUS_MODELS_DIR/.bench-null.stamp"
want=$(cat "$repo/models/convert_bench_null.py" "$repo/models/convert_centernet.py" \
  "$repo/models/tfjs_graph.py" "$repo/models/coco-centernet.json" "${BASH_SOURCE[0]}" | sha256sum | cut -d' ' -f1)

if [ -s "$out" ] && [ -s "$manifest" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
  exit 0
fi
mkdir -p "$ARGUS_MODELS_DIR"
# Its interface is checked against coco-centernet's when that model is there (setup builds it first).
check=()
[ -s "$ARGUS_MODELS_DIR/coco-centernet.pt" ] && check=(--check-against "$ARGUS_MODELS_DIR/coco-centernet.pt")
say "building bench-null (benchmarks only) and checking it"
"$ARGUS_VENV/bin/python" "$repo/models/convert_bench_null.py" --out-dir "$ARGUS_MODELS_DIR" \
  "${check[@]}" >&2
echo "$want" > "$stamp"
say "installed $out"
