"""Analytics for managers and admins, shaped for charts.

Everything is read from the rows the evaluator leaves (``skill_scores``,
``session_evaluations``) and the sessions themselves, restricted to the people the caller
may see: a manager their teams, an admin the whole company.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query

from db import analytics_repository as analytics
from db import people_repository as people
from serve_apps.gateway.deps import CallerDep, EditorDep, TenantSessionDep
from serve_apps.gateway.errors import APIError
from serve_apps.gateway.schemas.analytics import (
    HeatmapOut,
    OverviewOut,
    ScoreBucket,
    ScoreDistributionOut,
    SkillPoint,
    SkillSeries,
    SkillTrendOut,
)

router = APIRouter(tags=["analytics"])
# Bucket widths that split 0-100 evenly.
BUCKET_WIDTHS = (5, 10, 20, 25, 50)


@router.get("/v1/analytics/overview", response_model=OverviewOut)
async def analytics_overview(who: EditorDep, session: TenantSessionDep) -> OverviewOut:
    """Sessions started and ended, completion, sessions scored, passed, pass rate and the
    average score, over the people the caller may see."""
    visible = await people.visible_user_ids(session, user_id=who.user_id, role=who.role)
    started, ended, scored, passed, average = await analytics.overview(session, user_ids=visible)
    return OverviewOut(
        sessions=started,
        ended=ended,
        completion_rate=round(ended / started, 3) if started else None,
        scored=scored,
        passed=passed,
        pass_rate=round(passed / scored, 3) if scored else None,
        average_score=round(average, 1) if average is not None else None,
    )


@router.get("/v1/analytics/trainees/{user_id}/skills", response_model=SkillTrendOut)
async def analytics_skill_trend(
    user_id: uuid.UUID, who: CallerDep, session: TenantSessionDep
) -> SkillTrendOut:
    """One trainee's score per skill over time (a line per skill), and for each skill the
    first attempt, the best, and the improvement between them. Trainees may ask for
    their own."""
    visible = await people.visible_user_ids(session, user_id=who.user_id, role=who.role)
    if (visible is not None and user_id not in visible) or not await people.list_users(
        session, ids={user_id}
    ):
        raise APIError(404, "user_not_found", "no such trainee among your teams")
    rows = await analytics.skill_history(session, user_id=user_id)
    series: dict[str, list[SkillPoint]] = {}
    for skill, session_id, at, score in rows:
        series.setdefault(skill, []).append(SkillPoint(session_id=session_id, at=at, score=score))
    return SkillTrendOut(
        user_id=user_id,
        skills=[
            SkillSeries(
                skill=skill,
                points=points,
                first=points[0].score,
                best=max(p.score for p in points),
                improvement=round(max(p.score for p in points) - points[0].score, 1),
            )
            for skill, points in sorted(series.items())
        ],
    )


@router.get("/v1/analytics/heatmap", response_model=HeatmapOut)
async def analytics_heatmap(who: EditorDep, session: TenantSessionDep) -> HeatmapOut:
    """Average score per team (rows) and skill (columns); None where nobody was scored."""
    visible = await people.visible_user_ids(session, user_id=who.user_id, role=who.role)
    cells = await analytics.team_skill_averages(session, user_ids=visible)
    teams = sorted({team for team, _ in cells})
    skills = sorted({skill for _, skill in cells})
    return HeatmapOut(
        teams=teams,
        skills=skills,
        averages=[[cells.get((t, s)) for s in skills] for t in teams],
    )


@router.get("/v1/analytics/score-distribution", response_model=ScoreDistributionOut)
async def analytics_score_distribution(
    who: EditorDep,
    session: TenantSessionDep,
    bucket: Annotated[
        int, Query(ge=5, le=50, description="Bucket width in points: 5, 10, 20, 25 or 50.")
    ] = 10,
) -> ScoreDistributionOut:
    """Scored sessions counted per bucket of the AI's score (0-9, 10-19, … 90-100), and how
    many were scored and passed, over the people the caller may see. Like all analytics it
    counts the evaluator's score, not a manager's adjusted one."""
    if bucket not in BUCKET_WIDTHS:
        raise APIError(422, "invalid_request", "query.bucket: must be 5, 10, 20, 25 or 50")
    visible = await people.visible_user_ids(session, user_id=who.user_id, role=who.role)
    counts = await analytics.score_buckets(session, user_ids=visible, width=bucket)
    last = 100 // bucket - 1
    return ScoreDistributionOut(
        bucket=bucket,
        buckets=[
            ScoreBucket(
                low=i * bucket,
                high=100 if i == last else (i + 1) * bucket - 1,
                sessions=counts.get(i, (0, 0))[0],
            )
            for i in range(last + 1)
        ],
        scored=sum(n for n, _ in counts.values()),
        passed=sum(p for _, p in counts.values()),
    )
