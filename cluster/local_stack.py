"""Start and stop the whole product on one machine: embedded parts, Ray, Serve applications.

Used by ``salesboost up``, by the benchmarks and by the integration tests, so all three run
the same thing. The process's own environment is left as it is: what the replicas and the
application's builder read reaches them through Serve's ``runtime_env`` ``env_vars``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field

from cluster.serve_config import SALESBOOST_IMPORT_PATH
from models.cpu_layout import CpuLayout
from serve_apps.settings import Settings

log = logging.getLogger("salesboost.stack")
Progress = Callable[[str], None]


class ServeApplicationSpec(BaseModel):
    model_config = ConfigDict(extra="allow")

    name: str
    route_prefix: str = "/"
    import_path: str
    args: dict[str, Any] = Field(default_factory=dict)


class ServeConfigFile(BaseModel):
    """The parts of a Serve config file that a local start reads."""

    model_config = ConfigDict(extra="allow")

    http_options: dict[str, Any] = Field(default_factory=dict)
    applications: list[ServeApplicationSpec]

    @classmethod
    def load(cls, path: Path) -> ServeConfigFile:
        return cls.model_validate(yaml.safe_load(path.read_text()))


# Ray settings for one machine that also runs the model, read by Ray's daemons at start.
# - Serve's controller reconciles every 100 ms by default: about 7 % of a core. Once a second
#   is soon enough to restart a replica or scale; requests never wait for it.
# - Ray starts its workers at nice 15 so that its own daemons come first; the model engine is
#   a worker's child, and so it came after PostgreSQL, Redis and every client on the machine
#   (all at nice 0), which a bare vLLM engine does not.
# - A replica runs its deployment's code, and the router of the handles that code calls, each
#   on an event loop in a thread of its own by default, so every request and every streamed
#   item crosses threads (and the GIL) on its way in and out. The deployments here are
#   asynchronous throughout, so they share the replica's loop: at one conversation the time
#   around the engine went from 69 to 59 ms (medians of 30 traced turns). Blocking work that
#   calls other deployments hands those calls to the loop
#   (``serve_apps/knowledge/loop_calls.py``), because a router on the loop takes calls from
#   nowhere else. Ray's throughput-optimized mode sets the same two; its gRPC between
#   replicas gained nothing more here (61 ms) and is left off.
# - The proxy runs ``serve_apps/gateway/proxy_middleware.py`` in front of its own request-id
#   handling: a client's unsafe X-Request-ID is replaced before Serve uses it, and the proxy's
#   own errors get the API's error body.
SERVE_TUNING = {
    "RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH": (
        "serve_apps.gateway.proxy_middleware:proxy_middlewares"
    ),
    "RAY_SERVE_CONTROL_LOOP_INTERVAL_S": "1",
    "RAY_worker_niceness": "0",
    "RAY_SERVE_RUN_USER_CODE_IN_SEPARATE_THREAD": "0",
    "RAY_SERVE_RUN_ROUTER_IN_SEPARATE_LOOP": "0",
}


@dataclass
class Stack:
    settings: Settings
    progress: Progress = print
    # Ray nodes on this machine: 1 is one `ray.init`; more start a head and workers as
    # separate `ray start` processes (cluster/local.py).
    nodes: int = 1
    # Also a Prometheus here, scraping every node's metrics with the alert rules loaded.
    observability: bool = False
    base_url: str = ""
    env: dict[str, str] = field(default_factory=dict)
    database_url: str = ""
    migration_database_url: str = ""
    _embedded: Any = None
    _ray_started: bool = False
    _local_cluster: Any = None
    prometheus: Any = None
    # URLs and secrets: in the environment of Ray's processes, never in a runtime_env.
    secret_env: dict[str, str] = field(default_factory=dict)

    def start(self, *, wait_ready_s: float = 600) -> Stack:
        from db.migrate import upgrade
        from db.seed import seed_file
        from serve_apps.secret_source import resolve_secrets

        self.settings = resolve_secrets(self.settings)
        self.settings.check_production_ready()
        self._prepare_models()
        config = ServeConfigFile.load(self.settings.serve_config)
        layout = self._cpu_layout(config)
        if layout is not None:
            self.progress(f"CPU layout: {layout.describe()}")
        serving_cores = layout.serving_cores if layout is not None else contextlib.nullcontext
        with serving_cores():
            database_url, migration_url, redis_url = self._data_services()
        self.database_url, self.migration_database_url = database_url, migration_url
        self.progress("applying database migrations")
        upgrade(migration_url)
        if self.settings.mode == "development":  # production companies come from the operator
            self.progress("seeding the demo tenant")
            seed_file(migration_url)
        application_env = self._application_env(database_url, redis_url)
        self.secret_env = {k: v for k, v in application_env.items() if k in SECRET_ENVIRONMENT}
        self.env = {
            k: v for k, v in application_env.items() if k not in SECRET_ENVIRONMENT
        } | SERVE_TUNING
        if layout is not None:
            self.env.update(layout.engine_env())
        with serving_cores():
            self._start_serve(config)  # Ray's daemons start here, and they start every worker
        self._wait_ready(wait_ready_s)
        if self.settings.mode == "development":
            self._seed_knowledge()
        if self.observability:
            self._start_prometheus()
        return self

    def _start_prometheus(self, port: int | None = None) -> None:
        from cluster.prometheus import LocalPrometheus

        self.prometheus = LocalPrometheus(
            targets=self.metrics_targets,
            storage_dir=self.settings.data_dir / "prometheus",
            port=port or self.settings.prometheus_port,
        )
        self.prometheus.start()
        self.progress(
            f"Prometheus at {self.prometheus.url}, scraping {', '.join(self.metrics_targets)}"
        )

    def _seed_knowledge(self, path: Path | None = None) -> None:
        """Upload the demo tenant's knowledge documents through the API, as its admin.

        Through the API rather than around it, so the seed takes the same path as any upload;
        a document already there is answered 200 and left as it is.
        """
        import httpx
        import yaml

        from db.seed import DEMO_TENANT_FILE

        path = path or DEMO_TENANT_FILE
        data = yaml.safe_load(path.read_text())
        admin = next(u["email"] for u in data.get("users", []) if u["role"] == "admin")
        headers = {"X-Dev-Tenant": data["tenant"]["slug"], "X-Dev-User": admin}
        with httpx.Client(base_url=self.base_url, headers=headers, timeout=300) as client:
            for base in data.get("knowledge_bases", []):
                for relative in base["documents"]:
                    document = path.parent / relative
                    response = client.post(
                        f"/v1/knowledge-bases/{base['slug']}/documents",
                        files={"file": (document.name, document.read_bytes())},
                    )
                    if response.status_code not in (200, 201):
                        raise RuntimeError(f"seeding {document.name} failed: {response.text}")
                    if response.status_code == 201:
                        self.progress(f"indexed {document.name} into {base['slug']!r}")

    def _cpu_layout(self, config: ServeConfigFile) -> CpuLayout | None:
        """Cores for a CPU model engine and for the rest, when ``config`` runs one."""
        from serve_apps.app import SalesBoostAppArgs

        for spec in config.applications:
            if spec.import_path != SALESBOOST_IMPORT_PATH:
                continue
            engines = [s for s in SalesBoostAppArgs.model_validate(spec.args).llm_settings() if s]
            if any(engine.accelerator == "cpu" for engine in engines):
                return CpuLayout.for_this_machine(self.settings.engine_cpus)
        return None

    def _prepare_models(self) -> None:
        prepare_serve_config_models(
            self.settings.serve_config, self.settings.models_dir, progress=self.progress
        )

    def _data_services(self) -> tuple[str, str, str]:
        if self.settings.database_url and self.settings.redis_url:
            return (
                self.settings.database_url,
                self.settings.migration_database_url or self.settings.database_url,
                self.settings.redis_url,
            )
        from db.embedded import start_embedded

        self.progress(f"starting embedded PostgreSQL and Redis under {self.settings.data_dir}")
        self._embedded = start_embedded(self.settings.data_dir)
        return (
            self.settings.database_url or self._embedded.database_url,
            self.settings.migration_database_url
            or self.settings.database_url
            or self._embedded.migration_database_url,
            self.settings.redis_url or self._embedded.redis_url,
        )

    def _secret_key(self) -> str:
        return signing_secret(self.settings)

    def _application_env(self, database_url: str, redis_url: str) -> dict[str, str]:
        """The application's ``runtime_env`` ``env_vars``: the settings, which its builder
        turns into each deployment's config, and the URLs and secrets its replicas read.
        The secrets are resolved here, so the Vault token stays here."""
        env = self.settings.as_environment()
        env.pop("SALESBOOST_VAULT_TOKEN", None)
        env.update(
            SALESBOOST_SECRET_KEY=self._secret_key(),
            DATABASE_URL=database_url,
            REDIS_URL=redis_url,
            HF_HUB_OFFLINE="1",
            TRANSFORMERS_OFFLINE="1",
        )
        env.update(self.settings.tracing_config().environment(self.settings.trace_dir))
        return env

    def _start_serve(self, config: ServeConfigFile) -> None:
        import ray
        from ray import serve

        host = self.settings.http_host
        port = self.settings.http_port
        self.progress(
            f"starting Ray ({self.settings.ray_num_cpus} logical CPUs) and Serve on {host}:{port}"
        )
        for line in engine_dtype_lines(config, self.settings):
            self.progress(line)
        from cluster.deploy import deploy_serve_config
        from cluster.local import QDRANT_FOLDER_RESOURCE, LocalRayCluster

        options: dict[str, Any] = {}
        if self.nodes > 1:
            self.progress(f"starting a local Ray cluster: a head and {self.nodes - 1} worker(s)")
            self._local_cluster = LocalRayCluster(
                self.nodes,
                self.settings.ray_num_cpus,
                env=self.env | self.secret_env,
                log_dir=self.settings.data_dir / "ray-nodes",
                metrics_port=self.settings.metrics_port,
            ).start()
            options["address"] = self._local_cluster.address
            self.progress(f"Ray head at {self._local_cluster.address}")
        else:
            # This node holds the data directory's Qdrant folder (cluster/serve_local.yaml).
            # "local": a cluster of its own, never one a `ray start` left running (ray.init
            # would otherwise join whatever /tmp/ray/ray_current_cluster names).
            options.update(
                address="local",
                num_cpus=self.settings.ray_num_cpus,
                resources={QDRANT_FOLDER_RESOURCE: 1},
                _metrics_export_port=self.settings.metrics_port,
            )
        with _process_environment(self.secret_env if self.nodes == 1 else {}):
            ray.init(
                include_dashboard=False,
                log_to_driver=self.settings.log_level == "DEBUG",
                runtime_env={"env_vars": self.env},
                **options,
            )
        self._ray_started = True
        # Serve's tracing is cluster-wide and fixed at start: the proxy, every replica and
        # the product's spans under theirs (serve_apps/telemetry/tracing.py). Serve's own
        # logs are JSON lines like the product's.
        cluster_options = self.cluster_options()
        serve.start(
            proxy_location="HeadOnly", http_options={"host": host, "port": port}, **cluster_options
        )
        # As a RayService deploys its serveConfigV2: the file's deployment options apply.
        for name in deploy_serve_config(
            self.settings.serve_config,
            env=self.env,
            host=host,
            port=port,
            cluster_options=cluster_options,
        ):
            self.progress(f"deploying application {name!r} from {self.settings.serve_config}")
        self.base_url = f"http://{host}:{port}"

    def cluster_options(self) -> dict[str, Any]:
        """Serve's cluster-wide ``tracing_config`` and ``logging_config`` from the settings."""
        return {
            "tracing_config": self.settings.tracing_config().serve_tracing_config(),
            "logging_config": {
                "encoding": "JSON" if self.settings.log_format == "json" else "TEXT",
                "log_level": self.settings.log_level,
            },
        }

    @property
    def metrics_targets(self) -> list[str]:
        """Each Ray node's metrics endpoint (host:port): the product's, Serve's and vLLM's."""
        if self._local_cluster is not None:
            return self._local_cluster.metrics_targets
        return [f"127.0.0.1:{self.settings.metrics_port}"]

    def _wait_ready(self, timeout_s: float) -> None:
        self.progress("waiting for the model engine and health checks (about a minute)")
        deadline = time.monotonic() + timeout_s
        last = ""
        from cluster.deploy import raise_if_deploy_failed

        while time.monotonic() < deadline:
            raise_if_deploy_failed()
            try:
                with urllib.request.urlopen(f"{self.base_url}/health/ready", timeout=10) as resp:
                    if resp.status == 200:
                        self.progress("ready")
                        return
            except urllib.error.HTTPError as exc:
                state = json.loads(exc.read() or b"{}").get("checks", {})
                if str(state) != last:
                    last = str(state)
                    self.progress(f"  not ready yet: {state}")
            except OSError:
                pass
            time.sleep(2)
        raise TimeoutError(f"SalesBoost was not ready within {timeout_s:.0f} s")

    def stop(self) -> None:
        if self.prometheus is not None:
            self.prometheus.stop()
            self.prometheus = None
        if self._ray_started:
            import ray
            from ray import serve

            try:
                serve.shutdown()
            finally:
                ray.shutdown()
            self._ray_started = False
        if self._local_cluster is not None:
            self._local_cluster.stop()
            self._local_cluster = None
        if self._embedded is not None:
            self._embedded.stop()
            self._embedded = None

    def __enter__(self) -> Stack:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# What reaches the replicas as the environment of Ray's own processes, the way a pod's env
# comes from a Kubernetes Secret: a runtime_env's env_vars are written in full to Ray's
# runtime_env_agent.log ("Creating runtime env: {...}") and kept with Serve's config.
SECRET_ENVIRONMENT = frozenset(
    {
        "SALESBOOST_SECRET_KEY",
        "DATABASE_URL",
        "SALESBOOST_DATABASE_URL",
        "SALESBOOST_MIGRATION_DATABASE_URL",
        "REDIS_URL",
        "SALESBOOST_REDIS_URL",
        "SALESBOOST_QDRANT_API_KEY",
        "SALESBOOST_VAULT_TOKEN",
    }
)


def prepare_serve_config_models(
    serve_config: Path, models_dir: Path, progress: Callable[[str], None] = print
) -> None:
    """The model folders the Serve config's LLM deployments load, prepared under
    ``models_dir`` (those there already are left as they are)."""
    from cluster.serve_config import load_serve_config, model_configs
    from models.llm import LLMDeploymentSettings
    from models.prepare import prepare_models

    llms = [
        settings
        for _, _, settings in model_configs(serve_config, load_serve_config(serve_config))
        if isinstance(settings, LLMDeploymentSettings)
    ]
    prepare_models(models_dir, llms, progress=progress)


@contextlib.contextmanager
def _process_environment(values: dict[str, str]) -> Iterator[None]:
    """``values`` in this process's environment while Ray starts its daemons here (they and
    every worker they start inherit it); the environment as it was afterwards."""
    before = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def signing_secret(settings: Settings) -> str:
    """The token signing secret: from the settings, or in development one made once per data
    directory (random, readable by this user only), so restarts keep sessions."""
    if settings.secret_key:
        return settings.secret_key.get_secret_value()
    path = settings.data_dir / "secret-key"
    if not path.exists():
        import secrets

        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_urlsafe(48))
    return path.read_text().strip()


def engine_dtype_lines(config: ServeConfigFile, settings: Settings) -> list[str]:
    """What each CPU model engine of ``config`` will compute in on this machine, and why."""
    from models.cpu_dtype import detect_cpu
    from serve_apps.app import SalesBoostAppArgs

    lines: list[str] = []
    for spec in config.applications:
        if spec.import_path != SALESBOOST_IMPORT_PATH:
            continue
        seen: set[str] = set()
        for engine in SalesBoostAppArgs.model_validate(spec.args).llm_settings():
            if engine is None or engine.model_id in seen:
                continue
            choice = engine.dtype_choice(settings.cpu_dtype)
            if choice is None:
                continue
            seen.add(engine.model_id)
            lines.append(
                f"engine {engine.model_id}: {choice.describe()} ({detect_cpu().describe()})"
            )
    return lines
