#!/usr/bin/env bash
# The main job (README quickstart): installs whatever is missing, builds argus, and runs the
# embedded pipeline on the bundled samples. Extra arguments go to `argus detect`.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$repo/scripts/setup.sh"
source "$repo/scripts/env.sh"
cd "$repo"
cargo build --workspace
mkdir -p out
"$CARGO_TARGET_DIR/debug/argus" detect \
  "$ARGUS_MEDIA_DIR/astronaut.png" "$ARGUS_MEDIA_DIR/coffee.png" "$ARGUS_MEDIA_DIR/chelsea.png" \
  --output out/photos.json "$@"
echo "results: out/photos.json"
