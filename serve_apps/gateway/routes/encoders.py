"""The embedder and the reranker for ML engineers: which version is active, their swaps, and
putting an earlier embedder's knowledge-base versions back.

The platform's encoders serve every company, so only its model admins change them (as the
model versions: ``routes/models.py``); each change is written to the admin's company's audit
log. The changes run in the knowledge service (``serve_apps/knowledge/encoder_swap.py``):
these answer 202 at once, and ``GET /v1/models/encoders`` shows how they go.

Registered before ``routes/models.py``, whose ``/v1/models/{role}/...`` would take these
paths and refuse the role.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body
from pydantic import ValidationError

from serve_apps.gateway.deps import AdminDep, AuditDep, StateDep, TenantSessionDep
from serve_apps.gateway.errors import APIError
from serve_apps.gateway.routes.models import MAX_CONFIG_KEYS, ConfigBody, _model_admin

router = APIRouter(tags=["models"])

EncoderKind = Literal["embedder", "reranker"]
VersionBody = Annotated[
    str,
    Body(
        embed=True,
        min_length=1,
        max_length=300,
        description="An embedder version (model@hash), as the status and the knowledge "
        "bases' versions show it.",
    ),
]


def _encoder_settings(config: dict[str, Any], kind: EncoderKind) -> dict[str, Any]:
    """The config as the knowledge service takes it, or 422 naming the field that is wrong."""
    from models.encoders import EncoderDeploymentSettings

    if len(config) > MAX_CONFIG_KEYS:
        raise APIError(422, "invalid_request", "body.config: not an encoder config")
    config = {"kind": kind, **config}
    try:
        settings = EncoderDeploymentSettings.model_validate(config)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        where = f"body.config.{field}" if field else "body.config"
        raise APIError(422, "invalid_request", f"{where}: {first['msg']}") from None
    if settings.kind != kind:
        raise APIError(
            422, "invalid_request", f"body.config.kind: {settings.kind}; this swaps the {kind}"
        )
    return settings.model_dump(mode="json", exclude_defaults=True)


async def _change(call: Any) -> dict[str, Any]:
    """A change asked of the knowledge service: 409 while another of the same encoder runs,
    422 when it is not one this deployment can make, 503 when the service fails."""
    from serve_apps.knowledge.encoder_swap import EncoderChangeRefused, own_words

    try:
        return await call
    except EncoderChangeRefused as exc:
        raise APIError(409, "conflict", own_words(exc)) from None
    except ValueError as exc:
        raise APIError(422, "invalid_request", own_words(exc)) from None
    except Exception as exc:
        raise APIError(
            503,
            "knowledge_unavailable",
            "the knowledge service is unavailable just now; try again",
            detail=f"encoder change failed: {own_words(exc)}",
        ) from None


@router.get("/v1/models/encoders")
async def encoder_versions(who: AdminDep, session: TenantSessionDep, state: StateDep) -> dict:
    """The active embedder (it builds new knowledge-base versions; each version keeps its
    own) and reranker, whether each is the Serve config's, and the last change of each."""
    await _model_admin(state, session, who)
    return await _change(state.knowledge.encoder_status.remote())


@router.post("/v1/models/embedder/swap", status_code=202)
async def swap_embedder(
    who: AdminDep,
    session: TenantSessionDep,
    state: StateDep,
    audit: AuditDep,
    config: ConfigBody,
) -> dict:
    """Rebuild every company's knowledge bases with the embedder ``config`` describes, each
    beside its live version and switched when built; the old versions stay restorable.
    Searches go on, each by the embedder of the version it searches. 409 while another
    embedder change runs; 422 for a config that does not validate."""
    await _model_admin(state, session, who)
    settings = _encoder_settings(config, "embedder")
    started = await _change(state.knowledge.swap_embedder.remote(settings))
    await audit.record(session, "model.swap", "embedder", version=started["candidate"])
    return started


@router.post("/v1/models/embedder/restore", status_code=202)
async def restore_embedder(
    who: AdminDep,
    session: TenantSessionDep,
    state: StateDep,
    audit: AuditDep,
    version: VersionBody,
) -> dict:
    """Make live again, in every knowledge base, the newest version the embedder ``version``
    built, and let it build new versions. 409 while another embedder change runs; 422 when
    no kept version records it (and it is not the Serve config's)."""
    await _model_admin(state, session, who)
    started = await _change(state.knowledge.restore_embedder.remote(version))
    await audit.record(session, "model.restore", "embedder", version=started["candidate"])
    return started


@router.post("/v1/models/reranker/swap", status_code=202)
async def swap_reranker(
    who: AdminDep,
    session: TenantSessionDep,
    state: StateDep,
    audit: AuditDep,
    config: ConfigBody,
) -> dict:
    """Score the next searches with the reranker ``config`` describes once it answers (a
    cross-encoder, or ``late-interaction``); searches under way finish on the old one. 409
    while another reranker change runs; 422 for a config that does not validate or a
    cross-encoder with no Reranker deployment to run on."""
    await _model_admin(state, session, who)
    settings = _encoder_settings(config, "reranker")
    started = await _change(state.knowledge.swap_reranker.remote(settings))
    await audit.record(session, "model.swap", "reranker", version=started["candidate"])
    return started
