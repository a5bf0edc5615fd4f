#!/usr/bin/env bash
# Builds the bundled face model into $ARGUS_MODELS_DIR (called by scripts/setup.sh; idempotent):
#   1. the same pinned @vladmandic/human@3.3.6 tarball as coco-centernet (models/human_package.sh)
#   2. BlazeFace, FaceMesh (its face flag) and FaceRes converted into one TorchScript file
#      (models/convert_faces.py)
#   3. each network checked against the original graph run by TF.js on real photos, and the
#      embeddings of one face under flips and crops checked to be closer than different faces',
#      and only then installed beside its manifest (models/faces.json).
# A change to the converter, the interpreter, the reference or the manifest rebuilds it.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$repo/scripts/env.sh"
say() { printf '[model] %s\n' "$*" >&2; }
source "$repo/models/human_package.sh"

out="$ARGUS_MODELS_DIR/faces.pt"
stamp="$ARGUS_MODELS_DIR/.faces.stamp"
want=$(cat "$repo/models/convert_faces.py" "$repo/models/tfjs_graph.py" "$repo/models/tfjs_reference.mjs" \
  "$repo/models/package-lock.json" "$repo/models/faces.json" "${BASH_SOURCE[0]}" | sha256sum | cut -d' ' -f1)
want="$want $human_tarball_sha256"

mkdir -p "$ARGUS_MODELS_DIR"
cp "$repo/models/faces.json" "$ARGUS_MODELS_DIR/faces.json"
if [ -s "$out" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
  exit 0
fi

human_extract models/blazeface.json models/blazeface.bin models/facemesh.json models/facemesh.bin \
  models/faceres.json models/faceres.bin
tfjs_runtime
m="$human_dir/package/models"
say "converting the face model to TorchScript and checking it against TF.js (~40 s)"
"$ARGUS_VENV/bin/python" "$repo/models/convert_faces.py" \
  --detector-json "$m/blazeface.json" --mesh-json "$m/facemesh.json" --embedder-json "$m/faceres.json" \
  --out "$out.part" --verify-tfjs --assess \
  --images "$ARGUS_MEDIA_DIR/astronaut.png" "$ARGUS_MEDIA_DIR/camera.png" \
  "$ARGUS_MEDIA_DIR/chelsea.png" "$ARGUS_MEDIA_DIR/coffee.png" >&2
mv "$out.part" "$out"
echo "$want" > "$stamp"
say "installed $out"
