#!/usr/bin/env bash
# The test command (README, .ci/run): installs whatever is missing, then builds and runs every
# test of the workspace against the real model and real media.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$repo/scripts/setup.sh"
source "$repo/scripts/env.sh"
cd "$repo"
cargo fmt --all -- --check
scripts/check-k8s.sh  # images, Helm chart, kustomize: linted, rendered, validated offline
cargo build --workspace --all-targets
cargo test --workspace --no-fail-fast
