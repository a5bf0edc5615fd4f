#!/usr/bin/env python3
"""Checks the Docker Compose files (python of the k8s-tools venv; docker-compose on PATH, from
scripts/k8s/setup-more-tools.sh; run by scripts/check-k8s.sh). No Docker engine is needed.

    check_compose.py compose.yaml compose.cpu.yaml

1. `docker-compose config` (Docker Compose v2) loads each file as `docker compose up` would
   (interpolation, extends, merge keys) and validates it against the Compose Specification's
   JSON schema (unknown keys, wrong types) and its references (services, volumes): it must pass.
2. What matters in the loaded model is asserted: the six services; the Argus roles hardened
   (read-only root, every capability dropped, no new privileges) and sharing the storage volume
   at /data; workers given a grace period longer than ARGUS_TASK_TIME_LIMIT; compose.yaml's
   detector asks for the GPUs and compose.cpu.yaml asks for none, runs ARGUS_DEVICE=cpu and
   builds the CPU image.
3. Every ARGUS_* variable a file sets on a container, or reads from the shell (${ARGUS_...}), is
   in the configuration table of docs/operations.md.
"""
import json
import os
import re
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OPERATIONS = os.path.join(REPO, "docs", "operations.md")
SERVICES = {"api", "processor", "detector", "rabbitmq", "redis", "postgres"}
ROLES = ("api", "processor", "detector")
# What each file must fail without (its ${VAR:?...}); placeholders for the check.
REQUIRED = ("ARGUS_JWT_SECRET", "ARGUS_ADMIN_PASSWORD", "RABBITMQ_PASSWORD", "REDIS_PASSWORD", "POSTGRES_PASSWORD")

failures = []


def check(condition, where, message):
    if not condition:
        failures.append(f"{where}: {message}")
    return condition


def documented():
    """The variables in the first column of docs/operations.md's configuration table."""
    with open(OPERATIONS) as f:
        text = f.read()
    m = re.search(r"^## Configuration\n(.*?)(?=^## |\Z)", text, re.S | re.M)
    if not m:
        sys.exit("check_compose: docs/operations.md has no '## Configuration' section")
    names = set()
    for line in m.group(1).splitlines():
        if line.startswith("| `"):
            names.update(re.findall(r"`([A-Z][A-Z0-9_]*)`", line.split("|")[1]))
    if len(names) < 20:
        sys.exit(f"check_compose: found only {sorted(names)} in docs/operations.md's configuration table")
    return names


def load(path):
    """The file as Docker Compose v2 loads it (JSON), or None with the failure recorded."""
    env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp")}
    env.update({name: "placeholder-for-the-check" for name in REQUIRED})
    with tempfile.NamedTemporaryFile("w", suffix=".env") as empty:  # not the developer's .env
        run = subprocess.run(["docker-compose", "--env-file", empty.name, "-f", path, "config", "--format", "json"],
                             capture_output=True, text=True, env=env, cwd=REPO)
    if not check(run.returncode == 0, os.path.relpath(path, REPO),
                 f"docker-compose config refused it: {' '.join(run.stderr.split())}"):
        return None
    return json.loads(run.stdout)


def seconds(duration):
    total = 0.0
    for value, unit in re.findall(r"([\d.]+)(h|ms|m|s|us|ns)", duration):
        total += float(value) * {"h": 3600, "m": 60, "s": 1, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}[unit]
    return total


def check_model(name, model, gpu):
    services = model.get("services", {})
    check(set(services) == SERVICES, name, f"services {sorted(services)}, not {sorted(SERVICES)}")
    for role in ROLES:
        s = services.get(role)
        if not s:
            continue
        where = f"{name}: {role}"
        check(s.get("read_only") is True, where, "root file system not read-only")
        check("ALL" in (s.get("cap_drop") or []), where, "capabilities not dropped")
        check("no-new-privileges:true" in (s.get("security_opt") or []), where, "no-new-privileges not set")
        mounts = {v.get("target"): v.get("source") for v in s.get("volumes", [])}
        check(mounts.get("/data") == "storage", where, "does not mount the storage volume at /data")
        env = s.get("environment") or {}
        check(env.get("ARGUS_STORAGE_DIR") == "/data", where, "ARGUS_STORAGE_DIR is not /data")
        if role != "api":
            limit = int(env.get("ARGUS_TASK_TIME_LIMIT") or 900)
            grace = seconds(s.get("stop_grace_period") or "10s")
            check(grace > limit, where, f"stop_grace_period {grace:.0f} s must exceed ARGUS_TASK_TIME_LIMIT {limit}")
    reservations = {n: ((s.get("deploy") or {}).get("resources") or {}).get("reservations") or {}
                    for n, s in services.items()}
    det = services.get("detector") or {}
    devices = reservations.get("detector", {}).get("devices") or []
    env = det.get("environment") or {}
    if gpu:
        check(any("gpu" in (d.get("capabilities") or []) for d in devices), name, "the detector asks for no GPU")
    else:
        check(not any(r.get("devices") for r in reservations.values()), name, "a service asks for a device")
        check(env.get("ARGUS_DEVICE") == "cpu", name, "the CPU detector must run ARGUS_DEVICE=cpu")
        check(det.get("entrypoint") == ["/usr/local/bin/argus-detector"], name, "the detector must run argus-detector")
        check("whl/cpu" in ((det.get("build") or {}).get("args") or {}).get("TORCH_INDEX_URL", ""), name,
              "the detector image must be built from the CPU torch wheel (TORCH_INDEX_URL)")
        check(str(det.get("image", "")).endswith("-cpu"), name, "the CPU detector image's tag must end in -cpu")


def check_variables(name, text, model, known):
    used = set(re.findall(r"\$\{(ARGUS_[A-Z0-9_]+)", text))
    for s in model.get("services", {}).values():
        used.update(k for k in (s.get("environment") or {}) if k.startswith("ARGUS_"))
    for var in sorted(used - known):
        check(False, name, f"{var} is not in docs/operations.md's configuration table")
    return used


def main():
    known = documented()
    counted = set()
    for path in sys.argv[1:]:
        name = os.path.relpath(os.path.abspath(path), REPO)
        with open(path) as f:
            text = f.read()
        model = load(path)
        if model is None:
            continue
        check_model(name, model, gpu="cpu" not in os.path.basename(path))
        counted |= check_variables(name, text, model, known)
    if failures:
        print(f"check_compose: {len(failures)} failure(s):", file=sys.stderr)
        for f in failures:
            print(f"  - {f}", file=sys.stderr)
        sys.exit(1)
    print(f"check_compose: {', '.join(sys.argv[1:])} valid (Docker Compose v2, the Compose Specification's schema), "
          f"hardened, GPU and CPU detectors as meant; their {len(counted)} ARGUS_* variables documented")


if __name__ == "__main__":
    main()
