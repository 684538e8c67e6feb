"""A real Prometheus on one machine: Debian's ``prometheus`` binary as a child process.

It scrapes the given targets (Ray's metrics endpoints: the product's metrics beside Ray
Serve's and vLLM's) with SalesBoost's alert rules loaded, so metrics and alerts are real
without a monitoring stack. The package's own service is never used (a container has no
systemd, and a host's service would own port 9090 and its own configuration): the binary
runs with a configuration generated here, its data under a folder given by the caller.
"""

from __future__ import annotations

import json
import logging
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field

log = logging.getLogger("salesboost.prometheus")

ALERT_RULES = Path(__file__).resolve().parent / "observability" / "alerts.yml"
SCRAPE_JOB = "ray"


class PrometheusError(RuntimeError):
    """Prometheus is missing, could not start, or refused a request."""


class Sample(BaseModel):
    """One series of an instant query's answer."""

    labels: dict[str, str]
    value: float
    timestamp: float


class Alert(BaseModel):
    """An alert Prometheus holds now: ``pending`` (inside its ``for:``) or ``firing``."""

    model_config = ConfigDict(populate_by_name=True)

    name: str
    state: str
    labels: dict[str, str]
    annotations: dict[str, str]
    value: float
    active_at: str | None = Field(default=None, alias="activeAt")


class Rule(BaseModel):
    """A loaded rule: ``alerting`` or ``recording``, with its last evaluation's health."""

    model_config = ConfigDict(populate_by_name=True)

    group: str
    name: str
    type: str
    query: str
    health: str
    last_error: str | None = Field(default=None, alias="lastError")
    labels: dict[str, str] = Field(default_factory=dict)


@dataclass
class LocalPrometheus:
    """Prometheus scraping ``targets`` (``host:port``) as job ``ray``, answering on
    ``127.0.0.1:port``, keeping its configuration, data and log under ``storage_dir``."""

    targets: Sequence[str]
    storage_dir: Path
    port: int = 9090
    scrape_interval_s: float = 5.0
    rule_files: Sequence[Path] = (ALERT_RULES,)
    binary: str = "prometheus"
    ready_timeout_s: float = 30.0
    _process: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def config_file(self) -> Path:
        return self.storage_dir / "prometheus.yml"

    @property
    def log_file(self) -> Path:
        return self.storage_dir / "prometheus.log"

    def config(self) -> dict[str, Any]:
        """The configuration it runs with (written to ``config_file`` by ``start``)."""
        interval = f"{round(self.scrape_interval_s * 1000)}ms"
        return {
            # Rules are evaluated as often as samples arrive: an alert's `for:` then counts
            # in scrapes, and a test's alert is not a whole default minute late.
            "global": {"scrape_interval": interval, "evaluation_interval": interval},
            "rule_files": [str(Path(path).resolve()) for path in self.rule_files],
            "scrape_configs": [
                {"job_name": SCRAPE_JOB, "static_configs": [{"targets": list(self.targets)}]}
            ],
        }

    def start(self) -> None:
        """Start the binary and wait until it answers ``/-/ready`` (rules loaded)."""
        if self._process is not None:
            return
        binary = shutil.which(self.binary)
        if binary is None:
            raise PrometheusError(
                f"{self.binary!r} not found: install Debian's package `prometheus` "
                "(scripts/install.sh does)"
            )
        if not _port_is_free(self.port):
            # Another Prometheus there (the package's own service listens on 9090) would
            # answer the readiness check in this one's place.
            raise PrometheusError(f"127.0.0.1:{self.port} is taken; choose another port")
        self.storage_dir.mkdir(parents=True, exist_ok=True)
        self.config_file.write_text(yaml.safe_dump(self.config(), sort_keys=False))
        command = [
            binary,
            f"--config.file={self.config_file}",
            f"--storage.tsdb.path={self.storage_dir / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
        ]
        with self.log_file.open("ab") as log_out:
            # Its own session: a Ctrl-C meant for the caller reaches it through stop().
            self._process = subprocess.Popen(
                command, stdout=log_out, stderr=subprocess.STDOUT, start_new_session=True
            )
        log.info("prometheus starting on %s (log %s)", self.url, self.log_file)
        try:
            self._wait_until_ready()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Terminate the child (it flushes its data on SIGTERM); kill it if it lingers."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def query(self, expr: str) -> list[Sample]:
        """An instant query now: one sample per series (a scalar comes as one, unlabelled)."""
        data = self._api("query", query=expr)
        if data["resultType"] in ("scalar", "string"):
            timestamp, value = data["result"]
            return [Sample(labels={}, value=float(value), timestamp=float(timestamp))]
        return [
            Sample(
                labels=series["metric"],
                value=float(series["value"][1]),
                timestamp=float(series["value"][0]),
            )
            for series in data["result"]
        ]

    def alerts(self) -> list[Alert]:
        """Alerts pending or firing now."""
        return [
            Alert(
                name=alert["labels"]["alertname"],
                state=alert["state"],
                labels=alert["labels"],
                annotations=alert.get("annotations", {}),
                value=float(alert["value"]),
                activeAt=alert.get("activeAt"),
            )
            for alert in self._api("alerts")["alerts"]
        ]

    def rules(self) -> list[Rule]:
        """Every loaded rule, recording and alerting, in file order."""
        return [
            Rule(group=group["name"], **rule)
            for group in self._api("rules")["groups"]
            for rule in group["rules"]
        ]

    def _api(self, endpoint: str, **params: str) -> Any:
        url = f"{self.url}/api/v1/{endpoint}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                body = json.load(response)
        except urllib.error.HTTPError as error:  # a bad query: Prometheus says why
            body = json.load(error)
        if body.get("status") != "success":
            raise PrometheusError(f"{endpoint}: {body.get('errorType')}: {body.get('error')}")
        return body["data"]

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + self.ready_timeout_s
        while True:
            assert self._process is not None
            if self._process.poll() is not None:
                raise PrometheusError(
                    f"prometheus exited with {self._process.returncode}:\n{self._log_tail()}"
                )
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if time.monotonic() > deadline:
                raise PrometheusError(
                    f"prometheus not ready after {self.ready_timeout_s:.0f} s:\n{self._log_tail()}"
                )
            time.sleep(0.1)

    def _log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def __enter__(self) -> LocalPrometheus:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # As Prometheus binds (Go sets SO_REUSEADDR): a closed socket's TIME_WAIT is no owner.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True
