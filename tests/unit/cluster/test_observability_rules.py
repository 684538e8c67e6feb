"""The alert rules, their runbook and the Grafana dashboards (cluster/observability/).

promtool (Debian's package `prometheus`, which scripts/install.sh installs) checks and
unit-tests the rules; every metric the rules and the dashboard name must exist: in the
product's catalog (serve_apps/telemetry/metrics.py) or among the Ray Serve and vLLM names
found in the installed packages' own code.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from serve_apps.telemetry import metrics as catalog
from tests.unit.cluster.conftest import REPO

OBSERVABILITY = REPO / "cluster" / "observability"
ALERTS = OBSERVABILITY / "alerts.yml"
ALERT_TESTS = OBSERVABILITY / "alerts_test.yml"
DASHBOARD = OBSERVABILITY / "grafana" / "salesboost.json"
RUNBOOK = REPO / "docs" / "runbook.md"

# Ray Serve's and vLLM's names as Prometheus sees them, used by the rules or the dashboard.
# test_known_ray_and_vllm_names_exist_in_the_installed_code finds each in Ray's or vLLM's
# source, so a renamed metric fails here rather than leaving an alert that never fires.
RAY_SERVE_NAMES = {
    "ray_serve_deployment_replica_healthy",
    "ray_serve_autoscaling_target_replicas",
}
VLLM_NAMES = {
    "ray_vllm_num_requests_waiting",
    "ray_vllm_num_requests_running",
    "ray_vllm_time_to_first_token_seconds_bucket",
}
# Prometheus's own series of its alerts' states.
PROMETHEUS_NAMES = {"ALERTS"}
HISTOGRAM_SUFFIXES = ("_bucket", "_count", "_sum")


def _promtool(*args: str, cwd: Path = OBSERVABILITY) -> subprocess.CompletedProcess[str]:
    promtool = shutil.which("promtool")
    assert promtool, (
        "promtool not found: install Debian's package `prometheus` (scripts/install.sh)"
    )
    return subprocess.run(
        [promtool, *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )


@cache
def _rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def _alert_rules() -> list[dict[str, Any]]:
    return [rule for rule in _rules() if "alert" in rule]


def _dashboard_targets() -> list[tuple[str, dict[str, Any]]]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [
        (panel["title"], target)
        for panel in dashboard["panels"]
        for target in panel.get("targets", [])
    ]


def product_names() -> set[str]:
    """The catalog's names as scraped: Ray's prefix, and a histogram's series suffixes."""
    registered = {
        value
        for name, value in vars(catalog).items()
        if name.isupper() and isinstance(value, str) and value.startswith("salesboost_")
    }
    assert len(registered) >= 14
    return {f"ray_{name}{suffix}" for name in registered for suffix in ("", *HISTOGRAM_SUFFIXES)}


_PROMQL_KEYWORDS = {"and", "or", "unless", "bool", "offset", "inf", "nan"}


def metric_names(expr: str) -> set[str]:
    """The metric (or recorded series) names a PromQL expression selects."""
    expr = re.sub(r"#.*", "", expr)
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    expr = re.sub(r"\{[^}]*\}", "", expr)  # label matchers
    expr = re.sub(r"\[[^\]]*\]", "", expr)  # ranges and subqueries, Grafana's $__rate_interval
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", expr)
    names = set()
    for match in re.finditer(r"(?<![\w.$])([a-zA-Z_:][\w:]*)(\s*\()?", expr):
        word, is_call = match.group(1), match.group(2)
        if not is_call and word.lower() not in _PROMQL_KEYWORDS:
            names.add(word)
    return names


def test_metric_names_finds_selectors_and_skips_functions_labels_and_numbers():
    expr = (
        "histogram_quantile(0.95, sum by (le, mode) "
        '(rate(ray_a_bucket{outcome="x"}[$__rate_interval])))'
        " / on() group_left() sum(rate(ray_b_total[5m])) > 1.5e3 and bool ALERTS"
        " unless max(ray_c) by (deployment) offset 5m"
    )
    assert metric_names(expr) == {"ray_a_bucket", "ray_b_total", "ALERTS", "ray_c"}


def test_promtool_check_rules_passes():
    result = _promtool("check", "rules", ALERTS.name)
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_unit_tests_pass():
    result = _promtool("test", "rules", ALERT_TESTS.name)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_has_a_firing_and_a_quiet_case_in_the_unit_tests():
    cases = [
        case
        for test in yaml.safe_load(ALERT_TESTS.read_text())["tests"]
        for case in test.get("alert_rule_test", [])
    ]
    for name in {rule["alert"] for rule in _alert_rules()}:
        mine = [case for case in cases if case["alertname"] == name]
        assert any(case["exp_alerts"] for case in mine), f"{name}: no case where it fires"
        assert any(not case["exp_alerts"] for case in mine), f"{name}: no case where it is quiet"


def _github_anchor(heading: str) -> str:
    """The anchor GitHub gives a Markdown heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _runbook_sections() -> dict[str, str]:
    sections: dict[str, str] = {}
    anchor = None
    for line in RUNBOOK.read_text().splitlines():
        heading = re.match(r"^#{1,6}\s+(.+)$", line)
        if heading:
            anchor = _github_anchor(heading.group(1))
            sections[anchor] = ""
        elif anchor:
            sections[anchor] += line + "\n"
    return sections


def test_every_alert_has_its_labels_annotations_and_runbook_section():
    sections = _runbook_sections()
    for rule in _alert_rules():
        name = rule["alert"]
        assert rule["labels"]["severity"] in ("warning", "critical"), name
        annotations = rule["annotations"]
        assert annotations["summary"] and annotations["description"], name
        path, _, anchor = annotations["runbook_url"].partition("#")
        assert path == "docs/runbook.md", name
        assert anchor == name.lower(), name
        assert anchor in sections, f"{name}: no heading for #{anchor} in docs/runbook.md"
        for part in ("**What it means.**", "**Confirm.**", "**What to do.**"):
            assert part in sections[anchor], f"{name}: runbook section lacks {part}"


def test_alerts_name_only_known_metrics():
    recorded = {rule["record"] for rule in _rules() if "record" in rule}
    known = product_names() | RAY_SERVE_NAMES | VLLM_NAMES | recorded
    for rule in _rules():
        names = metric_names(rule["expr"])
        assert names, f"no metric found in {rule['expr']!r}"
        assert names <= known, f"{rule.get('alert') or rule['record']}: unknown {names - known}"


def test_dashboard_names_only_known_metrics_and_charts_every_product_metric():
    known = product_names() | RAY_SERVE_NAMES | VLLM_NAMES | PROMETHEUS_NAMES
    used: set[str] = set()
    for title, target in _dashboard_targets():
        names = metric_names(target["expr"])
        assert names, f"{title}: no metric found in {target['expr']!r}"
        assert names <= known, f"{title}: unknown {names - known}"
        used |= names
    for name in {n for n in product_names() if not n.endswith(HISTOGRAM_SUFFIXES)}:
        charted = {name, *(name + suffix for suffix in HISTOGRAM_SUFFIXES)}
        assert used & charted, f"the dashboard charts nothing of {name}"


def _source(package: str, relative: str) -> str:
    spec = importlib.util.find_spec(package)  # finds the package without importing it
    assert spec and spec.submodule_search_locations, f"{package} is not installed"
    root = Path(next(iter(spec.submodule_search_locations)))
    return "\n".join(path.read_text() for path in sorted(root.glob(relative)))


def test_known_ray_and_vllm_names_exist_in_the_installed_code():
    serve_code = _source("ray", "serve/_private/*.py")
    for name in RAY_SERVE_NAMES:
        assert f'"{name.removeprefix("ray_")}"' in serve_code, f"Ray Serve registers no {name}"
    # vLLM registers "vllm:<name>"; Ray's metrics agent exports it as ray_vllm_<name>.
    vllm_code = _source("vllm", "v1/metrics/*.py")
    for name in VLLM_NAMES:
        base = re.sub(r"_(bucket|count|sum)$", "", name.removeprefix("ray_vllm_"))
        assert f'"vllm:{base}"' in vllm_code, f"vLLM registers no vllm:{base}"


def test_dashboard_exprs_are_valid_promql(tmp_path):
    # promtool parses PromQL in rule files: each panel query becomes a recording rule.
    rules = [
        {
            "record": f"dashboard:{index}",
            "expr": target["expr"].replace("$__rate_interval", "5m"),
        }
        for index, (_, target) in enumerate(_dashboard_targets())
    ]
    (tmp_path / "dashboard_rules.yml").write_text(
        yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]})
    )
    result = _promtool("check", "rules", "dashboard_rules.yml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_dashboard_uses_its_datasource_variable_everywhere():
    dashboard = json.loads(DASHBOARD.read_text())
    assert 36 <= dashboard["schemaVersion"] <= 41
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}", panel["title"]


def test_export_writes_ray_serve_and_llm_dashboards_beside_the_product_one(tmp_path):
    result = subprocess.run(
        [sys.executable, str(OBSERVABILITY / "export_ray_dashboards.py"), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    uids = {path.name: json.loads(path.read_text())["uid"] for path in tmp_path.glob("*.json")}
    assert uids["serve_grafana_dashboard.json"] == "rayServeDashboard"
    assert uids["serve_llm_grafana_dashboard.json"] == "rayServeLlmDashboard"
    assert "serve_deployment_grafana_dashboard.json" in uids
    assert uids["salesboost.json"] == "salesboost-product"
    # The product dashboard's links open Ray's by uid.
    links = json.loads(DASHBOARD.read_text())["links"]
    for link in links:
        assert link["url"].removeprefix("/d/") in uids.values(), link
