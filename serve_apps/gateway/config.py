"""What the gateway deployment is configured with: typed, built once with the application and
bound to the deployment (``serve_apps/app.py``)."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from serve_apps.connections import Connections
from serve_apps.deployment_options import DeploymentConfig


class GatewaySettings(BaseModel):
    """The gateway's settings: ``SALESBOOST_<NAME>`` in the environment the application is
    built in (``serve_apps.settings.Settings`` reads them), or ``gateway: {<name>: ...}`` in
    the application's arguments, which win."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    mode: Literal["development", "production"] = Field(
        "development", description="Production refuses placeholder secrets and embedded parts."
    )
    max_body_bytes: int = Field(
        1 << 20, ge=1024, le=64 << 20, description="Largest JSON request body (413 above)."
    )
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
        description="Chunks per turn from each of the persona's papers (the scenario's customer "
        "and vendor-website knowledge bases; 0: none). The seller's chunks for the coach and "
        "the claims check are the orchestrator's (agents.knowledge_top_k).",
    )
    grounding_token_budget: int = Field(
        120,
        ge=16,
        le=2000,
        description="Tokens of the persona's papers per knowledge base and turn, cut to the "
        "sentences that match the turn: every one is prefilled before the first token.",
    )
    grounding_timeout_s: float = Field(
        2.0, gt=0, le=30, description="Past this, the persona answers without its papers."
    )
    model_admin_tenants: list[str] | None = Field(
        None,
        description="Companies (slugs) whose admins may swap the platform's model versions "
        "(/v1/models, salesboost models); unset: the demo company in development, none in "
        "production.",
    )
    max_live_conversations: int = Field(
        32,
        ge=1,
        le=100_000,
        description="Conversations live at once across the gateway's replicas; past it new "
        "sessions and sockets get 503 overloaded (docs/performance.md: what a deployment "
        "holds within the SLO). Ops may change it at run time: salesboost operator "
        "admission-limit.",
    )
    admission_retry_after_s: int = Field(
        15, ge=1, le=600, description="Retry-After of an overloaded refusal."
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

    @model_validator(mode="after")
    def _frame_takes_the_longest_message(self) -> Any:
        # 4 bytes of UTF-8 per character plus the frame's JSON (contracts/wire.py).
        needed = 4 * self.max_message_chars + 256
        if self.max_frame_bytes < needed:
            raise ValueError(
                f"max_frame_bytes={self.max_frame_bytes} cannot carry a message of "
                f"max_message_chars={self.max_message_chars} in every script: at least {needed}"
            )
        return self

    def model_admins(self) -> frozenset[str]:
        """The companies whose admins may swap model versions."""
        if self.model_admin_tenants is not None:
            return frozenset(self.model_admin_tenants)
        return frozenset({"demo"}) if self.mode == "development" else frozenset()


# The connections and the secret come from the replica's environment (serve_apps/connections.py).
CONNECTION_FIELDS = ("database_url", "redis_url", "secret_key")


class GatewayConfig(GatewaySettings, DeploymentConfig):
    """The gateway's settings and Serve options, and, once in the replica, its connections."""

    default_deployment_options: ClassVar[dict[str, Any]] = {
        "ray_actor_options": {"num_cpus": 0.5},
        "max_ongoing_requests": 512,
        "autoscaling_config": {
            "min_replicas": 1,
            "max_replicas": 4,
            "target_ongoing_requests": 128,
        },
    }

    database_url: str | None = Field(None, description="From DATABASE_URL in the replica.")
    redis_url: str | None = Field(None, description="From REDIS_URL in the replica.")
    secret_key: SecretStr | None = Field(
        None, description="From SALESBOOST_SECRET_KEY in the replica."
    )

    @model_validator(mode="after")
    def _no_connections_bound(self) -> GatewayConfig:
        bound = sorted(set(CONNECTION_FIELDS) & self.model_fields_set)
        if bound:
            raise ValueError(
                f"{', '.join(bound)} come from the replica's environment (DATABASE_URL, "
                "REDIS_URL, SALESBOOST_SECRET_KEY), not from the application's arguments"
            )
        return self

    def with_connections(self, connections: Connections | None = None) -> GatewayConfig:
        """This config with the URLs and the secret of the replica's environment."""
        connections = connections or Connections()
        return self.model_copy(
            update={name: getattr(connections, name) for name in CONNECTION_FIELDS}
        )
