"""Training content rows an admin edits: personas, scenarios, rubrics, compliance rules."""

from __future__ import annotations

import uuid
from typing import Any, TypeVar

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import Base, Scenario, ScenarioPersona, TrainingSession
from db.repositories import NotFoundError

Row = TypeVar("Row", bound=Base)


async def list_rows(session: AsyncSession, model: type[Row]) -> list[Row]:
    return list(await session.scalars(select(model).order_by(model.slug)))  # type: ignore[attr-defined]


async def by_slug(session: AsyncSession, model: type[Row], slug: str) -> Row:
    row = await session.scalar(select(model).where(model.slug == slug))  # type: ignore[attr-defined,arg-type]
    if row is None:
        raise NotFoundError(f"{model.__tablename__} {slug!r}")
    return row


async def slugs_to_ids(
    session: AsyncSession, model: type[Row], slugs: list[str]
) -> dict[str, uuid.UUID]:
    rows = await session.execute(
        select(model.slug, model.id).where(model.slug.in_(slugs))  # type: ignore[attr-defined]
    )
    return {slug: row_id for slug, row_id in rows}


async def set_scenario_personas(
    session: AsyncSession, *, tenant_id: uuid.UUID, scenario: Scenario, persona_ids: list[uuid.UUID]
) -> None:
    await session.execute(delete(ScenarioPersona).where(ScenarioPersona.scenario_id == scenario.id))
    session.add_all(
        ScenarioPersona(
            tenant_id=tenant_id, scenario_id=scenario.id, persona_id=persona_id, position=index
        )
        for index, persona_id in enumerate(persona_ids)
    )


async def scenarios_using_persona(session: AsyncSession, *, persona_id: uuid.UUID) -> list[str]:
    rows = await session.scalars(
        select(Scenario.slug)
        .join(ScenarioPersona, ScenarioPersona.scenario_id == Scenario.id)
        .where(ScenarioPersona.persona_id == persona_id)
    )
    return list(rows)


async def scenarios_using_rubric(session: AsyncSession, *, rubric_id: uuid.UUID) -> list[str]:
    return list(await session.scalars(select(Scenario.slug).where(Scenario.rubric_id == rubric_id)))


async def sessions_of_scenario(session: AsyncSession, *, scenario_id: uuid.UUID) -> int:
    return int(
        await session.scalar(select(func.count()).where(TrainingSession.scenario_id == scenario_id))
        or 0
    )


def assign(row: Any, values: dict[str, Any]) -> None:
    for key, value in values.items():
        setattr(row, key, value)
