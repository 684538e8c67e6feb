"""What every route of a gateway replica shares: the clients it builds once, and the settings."""

from __future__ import annotations

from dataclasses import dataclass

from ray.serve.handle import DeploymentHandle
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from serve_apps.gateway.admission import Admission
from serve_apps.gateway.auth import AccessTokens
from serve_apps.gateway.config import GatewaySettings
from serve_apps.gateway.content_cache import ContentCache
from serve_apps.gateway.identity import IdentityResolver
from serve_apps.gateway.rate_limits import RateLimiter
from serve_apps.model_lifecycle.routing import RoutingStore
from serve_apps.orchestrator.semantic import SemanticMatcher


@dataclass(frozen=True)
class GatewayState:
    """Built by the deployment's ``__init__`` and put on the app (``app.state.gateway``)."""

    settings: GatewaySettings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    redis: Redis
    tokens: AccessTokens
    identities: IdentityResolver
    limits: RateLimiter
    admission: Admission
    # The training content every turn reads (Redis, invalidated by the content routes).
    content: ContentCache
    orchestrator: DeploymentHandle
    knowledge: DeploymentHandle
    # Which model version answers each role (Redis, moved by a swap), and the swaps.
    model_routing: RoutingStore
    model_lifecycle: DeploymentHandle
    # The Embedder deployment, for trying a semantic compliance rule on a sentence (None: none
    # was bound).
    matcher: SemanticMatcher | None
    allowed_origins: frozenset[str]
