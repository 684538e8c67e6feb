"""KubeRay manifests rendered from a Serve config file and the cluster values beside it.

``salesboost cluster render --profile gpu --out cluster/k8s/`` writes ``cluster/k8s/gpu/``:

- ``rayservice.yaml``: a ``ray.io/v1`` RayService whose ``serveConfigV2`` is the profile's
  Serve config (the one ``salesboost up`` deploys), a head that runs no replicas, worker
  groups with the in-tree autoscaler, GCS fault tolerance on an external Redis, and the
  Service in front of Serve's proxies (``serveService``);
- ``ingress.yaml``: the Ingress, with timeouts that keep a conversation's WebSocket open;
- ``pdb.yaml``: a PodDisruptionBudget per worker group;
- ``migrate-job.yaml``: the Job that applies the database migrations before a rollout;
- ``podmonitor.yaml``: a Prometheus Operator PodMonitor that scrapes Ray's metrics endpoint
  on every Ray pod (the product's metrics, Serve's and vLLM's);
- ``prometheusrule.yaml``: a PrometheusRule holding ``cluster/observability/alerts.yml``'s
  groups, with absolute runbook links.

Everything is checked before anything is written: the Serve config against Ray Serve's
schema and the SalesBoost builder's arguments, every model config it names against the
profile's accelerator, every secret as a ``secretKeyRef``.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urljoin, urlsplit

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from cluster.local_stack import SERVE_TUNING
from cluster.serve_config import (
    ServeConfigError,
    check_accelerators,
    load_serve_config,
    raise_first,
    with_model_applications,
)
from serve_apps.telemetry.logs import LOG_FORMAT_ENV, LOG_LEVEL_ENV
from serve_apps.telemetry.tracing import EXPORTER_ENV, TracingConfig

REPO = Path(__file__).resolve().parent.parent
VALUES_DIR = REPO / "cluster" / "values"
PROFILES = ("cpu", "gpu")
SERVE_PORT = 8000
# The Ray container's ports by name; the metrics port is the values' (observability).
RAY_PORTS = {"gcs-server": 6379, "dashboard": 8265, "client": 10001, "serve": SERVE_PORT}
METRICS_PORT_NAME = "metrics"
SCRAPE_INTERVAL = "15s"
APP_LABEL = "app.kubernetes.io/name"
ALERT_RULES = REPO / "cluster" / "observability" / "alerts.yml"
# The OpenTelemetry SDK's own variable: the OTLP exporter reads it in every Serve process.
OTLP_ENDPOINT_ENV = "OTEL_EXPORTER_OTLP_ENDPOINT"
# Environment variables the observability section sets, and where: values.env may not.
OBSERVABILITY_ENV = {
    EXPORTER_ENV: "observability.tracing",
    OTLP_ENDPOINT_ENV: "observability.tracing.otlp_endpoint",
    LOG_FORMAT_ENV: "the renderer (always json on the cluster)",
    LOG_LEVEL_ENV: "observability.log_level",
}

# Environment variables that hold credentials: only ever by reference to a Secret.
SECRET_NAME = re.compile(r"(KEY|TOKEN|PASSWORD|SECRET|CREDENTIAL|DATABASE_URL|REDIS_URL)")
URL_WITH_PASSWORD = re.compile(r"://[^/\s:@]+:[^/\s@]+@")


class SecretKeyRef(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(..., min_length=1, description="The Secret's name.")
    key: str = Field(..., min_length=1, description="The key inside it.")
    optional: bool = Field(False, description="Start without it (HF_TOKEN for open models).")

    def ref(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "key": self.key}
        if self.optional:
            out["optional"] = True
        return {"secretKeyRef": out}


class HeadValues(BaseModel):
    model_config = ConfigDict(extra="forbid")

    cpu: str = Field("4", description="The head pod's CPU (it runs Ray's control plane only).")
    memory: str = Field("16Gi", description="The head pod's memory.")
    node_selector: dict[str, str] = Field(default_factory=dict)
    tolerations: list[dict[str, Any]] = Field(default_factory=list)


class WorkerGroupValues(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(..., pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    replicas: int = Field(1, ge=0, description="Pods at creation.")
    min_replicas: int = Field(1, ge=0, description="The autoscaler keeps at least this many.")
    max_replicas: int = Field(1, ge=1, description="The autoscaler adds up to this many.")
    cpu: int = Field(..., ge=1, description="CPUs per pod (Ray's num-cpus there too).")
    memory: str = Field(..., description="Memory per pod.")
    gpus: int = Field(0, ge=0, le=16, description="nvidia.com/gpu per pod.")
    accelerator_type: str | None = Field(None, description="Ray accelerator type (H100).")
    ray_resources: dict[str, float] = Field(
        default_factory=dict, description="Custom Ray resources each pod offers."
    )
    node_selector: dict[str, str] = Field(default_factory=dict)
    tolerations: list[dict[str, Any]] = Field(default_factory=list)

    @model_validator(mode="after")
    def _bounds(self) -> WorkerGroupValues:
        if not self.min_replicas <= self.replicas <= self.max_replicas:
            raise ValueError(
                f"worker group {self.name!r}: need min_replicas <= replicas <= max_replicas, "
                f"got {self.min_replicas}, {self.replicas}, {self.max_replicas}"
            )
        if self.accelerator_type and not self.gpus:
            raise ValueError(f"worker group {self.name!r}: accelerator_type without gpus")
        return self

    def offers(self) -> dict[str, float]:
        """The Ray resources one pod of this group offers to replicas."""
        out: dict[str, float] = {"CPU": float(self.cpu), **self.ray_resources}
        if self.gpus:
            out["GPU"] = float(self.gpus)
        if self.accelerator_type:
            out[f"accelerator_type:{self.accelerator_type}"] = 1.0
        return out


class GcsFaultToleranceValues(BaseModel):
    model_config = ConfigDict(extra="forbid")

    redis_address: str = Field(..., min_length=1, description="host:port of the GCS Redis.")
    password: SecretKeyRef


class IngressValues(BaseModel):
    model_config = ConfigDict(extra="forbid")

    host: str
    class_name: str = "nginx"
    tls_secret: str | None = None
    websocket_timeout_s: int = Field(
        3600, ge=60, description="How long an idle WebSocket stays open through the Ingress."
    )
    max_body: str = Field("25m", description="Largest request body (document uploads).")


def _http_url(value: str) -> str:
    """An http(s) URL with a host and no credentials (it is written into manifests)."""
    parts = urlsplit(value)
    if (
        parts.scheme not in ("http", "https")
        or not parts.hostname
        or any(c.isspace() for c in value)
    ):
        raise ValueError(f"{value!r} is not an http:// or https:// URL with a host")
    if parts.username or parts.password:
        raise ValueError("a URL with credentials in it: those belong in a Secret")
    parts.port  # noqa: B018 - raises ValueError for a port that is not a number in range
    return value


class TracingValues(BaseModel):
    """Serve's tracing on the cluster: spans over OTLP to a collector, a share of turns."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(True, description="Spans from every Serve process and the product.")
    exporter: Literal["otlp"] = Field(
        "otlp",
        description="OTLP only: the file exporter's folder would be in the pod's emptyDir, "
        "gone with the pod and out of `salesboost trace`'s reach.",
    )
    sampling_ratio: float = Field(
        0.05,
        ge=0,
        le=1,
        description="The share of turns and requests traced, each whole or not at all.",
    )
    otlp_endpoint: str | None = Field(
        None,
        description="The collector's OTLP/gRPC address (http://host:4317; http: is plaintext, "
        "https: TLS), set as OTEL_EXPORTER_OTLP_ENDPOINT. Not a secret.",
    )

    @field_validator("otlp_endpoint")
    @classmethod
    def _endpoint_url(cls, value: str | None) -> str | None:
        return value if value is None else _http_url(value)

    @model_validator(mode="after")
    def _endpoint_when_enabled(self) -> TracingValues:
        if self.enabled and not self.otlp_endpoint:
            raise ValueError("tracing is enabled without an otlp_endpoint")
        return self

    def tracing_config(self) -> TracingConfig:
        return TracingConfig(
            enabled=self.enabled, exporter=self.exporter, sampling_ratio=self.sampling_ratio
        )

    def environment(self) -> dict[str, str]:
        """What the exporter reads in each Serve process (nothing when tracing is off)."""
        if not self.enabled or not self.otlp_endpoint:
            return {}
        return {EXPORTER_ENV: self.exporter, OTLP_ENDPOINT_ENV: self.otlp_endpoint}


class ObservabilityValues(BaseModel):
    """Traces, logs and metrics of the cluster (docs/serving-cluster.md)."""

    model_config = ConfigDict(extra="forbid")

    tracing: TracingValues
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", description="The product's and Serve's log level."
    )
    metrics_port: int = Field(
        8080,
        ge=1024,
        le=65535,
        description="Ray's metrics export port on every pod (Ray's, Serve's, vLLM's and the "
        "product's metrics), exposed as the container port named `metrics`.",
    )
    runbook_base_url: str = Field(
        ...,
        description="Where the repository is browsed: the alerts' runbook_url "
        "(docs/runbook.md#...) is joined to it.",
    )
    prometheus_labels: dict[str, str] = Field(
        default_factory=dict,
        description="Labels on the PodMonitor and PrometheusRule that the Prometheus's "
        "podMonitorSelector and ruleSelector match (kube-prometheus-stack: release: NAME).",
    )

    @field_validator("runbook_base_url")
    @classmethod
    def _base_url(cls, value: str) -> str:
        # A folder: urljoin would otherwise drop its last segment.
        return _http_url(value).rstrip("/") + "/"

    @field_validator("metrics_port")
    @classmethod
    def _free_port(cls, value: int) -> int:
        taken = {port: name for name, port in RAY_PORTS.items()}
        if value in taken:
            raise ValueError(f"{value} is the container's {taken[value]!r} port")
        return value

    @field_validator("prometheus_labels")
    @classmethod
    def _not_ours(cls, value: dict[str, str]) -> dict[str, str]:
        ours = sorted(k for k in value if k.startswith("app.kubernetes.io/"))
        if ours:
            raise ValueError(f"{ours}: the renderer sets the app.kubernetes.io/ labels")
        return value

    def environment(self) -> dict[str, str]:
        """What the product's loggers and the trace exporter read in every pod."""
        return {
            **self.tracing.environment(),
            LOG_FORMAT_ENV: "json",
            LOG_LEVEL_ENV: self.log_level,
        }

    def serve_options(self) -> dict[str, Any]:
        """Serve's cluster-wide options, as ``Stack.cluster_options`` gives them locally."""
        return {
            "tracing_config": self.tracing.tracing_config().serve_tracing_config(),
            "logging_config": {"encoding": "JSON", "log_level": self.log_level},
        }


class ClusterValues(BaseModel):
    """What one profile's RayService asks of Kubernetes (``cluster/values/<profile>.yaml``)."""

    model_config = ConfigDict(extra="forbid")

    profile: Literal["cpu", "gpu"]
    serve_config: Path = Field(..., description="The Serve config, relative to the repo.")
    name: str = Field(..., pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    namespace: str = "salesboost"
    image: str
    ray_version: str = "2.60.0"
    upgrade_strategy: Literal["NewCluster", "None"] = "NewCluster"
    env: dict[str, str] = Field(default_factory=dict, description="Plain settings.")
    secret_env: dict[str, SecretKeyRef] = Field(default_factory=dict)
    migration_secret: SecretKeyRef
    gcs_fault_tolerance: GcsFaultToleranceValues
    ingress: IngressValues
    autoscaler_idle_timeout_s: int = Field(300, ge=30)
    head: HeadValues = Field(default_factory=HeadValues)
    worker_groups: list[WorkerGroupValues] = Field(..., min_length=1)
    observability: ObservabilityValues

    @model_validator(mode="after")
    def _no_secret_values(self) -> ClusterValues:
        for key, value in self.env.items():
            if SECRET_NAME.search(key) or URL_WITH_PASSWORD.search(value):
                raise ValueError(f"env.{key} looks like a secret: move it to secret_env")
        both = sorted(set(self.env) & set(self.secret_env))
        if both:
            raise ValueError(f"{both} are in both env and secret_env")
        for key in sorted((set(self.env) | set(self.secret_env)) & set(OBSERVABILITY_ENV)):
            where = "env" if key in self.env else "secret_env"
            raise ValueError(
                f"{where}.{key} is set by {OBSERVABILITY_ENV[key]}: remove it from {where}"
            )
        if self.profile == "cpu" and any(g.gpus for g in self.worker_groups):
            raise ValueError("a CPU profile's worker groups cannot have gpus")
        return self


class RenderError(ValueError):
    """Bad input to ``render``: the message names the file and the field."""


def load_values(profile: str) -> tuple[Path, ClusterValues]:
    if profile not in PROFILES:
        raise RenderError(f"unknown profile {profile!r}: choose one of {', '.join(PROFILES)}")
    path = VALUES_DIR / f"{profile}.yaml"
    try:
        values = ClusterValues.model_validate(yaml.safe_load(path.read_text()))
    except ValidationError as exc:
        try:
            raise_first(path, exc)
        except ServeConfigError as err:
            raise RenderError(str(err)) from exc
    if values.profile != profile:
        raise RenderError(f"{path}: profile: is {values.profile!r}, expected {profile!r}")
    return path, values


def cluster_serve_config(values: ClusterValues, serve_config: dict[str, Any]) -> dict[str, Any]:
    """The Serve config as the cluster runs it: the applications as the file has them, the
    proxies on every node, listening on all addresses (``salesboost up`` sets its own host
    and port; in a pod the Service must reach them), and the values' tracing and logging
    over the file's (as ``salesboost up`` puts its settings' over them)."""
    config = dict(serve_config)
    config.update(values.observability.serve_options())
    config["proxy_location"] = "EveryNode"
    config["http_options"] = {
        **(serve_config.get("http_options") or {}),
        "host": "0.0.0.0",
        "port": SERVE_PORT,
    }
    return config


def render(profile: str, *, serve_config_path: Path | None = None) -> dict[str, str]:
    """File name → YAML text of every manifest of ``profile``; raises ``RenderError``."""
    values_path, values = load_values(profile)
    path = serve_config_path or (REPO / values.serve_config)
    try:
        serve_config = load_serve_config(path)
        check_accelerators(path, serve_config, profile)
    except ServeConfigError as exc:
        raise RenderError(str(exc)) from exc
    embedded = cluster_serve_config(values, with_model_applications(serve_config))
    source = f"{_relative(path)} and {_relative(values_path)}"
    header = (
        f"# Rendered by `salesboost cluster render --profile {profile}` from {source}.\n"
        "# Do not edit: change those files and render again (a test checks they agree).\n"
    )
    documents = {
        "rayservice.yaml": rayservice(values, embedded, source),
        "ingress.yaml": ingress(values),
        "pdb.yaml": [pdb(values, group) for group in values.worker_groups],
        "migrate-job.yaml": migrate_job(values),
        "podmonitor.yaml": podmonitor(values),
        "prometheusrule.yaml": prometheusrule(values),
    }
    out = {}
    for name, doc in documents.items():
        docs = doc if isinstance(doc, list) else [doc]
        out[name] = header + "---\n".join(_dump(d) for d in docs)
    return out


def write(profile: str, out_dir: Path, *, serve_config_path: Path | None = None) -> list[Path]:
    """Render, then write ``out_dir/<profile>/``; nothing is written when rendering fails."""
    files = render(profile, serve_config_path=serve_config_path)
    target = out_dir / profile
    target.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in files.items():
        (target / name).write_text(text)
        written.append(target / name)
    return written


# --- the manifests ----------------------------------------------------------------------


def _labels(values: ClusterValues, component: str) -> dict[str, str]:
    return {
        APP_LABEL: "salesboost",
        "app.kubernetes.io/instance": values.name,
        "app.kubernetes.io/component": component,
    }


def _env(values: ClusterValues) -> list[dict[str, Any]]:
    env: list[dict[str, Any]] = [{"name": k, "value": v} for k, v in sorted(values.env.items())]
    env += [{"name": k, "value": v} for k, v in sorted(SERVE_TUNING.items())]
    env += [{"name": k, "value": v} for k, v in sorted(values.observability.environment().items())]
    env += [{"name": k, "valueFrom": ref.ref()} for k, ref in sorted(values.secret_env.items())]
    return env


def _security() -> dict[str, Any]:
    return {
        "allowPrivilegeEscalation": False,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
    }


def _volumes() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    volumes = [
        # Ray's object store lives in /dev/shm; the container default (64 MiB) is too small.
        {"name": "dshm", "emptyDir": {"medium": "Memory"}},
        {"name": "ray-logs", "emptyDir": {}},
        {"name": "model-cache", "emptyDir": {}},
    ]
    mounts = [
        {"name": "dshm", "mountPath": "/dev/shm"},
        {"name": "ray-logs", "mountPath": "/tmp/ray"},
        {"name": "model-cache", "mountPath": "/opt/salesboost/cache"},
    ]
    return volumes, mounts


def _serve_readiness() -> dict[str, Any]:
    """Ready when this pod's Serve proxy says it is healthy: it answers 503 while it drains
    and before the applications' routes are known."""
    return {
        "httpGet": {"path": "/-/healthz", "port": SERVE_PORT},
        "initialDelaySeconds": 10,
        "periodSeconds": 5,
        "timeoutSeconds": 2,
        "failureThreshold": 3,
    }


def _resources(cpu: str | int, memory: str, gpus: int = 0) -> dict[str, Any]:
    limits: dict[str, Any] = {"cpu": str(cpu), "memory": memory}
    if gpus:
        limits["nvidia.com/gpu"] = str(gpus)
    return {"requests": dict(limits), "limits": limits}


def _container(values: ClusterValues, name: str, resources: dict[str, Any]) -> dict[str, Any]:
    _, mounts = _volumes()
    return {
        "name": name,
        "image": values.image,
        "imagePullPolicy": "IfNotPresent",
        "resources": resources,
        "env": _env(values),
        "ports": [
            *({"containerPort": port, "name": name} for name, port in RAY_PORTS.items()),
            {"containerPort": values.observability.metrics_port, "name": METRICS_PORT_NAME},
        ],
        "readinessProbe": _serve_readiness(),
        "securityContext": _security(),
        "volumeMounts": mounts,
        # Serve drains a pod's proxy before Ray stops: in-flight turns finish.
        "lifecycle": {"preStop": {"exec": {"command": ["/bin/sh", "-c", "sleep 20"]}}},
    }


def _pod(
    values: ClusterValues,
    component: str,
    container: dict[str, Any],
    node_selector: dict[str, str],
    tolerations: list[dict[str, Any]],
) -> dict[str, Any]:
    volumes, _ = _volumes()
    spec: dict[str, Any] = {
        "securityContext": {"runAsUser": 1000, "runAsGroup": 1000, "fsGroup": 1000},
        "terminationGracePeriodSeconds": 60,
        "containers": [container],
        "volumes": volumes,
    }
    if node_selector:
        spec["nodeSelector"] = dict(node_selector)
    if tolerations:
        spec["tolerations"] = list(tolerations)
    return {"metadata": {"labels": _labels(values, component)}, "spec": spec}


def _ray_resources_param(resources: dict[str, float]) -> str:
    import json

    return json.dumps(resources, sort_keys=True)


def _metrics_param(values: ClusterValues) -> dict[str, str]:
    # KubeRay would set 8080 itself when absent: set here, it is the port the pods expose.
    return {"metrics-export-port": str(values.observability.metrics_port)}


def rayservice(values: ClusterValues, serve_config: dict[str, Any], source: str) -> dict:
    head_container = _container(values, "ray-head", _resources(values.head.cpu, values.head.memory))
    head = {
        # The head runs Ray's control plane and a Serve proxy, no replica.
        "rayStartParams": {"num-cpus": "0", "dashboard-host": "0.0.0.0", **_metrics_param(values)},
        "template": _pod(
            values, "ray-head", head_container, values.head.node_selector, values.head.tolerations
        ),
    }
    workers = []
    for group in values.worker_groups:
        params: dict[str, str] = {"num-cpus": str(group.cpu)}
        if group.gpus:
            params["num-gpus"] = str(group.gpus)
        if group.ray_resources:
            params["resources"] = _ray_resources_param(group.ray_resources)
        params.update(_metrics_param(values))
        container = _container(
            values, "ray-worker", _resources(group.cpu, group.memory, group.gpus)
        )
        spec: dict[str, Any] = {
            "groupName": group.name,
            "replicas": group.replicas,
            "minReplicas": group.min_replicas,
            "maxReplicas": group.max_replicas,
            "rayStartParams": params,
            "template": _pod(values, group.name, container, group.node_selector, group.tolerations),
        }
        if group.accelerator_type:
            spec["template"]["metadata"]["labels"]["salesboost.io/accelerator"] = (
                group.accelerator_type
            )
        workers.append(spec)
    gcs = values.gcs_fault_tolerance
    return {
        "apiVersion": "ray.io/v1",
        "kind": "RayService",
        "metadata": {
            "name": values.name,
            "namespace": values.namespace,
            "labels": _labels(values, "rayservice"),
            "annotations": {"salesboost.io/rendered-from": source},
        },
        "spec": {
            # docs/serving-cluster.md: a Serve config change updates the running cluster in
            # place; a change to rayClusterConfig builds a new cluster, then switches.
            "upgradeStrategy": {"type": values.upgrade_strategy},
            # Applications stay RUNNING only while every replica's health check passes
            # (the LLM's engine, the embedder's forward pass): KubeRay reads this to switch.
            "serviceUnhealthySecondThreshold": 900,
            "deploymentUnhealthySecondThreshold": 300,
            "rayClusterDeletionDelaySeconds": 120,
            "excludeHeadPodFromServeSvc": True,
            "serveService": serve_service(values),
            "serveConfigV2": _dump(serve_config),
            "rayClusterConfig": {
                "rayVersion": values.ray_version,
                "enableInTreeAutoscaling": True,
                "autoscalerOptions": {
                    "upscalingMode": "Default",
                    "idleTimeoutSeconds": values.autoscaler_idle_timeout_s,
                    "securityContext": _security(),
                    "resources": _resources("500m", "512Mi"),
                },
                # externalStorageNamespace stays unset: KubeRay then gives each RayCluster
                # its own namespace in Redis, so a new cluster built during an upgrade does
                # not read the old one's GCS state (kuberay#1296).
                "gcsFaultToleranceOptions": {
                    "redisAddress": gcs.redis_address,
                    "redisPassword": {"valueFrom": gcs.password.ref()},
                },
                "headGroupSpec": head,
                "workerGroupSpecs": workers,
            },
        },
    }


def serve_service(values: ClusterValues) -> dict[str, Any]:
    """The Service in front of Serve's proxies. KubeRay owns its selector (the pods of the
    cluster serving now, ready ones only), so it follows the switch to a new cluster."""
    return {
        "metadata": {"name": f"{values.name}-serve", "labels": _labels(values, "serve")},
        "spec": {
            "type": "ClusterIP",
            "ports": [{"name": "serve", "port": SERVE_PORT, "targetPort": SERVE_PORT}],
        },
    }


def ingress(values: ClusterValues) -> dict[str, Any]:
    timeout = str(values.ingress.websocket_timeout_s)
    spec: dict[str, Any] = {
        "ingressClassName": values.ingress.class_name,
        "rules": [
            {
                "host": values.ingress.host,
                "http": {
                    "paths": [
                        {
                            "path": "/",
                            "pathType": "Prefix",
                            "backend": {
                                "service": {
                                    "name": f"{values.name}-serve",
                                    "port": {"number": SERVE_PORT},
                                }
                            },
                        }
                    ]
                },
            }
        ],
    }
    if values.ingress.tls_secret:
        spec["tls"] = [{"hosts": [values.ingress.host], "secretName": values.ingress.tls_secret}]
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {
            "name": values.name,
            "namespace": values.namespace,
            "labels": _labels(values, "ingress"),
            "annotations": {
                # A conversation is one WebSocket for many minutes: the proxy must not close
                # it between turns (ingress-nginx's default is 60 s).
                "nginx.ingress.kubernetes.io/proxy-read-timeout": timeout,
                "nginx.ingress.kubernetes.io/proxy-send-timeout": timeout,
                "nginx.ingress.kubernetes.io/proxy-body-size": values.ingress.max_body,
                # Replies stream token by token: pass them on as they come.
                "nginx.ingress.kubernetes.io/proxy-buffering": "off",
            },
        },
        "spec": spec,
    }


def pdb(values: ClusterValues, group: WorkerGroupValues) -> dict[str, Any]:
    """One pod of a group at a time in a voluntary disruption (a node drain). The Ray
    autoscaler removes idle pods itself, which a PodDisruptionBudget does not hold up."""
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {
            "name": f"{values.name}-{group.name}",
            "namespace": values.namespace,
            "labels": _labels(values, group.name),
        },
        "spec": {
            "maxUnavailable": 1,
            "selector": {
                "matchLabels": {
                    "app.kubernetes.io/instance": values.name,
                    "app.kubernetes.io/component": group.name,
                }
            },
        },
    }


def migrate_job(values: ClusterValues) -> dict[str, Any]:
    """Apply the migrations as the schema owner before rolling out a new image."""
    container = {
        "name": "migrate",
        "image": values.image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["salesboost", "cluster", "migrate"],
        "env": [
            {"name": "SALESBOOST_MODE", "value": "production"},
            {
                "name": "SALESBOOST_MIGRATION_DATABASE_URL",
                "valueFrom": values.migration_secret.ref(),
            },
            *[
                {"name": k, "valueFrom": ref.ref()}
                for k, ref in sorted(values.secret_env.items())
                if k == "DATABASE_URL"
            ],
        ],
        "resources": _resources("500m", "512Mi"),
        "securityContext": _security(),
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": f"{values.name}-migrate",
            "namespace": values.namespace,
            "labels": _labels(values, "migrate"),
        },
        "spec": {
            "backoffLimit": 2,
            "ttlSecondsAfterFinished": 3600,
            "template": {
                "metadata": {"labels": _labels(values, "migrate")},
                "spec": {
                    "restartPolicy": "Never",
                    "securityContext": {"runAsUser": 1000, "runAsGroup": 1000},
                    "containers": [container],
                },
            },
        },
    }


def ray_pods_selector(values: ClusterValues) -> dict[str, Any]:
    """The RayService's head and worker pods, by the labels ``_pod`` gives them (KubeRay keeps
    them; the migration Job's pods share the instance label, not the components)."""
    return {
        "matchLabels": {
            APP_LABEL: "salesboost",
            "app.kubernetes.io/instance": values.name,
        },
        "matchExpressions": [
            {
                "key": "app.kubernetes.io/component",
                "operator": "In",
                "values": ["ray-head", *(group.name for group in values.worker_groups)],
            }
        ],
    }


def _monitoring_labels(values: ClusterValues, component: str) -> dict[str, str]:
    return {**values.observability.prometheus_labels, **_labels(values, component)}


def podmonitor(values: ClusterValues) -> dict[str, Any]:
    """Prometheus scrapes Ray's metrics agent on every Ray pod: the product's metrics
    (``ray_salesboost_*``), Serve's and vLLM's, from whichever cluster runs now."""
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PodMonitor",
        "metadata": {
            "name": values.name,
            "namespace": values.namespace,
            "labels": _monitoring_labels(values, "metrics"),
        },
        "spec": {
            "selector": ray_pods_selector(values),
            "podMetricsEndpoints": [
                {"port": METRICS_PORT_NAME, "path": "/metrics", "interval": SCRAPE_INTERVAL}
            ],
        },
    }


def alert_groups(runbook_base_url: str) -> list[dict[str, Any]]:
    """``cluster/observability/alerts.yml``'s groups, read from the file so the cluster's rules
    are the tested ones, with each runbook_url joined to ``runbook_base_url``."""
    groups = copy.deepcopy(yaml.safe_load(ALERT_RULES.read_text())["groups"])
    for group in groups:
        for rule in group["rules"]:
            annotations = rule.get("annotations") or {}
            url = annotations.get("runbook_url")
            if url and not urlsplit(url).scheme:
                annotations["runbook_url"] = urljoin(runbook_base_url, url)
    return groups


def prometheusrule(values: ClusterValues) -> dict[str, Any]:
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {
            "name": f"{values.name}-alerts",
            "namespace": values.namespace,
            "labels": _monitoring_labels(values, "alerts"),
        },
        "spec": {"groups": alert_groups(values.observability.runbook_base_url)},
    }


# --- YAML -------------------------------------------------------------------------------


class _Dumper(yaml.SafeDumper):
    pass


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def _dump(data: Any) -> str:
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=100)


def _relative(path: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(REPO))
    except ValueError:
        return str(path)
