"""Observability in the rendered manifests: Serve's tracing and logging in serveConfigV2, the
exporter's and loggers' environment in every Ray container, Ray's metrics port exposed and
scraped by a PodMonitor, and alerts.yml's rules as a PrometheusRule."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from pydantic import ValidationError

from cluster.render import (
    ALERT_RULES,
    PROFILES,
    SECRET_NAME,
    URL_WITH_PASSWORD,
    VALUES_DIR,
    ObservabilityValues,
    RenderError,
    load_values,
    render,
)
from serve_apps.telemetry.tracing import EXPORTER_IMPORT_PATH

EXPECTED_ENV = (
    "SALESBOOST_TRACE_EXPORTER",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "SALESBOOST_LOG_FORMAT",
    "SALESBOOST_LOG_LEVEL",
)


@pytest.fixture(scope="module", params=PROFILES)
def rendered(request) -> tuple[str, dict[str, str]]:
    return request.param, render(request.param)


def _docs(text: str) -> list[dict]:
    return [d for d in yaml.safe_load_all(text) if d]


def _one(files: dict[str, str], name: str) -> dict:
    (doc,) = _docs(files[name])
    return doc


def _ray_pod_templates(files: dict[str, str]) -> list[dict]:
    cluster = _one(files, "rayservice.yaml")["spec"]["rayClusterConfig"]
    return [cluster["headGroupSpec"]["template"]] + [
        group["template"] for group in cluster["workerGroupSpecs"]
    ]


def _selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """A Kubernetes label selector, as the API server evaluates it."""
    if not selector.get("matchLabels", {}).items() <= labels.items():
        return False
    for expr in selector.get("matchExpressions", []):
        key, operator = expr["key"], expr["operator"]
        present = key in labels
        ok = {
            "In": present and labels.get(key) in expr.get("values", []),
            "NotIn": not present or labels[key] not in expr.get("values", []),
            "Exists": present,
            "DoesNotExist": not present,
        }[operator]
        if not ok:
            return False
    return True


def test_the_label_selector_helper_rejects_what_it_should():
    selector = {
        "matchLabels": {"a": "1"},
        "matchExpressions": [{"key": "b", "operator": "In", "values": ["x"]}],
    }
    assert _selects(selector, {"a": "1", "b": "x", "c": "y"})
    assert not _selects(selector, {"a": "1", "b": "z"})
    assert not _selects(selector, {"a": "2", "b": "x"})
    assert not _selects(selector, {"a": "1"})


def test_serve_config_v2_has_the_values_tracing_and_logging(rendered):
    from ray.serve.schema import ServeDeploySchema

    profile, files = rendered
    _, values = load_values(profile)
    text = _one(files, "rayservice.yaml")["spec"]["serveConfigV2"]
    config = ServeDeploySchema.model_validate(yaml.safe_load(text))
    assert config.tracing_config is not None and config.logging_config is not None
    assert config.tracing_config.enabled is True
    assert config.tracing_config.exporter_import_path == EXPORTER_IMPORT_PATH
    assert config.tracing_config.sampling_ratio == values.observability.tracing.sampling_ratio
    assert config.logging_config.encoding == "JSON"
    assert config.logging_config.log_level == values.observability.log_level


def test_production_samples_a_small_share_by_default():
    observability = ObservabilityValues.model_validate(
        {
            "tracing": {"otlp_endpoint": "http://collector:4317"},
            "runbook_base_url": "https://example.com/repo/",
        }
    )
    assert observability.tracing.sampling_ratio == 0.05
    assert observability.tracing.exporter == "otlp"
    assert observability.metrics_port == 8080


def test_every_ray_container_gets_the_exporter_and_logger_environment(rendered):
    profile, files = rendered
    _, values = load_values(profile)
    for template in _ray_pod_templates(files):
        (container,) = template["spec"]["containers"]
        names = [item["name"] for item in container["env"]]
        assert len(names) == len(set(names)), f"{container['name']}: a variable twice"
        env = {item["name"]: item.get("value") for item in container["env"]}
        assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == values.observability.tracing.otlp_endpoint
        assert env["SALESBOOST_TRACE_EXPORTER"] == "otlp"
        assert env["SALESBOOST_LOG_FORMAT"] == "json"
        assert env["SALESBOOST_LOG_LEVEL"] == values.observability.log_level
        endpoint = env["OTEL_EXPORTER_OTLP_ENDPOINT"]
        assert urlsplit(endpoint).scheme in ("http", "https") and urlsplit(endpoint).hostname
        for name in EXPECTED_ENV:
            assert not SECRET_NAME.search(name)
            assert not URL_WITH_PASSWORD.search(env[name])


def test_rays_metrics_port_is_exposed_on_every_ray_pod(rendered):
    profile, files = rendered
    _, values = load_values(profile)
    cluster = _one(files, "rayservice.yaml")["spec"]["rayClusterConfig"]
    groups = [cluster["headGroupSpec"], *cluster["workerGroupSpecs"]]
    for group in groups:
        port = group["rayStartParams"]["metrics-export-port"]
        assert port == str(values.observability.metrics_port)
        (container,) = group["template"]["spec"]["containers"]
        by_name = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert by_name["metrics"] == int(port)
        numbers = [p["containerPort"] for p in container["ports"]]
        assert len(numbers) == len(set(numbers))


def test_the_pod_monitor_scrapes_every_ray_pod_and_nothing_else(rendered):
    _, files = rendered
    monitor = _one(files, "podmonitor.yaml")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["kind"] == "PodMonitor"
    service = _one(files, "rayservice.yaml")
    assert monitor["metadata"]["namespace"] == service["metadata"]["namespace"]
    selector = monitor["spec"]["selector"]
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    assert endpoint["interval"] == "15s"
    for template in _ray_pod_templates(files):
        assert _selects(selector, template["metadata"]["labels"]), template["metadata"]
        (container,) = template["spec"]["containers"]
        assert endpoint["port"] in {p["name"] for p in container["ports"]}
    job_pod = _one(files, "migrate-job.yaml")["spec"]["template"]
    assert not _selects(selector, job_pod["metadata"]["labels"])


def _alert_rules_file() -> list[dict]:
    return yaml.safe_load(ALERT_RULES.read_text())["groups"]


def test_the_prometheus_rule_is_alerts_yml_with_absolute_runbook_links(rendered):
    profile, files = rendered
    _, values = load_values(profile)
    base = values.observability.runbook_base_url
    rule = _one(files, "prometheusrule.yaml")
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert rule["kind"] == "PrometheusRule"
    groups = rule["spec"]["groups"]
    source = _alert_rules_file()
    links = 0
    for rendered_group, source_group in zip(groups, source, strict=True):
        for rendered_rule, source_rule in zip(
            rendered_group["rules"], source_group["rules"], strict=True
        ):
            relative = source_rule.get("annotations", {}).get("runbook_url")
            if relative is None:
                assert rendered_rule == source_rule
                continue
            url = rendered_rule["annotations"]["runbook_url"]
            assert url == base + relative and urlsplit(url).scheme == "https"
            links += 1
            rendered_rule["annotations"]["runbook_url"] = relative
    # Everything else, rules and all, is the file's.
    assert groups == source
    assert links == sum("alert" in r for g in source for r in g["rules"])


# --- bad observability values -------------------------------------------------------------


def _values_dir(tmp_path: Path, monkeypatch, profile: str, change) -> Path:
    """A copy of the profile's values, changed, in a folder that `load_values` reads."""
    data = yaml.safe_load((VALUES_DIR / f"{profile}.yaml").read_text())
    change(data)
    (tmp_path / f"{profile}.yaml").write_text(yaml.safe_dump(data))
    monkeypatch.setattr("cluster.render.VALUES_DIR", tmp_path)
    return tmp_path / f"{profile}.yaml"


def _set(*keys: str, value: Any):
    def change(data: dict) -> None:
        node = data
        for key in keys[:-1]:
            node = node[key]
        node[keys[-1]] = value

    return change


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            _set("env", "SALESBOOST_LOG_LEVEL", value="DEBUG"),
            "env.SALESBOOST_LOG_LEVEL is set by observability.log_level",
        ),
        (
            _set("env", "OTEL_EXPORTER_OTLP_ENDPOINT", value="http://other:4317"),
            "env.OTEL_EXPORTER_OTLP_ENDPOINT is set by observability.tracing.otlp_endpoint",
        ),
        (
            _set("env", "SALESBOOST_LOG_FORMAT", value="text"),
            "env.SALESBOOST_LOG_FORMAT is set by the renderer",
        ),
        (
            _set("observability", "tracing", "otlp_endpoint", value="otel-collector:4317"),
            "observability.tracing.otlp_endpoint",
        ),
        (
            _set(
                "observability",
                "tracing",
                "otlp_endpoint",
                value="https://user:hunter2@collector:4317",
            ),
            "credentials",
        ),
        (_set("observability", "tracing", "exporter", value="file"), "tracing.exporter"),
        (_set("observability", "tracing", "otlp_endpoint", value=None), "without an otlp_endpoint"),
        (_set("observability", "metrics_port", value=8000), "the container's 'serve' port"),
        (_set("observability", "runbook_base_url", value="docs/"), "runbook_base_url"),
        (
            _set("observability", "prometheus_labels", value={"app.kubernetes.io/name": "x"}),
            "the renderer sets the app.kubernetes.io/ labels",
        ),
    ],
)
def test_bad_observability_values_stop_the_render(tmp_path, monkeypatch, change, message):
    path = _values_dir(tmp_path, monkeypatch, "cpu", change)
    with pytest.raises(RenderError) as err:
        render("cpu")
    assert str(path) in str(err.value)
    assert message in str(err.value)


def test_prometheus_labels_reach_both_monitoring_objects(tmp_path, monkeypatch):
    _values_dir(
        tmp_path,
        monkeypatch,
        "gpu",
        _set("observability", "prometheus_labels", value={"release": "kps"}),
    )
    files = render("gpu")
    for name in ("podmonitor.yaml", "prometheusrule.yaml"):
        labels = _one(files, name)["metadata"]["labels"]
        assert labels["release"] == "kps"
        assert labels["app.kubernetes.io/instance"] == "salesboost"


def test_tracing_off_sets_no_exporter_and_tells_serve(tmp_path, monkeypatch):
    def off(data: dict) -> None:
        data["observability"]["tracing"] = {"enabled": False}

    _values_dir(tmp_path, monkeypatch, "cpu", off)
    files = render("cpu")
    config = yaml.safe_load(_one(files, "rayservice.yaml")["spec"]["serveConfigV2"])
    assert config["tracing_config"]["enabled"] is False
    for template in _ray_pod_templates(files):
        (container,) = template["spec"]["containers"]
        names = {item["name"] for item in container["env"]}
        assert "OTEL_EXPORTER_OTLP_ENDPOINT" not in names
        assert "SALESBOOST_TRACE_EXPORTER" not in names
        assert "SALESBOOST_LOG_LEVEL" in names


def test_observability_values_reject_unknown_fields():
    with pytest.raises(ValidationError, match="sampling_rate"):
        ObservabilityValues.model_validate(
            {
                "tracing": {"otlp_endpoint": "http://collector:4317", "sampling_rate": 0.1},
                "runbook_base_url": "https://example.com/repo/",
            }
        )
