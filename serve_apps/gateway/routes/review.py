"""Past sessions, and the manager's review of one.

``GET /v1/sessions`` lists the sessions the caller may see (trainees their own, managers their
teams', admins the company's) with the evaluator's score and the manager's. A manager or
admin reviews a session: timestamped comments on its turns, and an adjusted score with a
reason, stored beside the evaluator's report, which stays as it was (so the two can be
compared; the analytics routes use the evaluator's).
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query
from sqlalchemy.ext.asyncio import AsyncSession

from db import people_repository as people
from db import repositories as repo
from db import review_repository as reviews
from db import training_repository as training
from db.models import TrainingSession
from serve_apps.gateway.deps import EDITORS, AuditDep, CallerDep, TenantSessionDep
from serve_apps.gateway.errors import APIError
from serve_apps.gateway.identity import Identity
from serve_apps.gateway.schemas.review import (
    AdjustedScoreIn,
    AdjustedScoreOut,
    ReviewCommentIn,
    ReviewCommentOut,
    SessionReviewOut,
    SessionSummaryOut,
)
from serve_apps.gateway.use_cases.sessions import visible_training_session

router = APIRouter(tags=["training"])


@router.get("/v1/sessions", response_model=list[SessionSummaryOut])
async def list_sessions(
    who: CallerDep,
    session: TenantSessionDep,
    user_id: uuid.UUID | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[SessionSummaryOut]:
    """Past sessions, newest first: trainees their own, managers their teams', admins
    everyone's; ``user_id`` narrows to one person."""
    visible = await people.visible_user_ids(session, user_id=who.user_id, role=who.role)
    if user_id is not None:
        if visible is not None and user_id not in visible:
            raise APIError(404, "user_not_found", "no such trainee among your teams")
        visible = {user_id}
    rows = await reviews.list_sessions(session, user_ids=visible, limit=limit)
    return [SessionSummaryOut(**row.__dict__) for row in rows]


async def _review_out(session: AsyncSession, session_id: uuid.UUID) -> SessionReviewOut:
    evaluation = await training.evaluation_of(session, session_id=session_id)
    review, reviewer = await reviews.review_of(session, session_id=session_id)
    comments = await reviews.comments_of(session, session_id=session_id)
    return SessionReviewOut(
        session_id=session_id,
        ai_score=evaluation.score if evaluation else None,
        ai_passed=evaluation.passed if evaluation else None,
        adjusted=AdjustedScoreOut(
            score=review.score,
            passed=review.passed,
            reason=review.reason,
            reviewer=reviewer or "a former user",
            created_at=review.created_at,
            updated_at=review.updated_at,
        )
        if review
        else None,
        comments=[
            ReviewCommentOut(
                id=c.id,
                seq=c.seq,
                text=c.text,
                author=name or "a former user",
                created_at=c.created_at,
            )
            for c, name in comments
        ],
    )


def _reviewer(who: Identity, training_session: TrainingSession) -> None:
    who.require(*EDITORS)
    if training_session.user_id == who.user_id:
        raise APIError(403, "own_session", "a session is reviewed by someone else")


@router.get("/v1/sessions/{session_id}/review", response_model=SessionReviewOut)
async def session_review(
    session_id: uuid.UUID, who: CallerDep, session: TenantSessionDep
) -> SessionReviewOut:
    """The manager's review beside the evaluator's score (the trainee sees theirs)."""
    await visible_training_session(session, who, session_id)
    return await _review_out(session, session_id)


@router.post(
    "/v1/sessions/{session_id}/review/comments",
    response_model=ReviewCommentOut,
    status_code=201,
)
async def add_review_comment(
    session_id: uuid.UUID, body: ReviewCommentIn, who: CallerDep, session: TenantSessionDep
) -> ReviewCommentOut:
    """Comment on one turn of a session of your teams (managers, admins)."""
    _reviewer(who, await visible_training_session(session, who, session_id))
    if not await reviews.turn_exists(session, session_id=session_id, seq=body.seq):
        raise APIError(422, "unknown_turn", f"the session has no turn {body.seq}")
    comment = await reviews.add_comment(
        session,
        tenant_id=who.tenant_id,
        session_id=session_id,
        seq=body.seq,
        author_id=who.user_id,
        text=body.text,
    )
    me = await repo.user_by_id(session, user_id=who.user_id)
    return ReviewCommentOut(
        id=comment.id,
        seq=comment.seq,
        text=comment.text,
        author=me.display_name,
        created_at=comment.created_at,
    )


@router.put("/v1/sessions/{session_id}/review/score", response_model=SessionReviewOut)
async def adjust_score(
    session_id: uuid.UUID,
    body: AdjustedScoreIn,
    who: CallerDep,
    audit: AuditDep,
    session: TenantSessionDep,
) -> SessionReviewOut:
    """The manager's adjusted score with a reason; the evaluator's report is kept."""
    _reviewer(who, await visible_training_session(session, who, session_id))
    evaluation = await training.evaluation_of(session, session_id=session_id)
    if evaluation is None:
        raise APIError(409, "not_scored", "the session has no score to adjust yet")
    pass_score = float(evaluation.report.get("pass_score", 0))
    await reviews.set_review(
        session,
        tenant_id=who.tenant_id,
        session_id=session_id,
        reviewer_id=who.user_id,
        score=body.score,
        passed=body.score >= pass_score,
        reason=body.reason,
    )
    await audit.record(
        session,
        "session.review",
        str(session_id),
        ai_score=evaluation.score,
        score=body.score,
    )
    return await _review_out(session, session_id)
