"""Seeding tenants from readable YAML files (the demo tenant ships here)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from db.engine import TENANT_SETTING
from db.models import Persona, Scenario, ScenarioPersona, Tenant, User, UserRole

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
    session.execute(
        text("SELECT set_config(:key, :value, true)"),
        {"key": TENANT_SETTING, "value": str(tenant.id)},
    )
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
        if spec_persona["slug"] not in personas:
            persona = Persona(tenant_id=tenant.id, **spec_persona)
            session.add(persona)
            personas[persona.slug] = persona
    session.flush()
    for spec_scenario in data.get("scenarios", []):
        spec_scenario = dict(spec_scenario)
        persona_slugs = spec_scenario.pop("personas")
        if session.scalar(select(Scenario.id).where(Scenario.slug == spec_scenario["slug"])):
            continue
        scenario = Scenario(tenant_id=tenant.id, **spec_scenario)
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


def seed_file(url: str, path: Path = DEMO_TENANT_FILE) -> None:
    from sqlalchemy import create_engine

    engine = create_engine(url)
    try:
        with Session(engine) as session, session.begin():
            seed_tenant(session, yaml.safe_load(path.read_text()))
    finally:
        engine.dispose()
