"""The gateway's FastAPI application: the middleware, the pages, and every feature's router."""

from fastapi import FastAPI

from serve_apps.gateway.config import GatewaySettings
from serve_apps.gateway.errors import CORS, install_error_handling, install_request_ids
from serve_apps.gateway.routes import (
    admin,
    analytics,
    auth,
    content,
    conversation,
    courses,
    encoders,
    evaluation,
    health,
    knowledge,
    models,
    people,
    review,
    sessions,
)
from serve_apps.gateway.web_app import install_web_app

ROUTERS = (
    admin.router,
    analytics.router,
    auth.router,
    content.router,
    content.trial_router,
    courses.router,
    evaluation.router,
    knowledge.router,
    # Before models: its /v1/models/{role}/... paths would take /v1/models/embedder/...
    encoders.router,
    models.router,
    people.router,
    review.router,
    health.router,
    sessions.router,
    conversation.router,
)


def create_api(settings: GatewaySettings) -> FastAPI:
    """The app a replica serves; its routes reach the replica's clients through
    ``app.state.gateway`` (``serve_apps.gateway.deps``), which the deployment sets."""
    api = FastAPI(
        title="SalesBoost",
        version="0.1.0",
        description="AI sales-training simulator: practise conversations with customer personas.",
    )
    install_error_handling(api, settings)
    api.add_middleware(
        CORS,
        allow_origins=settings.allowed_origins,
        allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
        allow_headers=["Authorization", "Content-Type", "X-Request-ID"],
        expose_headers=["X-Request-ID", "Retry-After"],
        max_age=600,
    )
    # The pages under /app (web/dist), same origin as the API.
    install_web_app(api)
    for router in ROUTERS:
        api.include_router(router)
    # Last, so that it is the outermost: every answer, the CORS refusal included, has its id.
    install_request_ids(api)
    return api
