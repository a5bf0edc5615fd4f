# Sourced by every Argus script: where setup keeps things, and how cargo finds libtorch.
# Everything heavy lives outside the clone under ARGUS_HOME so that later clones (and CI) reuse it.
# Each variable can be set beforehand to move that one thing.

export ARGUS_HOME="${ARGUS_HOME:-$HOME/.cache/argus}"
export ARGUS_VENV="${ARGUS_VENV:-$ARGUS_HOME/venv}"                 # Python venv holding torch (libtorch)
export ARGUS_MODELS_DIR="${ARGUS_MODELS_DIR:-$ARGUS_HOME/models}"   # TorchScript models + manifests
export ARGUS_MEDIA_DIR="${ARGUS_MEDIA_DIR:-$ARGUS_HOME/media}"      # sample photos and videos
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ARGUS_HOME/target}"   # shared build cache

# tch links the libtorch that ships inside the PyPI torch wheel (see docs/operations.md "Where things go").
export LIBTORCH="${LIBTORCH:-$ARGUS_VENV/lib/python3.11/site-packages/torch}"
export LIBTORCH_CXX11_ABI=1
# The wheel's version reads 2.13.0+cu130; tch expects 2.13.0 exactly.
export LIBTORCH_BYPASS_VERSION_CHECK=1
