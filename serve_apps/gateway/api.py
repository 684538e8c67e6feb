"""The gateway's FastAPI application: one object that every route module registers on."""

from fastapi import FastAPI

from serve_apps.gateway.errors import install_error_handling

api = FastAPI(
    title="SalesBoost",
    version="0.1.0",
    description="AI sales-training simulator: practise conversations with customer personas.",
)
install_error_handling(api)
