#!/usr/bin/env bash
# Runs a video through the three Argus roles, each inside the runtime root its image would hold
# (scripts/k8s/rootfs.sh: the binary, its ldd closure, libtorch + CUDA wheels for the detector,
# nothing else), as uid 10001, against a RabbitMQ and a Redis of its own. This is how the
# images' contents are checked without a Docker engine: a library missing from a root makes its
# role fail here. Needs root (chroot, bind mounts) and the binaries already built.
#
#   sudo scripts/k8s/smoke-rootfs.sh [debug|release]      (default: release if built, else debug)
#
# Not part of scripts/test.sh (root, ~1 minute, a built workspace). No GPU here: the detector
# loads libtorch's CUDA backend and runs on CPU.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
source "$repo/scripts/env.sh"
say() { printf '[smoke-rootfs] %s\n' "$*" >&2; }
[ "$(id -u)" = 0 ] || { say "needs root (chroot, mount --bind)"; exit 2; }
profile=${1:-}
[ -n "$profile" ] || { [ -x "$CARGO_TARGET_DIR/release/argus-detector" ] && profile=release || profile=debug; }
bin="$CARGO_TARGET_DIR/$profile"
for b in argus-api argus-processor argus-detector; do
  [ -x "$bin/$b" ] || { say "$bin/$b missing: cargo build${profile:+ --$profile} first"; exit 2; }
done
video="$ARGUS_MEDIA_DIR/carphone_pristine.mp4"
# Hard links: the roots live on the file system of the build, so they cost no space.
work=$(mktemp -d "$ARGUS_HOME/smoke-rootfs.XXXXXX")
pids=(); mounts=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  [ -z "${rabbit_ctl:-}" ] || "${rabbit_ctl[@]}" stop >/dev/null 2>&1 || true
  for ((i = ${#mounts[@]} - 1; i >= 0; i--)); do umount "${mounts[$i]}" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

say "assembling the roots from $bin"
site="$LIBTORCH/.."
ROOTFS_HARDLINK=1 "$repo/scripts/k8s/rootfs.sh" "$work/api" "$bin/argus-api" "$bin/argus-processor"
trees=(--tree "$site/torch/lib"); [ -d "$site/nvidia" ] && trees+=(--tree "$site/nvidia")
ROOTFS_HARDLINK=1 "$repo/scripts/k8s/rootfs.sh" "$work/detector" "${trees[@]}" --exclude libtorch_python.so \
  --file "$ARGUS_MODELS_DIR/coco-centernet.pt:/opt/argus/models/coco-centernet.pt" \
  --file "$ARGUS_MODELS_DIR/coco-centernet.json:/opt/argus/models/coco-centernet.json" \
  "$bin/argus-detector" 2>&1 | grep -v 'left out' >&2
mkdir -p "$work/data"; chown 10001:10001 "$work/data"
for root in api detector; do
  for d in proc sys dev data; do
    mkdir -p "$work/$root/$d"
    src=/$d; [ $d = data ] && src=$work/data
    mount --bind "$src" "$work/$root/$d"; mounts+=("$work/$root/$d")
  done
done

say "starting Redis and RabbitMQ"
redis_port=$(free_port); amqp_port=$(free_port)
redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no --dir "$work" >/dev/null &
pids+=($!)
cookie=$(python3 -c 'import uuid; print(uuid.uuid4().hex)')
node="argussmoke$amqp_port@localhost"
mkdir -p "$work/rabbit"; echo '[].' > "$work/rabbit/plugins"
export RABBITMQ_NODENAME=$node RABBITMQ_NODE_PORT=$amqp_port RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 \
  RABBITMQ_DIST_PORT=$(free_port) RABBITMQ_MNESIA_BASE=$work/rabbit/mnesia RABBITMQ_LOG_BASE=$work/rabbit/log \
  RABBITMQ_ENABLED_PLUGINS_FILE=$work/rabbit/plugins RABBITMQ_PID_FILE=$work/rabbit/pid \
  RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-setcookie $cookie"
rabbit_bin=/usr/lib/rabbitmq/bin; [ -d $rabbit_bin ] || rabbit_bin=$(dirname "$(command -v rabbitmq-server)")
"$rabbit_bin/rabbitmq-server" -detached >/dev/null 2>&1
rabbit_ctl=("$rabbit_bin/rabbitmqctl" --erlang-cookie "$cookie" -n "$node")
for i in $(seq 30); do
  "${rabbit_ctl[@]}" await_startup --timeout 5 >/dev/null 2>&1 && break
  [ "$i" -lt 30 ] || { say "RabbitMQ did not start (logs: $work/rabbit/log)"; exit 1; }
  sleep 2
done

api_port=$(free_port)
common=(ARGUS_BROKER_URL="amqp://guest:guest@127.0.0.1:$amqp_port/%2f"
  ARGUS_RESULT_BACKEND="redis://127.0.0.1:$redis_port/0" ARGUS_STORAGE_DIR=/data HOME=/tmp RUST_LOG=warn)
chroot=$(command -v chroot)
run_in() { # root, log, program, VAR=value...: the program alone in its root, as uid 10001
  local root=$1 log=$2 program=$3; shift 3
  env -i "${common[@]}" "$@" "$chroot" --userspec=10001:10001 "$work/$root" "$program" >"$work/$log" 2>&1 &
  pids+=($!)
}
run_in api api.log /usr/local/bin/argus-api ARGUS_BIND="127.0.0.1:$api_port" \
  ARGUS_JWT_SECRET=0123456789abcdef0123456789abcdef ARGUS_ADMIN_USER=admin \
  ARGUS_ADMIN_PASSWORD=smoke-password ARGUS_DATABASE_URL=sqlite:///data/argus.db
run_in api processor.log /usr/local/bin/argus-processor ARGUS_METRICS_BIND="127.0.0.1:$(free_port)"
det_metrics=$(free_port)
run_in detector detector.log /usr/local/bin/argus-detector ARGUS_METRICS_BIND="127.0.0.1:$det_metrics" \
  ARGUS_MODELS_DIR=/opt/argus/models ARGUS_TORCH_THREADS=2

api="http://127.0.0.1:$api_port"
for _ in $(seq 120); do
  curl -fs "$api/readyz" >/dev/null && curl -fs "127.0.0.1:$det_metrics/readyz" >/dev/null && break
  sleep 1
done
curl -fs "127.0.0.1:$det_metrics/readyz" >/dev/null || { say "detector never ready:"; tail "$work/detector.log" >&2; exit 1; }
token=$(curl -fsS -d username=admin -d password=smoke-password "$api/api/v1/auth/token" |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["access_token"])')
id=$(curl -fsS -H "Authorization: Bearer $token" -F "file=@$video" "$api/api/v1/videos" |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["id"])')
say "uploaded $(basename "$video") as $id"
start=$(date +%s)
while :; do
  status=$(curl -fsS -H "Authorization: Bearer $token" "$api/api/v1/videos/$id" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["status"])')
  case $status in succeeded) break ;; failed|cancelled) say "video $status"; tail "$work"/*.log >&2; exit 1 ;; esac
  [ $(($(date +%s) - start)) -lt 300 ] || { say "still $status after 300 s"; tail "$work"/*.log >&2; exit 1; }
  sleep 1
done
curl -fsS -H "Authorization: Bearer $token" "$api/api/v1/videos/$id/result" | python3 -c '
import json, sys
r = json.load(sys.stdin)
s = r["summary"]
assert s["frames_processed"] == 120, s
frames, top, devices = s["frames_processed"], s["top_classes"], r["model"]["devices"]
print(f"[smoke-rootfs] succeeded: {frames} frames, top classes {top}, devices {devices}", file=sys.stderr)'
for root in api detector; do
  say "$root root: $(du -sh --apparent-size "$work/$root" --exclude=proc --exclude=sys --exclude=dev --exclude=data | cut -f1)" \
    "($(find "$work/$root/usr/lib" -name '*.so*' | wc -l) system libraries)"
done
say "ok ($(($(date +%s) - start)) s from upload to result)"
