#!/usr/bin/env python3
"""Offline checks of the coffre Helm chart (run by scripts/chart-check.sh).

Lints the chart with the Helm SDK (helm-python-sdk), renders it for the default values,
for cronjobs mode, for an "everything on" values file (admin API over HTTPS) and for that
file with the API in plain HTTP behind the Ingress (api-plain-http), validates the values against
values.schema.json (and proves a wrong-type file is rejected), validates every rendered
manifest with `kubernetes-validate --strict`, runs yamllint, and asserts the chart's
security and scheduling promises. Prints one PASS/FAIL line per check and a summary;
exits 1 if any check failed.

    check_chart.py [--chart DIR] [--dump DIR]

--chart: the chart to check (default: charts/coffre of this repository).
--dump: also write every rendering there (CASE/manifests.yaml, CASE/NAME.toml for each
config in a ConfigMap), e.g. to feed the config files to `coffre`.
"""

from __future__ import annotations

import argparse
import base64
import copy
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

import helm_python
import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
K8S_VERSION = "1.32.0"
# Kinds that are CRDs, unknown to kubernetes-validate: skipped there (and only there).
CRD_KINDS = {"ServiceMonitor"}
WORKLOAD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob"}
# Every fake secret in the tests' values files contains this marker.
FAKE_MARKER = "FAKESECRET"
RELEASE, NAMESPACE = "billing", "backups"

results: list[tuple[bool, str, str]] = []


def check(name: str, ok: bool, detail: str = "") -> bool:
    results.append((bool(ok), name, detail))
    print(f"{'PASS' if ok else 'FAIL'}  {name}" + (f"\n      {detail}" if detail and not ok else ""))
    return bool(ok)


def load_values(name: str) -> dict:
    return yaml.safe_load((HERE / name).read_text()) or {}


def deep_merge(base: dict, override: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def render(chart: helm_python.Chart, values: dict) -> list[dict]:
    """Renders and parses every manifest (NOTES.txt left out)."""
    files = chart.render(values, name=RELEASE, namespace=NAMESPACE)
    docs = []
    for path, text in sorted(files.items()):
        if path.endswith("NOTES.txt"):
            continue
        for doc in yaml.safe_load_all(text):
            if doc:
                doc["__source"] = path
                docs.append(doc)
    return docs


def strip(doc: dict) -> dict:
    return {k: v for k, v in doc.items() if k != "__source"}


def pod_spec(doc: dict) -> dict:
    spec = doc["spec"]
    if doc["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    return spec["template"]["spec"]


def projected_paths(spec: dict) -> set[str]:
    """Paths of every file in the pod's projected /etc/coffre volume."""
    paths = set()
    for volume in spec.get("volumes", []):
        for source in volume.get("projected", {}).get("sources", []):
            for kind in ("secret", "configMap"):
                for item in source.get(kind, {}).get("items", []):
                    paths.add(item["path"])
    return paths


def config_of(docs: list[dict], spec: dict) -> dict:
    """The config.toml a pod sees, parsed."""
    key = None
    for volume in spec.get("volumes", []):
        for source in volume.get("projected", {}).get("sources", []):
            for item in source.get("configMap", {}).get("items", []):
                if item["path"] == "config.toml":
                    key, name = item["key"], source["configMap"]["name"]
    assert key, "no config.toml in the pod's projected volume"
    cm = next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == name)
    return tomllib.loads(cm["data"][key])


# ---- checks -------------------------------------------------------------------------


def check_lint(chart_dir: Path, values: dict, label: str) -> None:
    try:
        report = helm_python.lint(str(chart_dir), values, strict=True)
    except helm_python.HelmError as e:
        check(f"helm lint ({label})", False, str(e))
        return
    bad = [m for m in report.get("messages", []) if m.get("severity", 0) >= 2]
    errors = report.get("errors") or []
    check(f"helm lint --strict ({label})", not bad and not errors, f"{bad} {errors}")


def check_schema(chart: helm_python.Chart, cases: dict[str, dict], wrong: dict) -> None:
    for label, values in cases.items():
        try:
            chart.validate_schema(values)
            check(f"schema accepts {label}", True)
        except helm_python.HelmError as e:
            check(f"schema accepts {label}", False, str(e))
    # The wrong-type file must be refused, by the schema and by a render (an install).
    expected = ["/persistence/enabled", "/config/compression/level",
                "/config/sources/billing/targets", "shedule",
                "/config/sources/shop", "pg_dump"]
    try:
        chart.validate_schema(wrong)
        check("schema REJECTS values-wrong-type.yaml", False, "it was accepted")
    except helm_python.HelmValuesError as e:
        missing = [p for p in expected if p not in str(e)]
        check("schema REJECTS values-wrong-type.yaml (each wrong value named)", not missing,
              f"not named: {missing} in: {e}")
    try:
        chart.render(wrong, name=RELEASE, namespace=NAMESPACE)
        check("render REJECTS values-wrong-type.yaml", False, "it rendered")
    except helm_python.HelmValuesError:
        check("render REJECTS values-wrong-type.yaml", True)
    except helm_python.HelmError as e:
        check("render REJECTS values-wrong-type.yaml", False,
              f"refused by a template, not by the schema: {e}")


def check_source_types(chart: helm_python.Chart, base: dict) -> None:
    """The schema dispatches a source on its `type`: a key of another type, or an unknown
    type, is refused and named (an unknown type alone: not every key of every type)."""
    cases = {
        "a postgres key on a mysql source": (
            {"type": "mysql", "url": "mysql://b@db:3306/shop", "targets": ["paris"],
             "owners_and_privileges": True}, "owners_and_privileges"),
        "a mysql key on a postgres source": (
            {"type": "postgres", "url": "postgres://b@db:5432/x", "targets": ["paris"],
             "events": False}, "events"),
        "a url on an sqlite source": (
            {"type": "sqlite", "path": "/data/x.db", "targets": ["paris"],
             "url": "mysql://b@db:3306/x"}, "url"),
        "a postgres url on a mysql source": (
            {"type": "mysql", "url": "postgres://b@db:5432/x", "targets": ["paris"]},
            "/config/sources/x/url"),
        "an unknown source type": (
            {"type": "mssql", "url": "mssql://b@db/x", "targets": ["paris"]},
            "/config/sources/x/type"),
    }
    for label, (source, needle) in cases.items():
        values = deep_merge(base, {"config": {"sources": {"x": source}}})
        try:
            chart.validate_schema(values)
            check(f"schema refuses {label}", False, "it was accepted")
        except helm_python.HelmValuesError as e:
            # One error per wrong value, not one per source type that does not fit.
            check(f"schema refuses {label}",
                  needle in str(e) and str(e).count("/config/sources/x") <= 3,
                  f"expected {needle!r}, and only it, in: {e}")


def check_owned_api_keys(chart: helm_python.Chart, base: dict) -> None:
    """listen, tls_cert, tls_key and allow_plain_http are the chart's: refused in config.api."""
    for key, value in {"listen": "0.0.0.0:9999", "tls_cert": "/x.crt", "tls_key": "/x.key",
                       "allow_plain_http": True}.items():
        try:
            chart.validate_schema(deep_merge(base, {"config": {"api": {key: value}}}))
            check(f"schema refuses config.api.{key} (owned by the chart)", False,
                  "it was accepted")
        except helm_python.HelmValuesError as e:
            check(f"schema refuses config.api.{key} (owned by the chart)", key in str(e), str(e))


def check_mysql_source(renders: dict[str, list[dict]]) -> None:
    """The everything values' mysql source `shop`: written with its type and the
    password_file the chart owns, the password mounted there, the drill's scratch_url."""
    if "everything" in renders:
        docs = renders["everything"]
        sts = next(d for d in docs if d["kind"] == "StatefulSet")
        config = config_of(docs, pod_spec(sts))
        shop = config.get("sources", {}).get("shop", {})
        check("everything: config.toml has the mysql source with its password_file",
              shop.get("type") == "mysql"
              and shop.get("url") == "mysql://backup@shop-db.databases.svc:3306/shop"
              and shop.get("password_file") == "/etc/coffre/secrets/db/shop.pass"
              and shop.get("events") is False,
              f"sources.shop = {shop}")
        check("everything: the mysql drill keeps its mysql:// scratch_url",
              config.get("drills", {}).get("shop", {}).get("scratch_url")
              == "mysql://drill@scratch-mysql.databases.svc:3306",
              f"drills = {config.get('drills')}")
        mounted = [
            item for v in pod_spec(sts).get("volumes", [])
            for s in v.get("projected", {}).get("sources", [])
            if s.get("secret", {}).get("name") == "shop-db-backup"
            for item in s["secret"].get("items", [])]
        check("everything: the mysql source's password is mounted at its password_file",
              mounted == [{"key": "password", "path": "secrets/db/shop.pass"}],
              f"items from shop-db-backup: {mounted}")
    if "everything-as-cronjobs" in renders:
        docs = renders["everything-as-cronjobs"]
        backup = [d for d in docs if d["kind"] == "CronJob"
                  and pod_spec(d)["containers"][0]["args"][2:] == ["backup", "shop"]]
        paths = projected_paths(pod_spec(backup[0])) if backup else set()
        check("everything-as-cronjobs: the mysql backup CronJob mounts its own password",
              len(backup) == 1 and "secrets/db/shop.pass" in paths
              and config_of(docs, pod_spec(backup[0]))["sources"]["shop"]["type"] == "mysql",
              f"{len(backup)} CronJobs, paths {sorted(paths)}")


def check_render_fails(chart: helm_python.Chart, label: str, values: dict, needle: str) -> None:
    try:
        chart.render(values, name=RELEASE, namespace=NAMESPACE)
        check(f"render refuses {label}", False, "it rendered")
    except helm_python.HelmError as e:
        check(f"render refuses {label}", needle in str(e), f"expected {needle!r} in: {e}")


def check_kubernetes_validate(renders: dict[str, list[dict]], workdir: Path) -> None:
    exe = Path(sys.executable).parent / "kubernetes-validate"
    skipped = set()
    for label, docs in renders.items():
        files = []
        for i, doc in enumerate(docs):
            if doc["kind"] in CRD_KINDS:
                skipped.add(doc["kind"])
                continue
            path = workdir / f"{label}-{i:02d}-{doc['kind']}.yaml"
            path.write_text(yaml.safe_dump(strip(doc), sort_keys=False))
            files.append(str(path))
        proc = subprocess.run(
            [str(exe), "--strict", "--quiet", "-k", K8S_VERSION, *files],
            capture_output=True, text=True)
        check(f"kubernetes-validate --strict -k {K8S_VERSION} ({label}: {len(files)} manifests)",
              proc.returncode == 0, (proc.stdout + proc.stderr).strip()[-2000:])
    if skipped:
        print(f"      (skipped in kubernetes-validate, CRDs: {', '.join(sorted(skipped))})")


def check_yamllint() -> None:
    files = [ROOT / "charts/coffre/values.yaml", ROOT / "charts/coffre/Chart.yaml",
             *sorted(HERE.glob("*.yaml"))]
    proc = subprocess.run(
        [sys.executable, "-m", "yamllint", "--strict", "-c", str(HERE / ".yamllint"),
         *map(str, files)], capture_output=True, text=True)
    check(f"yamllint ({len(files)} files)", proc.returncode == 0,
          (proc.stdout + proc.stderr).strip())


def check_no_secret_in_configmaps(label: str, docs: list[dict]) -> None:
    """No fake secret in any ConfigMap, as text or base64; and (so that this check has
    teeth) each of them is in the chart's Secret."""
    secrets = set()

    def collect(node):
        if isinstance(node, dict):
            for v in node.values():
                collect(v)
        elif isinstance(node, str) and FAKE_MARKER in node:
            secrets.add(node)

    collect(load_values("values-cronjobs.yaml")["secrets"])
    leaks = []
    for doc in docs:
        if doc["kind"] != "ConfigMap":
            continue
        text = yaml.safe_dump(strip(doc))
        found = [s for s in secrets
                 if s in text or base64.b64encode(s.encode()).decode() in text]
        if found or FAKE_MARKER in text:
            leaks.append((doc["metadata"]["name"], found or [FAKE_MARKER]))
    check(f"no secret value in any ConfigMap ({label}, {len(secrets)} fake secrets)",
          secrets and not leaks, f"leaks: {leaks}" if leaks else "no fake secrets found")
    in_secret = set()
    for doc in docs:
        if doc["kind"] == "Secret":
            for value in (doc.get("data") or {}).values():
                in_secret.add(base64.b64decode(value).decode())
    check(f"every fake secret is in the chart's Secret ({label})", secrets <= in_secret,
          f"missing: {secrets - in_secret}")


def check_pods_hardened(label: str, docs: list[dict]) -> None:
    workloads = [d for d in docs if d["kind"] in WORKLOAD_KINDS]
    problems = []
    for doc in workloads:
        name = f"{doc['kind']}/{doc['metadata']['name']}"
        spec = pod_spec(doc)
        psc = spec.get("securityContext", {})
        if psc.get("runAsNonRoot") is not True or psc.get("runAsUser") != 10001 \
                or psc.get("runAsGroup") != 10001 or psc.get("fsGroup") != 10001:
            problems.append(f"{name}: pod not run as non-root 10001:10001")
        if psc.get("seccompProfile", {}).get("type") != "RuntimeDefault":
            problems.append(f"{name}: no RuntimeDefault seccomp profile")
        if spec.get("automountServiceAccountToken") is not False:
            problems.append(f"{name}: service account token mounted")
        tmp_volumes = {v["name"] for v in spec.get("volumes", []) if "emptyDir" in v}
        for c in spec.get("containers", []) + spec.get("initContainers", []):
            sc = c.get("securityContext", {})
            if sc.get("runAsNonRoot") is False or sc.get("runAsUser") == 0:
                problems.append(f"{name}/{c['name']}: container may run as root")
            if sc.get("readOnlyRootFilesystem") is not True:
                problems.append(f"{name}/{c['name']}: root filesystem writable")
            if sc.get("allowPrivilegeEscalation") is not False:
                problems.append(f"{name}/{c['name']}: privilege escalation allowed")
            if "ALL" not in sc.get("capabilities", {}).get("drop", []) \
                    or sc.get("capabilities", {}).get("add"):
                problems.append(f"{name}/{c['name']}: capabilities not all dropped")
            if not c.get("resources", {}).get("requests") or \
                    not c.get("resources", {}).get("limits"):
                problems.append(f"{name}/{c['name']}: no resource requests and limits")
            if not any(m["mountPath"] == "/tmp" and m["name"] in tmp_volumes
                       for m in c.get("volumeMounts", [])):
                problems.append(f"{name}/{c['name']}: no writable emptyDir at /tmp")
    check(f"every pod hardened ({label}: {len(workloads)} workloads)",
          workloads and not problems, "; ".join(problems) or "no workload rendered")


def check_service(label: str, docs: list[dict], values: dict) -> None:
    sts = [d for d in docs if d["kind"] == "StatefulSet"]
    cron = [d for d in docs if d["kind"] == "CronJob"]
    if not check(f"service mode: one StatefulSet, no CronJob ({label})",
                 len(sts) == 1 and not cron, f"{len(sts)} StatefulSets, {len(cron)} CronJobs"):
        return
    spec = pod_spec(sts[0])
    c = spec["containers"][0]
    config = config_of(docs, spec)
    grace = config.get("service", {}).get("shutdown_grace_secs", 60)
    check(f"service mode: serve, probes /healthz /readyz on 9187, listen 0.0.0.0:9187 ({label})",
          sts[0]["spec"]["replicas"] == 1
          and c["args"] == ["--config", "/etc/coffre/config.toml", "serve"]
          and c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
          and c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
          and {"name": "http", "containerPort": 9187, "protocol": "TCP"} in c["ports"]
          and config["service"]["listen"] == "0.0.0.0:9187"
          and config["state_dir"] == "/var/lib/coffre"
          and spec["terminationGracePeriodSeconds"] > grace,
          f"args {c['args']}, config service {config.get('service')}")
    restores = bool(values.get("config", {}).get("drills"))
    has_identity = "secrets/identity.age" in projected_paths(spec)
    check(f"service mode: age identity mounted iff drills are configured ({label})",
          has_identity == restores and
          ("identity_file" in config["encryption"]) == restores,
          f"drills: {restores}, identity mounted: {has_identity}")


def check_config_rendering(label: str, docs: list[dict], values: dict) -> None:
    """config.toml keeps the user's values with their TOML types (integers stay
    integers: Helm's toToml would write 3.0)."""
    cm = next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"].endswith("-config"))
    config = tomllib.loads(cm["data"]["config.toml"])
    owned = {"state_dir", "identity_file", "key_file", "password_file", "listen",
             "access_key_id_env", "secret_access_key_env", "webhook_token_env",
             "tls_cert", "tls_key", "allow_plain_http"}
    mismatches = []

    def compare(want, got, path):
        if isinstance(want, dict):
            if not want:
                return  # empty tables are left out
            if not isinstance(got, dict):
                mismatches.append(f"{path}: {got!r}")
                return
            for k, v in want.items():
                if k not in owned:
                    compare(v, got.get(k), f"{path}.{k}")
        elif want != got or type(want) is not type(got):
            mismatches.append(f"{path}: want {want!r}, got {got!r}")

    compare(values.get("config", {}), config, "config")
    check(f"config.toml round-trips the values' config, types kept ({label})",
          not mismatches, "; ".join(mismatches))


def check_cronjobs(label: str, docs: list[dict], values: dict) -> None:
    cron = [d for d in docs if d["kind"] == "CronJob"]
    check(f"cronjobs mode: no StatefulSet, Service or Ingress ({label})",
          not [d for d in docs if d["kind"] in {"StatefulSet", "Deployment", "Service", "Ingress"}])

    def component(d):
        return d["metadata"]["labels"].get("app.kubernetes.io/component")

    backups = [d for d in cron if component(d) == "backup"]
    drills = [d for d in cron if component(d) == "drill"]
    sources = values["config"]["sources"]
    want = {name: s["schedule"] for name, s in sources.items() if s.get("schedule")}
    got = {}
    for d in backups:
        args = pod_spec(d)["containers"][0]["args"]
        if args[:3] == ["--config", "/etc/coffre/config.toml", "backup"] and len(args) == 4:
            got[args[3]] = d["spec"]["schedule"]
    check(f"cronjobs mode: exactly {len(want)} backup CronJobs with the sources' schedules ({label})",
          len(backups) == len(want) == len(got) and got == want,
          f"want {want}, got {got} from {len(backups)} backup CronJobs")
    want_drills = {n: d["schedule"] for n, d in values["config"].get("drills", {}).items()}
    got_drills = {pod_spec(d)["containers"][0]["args"][-1]: d["spec"]["schedule"]
                  for d in drills if pod_spec(d)["containers"][0]["args"][2] == "drill"}
    check(f"cronjobs mode: one drill CronJob per drill ({label})",
          got_drills == want_drills, f"want {want_drills}, got {got_drills}")
    tz = values["config"].get("service", {}).get("time_zone", "UTC")
    check(f"cronjobs mode: schedules in the config's time zone, no overlap ({label})",
          all(d["spec"]["timeZone"] == tz and d["spec"]["concurrencyPolicy"] == "Forbid"
              for d in cron))

    # Least privilege: a backup never sees the age identity (neither the file nor its
    # path in the config) and only its own database password.
    leaks = []
    for d in backups:
        spec = pod_spec(d)
        source = spec["containers"][0]["args"][-1]
        paths = projected_paths(spec)
        config = config_of(docs, spec)
        if "secrets/identity.age" in paths or "identity_file" in config["encryption"]:
            leaks.append(f"{d['metadata']['name']} gets the identity")
        others = {p for p in paths if p.startswith("secrets/db/")} - {f"secrets/db/{source}.pass"}
        if others:
            leaks.append(f"{d['metadata']['name']} gets {sorted(others)}")
        for v in spec.get("volumes", []):
            if "secret" in v:
                leaks.append(f"{d['metadata']['name']} mounts a whole Secret {v['secret']}")
    check(f"backup CronJobs do not mount the age identity ({label})",
          backups and not leaks, "; ".join(leaks))
    # ... while a drill does (so the check above can see an identity when there is one).
    check(f"drill CronJobs mount the age identity ({label})",
          drills and all("secrets/identity.age" in projected_paths(pod_spec(d))
                         and config_of(docs, pod_spec(d))["encryption"].get("identity_file")
                         for d in drills))


def check_network_policy(label: str, docs: list[dict], values: dict) -> None:
    nps = [d for d in docs if d["kind"] == "NetworkPolicy"]
    if not check(f"one NetworkPolicy for every pod of the release ({label})", len(nps) == 1):
        return
    spec = nps[0]["spec"]
    np_values = values.get("networkPolicy", {})
    cidrs = {r["cidr"] for r in np_values.get("databases", []) + np_values.get("s3", [])}
    got = set()
    ok = set(spec["policyTypes"]) == {"Ingress", "Egress"}
    for rule in spec["egress"]:
        for peer in rule["to"]:
            if "ipBlock" in peer:
                got.add(peer["ipBlock"]["cidr"])
        ok &= bool(rule.get("ports")) and bool(rule.get("to"))
    api = values.get("api", {})
    ports = [9187] + ([api.get("port", 8080)] if api.get("enabled") else [])
    for rule in spec.get("ingress") or []:
        ok &= [p["port"] for p in rule["ports"]] == ports and bool(rule.get("from"))
    if values.get("mode") == "cronjobs":
        ok &= not spec.get("ingress")
    elif np_values.get("ingressFrom"):
        ok &= len(spec.get("ingress") or []) == 1
    check(f"NetworkPolicy: egress only DNS + given CIDRs, ingress only to {ports} ({label})",
          ok and got == cidrs, f"cidrs want {cidrs} got {got}, spec {spec}")


def check_api(renders: dict[str, list[dict]]) -> None:
    """The admin API: its [api] table (the chart's listen and TLS paths, the values'
    policies), its port on the pod, the Service and the NetworkPolicy, its TLS Secret
    mounted read-only, only /api/v1 on the Ingress; without TLS, allow_plain_http."""
    tls_items = [{"key": "tls.crt", "path": "secrets/api/tls.crt"},
                 {"key": "tls.key", "path": "secrets/api/tls.key"}]
    api_port = {"name": "api", "containerPort": 8080, "protocol": "TCP"}

    def parts(docs):
        sts = next(d for d in docs if d["kind"] == "StatefulSet")
        spec = pod_spec(sts)
        svc = next(d for d in docs if d["kind"] == "Service")
        return spec, spec["containers"][0], config_of(docs, spec), svc

    if "everything" in renders:
        docs = renders["everything"]
        spec, c, config, svc = parts(docs)
        want = {"listen": "0.0.0.0:8080", "tls_cert": "/etc/coffre/secrets/api/tls.crt",
                "tls_key": "/etc/coffre/secrets/api/tls.key", "session_minutes": 30,
                "password_max_age_days": 60, "token_max_days": 90}
        check("everything: [api] listen 0.0.0.0:8080 with the mounted TLS paths, policies kept",
              config.get("api") == want, f"[api] = {config.get('api')}")
        mounted = [item for v in spec.get("volumes", [])
                   for s in v.get("projected", {}).get("sources", [])
                   if s.get("secret", {}).get("name") == "coffre-api-tls"
                   for item in s["secret"].get("items", [])]
        etc = [m for m in c["volumeMounts"] if m["mountPath"] == "/etc/coffre"]
        check("everything: the StatefulSet mounts the API's TLS Secret read-only at its paths",
              mounted == tls_items and len(etc) == 1 and etc[0].get("readOnly") is True,
              f"items from coffre-api-tls: {mounted}, /etc/coffre mounts {etc}")
        check("everything: the StatefulSet exposes the API port (probes stay on http)",
              api_port in c["ports"]
              and c["livenessProbe"]["httpGet"]["port"] == "http"
              and c["readinessProbe"]["httpGet"]["port"] == "http",
              f"ports {c['ports']}")
        check("everything: the Service has the api port",
              {"name": "api", "port": 8080, "targetPort": "api", "protocol": "TCP"}
              in svc["spec"]["ports"], f"ports {svc['spec']['ports']}")
        ing = next(d for d in docs if d["kind"] == "Ingress")
        backends = [(p["path"], p["pathType"], p["backend"]["service"]["port"])
                    for r in ing["spec"]["rules"] for p in r["http"]["paths"]]
        check("everything: the Ingress routes only /api/v1, to the api port (no probes/metrics)",
              backends and all(b == ("/api/v1", "Prefix", {"name": "api"}) for b in backends),
              f"paths {backends}")
    if "api-plain-http" in renders:
        docs = renders["api-plain-http"]
        spec, c, config, svc = parts(docs)
        api = config.get("api", {})
        check("api-plain-http: [api] listen 0.0.0.0:8080, allow_plain_http = true, no TLS paths",
              api.get("listen") == "0.0.0.0:8080" and api.get("allow_plain_http") is True
              and "tls_cert" not in api and "tls_key" not in api,
              f"[api] = {api}")
        check("api-plain-http: no TLS Secret mounted, the port still exposed",
              not any(p.startswith("secrets/api/") for p in projected_paths(spec))
              and api_port in c["ports"]
              and any(p["name"] == "api" for p in svc["spec"]["ports"]),
              f"paths {sorted(projected_paths(spec))}, ports {c['ports']}")
    if "defaults" in renders:
        docs = renders["defaults"]
        spec, c, config, svc = parts(docs)
        check("defaults: no API (no [api] listen, no api port)",
              "listen" not in config.get("api", {})
              and all(p["name"] != "api" for p in c["ports"] + svc["spec"]["ports"]),
              f"[api] = {config.get('api')}")


def dump(renders: dict[str, list[dict]], out: Path) -> None:
    for label, docs in renders.items():
        folder = out / label
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "manifests.yaml").write_text(
            yaml.safe_dump_all([strip(d) for d in docs], sort_keys=False))
        for doc in docs:
            if doc["kind"] == "ConfigMap" and doc["metadata"]["name"].endswith("-config"):
                for key, text in doc["data"].items():
                    (folder / key).write_text(text)
    print(f"      (renderings written to {out})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chart", type=Path, default=ROOT / "charts/coffre")
    parser.add_argument("--dump", type=Path)
    args = parser.parse_args()
    chart_dir = args.chart.resolve()
    print(f"chart: {chart_dir}  (helm SDK {helm_python.helm_sdk_version()})")

    chart = helm_python.Chart.load(str(chart_dir))
    everything = load_values("values-everything.yaml")
    cronjobs = load_values("values-cronjobs.yaml")
    wrong = load_values("values-wrong-type.yaml")
    # The everything file as CronJobs (no HTTP there: ingress and ServiceMonitor off).
    everything_cron = deep_merge(everything, {
        "mode": "cronjobs", "ingress": {"enabled": False}, "serviceMonitor": {"enabled": False},
        "api": {"enabled": False}})
    # The API without its TLS Secret: plain HTTP, TLS terminated by the Ingress.
    api_plain = deep_merge(everything, {"api": {"tls": {"existingSecret": ""}}})
    del api_plain["ingress"]["annotations"]["nginx.ingress.kubernetes.io/backend-protocol"]
    cases = {"defaults": {}, "cronjobs": cronjobs, "everything": everything,
             "everything-as-cronjobs": everything_cron, "api-plain-http": api_plain}

    check_lint(chart_dir, {}, "defaults")
    check_lint(chart_dir, everything, "everything")
    check_lint(chart_dir, cronjobs, "cronjobs")
    check_schema(chart, {f"{k} values": v for k, v in cases.items()}, wrong)

    renders = {}
    for label, values in cases.items():
        try:
            renders[label] = render(chart, values)
            check(f"render {label}", True)
        except helm_python.HelmError as e:
            check(f"render {label}", False, str(e))
    if args.dump:
        dump(renders, args.dump)
    check_render_fails(chart, "ingress in cronjobs mode",
                       deep_merge(everything, {"mode": "cronjobs", "serviceMonitor": {"enabled": False},
                                               "api": {"enabled": False}}),
                       "ingress.enabled needs mode")
    check_render_fails(chart, "the API in cronjobs mode",
                       deep_merge(everything_cron, {"api": {"enabled": True}}),
                       "api.enabled needs mode: service")
    check_render_fails(chart, "the API without the integrity key", {"api": {"enabled": True}},
                       "secrets.integrityKey: the admin API")
    check_render_fails(chart, "the API on the probes/metrics port",
                       deep_merge(everything, {"api": {"port": 9187}}), "api.port: 9187")
    check_render_fails(chart, "Ingress paths with the API (only /api/v1 is routed)",
                       deep_merge(everything, {"ingress": {"hosts": [
                           {"host": "coffre.example.com",
                            "paths": [{"path": "/", "pathType": "Prefix"}]}]}}),
                       "routes only /api/v1")
    check_owned_api_keys(chart, everything)
    check_render_fails(chart, "a password for an unknown source",
                       deep_merge(cronjobs, {"secrets": {"databases": {"billling": {"value": "x"}}}}),
                       'no source "billling"')
    check_render_fails(chart, "a password for an sqlite source",
                       deep_merge(everything, {"secrets": {"databases": {"demo_copy": {"value": "x"}}}}),
                       "only postgres and mysql sources take a password")
    check_source_types(chart, cronjobs)
    check_render_fails(chart, "drills without the age identity",
                       deep_merge(cronjobs, {"secrets": {"identity": {"value": ""}}}),
                       "secrets.identity")

    with tempfile.TemporaryDirectory(prefix="coffre-chart-") as tmp:
        check_kubernetes_validate(renders, Path(tmp))
    check_yamllint()

    for label, docs in renders.items():
        values = cases[label]
        check_pods_hardened(label, docs)
        check_config_rendering(label, docs, values)
        check_network_policy(label, docs, values)
        if values.get("mode", "service") == "service":
            check_service(label, docs, values)
        else:
            check_cronjobs(label, docs, values)
    check_mysql_source(renders)
    check_api(renders)
    if "cronjobs" in renders:
        check_no_secret_in_configmaps("cronjobs", renders["cronjobs"])
    if "everything" in renders:
        kinds = {d["kind"] for d in renders["everything"]}
        want = {"StatefulSet", "Service", "Ingress", "ServiceMonitor", "NetworkPolicy",
                "ConfigMap", "ServiceAccount"}
        check("everything: every optional resource rendered", want <= kinds,
              f"missing {want - kinds}")
        check("everything: existing Secrets only (the chart makes none)",
              "Secret" not in kinds)

    failed = [name for ok, name, _ in results if not ok]
    print()
    print(f"chart check: {len(results) - len(failed)} passed, {len(failed)} failed"
          + (": " + "; ".join(failed) if failed else ""))
    print("PASS" if not failed else "FAIL")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
