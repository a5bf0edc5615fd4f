#!/usr/bin/env python3
"""Checks the chart's Grafana dashboard and alert rules against the metrics the code exports
(python of the k8s-tools venv; scripts/check-k8s.sh runs it after rendering the chart).

    check_monitoring.py DIR      DIR: what check-k8s.sh rendered (helm-<variant>.yaml)

1. The metrics the code exports, read from the Rust sources: every name registered with a
   prometheus constructor (Opts::new, HistogramOpts::new, IntCounter::new, ...), histograms
   with their _bucket, _sum and _count series; the label values the rules and panels match on
   (video statuses, task outcomes, the queues whose depth the API sets, the API's routes), read
   from where the code defines them.
2. helm/argus/files/grafana-dashboard.json parses, is a dashboard (uid, panels with queries on
   the ${datasource} variable, the variables it uses defined), and each query is valid PromQL
   (promtool check rules, with Grafana's variables substituted).
3. The PrometheusRule every variant renders (DIR/helm-*.yaml) passes promtool check rules.
4. Every metric named in a query of the dashboard or a rule is one the code exports (or
   Prometheus' `up`, or a kube-state-metrics series listed below), and every status, outcome,
   queue, route or component a matcher names (=, !=, or =~ / !~ alternatives of plain values) is
   one the code (or the chart) has: a negative matcher on a value that never occurs is as wrong
   as a positive one (it leaves out nothing).
5. promtool test rules runs scripts/k8s/alerts.test.yaml against the rendered rules, and each
   alert has a test in which it fires and one in which it stays quiet; a test names no alert
   the rules lack (promtool would pass it silently); prometheusRule.disabled (values.schema.json)
   accepts exactly the alerts rendered.
"""
import glob
import json
import os
import re
import shutil
import subprocess
import sys

import yaml

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DASHBOARD = os.path.join(REPO, "helm", "argus", "files", "grafana-dashboard.json")
TESTS = os.path.join(REPO, "scripts", "k8s", "alerts.test.yaml")
SCHEMA = os.path.join(REPO, "helm", "argus", "values.schema.json")
# The Rust crates whose sources register metrics (tests and benches excluded).
CRATES = ("api", "queue", "detector", "processor", "pipeline", "common", "cli", "media")
# Series the rules may use that no Argus code exports: Prometheus' own, kube-state-metrics v2.
FOREIGN = {
    "up",
    "kube_deployment_status_replicas_unavailable",
    "kube_pod_container_status_restarts_total",
    "kube_pod_container_status_last_terminated_reason",
}
HISTOGRAM_SERIES = ("_bucket", "_sum", "_count")
# Where the API registers its routes (actix resources inside scopes), for the route label.
ROUTES = os.path.join("api", "src", "routes.rs")
# PromQL words that are not metric names (aggregations are followed by `by`/`without` or `(`).
PROMQL_WORDS = {
    "and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right", "offset",
    "bool", "atan2", "inf", "nan", "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count",
    "count_values", "bottomk", "topk", "quantile", "limitk", "limit_ratio",
}
# Grafana's variables, for promtool: what each stands for in a query.
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h", "$namespace": "argus",
                     "$instance": "argus", "${datasource}": "prometheus"}
# The chart's roles (app_kubernetes_io_component, what the ServiceMonitor's targetLabels carry).
COMPONENTS = {"api", "processor", "detector"}

failures = []


def fail(where, message):
    failures.append(f"{where}: {message}")


def rust_sources():
    for crate in CRATES:
        for path in glob.glob(os.path.join(REPO, crate, "src", "**", "*.rs"), recursive=True):
            with open(path) as f:
                yield os.path.relpath(path, REPO), f.read()


# --- 1. what the code exports -------------------------------------------------------------------
def exported():
    """(metric series names, label values by label name, names seen in other string literals)."""
    names, literals = set(), {}
    histogram = re.compile(r'(?<![\w])HistogramOpts::new\(\s*"(argus_\w+)"')
    plain = re.compile(r'(?<![\w])(?:Opts|IntCounter|IntGauge|Counter|Gauge)::new\(\s*"(argus_\w+)"')
    statuses, outcomes, routes = set(), set(), set()
    constants, depth_of = {}, set()
    for path, text in rust_sources():
        for name in histogram.findall(text):
            names.update(name + s for s in HISTOGRAM_SERIES)
        names.update(plain.findall(text))
        for name in re.findall(r'"(argus_\w+)"', text):
            literals.setdefault(name, path)
        # Video statuses: the list the API's argus_videos{status} is set from.
        m = re.search(r"pub const STATUSES: &\[&str\] = &\[([^\]]*)\]", text)
        if m:
            statuses.update(re.findall(r'"(\w+)"', m.group(1)))
        # Task outcomes: what the worker counts argus_worker_tasks_total{outcome} with.
        outcomes.update(re.findall(r'\bcount\(\s*[^,()]+,\s*"(\w+)"\s*\)', text))
        # Queues: the API sets argus_queue_messages{queue} with set_queue_depth(<constant>, ...)
        # for the processor, detector and dead-letter queues (PROCESSOR_QUEUE, DETECTOR_QUEUE,
        # DEAD_LETTER_QUEUE = "argus.dlq"): the constants' values, wherever they are defined.
        constants.update(re.findall(r'pub const (\w+): &str = "([^"]*)";', text))
        depth_of.update(re.findall(r'\bset_queue_depth\(\s*(\w+)\s*,', text))
        # Routes: the API's route label is the matched pattern, scope prefix included.
        if path == ROUTES:
            routes.update(api_routes(text))
    queues = {constants[c] for c in depth_of if c in constants}
    # set_queue_depth(queue, ...) with the variable `queue`: each other served model's queue,
    # `detector.<model>` (argus_pipeline::tasks::detector_queue), named by the deployment's
    # models, not by the code; no dashboard or alert names one.
    dynamic = {"queue"}
    for c in sorted(depth_of - set(constants) - dynamic):
        fail("code", f"set_queue_depth({c}, ...): no `pub const {c}: &str` found: update check_monitoring.py")
    if routes and "UNMATCHED_ROUTE" in constants:
        routes.add(constants["UNMATCHED_ROUTE"])
    values = {"status": statuses, "outcome": outcomes, "queue": queues, "route": routes,
              "app_kubernetes_io_component": COMPONENTS}
    where = {"status": "the video statuses (STATUSES)", "outcome": "the worker's task outcomes (count(task, \"...\"))",
             "queue": "the queues whose depth the API exports (set_queue_depth(<constant>, ...))",
             "route": f"the API's routes (resource(\"...\") in {ROUTES})"}
    for label, what in where.items():
        if not values[label]:
            fail("code", f"found none of {what} in the Rust sources: update check_monitoring.py")
    if len(names) < 10:
        fail("code", f"found only {sorted(names)} registered as metrics: have the prometheus constructors changed? "
                     "update check_monitoring.py")
    return names, values, literals


def api_routes(text):
    """The route patterns of routes.rs: each resource("...") with the web::scope("...") prefixes
    of the calls it sits in (a scope's extent: from it to the parenthesis closing its call)."""
    masked = re.sub(r'"(?:[^"\\]|\\.)*"', lambda m: '"' + "_" * (len(m.group(0)) - 2) + '"', text)
    scopes = []
    for m in re.finditer(r'\bweb::scope\(\s*"([^"]*)"', text):
        depth, end = 0, len(text)
        for i in range(m.start(), len(masked)):
            depth += {"(": 1, ")": -1}.get(masked[i], 0)
            if depth < 0:
                end = i
                break
        scopes.append((m.start(), end, m.group(1)))
    found = set()
    for m in re.finditer(r'\bresource\(\s*"([^"]+)"', text):
        found.add("".join(p for start, end, p in scopes if start < m.start() < end) + m.group(1))
    return found


# --- PromQL -------------------------------------------------------------------------------------
def strip_strings(expr):
    return re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`', '""', expr)


def metric_names(expr):
    """The metric names a PromQL expression selects (not functions, keywords or label names)."""
    e = strip_strings(expr)
    e = re.sub(r"\{[^{}]*\}", "{}", e)                       # label matchers
    e = re.sub(r"\[[^\[\]]*\]", "[]", e)                     # ranges, subqueries
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)", r"\1", e)
    names = set()
    for m in re.finditer(r"(?<![\w$.:])([A-Za-z_:][\w:]*)", e):
        word = m.group(1)
        if word.lower() in PROMQL_WORDS or re.match(r"\s*\(", e[m.end():]):
            continue
        names.add(word)
    return names


def matchers(expr):
    """(label, op, value) of every label matcher in the expression (values may hold braces)."""
    strings = []

    def keep(m):
        strings.append(m.group(1))
        return f'"{len(strings) - 1}"'
    masked = re.sub(r'"((?:[^"\\]|\\.)*)"', keep, expr)
    found = []
    for block in re.findall(r"\{([^{}]*)\}", masked):
        for label, op, index in re.findall(r'(\w+)\s*(=~|!~|!=|=)\s*"(\d+)"', block):
            found.append((label, op, strings[int(index)]))
    return found


def check_expr(where, expr, names, values, literals):
    used = metric_names(expr)
    if not used:
        fail(where, f"no metric found in {expr!r}")
    for name in sorted(used):
        if name in names or name in FOREIGN:
            continue
        if name in literals:
            fail(where, f"{name}: in {literals[name]}, but not in a metric constructor this check knows "
                        "(update check_monitoring.py)")
        else:
            fail(where, f"{name}: no such metric: the code exports {', '.join(sorted(n for n in names))}")
    for label, op, value in matchers(expr):
        known = values.get(label)
        if not known or "$" in value:
            continue
        if op in ("=~", "!~") and not re.fullmatch(r"[\w|]+", value):
            continue  # a regex beyond alternatives of plain words: not checked
        for v in value.split("|") if op in ("=~", "!~") else [value]:
            if v not in known:
                fail(where, f'{label}{op}"{v}": not a value the code sets (it has {", ".join(sorted(known))})')


# --- 2. the dashboard ---------------------------------------------------------------------------
def dashboard_queries():
    """[(where, PromQL)] of the dashboard; structural failures are recorded."""
    where = os.path.relpath(DASHBOARD, REPO)
    try:
        with open(DASHBOARD) as f:
            dash = json.load(f)
    except (OSError, ValueError) as e:
        fail(where, f"does not parse: {e}")
        return [], None
    queries = []
    for key in ("uid", "title", "panels", "templating", "schemaVersion"):
        check_that(key in dash, where, f"has no {key}")
    variables = {v.get("name") for v in dash.get("templating", {}).get("list", [])}
    ids = set()
    for panel in dash.get("panels", []):
        title = f'{where}: panel {panel.get("title")!r}'
        check_that(panel.get("id") not in ids, title, f'id {panel.get("id")} twice')
        ids.add(panel.get("id"))
        check_that({"x", "y", "w", "h"} <= set(panel.get("gridPos", {})), title, "no gridPos")
        if panel.get("type") == "row":
            continue
        targets = panel.get("targets") or []
        check_that(targets, title, "has no query")
        for t in targets:
            check_that(t.get("datasource", panel.get("datasource", {})).get("uid") == "${datasource}", title,
                       "must query the ${datasource} variable")
            if check_that(t.get("expr"), title, f'query {t.get("refId")} has no expr'):
                queries.append((f'{title} {t.get("refId")}', t["expr"]))
    for v in dash.get("templating", {}).get("list", []):
        if v.get("type") == "query":
            q = v["query"]["query"] if isinstance(v.get("query"), dict) else v.get("query", "")
            m = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", q.strip())
            if check_that(m, f"{where}: variable {v.get('name')}", f"query {q!r} is not label_values(selector, label)"):
                queries.append((f"{where}: variable {v.get('name')}", m.group(1)))
    text = json.dumps(dash)
    for used in set(re.findall(r"\$\{?(\w+)", text)):
        check_that(used.startswith("__") or used in variables, where, f"uses ${used}, which it does not define")
    return queries, dash


def check_that(condition, where, message):
    if not condition:
        fail(where, message)
    return condition


def grafana_to_promql(expr):
    for var, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(var, value)
    return expr


# --- 3. and 5. promtool -------------------------------------------------------------------------
def promtool(*args):
    run = subprocess.run(["promtool", *args], capture_output=True, text=True)
    return run.returncode, (run.stdout + run.stderr).strip()


def rendered_rules(out):
    """{variant: spec.groups} of every PrometheusRule rendered."""
    found = {}
    for path in sorted(glob.glob(os.path.join(out, "helm-*.yaml"))):
        with open(path) as f:
            for doc in yaml.safe_load_all(f):
                if doc and doc.get("kind") == "PrometheusRule":
                    found.setdefault(os.path.basename(path)[:-5], []).extend(doc["spec"]["groups"])
    return found


def main():
    out = sys.argv[1]
    work = os.path.join(out, "promtool")
    os.makedirs(work, exist_ok=True)
    names, values, literals = exported()

    queries, dash = dashboard_queries()
    for where, expr in queries:
        check_expr(where, expr, names, values, literals)
    # Every panel query as a recording rule: promtool parses it as Prometheus would.
    records = [{"record": f"argus_dashboard:query_{i}", "expr": grafana_to_promql(e)}
               for i, (_, e) in enumerate(queries) if not e.startswith("label_values")]
    with open(os.path.join(work, "dashboard.rules.yaml"), "w") as f:
        yaml.safe_dump({"groups": [{"name": "dashboard", "rules": records}]}, f, sort_keys=False)
    rc, text = promtool("check", "rules", os.path.join(work, "dashboard.rules.yaml"))
    check_that(rc == 0, "dashboard queries (promtool check rules)", text.replace("\n", " "))

    rules = rendered_rules(out)
    if not check_that("helm-ingress" in rules, "render", "the ingress variant renders no PrometheusRule"):
        return report(names, queries, 0, 0)
    alerts = {}
    for variant, groups in rules.items():
        path = os.path.join(work, f"{variant}.rules.yaml")
        with open(path, "w") as f:
            yaml.safe_dump({"groups": groups}, f, sort_keys=False)
        rc, text = promtool("check", "rules", path)
        check_that(rc == 0, f"{variant}: PrometheusRule (promtool check rules)", text.replace("\n", " "))
        for group in groups:
            for rule in group["rules"]:
                check_expr(f'{variant}: {rule.get("alert") or rule.get("record")}', rule["expr"], names, values,
                           literals)
                if variant == "helm-ingress" and "alert" in rule:
                    alerts[rule["alert"]] = rule

    # prometheusRule.disabled accepts exactly the alerts there are (values.schema.json's enum).
    with open(SCHEMA) as f:
        enum = json.load(f)["properties"]["prometheusRule"]["properties"]["disabled"]["items"]["enum"]
    check_that(sorted(enum) == sorted(alerts), os.path.relpath(SCHEMA, REPO),
               f"prometheusRule.disabled's enum {sorted(enum)} is not the alerts the chart renders {sorted(alerts)}")

    # promtool unit tests against the ingress variant's rules (the tests' rule_files).
    with open(TESTS) as f:
        tests = yaml.safe_load(f)
    check_that(tests.get("rule_files") == ["helm-ingress.rules.yaml"], os.path.relpath(TESTS, REPO),
               "rule_files must be [helm-ingress.rules.yaml] (the rendered rules this check writes)")
    shutil.copy(TESTS, os.path.join(work, "alerts.test.yaml"))
    rc, text = promtool("test", "rules", os.path.join(work, "alerts.test.yaml"))
    failed = "; ".join(re.sub(r"\s+", " ", m).strip(" ,") for m in re.findall(r"alertname: [^\n]*", text))
    check_that(rc == 0, "promtool test rules scripts/k8s/alerts.test.yaml",
               f"failed at {failed or 'loading'}:\n{text}")
    fires, quiet = set(), set()
    cases = 0
    for test in tests.get("tests", []):
        for case in test.get("alert_rule_test", []):
            cases += 1
            name = case.get("alertname")
            check_that(name in alerts, os.path.relpath(TESTS, REPO), f"tests alert {name}, which the rules lack")
            (fires if case.get("exp_alerts") else quiet).add(name)
    for name in sorted(alerts):
        check_that(name in fires, os.path.relpath(TESTS, REPO), f"no test in which {name} fires")
        check_that(name in quiet, os.path.relpath(TESTS, REPO), f"no test in which {name} stays quiet")
    return report(names, queries, len(alerts), cases)


def report(names, queries, alerts, cases):
    if failures:
        print(f"check_monitoring: {len(failures)} failure(s):", file=sys.stderr)
        for f in failures:
            print(f"  - {f}", file=sys.stderr)
        sys.exit(1)
    print(f"check_monitoring: {len(queries)} dashboard queries and {alerts} alerts use only the "
          f"{len(names)} series the code exports (and {len(FOREIGN)} foreign ones), parse (promtool); "
          f"{cases} promtool alert tests pass, each alert firing and quiet")


if __name__ == "__main__":
    main()
