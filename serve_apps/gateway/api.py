"""The gateway's FastAPI application: one object that every route module registers on."""

from fastapi import FastAPI

from serve_apps.gateway.errors import CORS, install_error_handling, install_request_ids
from serve_apps.gateway.web_app import install_web_app
from serve_apps.settings import get_settings

api = FastAPI(
    title="SalesBoost",
    version="0.1.0",
    description="AI sales-training simulator: practise conversations with customer personas.",
)
install_error_handling(api)
api.add_middleware(
    CORS,
    allow_origins=get_settings().allowed_origins,
    allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
    allow_headers=["Authorization", "Content-Type", "X-Request-ID"],
    expose_headers=["X-Request-ID", "Retry-After"],
    max_age=600,
)

# The pages under /app (web/dist), same origin as the API.
install_web_app(api)
# Last, so that it is the outermost: every answer, the CORS refusal included, has its id.
install_request_ids(api)
