"""Training content as data: personas, scenarios, rubrics and compliance rules.

Admins and managers create, read, update and delete them; every body is validated by the
same specs the seed and the agents use (``serve_apps.contracts.specs``), every write is
audited, and nothing a stored session refers to is deleted from under it (409). A compliance
rule can be tried on a sentence before it is saved, by the compliance agent's own checker.

Every write, once committed, invalidates its company's content cache in every replica
(``ContentWritten`` on the router), so the conversations running see it at their next turn.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Response
from pydantic import BaseModel
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from db import content_repository as content
from db.engine import tenant_transaction
from db.models import ComplianceRule, Persona, Rubric, Scenario
from db.repositories import NotFoundError
from serve_apps.contracts.specs import (
    SLUG_PATTERN,
    ComplianceRuleSpec,
    PersonaSpec,
    RubricSpec,
    ScenarioSpec,
)
from serve_apps.gateway.deps import (
    EDITORS,
    AuditDep,
    AuditLog,
    CallerDep,
    ContentWritten,
    StateDep,
    TenantSessionDep,
    having_role,
)
from serve_apps.gateway.errors import APIError
from serve_apps.gateway.identity import Identity
from serve_apps.gateway.schemas.content import RuleTryIn, RuleTryOut
from serve_apps.gateway.state import GatewayState
from serve_apps.gateway.use_cases.content import try_rule

router = APIRouter(tags=["content"], dependencies=[Depends(having_role(*EDITORS)), ContentWritten])
# Trying a rule writes nothing: no cache to invalidate (a POST on ``router`` would).
trial_router = APIRouter(tags=["content"], dependencies=[Depends(having_role(*EDITORS))])

Slug = Annotated[str, Path(pattern=SLUG_PATTERN, description="The item's slug.")]
# Whom a row is used by, to refuse its deletion (nothing: free to delete).
InUse = Callable[[AsyncSession, Any], Awaitable[object]]


@dataclass(frozen=True)
class Kind:
    """How one kind of content maps between its spec and its row."""

    name: str
    model: type[Any]
    spec: type[BaseModel]
    to_values: Callable[[Any], dict[str, Any]] = lambda spec: spec.model_dump()

    def to_spec(self, row: Any) -> BaseModel:
        return self.spec.model_validate(
            {field: getattr(row, field) for field in self.spec.model_fields}
        )


PERSONA = Kind("persona", Persona, PersonaSpec)
RUBRIC = Kind("rubric", Rubric, RubricSpec)
RULE = Kind("compliance_rule", ComplianceRule, ComplianceRuleSpec)
# Scenarios have their own create/read/update (persona links, rubric by slug); rows and deletes
# go through the shared helpers.
SCENARIO = Kind("scenario", Scenario, ScenarioSpec)


def _same_slug(path_slug: str, spec: BaseModel) -> None:
    if spec.slug != path_slug:  # type: ignore[attr-defined]
        raise APIError(422, "invalid_request", "the body's slug must match the path's")


# --- generic ------------------------------------------------------------------------------


async def _list(session: AsyncSession, kind: Kind) -> list[Any]:
    return [kind.to_spec(row) for row in await content.list_rows(session, kind.model)]


async def _row(session: AsyncSession, kind: Kind, slug: str) -> Any:
    try:
        return await content.by_slug(session, kind.model, slug)
    except NotFoundError:
        raise APIError(404, f"{kind.name}_not_found", f"no {kind.name} {slug!r}") from None


async def _create(
    state: GatewayState, who: Identity, audit: AuditLog, kind: Kind, spec: BaseModel
) -> Any:
    slug: str = spec.slug  # type: ignore[attr-defined]
    try:
        async with tenant_transaction(state.sessions, who.tenant_id) as session:
            session.add(kind.model(tenant_id=who.tenant_id, **kind.to_values(spec)))
            await session.flush()
            await audit.record(session, f"{kind.name}.create", slug)
    except IntegrityError:
        raise APIError(
            409, f"{kind.name}_exists", f"a {kind.name} {slug!r} exists already"
        ) from None
    return spec


async def _update(
    session: AsyncSession, audit: AuditLog, kind: Kind, slug: str, spec: BaseModel
) -> Any:
    _same_slug(slug, spec)
    content.assign(await _row(session, kind, slug), kind.to_values(spec))
    await audit.record(session, f"{kind.name}.update", slug)
    return spec


async def _delete(
    session: AsyncSession, audit: AuditLog, kind: Kind, slug: str, in_use: InUse
) -> Response:
    row = await _row(session, kind, slug)
    users = await in_use(session, row)
    if users:
        raise APIError(409, f"{kind.name}_in_use", f"{kind.name} {slug!r} is used by {users}")
    await session.delete(row)
    await audit.record(session, f"{kind.name}.delete", slug)
    return Response(status_code=204)


# --- personas ------------------------------------------------------------------------------


@router.get("/v1/personas", response_model=list[PersonaSpec])
async def list_personas(session: TenantSessionDep) -> list[Any]:
    return await _list(session, PERSONA)


@router.post("/v1/personas", response_model=PersonaSpec, status_code=201)
async def create_persona(
    body: PersonaSpec, who: CallerDep, audit: AuditDep, state: StateDep
) -> Any:
    return await _create(state, who, audit, PERSONA, body)


@router.get("/v1/personas/{slug}", response_model=PersonaSpec)
async def get_persona(slug: Slug, session: TenantSessionDep) -> Any:
    return PERSONA.to_spec(await _row(session, PERSONA, slug))


@router.put("/v1/personas/{slug}", response_model=PersonaSpec)
async def update_persona(
    slug: Slug, body: PersonaSpec, audit: AuditDep, session: TenantSessionDep
) -> Any:
    return await _update(session, audit, PERSONA, slug, body)


@router.delete("/v1/personas/{slug}", status_code=204)
async def delete_persona(slug: Slug, audit: AuditDep, session: TenantSessionDep) -> Response:
    async def in_use(session: AsyncSession, row: Any) -> object:
        return await content.scenarios_using_persona(session, persona_id=row.id)

    return await _delete(session, audit, PERSONA, slug, in_use)


# --- rubrics ---------------------------------------------------------------------------------


@router.get("/v1/rubrics", response_model=list[RubricSpec])
async def list_rubrics(session: TenantSessionDep) -> list[Any]:
    return await _list(session, RUBRIC)


@router.post("/v1/rubrics", response_model=RubricSpec, status_code=201)
async def create_rubric(body: RubricSpec, who: CallerDep, audit: AuditDep, state: StateDep) -> Any:
    return await _create(state, who, audit, RUBRIC, body)


@router.get("/v1/rubrics/{slug}", response_model=RubricSpec)
async def get_rubric(slug: Slug, session: TenantSessionDep) -> Any:
    return RUBRIC.to_spec(await _row(session, RUBRIC, slug))


@router.put("/v1/rubrics/{slug}", response_model=RubricSpec)
async def update_rubric(
    slug: Slug, body: RubricSpec, audit: AuditDep, session: TenantSessionDep
) -> Any:
    return await _update(session, audit, RUBRIC, slug, body)


@router.delete("/v1/rubrics/{slug}", status_code=204)
async def delete_rubric(slug: Slug, audit: AuditDep, session: TenantSessionDep) -> Response:
    async def in_use(session: AsyncSession, row: Any) -> object:
        return await content.scenarios_using_rubric(session, rubric_id=row.id)

    return await _delete(session, audit, RUBRIC, slug, in_use)


# --- compliance rules ------------------------------------------------------------------------


@router.get("/v1/compliance-rules", response_model=list[ComplianceRuleSpec])
async def list_compliance_rules(session: TenantSessionDep) -> list[Any]:
    return await _list(session, RULE)


@router.post("/v1/compliance-rules", response_model=ComplianceRuleSpec, status_code=201)
async def create_compliance_rule(
    body: ComplianceRuleSpec, who: CallerDep, audit: AuditDep, state: StateDep
) -> Any:
    return await _create(state, who, audit, RULE, body)


@trial_router.post("/v1/compliance-rules/try", response_model=RuleTryOut)
async def try_compliance_rule(body: RuleTryIn, state: StateDep) -> RuleTryOut:
    """The findings the compliance agent gives a sentence under a rule (stored or not),
    as said by the rule's first party: ``forbidden``, ``disclosure`` and ``semantic`` rules
    (the same embedder as in a session). Nothing is stored."""
    return await try_rule(state.matcher, body)


@router.get("/v1/compliance-rules/{slug}", response_model=ComplianceRuleSpec)
async def get_compliance_rule(slug: Slug, session: TenantSessionDep) -> Any:
    return RULE.to_spec(await _row(session, RULE, slug))


@router.put("/v1/compliance-rules/{slug}", response_model=ComplianceRuleSpec)
async def update_compliance_rule(
    slug: Slug, body: ComplianceRuleSpec, audit: AuditDep, session: TenantSessionDep
) -> Any:
    return await _update(session, audit, RULE, slug, body)


@router.delete("/v1/compliance-rules/{slug}", status_code=204)
async def delete_compliance_rule(
    slug: Slug, audit: AuditDep, session: TenantSessionDep
) -> Response:
    async def in_use(session: AsyncSession, row: Any) -> object:
        return []  # findings keep the rule's slug and description in their payload

    return await _delete(session, audit, RULE, slug, in_use)


# --- scenarios -------------------------------------------------------------------------------


async def _scenario_values(session: AsyncSession, spec: ScenarioSpec) -> dict[str, Any]:
    persona_ids = await content.slugs_to_ids(session, Persona, spec.personas)
    missing = [s for s in spec.personas if s not in persona_ids]
    rubric_id = None
    if spec.rubric is not None:
        rubric_id = (await content.slugs_to_ids(session, Rubric, [spec.rubric])).get(spec.rubric)
        if rubric_id is None:
            missing.append(f"rubric {spec.rubric}")
    if missing:
        raise APIError(422, "unknown_reference", f"no such personas or rubric: {missing}")
    values = spec.model_dump(exclude={"personas", "rubric"})
    return {
        **values,
        "rubric_id": rubric_id,
        "_persona_ids": [persona_ids[s] for s in spec.personas],
    }


async def _scenario_spec(session: AsyncSession, scenario: Scenario) -> ScenarioSpec:
    rubric = await session.get(Rubric, scenario.rubric_id) if scenario.rubric_id else None
    return ScenarioSpec(
        slug=scenario.slug,
        title=scenario.title,
        product=scenario.product,
        stage=scenario.stage,
        difficulty=scenario.difficulty,
        description=scenario.description,
        knowledge_base=scenario.knowledge_base,
        customer_knowledge_base=scenario.customer_knowledge_base,
        vendor_website_knowledge_base=scenario.vendor_website_knowledge_base,
        rubric=rubric.slug if rubric else None,
        personas=[link.persona.slug for link in scenario.personas],
    )


@router.post("/v1/scenarios", response_model=ScenarioSpec, status_code=201)
async def create_scenario(
    body: ScenarioSpec, who: CallerDep, audit: AuditDep, state: StateDep
) -> Any:
    try:
        async with tenant_transaction(state.sessions, who.tenant_id) as session:
            values = await _scenario_values(session, body)
            persona_ids = values.pop("_persona_ids")
            scenario = Scenario(tenant_id=who.tenant_id, **values)
            session.add(scenario)
            await session.flush()
            await content.set_scenario_personas(
                session, tenant_id=who.tenant_id, scenario=scenario, persona_ids=persona_ids
            )
            await audit.record(session, "scenario.create", body.slug)
    except IntegrityError:
        raise APIError(409, "scenario_exists", f"a scenario {body.slug!r} exists already") from None
    return body


@router.get("/v1/scenarios/{slug}", response_model=ScenarioSpec)
async def get_scenario(slug: Slug, session: TenantSessionDep) -> Any:
    return await _scenario_spec(session, await _row(session, SCENARIO, slug))


@router.put("/v1/scenarios/{slug}", response_model=ScenarioSpec)
async def update_scenario(
    slug: Slug, body: ScenarioSpec, who: CallerDep, audit: AuditDep, session: TenantSessionDep
) -> Any:
    _same_slug(slug, body)
    scenario = await _row(session, SCENARIO, slug)
    values = await _scenario_values(session, body)
    persona_ids = values.pop("_persona_ids")
    content.assign(scenario, values)
    await content.set_scenario_personas(
        session, tenant_id=who.tenant_id, scenario=scenario, persona_ids=persona_ids
    )
    await audit.record(session, "scenario.update", slug)
    return body


@router.delete("/v1/scenarios/{slug}", status_code=204)
async def delete_scenario(slug: Slug, audit: AuditDep, session: TenantSessionDep) -> Response:
    async def in_use(session: AsyncSession, row: Any) -> object:
        count = await content.sessions_of_scenario(session, scenario_id=row.id)
        return f"{count} training sessions" if count else None

    return await _delete(session, audit, SCENARIO, slug, in_use)
