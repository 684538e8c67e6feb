"""The gateway deployment: builds a replica's clients once and serves the API with them."""

from __future__ import annotations

import asyncio

from fastapi import FastAPI
from ray import serve
from ray.serve.handle import DeploymentHandle
from redis.asyncio import Redis

from db.engine import create_engine, session_factory
from serve_apps.contracts.models import ModelRole, ModelRoute
from serve_apps.gateway.admission import Admission
from serve_apps.gateway.api import create_api
from serve_apps.gateway.auth import AccessTokens
from serve_apps.gateway.config import GatewayConfig
from serve_apps.gateway.content_cache import ContentCache
from serve_apps.gateway.identity import IdentityResolver
from serve_apps.gateway.rate_limits import RateLimiter
from serve_apps.gateway.state import GatewayState
from serve_apps.model_lifecycle.routing import RoutingStore
from serve_apps.orchestrator.semantic import SemanticMatcher, ServeSentenceEmbedder
from serve_apps.telemetry.logs import configure_logging
from serve_apps.telemetry.metrics import product_metrics
from serve_apps.telemetry.tracing import trace_database_and_redis, untraced


# ``serve.ingress()`` without an app: Serve calls ``__serve_build_asgi_app__`` on the replica
# after ``__init__``, so the app that serves is the one that holds this replica's state. (An
# app given to ``serve.ingress(app)`` is copied when the class is decorated; what
# ``__init__`` would set on the module's app never reaches the copy that serves.)
# Serve options come from the config (GatewayConfig.default_deployment_options, serve_apps/app.py).
@serve.deployment(name="Gateway")
@serve.ingress()
class Gateway:
    def __init__(
        self,
        config: GatewayConfig,
        orchestrator: DeploymentHandle,
        knowledge: DeploymentHandle,
        embedder: DeploymentHandle | None = None,
        models: DeploymentHandle | None = None,
        model_routes: dict[ModelRole, ModelRoute] | None = None,
    ) -> None:
        configure_logging("gateway")
        if models is None or not model_routes:
            raise ValueError("the gateway needs the model lifecycle and the configured versions")
        settings = config.with_connections()
        if not settings.database_url or not settings.redis_url:
            raise ValueError("DATABASE_URL and REDIS_URL must reach the gateway replica")
        if not settings.secret_key:
            raise ValueError("SALESBOOST_SECRET_KEY must reach the gateway replica")
        engine = create_engine(
            settings.database_url,
            pool_size=settings.db_pool_size,
            pool_recycle_s=settings.db_pool_recycle_s,
        )
        sessions = session_factory(engine)
        redis = Redis.from_url(settings.redis_url)
        trace_database_and_redis(engine.sync_engine)
        tokens = AccessTokens(
            secret=settings.secret_key.get_secret_value(),
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
            ttl_s=settings.access_token_ttl_s,
        )
        self.state = GatewayState(
            settings=settings,
            engine=engine,
            sessions=sessions,
            redis=redis,
            tokens=tokens,
            identities=IdentityResolver(
                sessions,
                redis,
                tokens,
                mode=settings.mode,
                ticket_ttl_s=settings.ws_ticket_ttl_s,
            ),
            limits=RateLimiter(
                redis,
                per_ip_per_min=settings.rate_limit_ip_per_min,
                per_user_per_min=settings.rate_limit_user_per_min,
                per_tenant_per_min=settings.rate_limit_tenant_per_min,
                tenant_tokens_per_day=settings.tenant_tokens_per_day,
            ),
            admission=Admission(
                redis,
                limit=settings.max_live_conversations,
                retry_after_s=settings.admission_retry_after_s,
            ),
            content=ContentCache.over(redis, sessions),
            orchestrator=orchestrator,
            knowledge=knowledge,
            model_routing=RoutingStore(redis, model_routes),
            model_lifecycle=models,
            matcher=(
                SemanticMatcher(ServeSentenceEmbedder(embedder)) if embedder is not None else None
            ),
            allowed_origins=frozenset(o.rstrip("/") for o in settings.allowed_origins),
        )

    async def check_health(self) -> None:
        """Serve's periodic health check: whether the database and Redis answer, into the
        metrics (the alerts on them). Never raises: a replica restarted for a database
        outage would not bring the database back."""
        up = product_metrics().dependency_up

        async def database() -> None:
            async with self.state.engine.connect() as connection:
                await connection.exec_driver_sql("SELECT 1")

        for name, probe in (("database", database), ("redis", self.state.redis.ping)):
            try:
                with untraced():
                    await asyncio.wait_for(probe(), timeout=2)
                up.set(1, tags={"dependency": name})
            except Exception:
                up.set(0, tags={"dependency": name})

    def __serve_build_asgi_app__(self) -> FastAPI:
        api = create_api(self.state.settings)
        api.state.gateway = self.state
        return api
