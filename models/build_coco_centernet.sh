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

tarball_sha256=425e9c51dbbca0c8934362b170cb0d54c2529c11c654b3c03092b16e9d6ad3f7
out="$ARGUS_MODELS_DIR/coco-centernet.pt"
stamp="$ARGUS_MODELS_DIR/.coco-centernet.stamp"
want=$(cat "$repo/models/convert_centernet.py" "$repo/models/tfjs_reference.mjs" \
  "$repo/models/package-lock.json" | sha256sum | cut -d' ' -f1)
want="$want $tarball_sha256"

mkdir -p "$ARGUS_MODELS_DIR"
cp "$repo/models/coco-centernet.json" "$ARGUS_MODELS_DIR/coco-centernet.json"
if [ -s "$out" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
  exit 0
fi

dl="$ARGUS_HOME/downloads"
tgz="$dl/vladmandic-human-3.3.6.tgz"
mkdir -p "$dl"
if ! echo "$tarball_sha256  $tgz" | sha256sum -c --status 2>/dev/null; then
  say "fetching @vladmandic/human@3.3.6 from npm (28 MB)"
  (cd "$dl" && npm pack --silent @vladmandic/human@3.3.6 >/dev/null)
  echo "$tarball_sha256  $tgz" | sha256sum -c --status ||
    { say "checksum mismatch for $tgz"; exit 1; }
fi
src="$dl/human-3.3.6"
mkdir -p "$src"
tar -xzf "$tgz" -C "$src" package/models/centernet.json package/models/centernet.bin

node_prefix="${ARGUS_NODE_PREFIX:-$ARGUS_HOME/node}"
if ! cmp -s "$repo/models/package-lock.json" "$node_prefix/package-lock.json"; then
  say "installing the TF.js reference runtime into $node_prefix"
  mkdir -p "$node_prefix"
  cp "$repo/models/package.json" "$repo/models/package-lock.json" "$node_prefix/"
  npm ci --silent --prefix "$node_prefix" >/dev/null
fi

say "converting CenterNet to TorchScript and checking it against TF.js (~30 s)"
ARGUS_NODE_PREFIX="$node_prefix" "$ARGUS_VENV/bin/python" "$repo/models/convert_centernet.py" \
  --model-json "$src/package/models/centernet.json" --out "$out.part" \
  --images "$ARGUS_MEDIA_DIR/astronaut.png" "$ARGUS_MEDIA_DIR/coffee.png" "$ARGUS_MEDIA_DIR/chelsea.png" \
  --verify-tfjs >&2
mv "$out.part" "$out"
echo "$want" > "$stamp"
say "installed $out"
