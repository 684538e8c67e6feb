"""Seeding tenants from readable YAML files (the demo tenant ships here)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import select
from sqlalchemy.orm import Session

from db.engine import act_as_tenant
from db.models import (
    ComplianceRule,
    Persona,
    Rubric,
    Scenario,
    ScenarioPersona,
    Tenant,
    User,
    UserRole,
)
from serve_apps.contracts.specs import ComplianceRuleSpec, RubricSpec

DEMO_TENANT_FILE = Path(__file__).parent / "demo_tenant.yaml"


def seed_tenant(session: Session, data: dict[str, Any]) -> Tenant:
    """Create the tenant and its rows unless they exist; return the tenant. Idempotent."""
    spec = data["tenant"]
    tenant = session.scalar(select(Tenant).where(Tenant.slug == spec["slug"]))
    if tenant is None:
        tenant = Tenant(slug=spec["slug"], name=spec["name"])
        session.add(tenant)
        session.flush()
    # Row-level security is forced for the owner too: act inside the tenant.
    session.execute(*act_as_tenant(tenant.id))
    for user in data.get("users", []):
        if session.scalar(select(User.id).where(User.email == user["email"])) is None:
            session.add(
                User(
                    tenant_id=tenant.id,
                    role=UserRole(user["role"]),
                    **{k: user[k] for k in ("email", "display_name")},
                )
            )
    personas: dict[str, Persona] = {
        p.slug: p for p in session.scalars(select(Persona).where(Persona.tenant_id == tenant.id))
    }
    for spec_persona in data.get("personas", []):
        persona = personas.get(spec_persona["slug"])
        if persona is None:
            persona = Persona(tenant_id=tenant.id, **spec_persona)
            session.add(persona)
            personas[persona.slug] = persona
        elif not persona.topics and spec_persona.get("topics"):  # seeded before topics existed
            persona.topics = spec_persona["topics"]
    rubrics = _seed_rubrics(session, tenant, data.get("rubrics", []))
    _seed_compliance_rules(session, tenant, data.get("compliance_rules", []))
    session.flush()
    for spec_scenario in data.get("scenarios", []):
        spec_scenario = dict(spec_scenario)
        persona_slugs = spec_scenario.pop("personas")
        rubric = rubrics.get(spec_scenario.pop("rubric", None) or "")
        existing = session.scalar(select(Scenario).where(Scenario.slug == spec_scenario["slug"]))
        if existing is not None:
            if existing.rubric_id is None and rubric is not None:
                existing.rubric_id = rubric.id
            for column in ("customer_knowledge_base", "vendor_website_knowledge_base"):
                if getattr(existing, column) is None and spec_scenario.get(column):
                    setattr(existing, column, spec_scenario[column])
            continue
        scenario = Scenario(
            tenant_id=tenant.id, rubric_id=rubric.id if rubric else None, **spec_scenario
        )
        session.add(scenario)
        session.flush()
        for position, slug in enumerate(persona_slugs):
            session.add(
                ScenarioPersona(
                    tenant_id=tenant.id,
                    scenario_id=scenario.id,
                    persona_id=personas[slug].id,
                    position=position,
                )
            )
    return tenant


def _seed_rubrics(session: Session, tenant: Tenant, specs: list[dict]) -> dict[str, Rubric]:
    rubrics = {r.slug: r for r in session.scalars(select(Rubric))}
    for raw in specs:
        spec = RubricSpec.model_validate(raw)
        if spec.slug not in rubrics:
            rubric = Rubric(
                tenant_id=tenant.id,
                slug=spec.slug,
                name=spec.name,
                pass_score=spec.pass_score,
                criteria=[c.model_dump() for c in spec.criteria],
            )
            session.add(rubric)
            rubrics[spec.slug] = rubric
    session.flush()
    return rubrics


def _seed_compliance_rules(session: Session, tenant: Tenant, specs: list[dict]) -> None:
    existing = set(session.scalars(select(ComplianceRule.slug)))
    for raw in specs:
        spec = ComplianceRuleSpec.model_validate(raw)
        if spec.slug not in existing:
            session.add(ComplianceRule(tenant_id=tenant.id, **spec.model_dump()))


def seed_file(url: str, path: Path = DEMO_TENANT_FILE) -> None:
    from sqlalchemy import create_engine

    engine = create_engine(url)
    try:
        with Session(engine) as session, session.begin():
            seed_tenant(session, yaml.safe_load(path.read_text()))
    finally:
        engine.dispose()
