#!/usr/bin/env bash
# The benchmark (docs/performance.md): prints the raw model's frames/s, argus detect's
# end-to-end frames/s and their ratio, peak memory, and decode speed against the ffmpeg CLI;
# then the REST API (cli/benches/api.rs): a 1 GiB upload to `argus serve` (MiB/s, server memory),
# GET under 200 concurrent clients, and frames/s through the API against `argus detect`; then the
# platform's own cost at scale (cli/benches/scale.rs: bench-null, 1 processor + 8 detectors).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$repo/scripts/setup.sh"
source "$repo/scripts/env.sh"
cd "$repo"
command -v /usr/bin/time >/dev/null || { sudo=""; [ "$(id -u)" -eq 0 ] || sudo=sudo; $sudo apt-get install -y -qq time >/dev/null; }
# The distributed benchmark starts argus-processor and argus-detector, the API benchmark the
# release `argus serve`: build them too.
cargo build --release --workspace
cargo bench --workspace --bench pipeline --bench distributed --bench api --bench cpu --bench scale "$@"
