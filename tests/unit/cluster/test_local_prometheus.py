"""LocalPrometheus runs Debian's real `prometheus` binary (scripts/install.sh installs it)
against a real exporter on loopback: prometheus_client serving series named as Ray exports
the product's metrics."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

import pytest
import yaml
from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

from cluster.prometheus import ALERT_RULES, LocalPrometheus, PrometheusError

T = TypeVar("T")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _eventually(check: Callable[[], T | None], timeout_s: float = 15.0) -> T:
    """``check()``'s first truthy answer (Prometheus applies its targets ~5 s after start)."""
    deadline = time.monotonic() + timeout_s
    while True:
        answer = check()
        if answer:
            return answer
        assert time.monotonic() < deadline, "no answer in time"
        time.sleep(0.2)


@pytest.fixture
def exporter() -> Iterator[str]:
    """A loopback metrics endpoint: 3 replied turns, and a gateway that cannot reach Redis."""
    registry = CollectorRegistry()
    turns = Counter("ray_salesboost_turns", "turns", ["mode", "outcome"], registry=registry)
    turns.labels(mode="roleplay", outcome="replied").inc(3)
    dependency_up = Gauge("ray_salesboost_dependency_up", "up", ["dependency"], registry=registry)
    dependency_up.labels(dependency="database").set(1)
    dependency_up.labels(dependency="redis").set(0)
    port = _free_port()
    server, thread = start_http_server(port, addr="127.0.0.1", registry=registry)
    yield f"127.0.0.1:{port}"
    server.shutdown()
    thread.join(timeout=5)


def test_scrapes_the_target_and_evaluates_the_alert_rules(exporter, tmp_path):
    prometheus = LocalPrometheus(
        targets=[exporter], storage_dir=tmp_path, port=_free_port(), scrape_interval_s=0.5
    )
    with prometheus:
        assert prometheus.running
        turns = _eventually(lambda: prometheus.query("ray_salesboost_turns_total"))
        assert [(t.labels["job"], t.labels["outcome"], t.value) for t in turns] == [
            ("ray", "replied", 3.0)
        ]

        expected = {rule["alert"] for rule in _alert_rules()}
        loaded = prometheus.rules()
        assert {rule.group for rule in loaded} == {"salesboost"}
        assert {rule.name for rule in loaded if rule.type == "alerting"} == expected

        # Redis unreachable: the real rule goes pending at once (it fires after its `for:`).
        def redis_alert() -> list:
            return [a for a in prometheus.alerts() if a.name == "SalesBoostDependencyDown"]

        (alert,) = _eventually(redis_alert)
        assert alert.state == "pending"
        assert alert.labels["dependency"] == "redis"
        assert alert.annotations["runbook_url"] == "docs/runbook.md#salesboostdependencydown"
        assert all(rule.health == "ok" for rule in prometheus.rules())
    assert not prometheus.running
    assert (tmp_path / "data").is_dir()


def _alert_rules() -> list[dict]:
    groups = yaml.safe_load(ALERT_RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def test_config_scrapes_the_targets_as_job_ray_with_the_rules(tmp_path):
    prometheus = LocalPrometheus(targets=["10.0.0.5:8080", "10.0.0.6:8080"], storage_dir=tmp_path)
    config = prometheus.config()
    assert config["global"] == {"scrape_interval": "5000ms", "evaluation_interval": "5000ms"}
    assert config["rule_files"] == [str(ALERT_RULES)]
    (job,) = config["scrape_configs"]
    assert job["job_name"] == "ray"
    assert job["static_configs"] == [{"targets": ["10.0.0.5:8080", "10.0.0.6:8080"]}]


def test_a_bad_query_raises_with_prometheus_reason(tmp_path):
    prometheus = LocalPrometheus(targets=[], storage_dir=tmp_path, port=_free_port())
    with prometheus, pytest.raises(PrometheusError, match="parse error"):
        prometheus.query("sum(")


def test_start_fails_with_the_log_when_a_rule_file_is_broken(tmp_path):
    broken = tmp_path / "broken.yml"
    broken.write_text("groups:\n  - name: x\n    rules:\n      - alert: A\n        expr: sum(\n")
    prometheus = LocalPrometheus(
        targets=[], storage_dir=tmp_path / "prom", port=_free_port(), rule_files=[broken]
    )
    with pytest.raises(PrometheusError, match="exited") as failure:
        prometheus.start()
    assert "broken.yml" in str(failure.value)
    assert not prometheus.running


def test_start_refuses_a_port_another_server_holds(tmp_path):
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        prometheus = LocalPrometheus(targets=[], storage_dir=tmp_path, port=port)
        with pytest.raises(PrometheusError, match="taken"):
            prometheus.start()
    assert not prometheus.running


def test_start_says_how_to_install_a_missing_binary(tmp_path):
    prometheus = LocalPrometheus(
        targets=[], storage_dir=tmp_path, port=_free_port(), binary="prometheus-not-installed"
    )
    with pytest.raises(PrometheusError, match="install"):
        prometheus.start()
