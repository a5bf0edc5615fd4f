#!/usr/bin/env bash
# Builds the default model into $ARGUS_MODELS_DIR (called by scripts/setup.sh; idempotent):
#   1. npm pack @vladmandic/human@3.3.6 (MIT), checked against a pinned sha256
#   2. convert its TF.js CenterNet to TorchScript (models/convert_centernet.py)
#   3. check the TorchScript file against the original graph run by TF.js (models/tfjs_reference.mjs)
#      on real photos, and only then install it beside its manifest (models/coco-centernet.json).
# A change to the converter, the reference or the manifest rebuilds it.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$repo/scripts/env.sh"
say() { printf '[model] %s\n' "$*" >&2; }

source "$repo/models/human_package.sh"
out="$ARGUS_MODELS_DIR/coco-centernet.pt"
stamp="$ARGUS_MODELS_DIR/.coco-centernet.stamp"
want=$(cat "$repo/models/convert_centernet.py" "$repo/models/tfjs_graph.py" \
  "$repo/models/tfjs_reference.mjs" "$repo/models/package-lock.json" | sha256sum | cut -d' ' -f1)
want="$want $human_tarball_sha256"

mkdir -p "$ARGUS_MODELS_DIR"
cp "$repo/models/coco-centernet.json" "$ARGUS_MODELS_DIR/coco-centernet.json"
if [ -s "$out" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
  exit 0
fi

human_extract models/centernet.json models/centernet.bin
src="$human_dir"
tfjs_runtime

say "converting CenterNet to TorchScript and checking it against TF.js (~30 s)"
"$ARGUS_VENV/bin/python" "$repo/models/convert_centernet.py" \
  --model-json "$src/package/models/centernet.json" --out "$out.part" \
  --images "$ARGUS_MEDIA_DIR/astronaut.png" "$ARGUS_MEDIA_DIR/coffee.png" "$ARGUS_MEDIA_DIR/chelsea.png" \
  --verify-tfjs >&2
mv "$out.part" "$out"
echo "$want" > "$stamp"
say "installed $out"
