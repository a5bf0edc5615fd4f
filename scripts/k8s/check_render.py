#!/usr/bin/env python3
"""Validates and asserts what scripts/check-k8s.sh rendered (python of the k8s-tools venv).

    check_render.py DIR

DIR holds helm-<variant>.yaml (helm template of helm/argus with helm/argus/ci/<variant>-values.yaml;
"default" with no values file, only the required image.registry; eq-<overlay>.yaml the chart
variant an overlay must equal) and kustomize-<overlay>.yaml (kubectl kustomize k8s/overlays/<overlay>).

1. Every document is validated against the Kubernetes JSON schemas, strict (unknown fields are
   errors), for the oldest Kubernetes the chart supports and the one it is checked against.
   KEDA and Prometheus-operator documents are left to validate_crds.mjs.
2. What matters in the render is asserted (the GPU request, the autoscaler's target, probes,
   grace periods, no secret in a ConfigMap, the storage volume in all three roles, the
   volume-permissions init container, extra volumes and env, the dashboard and alerts, ...).
3. Each kustomize overlay must equal its chart variant (less Helm's own labels and the Secret).
"""
import base64
import copy
import difflib
import functools
import glob
import json
import os
import re
import sys

import yaml
import kubernetes_validate.utils as kv

KUBE_VERSIONS = ["1.27.0", "1.34.0"]
CRD_GROUPS = ("keda.sh/", "monitoring.coreos.com/")
SECRET_KEYS = {"ARGUS_JWT_SECRET", "ARGUS_ADMIN_PASSWORD", "ARGUS_BROKER_URL", "ARGUS_RESULT_BACKEND",
               "ARGUS_DATABASE_URL", "RABBITMQ_MANAGEMENT_URL", "RABBITMQ_PASSWORD", "REDIS_PASSWORD",
               "POSTGRES_PASSWORD", "RABBITMQ_DEFAULT_PASS", "REDISCLI_AUTH"}
GPU = "nvidia.com/gpu"
ROLES = ("api", "processor", "detector")
DASHBOARD = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                         "helm", "argus", "files", "grafana-dashboard.json")
# overlay -> the chart variant it must equal
EQUIVALENT = {"gpu": "eq-gpu", "cpu": "eq-cpu", "keda": "eq-keda"}

# The schema files are large: read each once.
kv.schema_contents = functools.lru_cache(maxsize=None)(kv.schema_contents)

failures = []


def fail(where, message):
    failures.append(f"{where}: {message}")


def check(condition, where, message):
    if not condition:
        fail(where, message)
    return condition


def load(path):
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d]


class Render:
    def __init__(self, name, docs):
        self.name, self.docs = name, docs

    def all(self, kind):
        return [d for d in self.docs if d["kind"] == kind]

    def get(self, kind, name):
        found = [d for d in self.docs if d["kind"] == kind and d["metadata"]["name"] == name]
        return found[0] if found else None

    def role(self, role):
        for d in self.all("Deployment"):
            if d["metadata"]["labels"].get("app.kubernetes.io/component") == role:
                return d
        return None

    def configmap_data(self):
        """The settings every role reads (the ConfigMap named by the roles' configMapRef)."""
        api = self.role("api")
        ref = api["spec"]["template"]["spec"]["containers"][0]["envFrom"][0]["configMapRef"]["name"]
        return self.get("ConfigMap", ref)["data"]


def pod_templates(render):
    for d in render.docs:
        if d["kind"] in ("Deployment", "StatefulSet"):
            yield f'{d["kind"]}/{d["metadata"]["name"]}', d["spec"]["template"]["spec"], d
        elif d["kind"] == "Pod":
            yield f'Pod/{d["metadata"]["name"]}', d["spec"], d


def env_of(container):
    return {e["name"]: e for e in container.get("env", [])}


def selects(selector, labels):
    """Whether a label selector (a Service's plain map, or matchLabels / matchExpressions) takes
    an object with these labels."""
    selector = selector or {}
    if "matchLabels" not in selector and "matchExpressions" not in selector:
        selector = {"matchLabels": selector}
    if not selector.get("matchLabels") and not selector.get("matchExpressions"):
        return False  # an empty selector: never what the chart means
    labels = labels or {}
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for e in selector.get("matchExpressions") or []:
        key, op, values = e["key"], e["operator"], e.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and labels.get(key) in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def workloads(render):
    """(name, pod template labels) of each Deployment and StatefulSet."""
    return [(f'{d["kind"]}/{d["metadata"]["name"]}', d["spec"]["template"]["metadata"].get("labels", {}))
            for d in render.docs if d["kind"] in ("Deployment", "StatefulSet")]


def is_detector(component):
    """A detector group's component: detector (the default group) or detector.<model>."""
    return component == "detector" or (component or "").startswith("detector.")


def probe_path(probe):
    return (probe or {}).get("httpGet", {}).get("path"), (probe or {}).get("httpGet", {}).get("port")


# --- 1. schemas ---------------------------------------------------------------------------------
def validate_schemas(name, docs):
    count = 0
    for doc in docs:
        if doc["apiVersion"].startswith(CRD_GROUPS):
            continue
        for version in KUBE_VERSIONS:
            try:
                kv.validate(doc, version, strict=True)
            except kv.ValidationError as e:
                path = "/".join(str(p) for p in e.path)
                fail(name, f'{doc["kind"]}/{doc["metadata"].get("name")} invalid for Kubernetes {version} '
                           f'at {path or "/"}: {e.message}')
            except kv.SchemaNotFoundError as e:
                fail(name, e.message)
        count += 1
    return count


# --- 2. assertions ------------------------------------------------------------------------------
def check_common(r, expect):
    w = r.name
    secret_name = expect.get("secret", "argus")
    secret = r.get("Secret", secret_name)
    secret_values = {}
    if secret:
        secret_values = {k: base64.b64decode(v).decode() for k, v in secret.get("data", {}).items()}
    check(bool(secret) == (not expect.get("existing_secret")), w,
          "the chart must render its Secret unless secrets.existingSecret is set")

    # Secrets never in a ConfigMap; secret settings never as literal env values.
    for cm in r.all("ConfigMap"):
        where = f'{w}: ConfigMap/{cm["metadata"]["name"]}'
        for key, value in (cm.get("data") or {}).items():
            check(key not in SECRET_KEYS, where, f"holds the secret {key}")
            check(not re.search(r"://[^/@\s]+:[^/@\s]+@", str(value)), where, f"{key} holds a URL with a password")
            for sk, sv in secret_values.items():
                if len(sv) >= 8:
                    check(sv not in str(value), where, f"{key} contains the value of Secret key {sk}")
    for where, pod, _ in pod_templates(r):
        for c in pod.get("containers", []) + pod.get("initContainers", []):
            for e in c.get("env", []):
                if e["name"] in SECRET_KEYS or e["name"] == "ARGUS_PASSWORD":
                    ref = (e.get("valueFrom") or {}).get("secretKeyRef")
                    if check(ref is not None, f"{w}: {where}", f'{e["name"]} must come from a Secret'):
                        check(ref["name"] == secret_name, f"{w}: {where}",
                              f'{e["name"]} reads Secret {ref["name"]}, not {secret_name}')
                        if secret:
                            check(ref["key"] in secret_values, f"{w}: {where}",
                                  f'{e["name"]} reads key {ref["key"]}, which the Secret lacks')

    # Security: non-root, read-only root, no privilege escalation, every capability dropped.
    for where, pod, _ in pod_templates(r):
        psc = pod.get("securityContext", {})
        check(psc.get("runAsNonRoot") is True and psc.get("runAsUser", 0) != 0, f"{w}: {where}",
              "must run as non-root")
        check(pod.get("automountServiceAccountToken") is False, f"{w}: {where}", "mounts an API token")
        for c in pod["containers"]:
            sc = c.get("securityContext", {})
            check(sc.get("readOnlyRootFilesystem") is True, f"{w}: {where}", f'{c["name"]}: root fs not read-only')
            check(sc.get("allowPrivilegeEscalation") is False, f"{w}: {where}", f'{c["name"]}: privilege escalation')
            check("ALL" in sc.get("capabilities", {}).get("drop", []), f"{w}: {where}",
                  f'{c["name"]}: capabilities not dropped')
            check(bool(c.get("resources", {}).get("requests")) and "memory" in c.get("resources", {}).get("limits", {}),
                  f"{w}: {where}", f'{c["name"]}: needs requests and a memory limit')
            image = c["image"]
            check("@sha256:" in image or re.search(r":[\w][\w.-]*$", image.split("/")[-1]), f"{w}: {where}",
                  f"image {image} has neither tag nor digest")
            check(not image.endswith(":latest"), f"{w}: {where}", f"image {image} is :latest")

    # Init containers: only the optional volume-permissions one, which alone may run as root,
    # with CAP_CHOWN (recursive: CAP_DAC_OVERRIDE too) and nothing else, on the storage only.
    vp = expect.get("volume_permissions")
    for where, pod, dep in pod_templates(r):
        inits = pod.get("initContainers", [])
        role = dep["metadata"].get("labels", {}).get("app.kubernetes.io/component")
        if role not in ROLES:
            continue
        names = [c["name"] for c in inits]
        check(names == (["volume-permissions"] if vp else []), f"{w}: {where}", f"init containers {names}")
        for c in inits:
            sc = c.get("securityContext", {})
            caps = sc.get("capabilities", {})
            want_caps = ["CHOWN", "DAC_OVERRIDE"] if vp == "recursive" else ["CHOWN"]
            check(sc.get("runAsUser") == 0 and sc.get("runAsNonRoot") is False, f"{w}: {where}",
                  "volume-permissions must run as root (it chowns)")
            check(caps.get("drop") == ["ALL"] and sorted(caps.get("add", [])) == want_caps, f"{w}: {where}",
                  f"volume-permissions capabilities {caps}, not drop ALL + add {want_caps}")
            check(sc.get("readOnlyRootFilesystem") is True and sc.get("allowPrivilegeEscalation") is False,
                  f"{w}: {where}", "volume-permissions: root fs not read-only, or privilege escalation")
            uid, gid = pod["securityContext"]["runAsUser"], pod["securityContext"]["runAsGroup"]
            want_cmd = ["chown"] + (["-R"] if vp == "recursive" else []) + [f"{uid}:{gid}", "/data"]
            check(c.get("command") == want_cmd, f"{w}: {where}", f'volume-permissions runs {c.get("command")}, '
                                                                 f"not {want_cmd}")
            check(c.get("volumeMounts") == [{"name": "storage", "mountPath": "/data"}], f"{w}: {where}",
                  "volume-permissions must mount the storage volume at /data, and only it")
            check(bool(c.get("resources", {}).get("requests")) and "memory" in c.get("resources", {}).get("limits", {}),
                  f"{w}: {where}", "volume-permissions needs requests and a memory limit")
    # Every mount names a volume of its pod (a typo would only show at apply time).
    for where, pod, owner in pod_templates(r):
        volumes = {v["name"] for v in pod.get("volumes", [])}
        volumes |= {c["metadata"]["name"] for c in owner.get("spec", {}).get("volumeClaimTemplates", [])}
        for c in pod.get("containers", []) + pod.get("initContainers", []):
            for m in c.get("volumeMounts", []):
                check(m["name"] in volumes, f"{w}: {where}", f'{c["name"]} mounts {m["name"]}, not a volume of the pod')
    # extraVolumes, extraVolumeMounts and extraEnv where the values set them: role -> what.
    for role, extra in expect.get("extras", {}).items():
        dep = r.role(role)
        pod = dep["spec"]["template"]["spec"]
        c = pod["containers"][0]
        where = f'{w}: Deployment/{dep["metadata"]["name"]}'
        volumes = {v["name"] for v in pod.get("volumes", [])}
        mounts = {m["mountPath"]: m["name"] for m in c.get("volumeMounts", [])}
        for path, name in extra.get("mounts", {}).items():
            check(name in volumes and mounts.get(path) == name, where, f"extra volume {name} not mounted at {path}")
        for name, value in extra.get("env", {}).items():
            check(env_of(c).get(name, {}).get("value") == value, where, f"extraEnv {name}={value} missing")
        # The chart's own mounts stay first and unchanged.
        check([m["mountPath"] for m in c["volumeMounts"][:2]] == ["/data", "/tmp"], where,
              "the chart's /data and /tmp mounts must come first")

    # TLS to the broker and the backend: the Secret mounted read-only in every role, and the
    # ARGUS_TLS_* files pointing into it; nothing of it where the values set no Secret.
    tls = expect.get("tls")
    for role in ("api", "processor", "detector"):
        dep = r.role(role)
        pod = dep["spec"]["template"]["spec"]
        c = pod["containers"][0]
        where = f'{w}: Deployment/{dep["metadata"]["name"]}'
        env = env_of(c)
        secrets = {v["name"]: v["secret"]["secretName"] for v in pod.get("volumes", []) if "secret" in v}
        mounts = {m["mountPath"]: m for m in c.get("volumeMounts", [])}
        if not tls:
            check(not any(k.startswith("ARGUS_TLS_") for k in env) and "/etc/argus/tls" not in mounts, where,
                  "TLS files without tls.existingSecret")
            continue
        check(secrets.get("tls") == tls["secret"], where, f'TLS Secret {tls["secret"]} not a volume')
        m = mounts.get("/etc/argus/tls", {})
        check(m.get("name") == "tls" and m.get("readOnly") is True, where, "TLS Secret not mounted read-only")
        for name, file in tls["files"].items():
            check(env.get(name, {}).get("value") == f"/etc/argus/tls/{file}", where, f"{name} != /etc/argus/tls/{file}")
        check({k for k in env if k.startswith("ARGUS_TLS_")} == set(tls["files"]), where,
              f'ARGUS_TLS_* {sorted(k for k in env if k.startswith("ARGUS_TLS_"))} != {sorted(tls["files"])}')

    # Services select pods that exist.
    templates = [d["spec"]["template"]["metadata"]["labels"] for d in r.docs if d["kind"] in ("Deployment", "StatefulSet")]
    for svc in r.all("Service"):
        sel = svc["spec"].get("selector", {})
        check(any(all(t.get(k) == v for k, v in sel.items()) for t in templates), w,
              f'Service/{svc["metadata"]["name"]} selects no pod')
    # Selectors never overlap: a workload's selector takes its own pods and no other workload's
    # (a detector group's pods are no default detector's), and each Service and PDB takes the
    # pods of exactly one workload.
    pods = workloads(r)
    for d in r.docs:
        if d["kind"] in ("Deployment", "StatefulSet"):
            name = f'{d["kind"]}/{d["metadata"]["name"]}'
            taken = [n for n, labels in pods if selects(d["spec"]["selector"], labels)]
            check(taken == [name], w, f"{name}: its selector takes the pods of {taken}, not its own only")
        elif d["kind"] in ("Service", "PodDisruptionBudget"):
            sel = d["spec"].get("selector")
            taken = [n for n, labels in pods if selects(sel, labels)]
            check(len(taken) == 1, w, f'{d["kind"]}/{d["metadata"]["name"]} selects the pods of {taken}, '
                                      f"not of exactly one workload")
    # The workers' NetworkPolicy and the ServiceMonitor take every worker of every detector group.
    workers = r.get("NetworkPolicy", "argus-workers")
    for name, labels in pods:
        component = labels.get("app.kubernetes.io/component")
        if workers and (component == "processor" or is_detector(component)):
            check(selects(workers["spec"]["podSelector"], labels), w,
                  f"NetworkPolicy/argus-workers does not take the pods of {name}")
    for sm in r.all("ServiceMonitor"):
        for svc in r.all("Service"):
            if svc["metadata"]["name"].endswith("-metrics"):
                check(selects(sm["spec"]["selector"], svc["metadata"].get("labels")), w,
                      f'ServiceMonitor/{sm["metadata"]["name"]} does not scrape Service/{svc["metadata"]["name"]}')

    # The three roles, each mounting the shared storage at /data, with its probes.
    claim = expect.get("claim", "argus-storage")
    if not expect.get("existing_claim"):
        pvc = r.get("PersistentVolumeClaim", claim)
        if check(pvc is not None, w, f"no PersistentVolumeClaim {claim}"):
            check("ReadWriteMany" in pvc["spec"]["accessModes"], w, "the storage claim is not ReadWriteMany")
    data = r.configmap_data()
    time_limit = int(data["ARGUS_TASK_TIME_LIMIT"])
    check(data.get("ARGUS_STORAGE_DIR") == "/data", w, "ARGUS_STORAGE_DIR is not /data")
    for role in ROLES:
        dep = r.role(role)
        if not check(dep is not None, w, f"no {role} Deployment"):
            continue
        where = f'{w}: Deployment/{dep["metadata"]["name"]}'
        pod = dep["spec"]["template"]["spec"]
        c = pod["containers"][0]
        volumes = {v["name"]: v for v in pod.get("volumes", [])}
        mounts = {m["mountPath"]: m["name"] for m in c.get("volumeMounts", [])}
        vol = volumes.get(mounts.get("/data"), {})
        check(vol.get("persistentVolumeClaim", {}).get("claimName") == claim, where,
              f"does not mount claim {claim} at /data")
        check("/tmp" in mounts, where, "no writable /tmp")
        live, ready = probe_path(c.get("livenessProbe")), probe_path(c.get("readinessProbe"))
        # The API's liveness stays on its own port (is the HTTP server alive?); readiness, like
        # every worker's probe, is on the metrics port, off the public one.
        port = "http" if role == "api" else "metrics"
        check(live == ("/healthz", port), where, f"liveness probe is {live}, not /healthz on {port}")
        check(ready == ("/readyz", "metrics"), where, f"readiness probe is {ready}, not /readyz on metrics")
        ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
        check(ports.get("metrics") == 9100, where, "no container port 9100 named metrics")
        check(env_of(c).get("ARGUS_METRICS_BIND", {}).get("value") == "0.0.0.0:9100", where,
              "ARGUS_METRICS_BIND is not 0.0.0.0:9100")
        if role == "api":
            check(ports.get("http") == 8080 and env_of(c).get("ARGUS_BIND", {}).get("value") == "0.0.0.0:8080",
                  where, "the API must listen on 0.0.0.0:8080 (port http)")
            delay = int(env_of(c).get("ARGUS_SHUTDOWN_DELAY_S", {}).get("value", "0"))
            timeout = int(env_of(c).get("ARGUS_SHUTDOWN_TIMEOUT", {}).get("value", "30"))
            check(delay > 0, where, "the API must keep serving a while after SIGTERM (ARGUS_SHUTDOWN_DELAY_S)")
            check(pod.get("terminationGracePeriodSeconds", 30) > delay + timeout, where,
                  "the API's grace period must cover ARGUS_SHUTDOWN_DELAY_S + ARGUS_SHUTDOWN_TIMEOUT")
            public = r.get("Service", dep["metadata"]["name"])
            check(public is not None and {p["name"] for p in public["spec"]["ports"]} == {"http"}, where,
                  "the API's public Service must carry port http only (metrics has a Service of its own)")
        else:
            grace = pod.get("terminationGracePeriodSeconds", 30)
            check(grace > time_limit, where,
                  f"terminationGracePeriodSeconds {grace} must exceed ARGUS_TASK_TIME_LIMIT {time_limit}")
            if role == "detector":
                deadline = dep["spec"].get("progressDeadlineSeconds", 600)
                check(deadline > grace, where,
                      f"progressDeadlineSeconds {deadline} must exceed the grace period {grace}")
        pdbs = [p for p in r.all("PodDisruptionBudget")
                if p["spec"]["selector"]["matchLabels"].get("app.kubernetes.io/component") == role]
        check(len(pdbs) == 1, where, "no PodDisruptionBudget")
        check(all(p["spec"].get("unhealthyPodEvictionPolicy") == "AlwaysAllow" for p in pdbs), where,
              "a PodDisruptionBudget must let unready pods be evicted (unhealthyPodEvictionPolicy)")

    det = r.role("detector")
    c = det["spec"]["template"]["spec"]["containers"][0]
    startup = c.get("startupProbe") or {}
    window = startup.get("failureThreshold", 3) * startup.get("periodSeconds", 10)
    check(probe_path(startup) == ("/readyz", "metrics") and window >= 300, w,
          f"the detector's startupProbe must wait for the model (/readyz) long enough (>= 300 s), allows {window} s")
    env = env_of(c)
    # The platform team's conventions: labels on everything, the detector's classes, a role's pods.
    for obj in r.docs:
        for key, value in expect.get("common_labels", {}).items():
            check(obj["metadata"].get("labels", {}).get(key) == value, w,
                  f'{obj["kind"]}/{obj["metadata"]["name"]} lacks the common label {key}={value}')
    if "detector_classes" in expect:
        det_pod = det["spec"]["template"]["spec"]
        check((det_pod.get("priorityClassName"), det_pod.get("runtimeClassName")) == expect["detector_classes"], w,
              "the detector's priorityClassName and runtimeClassName")
    for key, value in expect.get("api_pod_labels", {}).items():
        api_labels = r.role("api")["spec"]["template"]["metadata"]["labels"]
        check(api_labels.get(key) == value, w, f"the API's pods lack the label {key}={value}")
    check(env.get("ARGUS_MODELS_DIR", {}).get("value") == expect.get("models_dir", "/opt/argus/models"), w,
          "ARGUS_MODELS_DIR")

    # GPU or CPU.
    gpus = expect["gpus"]
    res = c.get("resources", {})
    pod = det["spec"]["template"]["spec"]
    if gpus:
        check(str(res.get("limits", {}).get(GPU)) == str(gpus), w, f"detector must limit {GPU} to {gpus}")
        check(str(res.get("requests", {}).get(GPU, gpus)) == str(gpus), w, f"detector {GPU} request != limit")
        # Asked for CUDA, the detector fails loudly without it (auto would fall back to the CPU).
        check(env.get("ARGUS_DEVICE", {}).get("value") == "cuda", w, "ARGUS_DEVICE must be cuda on a GPU")
        check(any(t.get("key") == GPU for t in pod.get("tolerations", [])), w, "no toleration for GPU nodes")
    else:
        check(GPU not in json.dumps(det), w, f"CPU mode must not mention {GPU}")
        check(env.get("ARGUS_DEVICE", {}).get("value") == "cpu", w, "CPU mode must set ARGUS_DEVICE=cpu")
        check(env.get("ARGUS_TORCH_THREADS", {}).get("value") == "1", w,
              "CPU mode must run 1 torch thread per replica")
        check(env.get("ARGUS_CPU_REPLICAS", {}).get("value") == expect["cpu_replicas"], w,
              "CPU mode must size ARGUS_CPU_REPLICAS to the pod's CPU request")
    concurrency = int(env["ARGUS_CONCURRENCY"]["value"])
    check(concurrency == expect["concurrency"], w, f"detector ARGUS_CONCURRENCY {concurrency} != {expect['concurrency']}")

    # Autoscaling: exactly the configured autoscaler, aimed at the detector Deployment.
    mode = expect["autoscaling"]
    def of_role(kind, role):
        return [o for o in r.all(kind) if o["metadata"]["labels"].get("app.kubernetes.io/component") == role]

    hpas, scaled = of_role("HorizontalPodAutoscaler", "detector"), of_role("ScaledObject", "detector")
    # The processor scales on its own queue when asked (processor_autoscaling), else not at all.
    proc_mode = expect.get("processor_autoscaling", "none")
    proc = r.role("processor")
    check(("replicas" in proc["spec"]) == (proc_mode == "none"), w,
          "the processor Deployment must leave replicas to its autoscaler (and only then)")
    proc_ref = {"apiVersion": "apps/v1", "kind": "Deployment", "name": proc["metadata"]["name"]}
    p_hpas, p_scaled = of_role("HorizontalPodAutoscaler", "processor"), of_role("ScaledObject", "processor")
    if proc_mode == "hpa":
        if check(len(p_hpas) == 1 and not p_scaled, w, "processor mode hpa: one HPA, no ScaledObject"):
            spec = p_hpas[0]["spec"]
            check(spec["scaleTargetRef"] == proc_ref, w, f'processor HPA targets {spec["scaleTargetRef"]}')
            check(spec["metrics"][0]["external"]["metric"]["name"] == "argus_processor_backlog", w,
                  "the processor's HPA scales on argus_processor_backlog")
    elif proc_mode == "keda":
        if check(len(p_scaled) == 1 and not p_hpas, w, "processor mode keda: one ScaledObject, no HPA"):
            spec = p_scaled[0]["spec"]
            check(spec["scaleTargetRef"] == proc_ref, w, f'processor ScaledObject targets {spec["scaleTargetRef"]}')
            check(spec["triggers"][0]["metadata"].get("queueName") == "processor", w,
                  "the processor's ScaledObject reads queue processor")
    else:
        check(not p_hpas and not p_scaled, w, "processor mode none: no autoscaler")
    target_ref = {"apiVersion": "apps/v1", "kind": "Deployment", "name": det["metadata"]["name"]}
    check(("replicas" in det["spec"]) == (mode == "none"), w,
          "the detector Deployment must leave replicas to its autoscaler (and only then)")
    if mode == "hpa":
        if check(len(hpas) == 1 and not scaled, w, "mode hpa: one HPA, no ScaledObject"):
            spec = hpas[0]["spec"]
            check(spec["scaleTargetRef"] == target_ref, w, f'HPA targets {spec["scaleTargetRef"]}')
            metric = spec["metrics"][0]
            check(metric["type"] == "External" and metric["external"]["metric"]["name"] == expect["metric"], w,
                  f'HPA metric is {metric}')
            check(metric["external"]["metric"].get("selector", {}).get("matchLabels", {})
                  .get("app_kubernetes_io_instance") == "argus", w, "HPA metric must select this release")
            check(metric["external"]["target"] == {"type": "AverageValue", "averageValue": str(expect["per_replica"])},
                  w, f'HPA target {metric["external"]["target"]} != AverageValue {expect["per_replica"]}')
            check(spec["minReplicas"] >= 1 and spec["maxReplicas"] >= spec["minReplicas"], w, "HPA bounds")
            check(spec["behavior"]["scaleDown"]["stabilizationWindowSeconds"] >= 300, w,
                  "HPA must scale down slowly (stabilization >= 300 s)")
    elif mode == "keda":
        if check(len(scaled) == 1 and not hpas, w, "mode keda: one ScaledObject, no HPA"):
            spec = scaled[0]["spec"]
            check(spec["scaleTargetRef"] == target_ref, w, f'ScaledObject targets {spec["scaleTargetRef"]}')
            check(spec["minReplicaCount"] == expect["min"], w, f'minReplicaCount {spec["minReplicaCount"]}')
            fallback = spec.get("fallback", {})
            check(fallback.get("failureThreshold", 0) >= 1 and fallback.get("replicas", 0) >= 1, w,
                  "KEDA must hold a known number of detectors when the queue cannot be read (fallback)")
            trigger = spec["triggers"][0]
            md = trigger["metadata"]
            check(trigger["type"] == "rabbitmq" and md.get("queueName") == "detector" and md.get("mode") == "QueueLength",
                  w, f"KEDA trigger must read queue detector's length: {trigger}")
            check(md.get("protocol") == "http" and md.get("excludeUnacknowledged") == "false", w,
                  "KEDA must count ready + unacked messages (management API, excludeUnacknowledged false)")
            check(md.get("value") == str(expect["per_replica"]), w, f'KEDA target {md.get("value")}')
            behavior = spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
            check(behavior["scaleDown"]["stabilizationWindowSeconds"] >= 300, w, "KEDA must scale down slowly")
            auth = r.get("TriggerAuthentication", trigger["authenticationRef"]["name"])
            if check(auth is not None, w, "the ScaledObject's TriggerAuthentication is missing"):
                ref = auth["spec"]["secretTargetRef"][0]
                check(ref["name"] == secret_name and ref["key"] == "RABBITMQ_MANAGEMENT_URL", w,
                      f"TriggerAuthentication reads {ref}")
                if secret:
                    check(secret_values.get("RABBITMQ_MANAGEMENT_URL", "").startswith("http"), w,
                          "the Secret lacks an http RABBITMQ_MANAGEMENT_URL")
    else:
        check(not hpas and not scaled, w, "mode none: no autoscaler")
        check(det["spec"].get("replicas") == expect["replicas"], w, "detector replicas")
    return secret_values


def check_helm(r, expect):
    w = r.name
    secret_values = check_common(r, expect)
    # helm test: uploads through the API Service and checks the result.
    tests = [d for d in r.all("Pod") if d["metadata"].get("annotations", {}).get("helm.sh/hook") == "test"]
    if check(len(tests) == 1, w, "one helm test Pod"):
        env = env_of(tests[0]["spec"]["containers"][0])
        api = r.role("api")
        svc = r.get("Service", api["metadata"]["name"])
        check(env["API"]["value"] == f'http://{svc["metadata"]["name"]}:{svc["spec"]["ports"][0]["port"]}', w,
              "the helm test must call the API Service")
        script = " ".join(tests[0]["spec"]["containers"][0]["args"])
        check("/api/v1/videos" in script and "succeeded" in script and "frames_processed" in script, w,
              "the helm test must upload a video and wait for its result")
        video = [d for d in r.all("ConfigMap") if "smoke.mp4" in d.get("binaryData", {})]
        check(video and len(base64.b64decode(video[0]["binaryData"]["smoke.mp4"])) > 1000, w, "test video missing")
    data = r.configmap_data()
    if expect.get("in_chart"):
        for svc, port in (("rabbitmq", 5672), ("redis", 6379), ("postgresql", 5432)):
            check(r.get("StatefulSet", f"argus-{svc}") is not None, w, f"no in-chart {svc} StatefulSet")
            check(r.get("Service", f"argus-{svc}") is not None, w, f"no in-chart {svc} Service")
        check(f"@argus-rabbitmq:5672/" in secret_values.get("ARGUS_BROKER_URL", ""), w, "broker URL not in-chart")
        check("@argus-redis:6379/" in secret_values.get("ARGUS_RESULT_BACKEND", ""), w, "backend URL not in-chart")
        check("@argus-postgresql:5432/" in secret_values.get("ARGUS_DATABASE_URL", ""), w, "database URL not in-chart")
        conf = r.get("ConfigMap", "argus-rabbitmq")["data"]["20-argus.conf"]
        timeout = int(re.search(r"consumer_timeout = (\d+)", conf).group(1))
        check(timeout > int(data["ARGUS_TASK_TIME_LIMIT"]) * 1000, w, "RabbitMQ consumer_timeout <= task time limit")
    else:
        check(not r.all("StatefulSet"), w, "no in-chart services expected")
    if expect.get("ingress"):
        ing = r.all("Ingress")
        if check(len(ing) == 1, w, "one Ingress"):
            backend = ing[0]["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
            check(backend == {"name": "argus-api", "port": {"name": "http"}}, w, f"Ingress backend {backend}")
            check(ing[0]["spec"].get("tls"), w, "Ingress without TLS")
            # Only what users call: never /metrics, /readyz (nor a catch-all Prefix /).
            user_paths = {("/api", "Prefix"), ("/swagger-ui", "Prefix"), ("/api-docs", "Prefix"), ("/", "Exact"),
                          # the web console's pages and assets
                          ("/login", "Exact"), ("/users", "Exact"), ("/videos", "Prefix"),
                          ("/assets", "Prefix"), ("/favicon.svg", "Exact")}
            for rule in ing[0]["spec"]["rules"]:
                paths = {(p["path"], p["pathType"]) for p in rule["http"]["paths"]}
                check(paths == user_paths, w, f'Ingress paths of {rule.get("host")}: {sorted(paths)}, '
                                              f"not {sorted(user_paths)}")
        sm = r.all("ServiceMonitor")
        if check(len(sm) == 1, w, "one ServiceMonitor"):
            ports = {e["port"] for e in sm[0]["spec"]["endpoints"]}
            check(ports == {"metrics"}, w, "the ServiceMonitor must scrape the metrics ports (API and workers)")
            check(r.get("Service", "argus-api-metrics") is not None, w, "no argus-api-metrics Service to scrape")
            check("app.kubernetes.io/instance" in sm[0]["spec"].get("targetLabels", []), w,
                  "the ServiceMonitor must label series with the release (the HPA metric selects on it)")
    else:
        check(not r.all("Ingress"), w, "no Ingress expected")
    # The Grafana dashboard (grafanaDashboard) and the alerts (prometheusRule), where enabled.
    dashboards = [d for d in r.all("ConfigMap") if "argus-overview.json" in d.get("data", {})]
    rules = r.all("PrometheusRule")
    monitoring = expect.get("monitoring")
    if check(len(dashboards) == (1 if monitoring else 0), w, f"{len(dashboards)} dashboard ConfigMaps") and dashboards:
        meta = dashboards[0]["metadata"]
        for key, value in monitoring["dashboard_labels"].items():
            check(meta["labels"].get(key) == value, w, f"the dashboard ConfigMap lacks the label {key}={value}")
        check(meta.get("namespace") == monitoring.get("dashboard_namespace"), w, "the dashboard ConfigMap's namespace")
        try:
            with open(DASHBOARD) as f:
                check(json.loads(dashboards[0]["data"]["argus-overview.json"]) == json.load(f), w,
                      "the dashboard ConfigMap does not hold helm/argus/files/grafana-dashboard.json")
        except ValueError as e:
            fail(w, f"the dashboard is not JSON: {e}")
    if check(len(rules) == (1 if monitoring else 0), w, f"{len(rules)} PrometheusRules") and rules:
        for key, value in monitoring["rule_labels"].items():
            check(rules[0]["metadata"]["labels"].get(key) == value, w, f"the PrometheusRule lacks the label {key}={value}")
        alerts = [rule for g in rules[0]["spec"]["groups"] for rule in g["rules"]]
        check(len(alerts) >= 10 and all(rule.get("alert", "").startswith("Argus") for rule in alerts), w,
              f"{len(alerts)} alerts in the PrometheusRule")
        for rule in alerts:
            labels = rule.get("labels", {})
            check(labels.get("severity") in ("critical", "warning"), w, f'{rule["alert"]}: severity {labels.get("severity")}')
            for key, value in monitoring["alert_labels"].items():
                check(labels.get(key) == value, w, f'{rule["alert"]} lacks the alert label {key}={value}')
            check({"summary", "description"} <= set(rule.get("annotations", {})), w,
                  f'{rule["alert"]} needs a summary and a description')
    if expect.get("groups"):
        check_groups(r, expect["groups"])
    if expect.get("network_policy"):
        names = {p["metadata"]["name"] for p in r.all("NetworkPolicy")}
        check({"argus-api", "argus-workers"} <= names, w, f"network policies {names}")
        api_policy = r.get("NetworkPolicy", "argus-api")
        if expect.get("ingress"):
            peers = api_policy["spec"]["ingress"][0].get("from", [])
            check(any("namespaceSelector" in p for p in peers) and
                  any(p.get("podSelector", {}).get("matchLabels", {}).get("app.kubernetes.io/instance") == "argus"
                      for p in peers), w, "the API policy must admit the ingress controller and this release's pods")


def check_groups(r, groups):
    """Several models (detectorGroups): one detector Deployment per model, each serving its model
    (ARGUS_MODEL) and so consuming its queue (detector for ARGUS_DEFAULT_MODEL, detector.<model>
    otherwise), scaled on that queue, with a PDB and a metrics Service of its own; the API and
    the processor accept every model served."""
    w = f"{r.name} (detector groups)"
    data = r.configmap_data()
    default = data.get("ARGUS_DEFAULT_MODEL")
    check(data.get("ARGUS_SERVED_MODELS") == groups["served"], w,
          f'ARGUS_SERVED_MODELS {data.get("ARGUS_SERVED_MODELS")!r}, not {groups["served"]!r}')
    check(default == data.get("ARGUS_MODEL") == groups["served"].split(",")[0], w,
          "ARGUS_DEFAULT_MODEL and the ConfigMap's ARGUS_MODEL must be config.model, the first served")
    detectors = [d for d in r.all("Deployment")
                 if is_detector(d["spec"]["template"]["metadata"]["labels"].get("app.kubernetes.io/component"))]
    check(sorted(d["metadata"]["name"] for d in detectors) == sorted(groups["deployments"]), w,
          f'detector Deployments {sorted(d["metadata"]["name"] for d in detectors)}, '
          f'not {sorted(groups["deployments"])}')
    served, queues = [], []
    for name, want in groups["deployments"].items():
        dep = r.get("Deployment", name)
        if not check(dep is not None, w, f"no Deployment {name}"):
            continue
        where = f"{w}: Deployment/{name}"
        pod = dep["spec"]["template"]["spec"]
        labels = dep["spec"]["template"]["metadata"]["labels"]
        c = pod["containers"][0]
        env = env_of(c)
        model = env["ARGUS_MODEL"]["value"] if "ARGUS_MODEL" in env else data.get("ARGUS_MODEL")
        queue = "detector" if model == default else f"detector.{model}"
        served.append(model)
        queues.append(queue)
        check(model == want["model"] and queue == want["queue"], where,
              f'serves {model} from queue {queue}, not {want["model"]} from {want["queue"]}')
        check(labels.get("app.kubernetes.io/component") == queue, where,
              f'component label {labels.get("app.kubernetes.io/component")}, not its queue {queue}')
        check(labels.get("argus.io/detector-group") == want.get("group"), where,
              f'label argus.io/detector-group {labels.get("argus.io/detector-group")}, not {want.get("group")}')
        # GPU or CPU, concurrency, models, placement.
        res = c.get("resources", {})
        if want["gpus"]:
            check(str(res.get("limits", {}).get(GPU)) == str(want["gpus"]) and
                  env.get("ARGUS_DEVICE", {}).get("value") == "cuda", where, f'needs {want["gpus"]} {GPU} and cuda')
        else:
            check(GPU not in json.dumps(dep) and env.get("ARGUS_DEVICE", {}).get("value") == "cpu", where,
                  f"CPU only: no {GPU}, ARGUS_DEVICE=cpu")
            check(env.get("ARGUS_CPU_REPLICAS", {}).get("value") == want["cpu_replicas"], where,
                  f'ARGUS_CPU_REPLICAS {env.get("ARGUS_CPU_REPLICAS")} != {want["cpu_replicas"]}')
        check(env["ARGUS_CONCURRENCY"]["value"] == str(want["concurrency"]), where,
              f'ARGUS_CONCURRENCY {env["ARGUS_CONCURRENCY"]["value"]} != {want["concurrency"]}')
        check(env.get("ARGUS_MODELS_DIR", {}).get("value") == want.get("models_dir", "/opt/argus/models"), where,
              "ARGUS_MODELS_DIR")
        check(pod.get("nodeSelector") == want.get("node_selector"), where, f'nodeSelector {pod.get("nodeSelector")}')
        for key, value in want.get("env", {}).items():
            check(env.get(key, {}).get("value") == value, where, f"extraEnv {key}={value} missing")
        # Its own PDB and metrics Service, selecting its pods only (overlaps: check_common).
        pdbs = [p for p in r.all("PodDisruptionBudget") if selects(p["spec"]["selector"], labels)]
        check(len(pdbs) == 1 and pdbs[0]["metadata"]["name"] == name, where,
              f'PodDisruptionBudgets {[p["metadata"]["name"] for p in pdbs]}, not {name} alone')
        svc = r.get("Service", f"{name}-metrics")
        check(svc is not None and selects(svc["spec"]["selector"], labels), where, f"no Service {name}-metrics for it")
        # Its autoscaler, on its queue.
        ref = {"apiVersion": "apps/v1", "kind": "Deployment", "name": name}
        hpas = [h for h in r.all("HorizontalPodAutoscaler") if h["spec"]["scaleTargetRef"] == ref]
        scaled = [o for o in r.all("ScaledObject") if o["spec"]["scaleTargetRef"] == ref]
        check(("replicas" in dep["spec"]) == (want["autoscaling"] == "none"), where,
              "leaves replicas to its autoscaler (and only then)")
        if want["autoscaling"] == "keda":
            if check(len(scaled) == 1 and not hpas, where, "mode keda: one ScaledObject, no HPA"):
                spec = scaled[0]["spec"]
                md = spec["triggers"][0]["metadata"]
                check(md.get("queueName") == queue, where, f'KEDA reads queue {md.get("queueName")}, not {queue}')
                check(md.get("value") == str(want["per_replica"]) and spec["minReplicaCount"] == want["min"], where,
                      f'KEDA target {md.get("value")} / min {spec["minReplicaCount"]}')
                auth = r.get("TriggerAuthentication", spec["triggers"][0]["authenticationRef"]["name"])
                check(auth is not None and auth["spec"]["secretTargetRef"][0]["key"] == "RABBITMQ_MANAGEMENT_URL",
                      where, "its TriggerAuthentication must read RABBITMQ_MANAGEMENT_URL")
                check(scaled[0]["metadata"]["labels"].get("argus.io/detector-group") == want.get("group"), where,
                      "the ScaledObject's group label")
        elif want["autoscaling"] == "hpa":
            if check(len(hpas) == 1 and not scaled, where, "mode hpa: one HPA, no ScaledObject"):
                metric = hpas[0]["spec"]["metrics"][0]["external"]["metric"]
                check(metric["name"] == want["metric"], where, f'HPA metric {metric["name"]}, not {want["metric"]}')
        else:
            check(not hpas and not scaled and dep["spec"].get("replicas") == want["replicas"], where,
                  f'mode none: {want["replicas"]} replicas, no autoscaler')
    check(len(set(queues)) == len(queues), w, f"two detector groups consume the same queue: {queues}")
    check(sorted(served) == sorted(groups["served"].split(",")), w,
          f"the detectors serve {sorted(served)}, ARGUS_SERVED_MODELS lists {groups['served']}")


# Per variant: what its values promise.
HELM_EXPECT = {
    "default": dict(gpus=1, concurrency=2, autoscaling="hpa", per_replica=2, metric="argus_detector_backlog"),
    "cpu": dict(gpus=0, concurrency=8, autoscaling="none", replicas=3, cpu_replicas="4"),
    "keda": dict(gpus=1, concurrency=2, autoscaling="keda", per_replica=2, min=0),
    "hpa": dict(gpus=2, concurrency=4, autoscaling="hpa", per_replica=4, metric="argus_detector_backlog",
                processor_autoscaling="hpa"),
    "external": dict(gpus=1, concurrency=2, autoscaling="hpa", per_replica=2, metric="argus_detector_backlog",
                     existing_secret=True, secret="argus-production", existing_claim=True, claim="argus-videos",
                     models_dir="/models", common_labels={"team": "vision"},
                     detector_classes=("gpu-high", "nvidia"), api_pod_labels={"tier": "edge"},
                     volume_permissions="mount point",
                     tls=dict(secret="argus-tls", files={"ARGUS_TLS_CA_FILE": "ca.crt",
                                                         "ARGUS_TLS_CERT_FILE": "tls.crt",
                                                         "ARGUS_TLS_KEY_FILE": "tls.key"}),
                     extras={"api": {"mounts": {"/etc/ssl/company": "company-ca"},
                                     "env": {"SSL_CERT_DIR": "/etc/ssl/company"}},
                             "processor": {"mounts": {"/etc/ssl/company": "company-ca"}},
                             "detector": {"mounts": {"/etc/ssl/company": "company-ca", "/scratch": "scratch",
                                                     "/opt/models/coco": "models", "/models": "models"},
                                          "env": {"OMP_WAIT_POLICY": "PASSIVE"}}}),
    "quickstart": dict(gpus=1, concurrency=2, autoscaling="keda", per_replica=2, min=1, in_chart=True,
                       network_policy=True, processor_autoscaling="keda", volume_permissions="recursive"),
    # Several models: the default group and three more, one per autoscaling mode (ci/groups-values.yaml).
    "groups": dict(gpus=1, concurrency=2, autoscaling="keda", per_replica=2, min=1, network_policy=True,
                   groups=dict(served="coco-centernet,bench-null,plates-v2,logo-det", deployments={
                       "argus-detector": dict(model="coco-centernet", queue="detector", gpus=1, concurrency=2,
                                              autoscaling="keda", per_replica=2, min=1),
                       "argus-detector-faces": dict(model="bench-null", queue="detector.bench-null", group="faces",
                                                    gpus=0, cpu_replicas="2", concurrency=4, models_dir="/models",
                                                    autoscaling="keda", per_replica=4, min=0),
                       "argus-detector-plates": dict(model="plates-v2", queue="detector.plates-v2", group="plates",
                                                     gpus=2, concurrency=4, models_dir="/models",
                                                     node_selector={"gpu.example.com/class": "a100"},
                                                     env={"OMP_WAIT_POLICY": "PASSIVE"},
                                                     autoscaling="none", replicas=2),
                       "argus-detector-logos": dict(model="logo-det", queue="detector.logo-det", group="logos",
                                                    gpus=1, concurrency=2, autoscaling="hpa",
                                                    metric="argus_detector_backlog_logo_det")})),
    "ingress": dict(gpus=1, concurrency=2, autoscaling="hpa", per_replica=2, metric="argus_detector_backlog",
                    ingress=True, network_policy=True,
                    monitoring=dict(dashboard_labels={"grafana_dashboard": "1"}, dashboard_namespace="monitoring",
                                    rule_labels={"release": "kube-prometheus-stack"},
                                    alert_labels={"team": "vision"})),
}
KUSTOMIZE_EXPECT = {
    "gpu": dict(HELM_EXPECT["default"], existing_secret=True),
    "cpu": dict(HELM_EXPECT["cpu"], existing_secret=True),
    "keda": dict(HELM_EXPECT["keda"], existing_secret=True),
}


def check_group_schema():
    """A detector group takes every key of `detector` (values.schema.json refers to each), and
    name and model: a key added to the detector and not to the groups would be refused there."""
    with open(os.path.join(os.path.dirname(DASHBOARD), "..", "values.schema.json")) as f:
        props = json.load(f)["properties"]
    group = props["detectorGroups"]["items"]["properties"]
    want = {k: {"$ref": f"#/properties/detector/properties/{k}"} for k in props["detector"]["properties"]}
    check({k: v for k, v in group.items() if k not in ("name", "model")} == want and
          {"name", "model"} <= set(group), "values.schema.json",
          "detectorGroups items must take name, model and every key of detector (a $ref to each)")


# --- 3. kustomize overlay == chart variant ------------------------------------------------------
def normalize(docs):
    out = {}
    for d in copy.deepcopy(docs):
        if d["kind"] == "Secret" or "helm.sh/hook" in (d["metadata"].get("annotations") or {}):
            continue
        text = json.dumps(d)
        # configMapGenerator's hash suffix
        text = re.sub(r'"(argus)-[a-z0-9]{10}"', r'"\1"', text)
        d = json.loads(text)
        for meta in [d["metadata"], d.get("spec", {}).get("template", {}).get("metadata", {})]:
            for key in ("helm.sh/chart", "app.kubernetes.io/managed-by"):
                (meta.get("labels") or {}).pop(key, None)
            for key in [k for k in (meta.get("annotations") or {}) if k.startswith("checksum/")]:
                del meta["annotations"][key]
            if meta.get("annotations") == {}:
                del meta["annotations"]
        for c in d.get("spec", {}).get("template", {}).get("spec", {}).get("containers", []):
            if "env" in c:
                c["env"] = sorted(c["env"], key=lambda e: e["name"])
        out[f'{d["kind"]}/{d["metadata"]["name"]}'] = d
    return out


def check_equivalent(overlay, kustomized, helm):
    a, b = normalize(kustomized), normalize(helm)
    where = f"kustomize {overlay} vs helm {EQUIVALENT[overlay]}"
    check(set(a) == set(b), where, f"objects differ: only kustomize {sorted(set(a) - set(b))}, "
                                   f"only helm {sorted(set(b) - set(a))}")
    for key in sorted(set(a) & set(b)):
        if a[key] != b[key]:
            diff = difflib.unified_diff(yaml.safe_dump(b[key]).splitlines(), yaml.safe_dump(a[key]).splitlines(),
                                        f"helm {key}", f"kustomize {key}", lineterm="", n=2)
            fail(where, f"{key} differs:\n    " + "\n    ".join(list(diff)[:40]))


def main():
    out = sys.argv[1]
    documents = 0
    renders = {}
    for path in sorted(glob.glob(os.path.join(out, "*.yaml"))):
        name = os.path.basename(path)[:-5]
        renders[name] = Render(name, load(path))
        documents += validate_schemas(name, renders[name].docs)
    check_group_schema()
    for variant, expect in HELM_EXPECT.items():
        if check(f"helm-{variant}" in renders, "render", f"helm-{variant}.yaml missing"):
            check_helm(renders[f"helm-{variant}"], expect)
    for overlay, expect in KUSTOMIZE_EXPECT.items():
        if check(f"kustomize-{overlay}" in renders and EQUIVALENT[overlay] in renders, "render",
                 f"kustomize-{overlay}.yaml or {EQUIVALENT[overlay]}.yaml missing"):
            check_common(renders[f"kustomize-{overlay}"], expect)
            check_equivalent(overlay, renders[f"kustomize-{overlay}"].docs, renders[EQUIVALENT[overlay]].docs)
    monitoring = renders.get("kustomize-monitoring")
    if check(monitoring is not None, "render", "kustomize-monitoring.yaml missing"):
        a = normalize(monitoring.docs)["ServiceMonitor/argus"]["spec"]
        b = normalize(renders["helm-ingress"].docs)["ServiceMonitor/argus"]["spec"]
        b["namespaceSelector"] = a["namespaceSelector"]
        check(a == b, "kustomize monitoring vs helm ingress", "the ServiceMonitor differs from the chart's")
    if failures:
        print(f"check_render: {len(failures)} failure(s):", file=sys.stderr)
        for f in failures:
            print(f"  - {f}", file=sys.stderr)
        sys.exit(1)
    print(f"check_render: {documents} documents valid for Kubernetes {' and '.join(KUBE_VERSIONS)} (strict); "
          f"{len(HELM_EXPECT)} chart variants and {len(KUSTOMIZE_EXPECT)} overlays hold their assertions; "
          f"each overlay equals its chart variant")


if __name__ == "__main__":
    main()
