"""Model versions for ML engineers: which version answers each role, and the swap.

The platform's models serve every company, so only the admins of the companies named in
``model_admin_tenants`` may swap them; each swap is written to that company's audit log.
The swap itself runs in the ``ModelLifecycle`` deployment (``serve_apps/model_lifecycle``):
this answers 202 at once, and ``GET /v1/models`` shows how it goes.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Path
from pydantic import ValidationError
from sqlalchemy import select

from db.models import Tenant
from serve_apps.contracts.models import ModelRole
from serve_apps.gateway.deps import AdminDep, AuditDep, StateDep, TenantSessionDep
from serve_apps.gateway.errors import APIError
from serve_apps.gateway.identity import Identity

router = APIRouter(tags=["models"])

# A model config is a few dozen settings; anything bigger is not one.
MAX_CONFIG_KEYS = 64


async def _model_admin(state: Any, session: Any, who: Identity) -> None:
    slug = await session.scalar(select(Tenant.slug).where(Tenant.id == who.tenant_id))
    if slug not in state.settings.model_admins():
        raise APIError(
            403, "forbidden", "model versions are the platform's: its model admins swap them"
        )


@router.get("/v1/models")
async def model_versions(who: AdminDep, session: TenantSessionDep, state: StateDep) -> dict:
    """Each role's version, whether it is the Serve config's, and its last swap."""
    await _model_admin(state, session, who)
    return await state.model_lifecycle.status.remote()


@router.post("/v1/models/{role}/swap", status_code=202)
async def swap_model(
    who: AdminDep,
    session: TenantSessionDep,
    state: StateDep,
    audit: AuditDep,
    role: Annotated[ModelRole, Path(description="npc or judge.")],
    config: Annotated[
        dict[str, Any],
        Body(embed=True, description="The model config (models/configs/*.yaml's fields)."),
    ],
) -> dict:
    """Bring up the version ``config`` describes beside the one answering, move the role's
    turns to it once it answers, and retire the old one after it finished its replies.
    409 while another swap of the role runs; 422 for a config that does not validate."""
    from models.llm import LLMDeploymentSettings
    from serve_apps.model_lifecycle.deployment import SwapRefused

    await _model_admin(state, session, who)
    if len(config) > MAX_CONFIG_KEYS:
        raise APIError(422, "invalid_request", "body.config: not a model config")
    try:
        settings = LLMDeploymentSettings.model_validate(config)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        raise APIError(422, "invalid_request", f"body.config.{field}: {first['msg']}") from None
    try:
        started = await state.model_lifecycle.swap.remote(role, settings.model_dump(mode="json"))
    except SwapRefused as exc:
        raise APIError(409, "conflict", str(exc)) from None
    except ValueError as exc:
        raise APIError(422, "invalid_request", str(exc)) from None
    await audit.record(session, "model.swap", role, version=settings.version)
    return started
