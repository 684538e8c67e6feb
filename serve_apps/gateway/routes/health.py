"""Liveness, and readiness: the database, Redis, the model and the knowledge service."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text

from serve_apps.gateway.deps import StateDep
from serve_apps.gateway.schemas.health import HealthOut
from serve_apps.telemetry.metrics import product_metrics

router = APIRouter(tags=["health"])


@router.get("/health/live", response_model=HealthOut)
async def live() -> HealthOut:
    return HealthOut(status="ok")


@router.get("/health/ready", response_model=HealthOut)
async def ready(state: StateDep) -> JSONResponse:
    async def database() -> None:
        async with state.sessions() as session:
            await session.execute(text("SELECT 1"))

    # The versions that answer now (a swap moves them, a canary adds one): each must answer a
    # health check.
    routing = await state.model_routing.read()
    routes = routing.serving()
    checks: dict[str, Awaitable[object]] = {
        "database": database(),
        "redis": state.redis.ping(),
        "model": state.orchestrator.check_models.remote(routes),
        "knowledge": state.knowledge.check_health.remote(),
    }
    results: dict[str, str] = {}
    for name, pending in checks.items():
        try:
            await asyncio.wait_for(pending, timeout=5)
            results[name] = "ok"
        except Exception as exc:  # any failure means not ready; the reason is reported
            results[name] = f"failed: {type(exc).__name__}"
    ok = all(v == "ok" for v in results.values())
    up = product_metrics().dependency_up
    for name, result in results.items():  # what Serve's health probe sees, for the alerts
        up.set(1 if result == "ok" else 0, tags={"dependency": name})
    engines: list[dict[str, str]] = []
    if results["model"] == "ok":
        with contextlib.suppress(Exception):  # what the engines run in is not readiness
            engines = await asyncio.wait_for(state.orchestrator.engine_info.remote(routes), 5)
    body = HealthOut(status="ready" if ok else "not_ready", checks=results, engines=engines)
    return JSONResponse(body.model_dump(), status_code=200 if ok else 503)
