"""Model versions for ML engineers: which version answers each role, the swap, and the
canary (a share of the new sessions on a candidate; its numbers; its promotion or rollback).

The platform's models serve every company, so only the admins of the companies named in
``model_admin_tenants`` may change them; each change is written to that company's audit log.
The changes run in the ``ModelLifecycle`` deployment (``serve_apps/model_lifecycle``): these
answer 202 at once, and ``GET /v1/models`` shows how they go.

The comparison reads stored rows, which are each company's own: here, under row-level
security, the caller's company's only. Every company's rows together are the platform
operator's to read (``salesboost operator model-compare``, audited in each company's log).
A replay of stored sessions against a candidate likewise reads the caller's company's
sessions only, here, and hands them to the lifecycle as data; its report is the caller's
company's to fetch.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Query
from pydantic import BaseModel, Field, ValidationError
from sqlalchemy import select

from db import model_version_repository as versions_repo
from db.models import Tenant
from serve_apps.contracts.models import ModelRole
from serve_apps.contracts.replay import MAX_REPLAY_SESSIONS, ReplayTurnSettings
from serve_apps.gateway.deps import AdminDep, AuditDep, StateDep, TenantSessionDep
from serve_apps.gateway.errors import APIError
from serve_apps.gateway.identity import Identity
from serve_apps.model_lifecycle.replay import ReplayStore
from serve_apps.model_lifecycle.routing import MAX_SHARE, MIN_SHARE

router = APIRouter(tags=["models"])

# A model config is a few dozen settings; anything bigger is not one.
MAX_CONFIG_KEYS = 64
RolePath = Annotated[ModelRole, Path(description="npc or judge.")]
ConfigBody = Annotated[
    dict[str, Any],
    Body(embed=True, description="The model config (models/configs/*.yaml's fields)."),
]


async def _model_admin(state: Any, session: Any, who: Identity) -> str:
    """The caller's company's slug, when its admins are the platform's model admins."""
    slug = await session.scalar(select(Tenant.slug).where(Tenant.id == who.tenant_id))
    if slug not in state.settings.model_admins():
        raise APIError(
            403, "forbidden", "model versions are the platform's: its model admins change them"
        )
    return slug


def _settings(config: dict[str, Any]) -> Any:
    """The config as the lifecycle takes it, or 422 naming the field that is wrong."""
    from models.llm import LLMDeploymentSettings

    if len(config) > MAX_CONFIG_KEYS:
        raise APIError(422, "invalid_request", "body.config: not a model config")
    try:
        return LLMDeploymentSettings.model_validate(config)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        raise APIError(422, "invalid_request", f"body.config.{field}: {first['msg']}") from None


async def _lifecycle(call: Any) -> dict[str, Any]:
    """A change asked of the lifecycle: 409 when the role's state refuses it, 422 when the
    lifecycle finds the request is not one it can make."""
    from serve_apps.model_lifecycle.changes import ChangeRefused

    try:
        return await call
    except ChangeRefused as exc:
        raise APIError(409, "conflict", str(exc)) from None
    except ValueError as exc:
        raise APIError(422, "invalid_request", str(exc)) from None


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
    role: RolePath,
    config: ConfigBody,
) -> dict:
    """Bring up the version ``config`` describes beside the one answering, move the role's
    turns to it once it answers, and retire the old one after it finished its replies.
    409 while another change of the role or a canary of it runs; 422 for a config that does
    not validate."""
    await _model_admin(state, session, who)
    settings = _settings(config)
    started = await _lifecycle(
        state.model_lifecycle.swap.remote(role, settings.model_dump(mode="json"))
    )
    await audit.record(session, "model.swap", role, version=settings.version)
    return started


class CanaryRequest(BaseModel):
    config: dict[str, Any] = Field(description="The model config (models/configs/*.yaml's).")
    share: int = Field(
        ge=MIN_SHARE, le=MAX_SHARE, description="Percent of the new sessions the candidate gets."
    )
    seed: int | None = Field(
        None,
        ge=0,
        lt=2**31,
        description="Which sessions draw the candidate: a hash of the session id and this. "
        "None: a random one, shown in the answer and the status.",
    )


@router.post("/v1/models/{role}/canary", status_code=202)
async def start_canary(
    who: AdminDep,
    session: TenantSessionDep,
    state: StateDep,
    audit: AuditDep,
    role: RolePath,
    body: CanaryRequest,
) -> dict:
    """Bring up the version ``config`` describes beside the active one; once it answers,
    ``share`` percent of the new sessions get it, drawn once per session from its id and the
    seed, and keep it for all their turns. 409 while another change of the role or a canary
    of it runs; 422 for a config, share or role (the persona only) that is not one."""
    await _model_admin(state, session, who)
    settings = _settings(body.config)
    started = await _lifecycle(
        state.model_lifecycle.canary.remote(
            role, settings.model_dump(mode="json"), body.share, body.seed
        )
    )
    await audit.record(
        session,
        "model.canary",
        role,
        version=settings.version,
        share=body.share,
        seed=started["seed"],
    )
    return started


@router.post("/v1/models/{role}/promote", status_code=202)
async def promote_canary(
    who: AdminDep, session: TenantSessionDep, state: StateDep, audit: AuditDep, role: RolePath
) -> dict:
    """The canary's candidate answers every session from its next turn on; the old active
    version is retired once every gateway has read that. 409 with no canary."""
    await _model_admin(state, session, who)
    done = await _lifecycle(state.model_lifecycle.promote.remote(role))
    await audit.record(session, "model.promote", role, version=done["candidate"])
    return done


@router.post("/v1/models/{role}/rollback", status_code=202)
async def roll_back_canary(
    who: AdminDep, session: TenantSessionDep, state: StateDep, audit: AuditDep, role: RolePath
) -> dict:
    """The canary ends: the active version answers every session from its next turn on, and
    the candidate is retired once every gateway has read that. 409 with no canary."""
    await _model_admin(state, session, who)
    done = await _lifecycle(state.model_lifecycle.rollback.remote(role))
    await audit.record(session, "model.rollback", role, version=done["previous"])
    return done


@router.get("/v1/models/{role}/compare")
async def compare_versions(
    who: AdminDep,
    session: TenantSessionDep,
    state: StateDep,
    role: RolePath,
    days: Annotated[int, Query(ge=1, le=366, description="Sessions started since.")] = 30,
) -> dict:
    """Each persona model version's sessions, turns, evaluator scores (mean, spread),
    reviewer rejection rate, median time to first token and unanswered turns, from the
    caller's company's stored rows."""
    from serve_apps.model_lifecycle.comparison import compare_versions as compare

    slug = await _model_admin(state, session, who)
    if role != "npc":
        raise APIError(
            422, "invalid_request", "replies record the persona's version only: compare npc"
        )
    since = datetime.now(UTC) - timedelta(days=days)
    routing = await state.model_routing.read()
    canary = routing.canary(role)
    active = routing.route(role)
    return compare(
        await versions_repo.reply_rows(session, since=since),
        await versions_repo.session_rows(session, since=since),
        role=role,
        scope=slug,
        since=since,
        active=active.version if active else None,
        candidate=canary.candidate.version if canary else None,
    ).model_dump(mode="json")


class ReplayRequest(BaseModel):
    config: dict[str, Any] = Field(description="The model config (models/configs/*.yaml's).")
    sessions: int = Field(
        ge=1,
        le=MAX_REPLAY_SESSIONS,
        description="How many of your company's most recent sessions (ended, or with a stored "
        "reply) to replay.",
    )


@router.post("/v1/models/{role}/replay", status_code=202)
async def replay_sessions(
    who: AdminDep,
    session: TenantSessionDep,
    state: StateDep,
    audit: AuditDep,
    role: RolePath,
    body: ReplayRequest,
) -> dict:
    """Replay the trainee turns of your company's ``sessions`` most recent sessions against
    the version ``config`` describes (brought up beside the others if it is not served, no
    turn routed to it, removed after), with the reviewer and the evaluator; the report
    compares it with the stored replies. Answers at once with the replay's id: its progress
    and report are ``GET /v1/models/replays/{id}``. Nothing stored changes. 409 while a
    change of the model versions or another replay runs; 422 for a config that does not
    validate, a number of sessions outside 1-50, or no session to replay."""
    slug = await _model_admin(state, session, who)
    if role != "npc":
        raise APIError(
            422, "invalid_request", "replies record the persona's version only: replay npc"
        )
    settings = _settings(body.config)
    # The caller's company's sessions, read in its transaction (row-level security).
    stored = await versions_repo.stored_sessions(
        session, tenant_id=who.tenant_id, limit=body.sessions
    )
    if not stored:
        raise APIError(
            422,
            "invalid_request",
            "body.sessions: your company has no ended session, or one with a reply, to replay",
        )
    gateway = state.settings
    turn = ReplayTurnSettings(
        max_tokens=gateway.npc_max_tokens,
        temperature=gateway.npc_temperature,
        grounding_top_k=gateway.grounding_top_k,
        grounding_token_budget=gateway.grounding_token_budget,
        grounding_timeout_s=gateway.grounding_timeout_s,
    )
    started = await _lifecycle(
        state.model_lifecycle.replay.remote(
            role, settings.model_dump(mode="json"), stored, turn, slug
        )
    )
    await audit.record(
        session,
        "model.replay",
        role,
        version=settings.version,
        sessions=len(stored),
        replay_id=started["replay_id"],
    )
    return started


@router.get("/v1/models/replays/{replay_id}")
async def replay_report(
    who: AdminDep,
    session: TenantSessionDep,
    state: StateDep,
    replay_id: Annotated[str, Path(pattern=r"^[0-9a-f]{32}$", description="The replay's id.")],
) -> dict:
    """A replay's progress, and its report once it is done (kept for a day); only your
    company's replays."""
    await _model_admin(state, session, who)
    found = await ReplayStore(state.redis).get(replay_id)
    if found is None or found.tenant_id != str(who.tenant_id):
        raise APIError(404, "not_found", "no such replay (a report is kept for a day)")
    return found.model_dump(mode="json")
