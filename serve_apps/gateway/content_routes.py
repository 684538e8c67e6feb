"""Training content as data: personas, scenarios, rubrics and compliance rules.

A mixin of the gateway deployment. Admins and managers create, read, update and delete
them; every body is validated by the same specs the seed and the agents use
(``serve_apps.contracts.specs``), every write is audited, and nothing a stored session
refers to is deleted from under it (409). A compliance rule can be tried on a sentence
before it is saved, by the compliance agent's own checker.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Path, Request, Response
from pydantic import BaseModel
from sqlalchemy.exc import IntegrityError

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
from serve_apps.gateway.api import api
from serve_apps.gateway.errors import APIError
from serve_apps.gateway.identity import Identity
from serve_apps.gateway.schemas import RuleTryIn, RuleTryOut
from serve_apps.orchestrator.agents.compliance import ComplianceChecker

Slug = Annotated[str, Path(pattern=SLUG_PATTERN, description="The item's slug.")]
EDITORS = ("admin", "manager")
# What a sentence alone decides: judge rules need the judge model and knowledge_claims rules
# the knowledge retrieved for a turn, both in a session.
TRYABLE_KINDS = ("forbidden", "disclosure", "semantic")


@dataclass(frozen=True)
class Kind:
    """How one kind of content maps between its spec and its row."""

    name: str
    model: type
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


class ContentRoutes:
    # Provided by the gateway deployment this is mixed into.
    sessions: Any
    matcher: Any  # SemanticMatcher on the Embedder deployment, or None
    _identity_from: Any
    _audit: Any

    async def _editor(self, request: Request) -> Identity:
        who = await self._identity_from(request)
        who.require(*EDITORS)
        return who

    @staticmethod
    def _same_slug(path_slug: str, spec: BaseModel) -> None:
        if spec.slug != path_slug:  # type: ignore[attr-defined]
            raise APIError(422, "invalid_request", "the body's slug must match the path's")

    # --- generic ------------------------------------------------------------------------------

    async def _list(self, request: Request, kind: Kind) -> list[Any]:
        who = await self._editor(request)
        async with tenant_transaction(self.sessions, who.tenant_id) as session:
            return [kind.to_spec(row) for row in await content.list_rows(session, kind.model)]

    async def _get(self, request: Request, kind: Kind, slug: str) -> Any:
        who = await self._editor(request)
        async with tenant_transaction(self.sessions, who.tenant_id) as session:
            return kind.to_spec(await self._row(session, kind, slug))

    async def _row(self, session: Any, kind: Kind, slug: str) -> Any:
        try:
            return await content.by_slug(session, kind.model, slug)
        except NotFoundError:
            raise APIError(404, f"{kind.name}_not_found", f"no {kind.name} {slug!r}") from None

    async def _create(self, request: Request, kind: Kind, spec: BaseModel) -> Any:
        who = await self._editor(request)
        try:
            async with tenant_transaction(self.sessions, who.tenant_id) as session:
                session.add(kind.model(tenant_id=who.tenant_id, **kind.to_values(spec)))
                await session.flush()
                await self._audit(session, who, request, f"{kind.name}.create", spec.slug)
        except IntegrityError:
            raise APIError(
                409, f"{kind.name}_exists", f"a {kind.name} {spec.slug!r} exists already"
            ) from None
        return spec

    async def _update(self, request: Request, kind: Kind, slug: str, spec: BaseModel) -> Any:
        self._same_slug(slug, spec)
        who = await self._editor(request)
        async with tenant_transaction(self.sessions, who.tenant_id) as session:
            content.assign(await self._row(session, kind, slug), kind.to_values(spec))
            await self._audit(session, who, request, f"{kind.name}.update", slug)
        return spec

    async def _delete(
        self, request: Request, kind: Kind, slug: str, in_use: Callable[[Any, Any], Any]
    ) -> Response:
        who = await self._editor(request)
        async with tenant_transaction(self.sessions, who.tenant_id) as session:
            row = await self._row(session, kind, slug)
            users = await in_use(session, row)
            if users:
                raise APIError(
                    409, f"{kind.name}_in_use", f"{kind.name} {slug!r} is used by {users}"
                )
            await session.delete(row)
            await self._audit(session, who, request, f"{kind.name}.delete", slug)
        return Response(status_code=204)

    # --- personas ------------------------------------------------------------------------------

    @api.get("/v1/personas", response_model=list[PersonaSpec], tags=["content"])
    async def list_personas(self, request: Request) -> list[Any]:
        return await self._list(request, PERSONA)

    @api.post("/v1/personas", response_model=PersonaSpec, status_code=201, tags=["content"])
    async def create_persona(self, body: PersonaSpec, request: Request) -> Any:
        return await self._create(request, PERSONA, body)

    @api.get("/v1/personas/{slug}", response_model=PersonaSpec, tags=["content"])
    async def get_persona(self, slug: Slug, request: Request) -> Any:
        return await self._get(request, PERSONA, slug)

    @api.put("/v1/personas/{slug}", response_model=PersonaSpec, tags=["content"])
    async def update_persona(self, slug: Slug, body: PersonaSpec, request: Request) -> Any:
        return await self._update(request, PERSONA, slug, body)

    @api.delete("/v1/personas/{slug}", status_code=204, tags=["content"])
    async def delete_persona(self, slug: Slug, request: Request) -> Response:
        async def in_use(session, row):
            return await content.scenarios_using_persona(session, persona_id=row.id)

        return await self._delete(request, PERSONA, slug, in_use)

    # --- rubrics ---------------------------------------------------------------------------------

    @api.get("/v1/rubrics", response_model=list[RubricSpec], tags=["content"])
    async def list_rubrics(self, request: Request) -> list[Any]:
        return await self._list(request, RUBRIC)

    @api.post("/v1/rubrics", response_model=RubricSpec, status_code=201, tags=["content"])
    async def create_rubric(self, body: RubricSpec, request: Request) -> Any:
        return await self._create(request, RUBRIC, body)

    @api.get("/v1/rubrics/{slug}", response_model=RubricSpec, tags=["content"])
    async def get_rubric(self, slug: Slug, request: Request) -> Any:
        return await self._get(request, RUBRIC, slug)

    @api.put("/v1/rubrics/{slug}", response_model=RubricSpec, tags=["content"])
    async def update_rubric(self, slug: Slug, body: RubricSpec, request: Request) -> Any:
        return await self._update(request, RUBRIC, slug, body)

    @api.delete("/v1/rubrics/{slug}", status_code=204, tags=["content"])
    async def delete_rubric(self, slug: Slug, request: Request) -> Response:
        async def in_use(session, row):
            return await content.scenarios_using_rubric(session, rubric_id=row.id)

        return await self._delete(request, RUBRIC, slug, in_use)

    # --- compliance rules ------------------------------------------------------------------------

    @api.get("/v1/compliance-rules", response_model=list[ComplianceRuleSpec], tags=["content"])
    async def list_compliance_rules(self, request: Request) -> list[Any]:
        return await self._list(request, RULE)

    @api.post(
        "/v1/compliance-rules", response_model=ComplianceRuleSpec, status_code=201, tags=["content"]
    )
    async def create_compliance_rule(self, body: ComplianceRuleSpec, request: Request) -> Any:
        return await self._create(request, RULE, body)

    @api.post("/v1/compliance-rules/try", response_model=RuleTryOut, tags=["content"])
    async def try_compliance_rule(self, body: RuleTryIn, request: Request) -> RuleTryOut:
        """The findings the compliance agent gives a sentence under a rule (stored or not),
        as said by the rule's first party: ``forbidden``, ``disclosure`` and ``semantic`` rules
        (the same embedder as in a session). Nothing is stored."""
        await self._editor(request)
        rule = body.rule
        if rule.kind not in TRYABLE_KINDS:
            raise APIError(
                422,
                "rule_not_tryable",
                f"a {rule.kind} rule is decided in a session (judge: by the judge model; "
                "knowledge_claims: against the knowledge found for the turn); a sentence can "
                f"be tried on {', '.join(TRYABLE_KINDS)} rules",
            )
        party = rule.applies_to[0]
        turn = {"party": party, "speaker": party, "reply_to": 0}
        if rule.kind != "semantic":
            return RuleTryOut(findings=ComplianceChecker([rule]).check(body.sentence, **turn))
        unavailable = "the sentence embedder is unavailable just now; try again in a moment"
        if self.matcher is None:
            raise APIError(503, "embedder_unavailable", unavailable, detail="no embedder handle")
        checker = ComplianceChecker([rule], matcher=self.matcher)
        try:
            findings = await checker.semantic_check(body.sentence, **turn)
        except Exception as exc:
            raise APIError(
                503, "embedder_unavailable", unavailable, detail=f"embedder failed: {exc!r}"[:300]
            ) from None
        return RuleTryOut(findings=findings)

    @api.get("/v1/compliance-rules/{slug}", response_model=ComplianceRuleSpec, tags=["content"])
    async def get_compliance_rule(self, slug: Slug, request: Request) -> Any:
        return await self._get(request, RULE, slug)

    @api.put("/v1/compliance-rules/{slug}", response_model=ComplianceRuleSpec, tags=["content"])
    async def update_compliance_rule(
        self, slug: Slug, body: ComplianceRuleSpec, request: Request
    ) -> Any:
        return await self._update(request, RULE, slug, body)

    @api.delete("/v1/compliance-rules/{slug}", status_code=204, tags=["content"])
    async def delete_compliance_rule(self, slug: Slug, request: Request) -> Response:
        async def in_use(session, row):
            return []  # findings keep the rule's slug and description in their payload

        return await self._delete(request, RULE, slug, in_use)

    # --- scenarios -------------------------------------------------------------------------------

    async def _scenario_values(self, session: Any, spec: ScenarioSpec) -> dict[str, Any]:
        persona_ids = await content.slugs_to_ids(session, Persona, spec.personas)
        missing = [s for s in spec.personas if s not in persona_ids]
        rubric_id = None
        if spec.rubric is not None:
            rubric_id = (await content.slugs_to_ids(session, Rubric, [spec.rubric])).get(
                spec.rubric
            )
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

    async def _scenario_spec(self, session: Any, scenario: Scenario) -> ScenarioSpec:
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

    @api.post("/v1/scenarios", response_model=ScenarioSpec, status_code=201, tags=["content"])
    async def create_scenario(self, body: ScenarioSpec, request: Request) -> Any:
        who = await self._editor(request)
        try:
            async with tenant_transaction(self.sessions, who.tenant_id) as session:
                values = await self._scenario_values(session, body)
                persona_ids = values.pop("_persona_ids")
                scenario = Scenario(tenant_id=who.tenant_id, **values)
                session.add(scenario)
                await session.flush()
                await content.set_scenario_personas(
                    session, tenant_id=who.tenant_id, scenario=scenario, persona_ids=persona_ids
                )
                await self._audit(session, who, request, "scenario.create", body.slug)
        except IntegrityError:
            raise APIError(
                409, "scenario_exists", f"a scenario {body.slug!r} exists already"
            ) from None
        return body

    @api.get("/v1/scenarios/{slug}", response_model=ScenarioSpec, tags=["content"])
    async def get_scenario(self, slug: Slug, request: Request) -> Any:
        who = await self._editor(request)
        async with tenant_transaction(self.sessions, who.tenant_id) as session:
            scenario = await self._row(session, SCENARIO, slug)
            return await self._scenario_spec(session, scenario)

    @api.put("/v1/scenarios/{slug}", response_model=ScenarioSpec, tags=["content"])
    async def update_scenario(self, slug: Slug, body: ScenarioSpec, request: Request) -> Any:
        self._same_slug(slug, body)
        who = await self._editor(request)
        async with tenant_transaction(self.sessions, who.tenant_id) as session:
            scenario = await self._row(session, SCENARIO, slug)
            values = await self._scenario_values(session, body)
            persona_ids = values.pop("_persona_ids")
            content.assign(scenario, values)
            await content.set_scenario_personas(
                session, tenant_id=who.tenant_id, scenario=scenario, persona_ids=persona_ids
            )
            await self._audit(session, who, request, "scenario.update", slug)
        return body

    @api.delete("/v1/scenarios/{slug}", status_code=204, tags=["content"])
    async def delete_scenario(self, slug: Slug, request: Request) -> Response:
        async def in_use(session, row):
            count = await content.sessions_of_scenario(session, scenario_id=row.id)
            return f"{count} training sessions" if count else None

        return await self._delete(request, SCENARIO, slug, in_use)
