"""Sessions listed for their history, and the manager's review of one: an adjusted score with
a reason (beside the evaluator's, never over it) and comments on turns."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from db.models import (
    ReviewComment,
    Scenario,
    SessionEvaluation,
    SessionReview,
    TrainingSession,
    Turn,
    User,
)


@dataclass(frozen=True)
class SessionRow:
    id: uuid.UUID
    user_id: uuid.UUID
    trainee: str
    scenario: str
    scenario_title: str
    mode: str
    status: str
    created_at: datetime
    score: float | None
    passed: bool | None
    reviewed_score: float | None


async def list_sessions(
    session: AsyncSession, *, user_ids: set[uuid.UUID] | None, limit: int
) -> list[SessionRow]:
    """Newest first, with the evaluator's score and the manager's, where there are."""
    query = (
        select(
            TrainingSession,
            User.display_name,
            Scenario.slug,
            Scenario.title,
            SessionEvaluation.score,
            SessionEvaluation.passed,
            SessionReview.score,
        )
        .join(User, User.id == TrainingSession.user_id)
        .join(Scenario, Scenario.id == TrainingSession.scenario_id)
        .outerjoin(SessionEvaluation, SessionEvaluation.session_id == TrainingSession.id)
        .outerjoin(SessionReview, SessionReview.session_id == TrainingSession.id)
        .order_by(TrainingSession.created_at.desc())
        .limit(limit)
    )
    if user_ids is not None:
        query = query.where(TrainingSession.user_id.in_(user_ids))
    return [
        SessionRow(
            id=ts.id,
            user_id=ts.user_id,
            trainee=name,
            scenario=slug,
            scenario_title=title,
            mode=ts.mode.value,
            status=ts.status.value,
            created_at=ts.created_at,
            score=score,
            passed=passed,
            reviewed_score=reviewed,
        )
        for ts, name, slug, title, score, passed, reviewed in await session.execute(query)
    ]


async def review_of(session: AsyncSession, *, session_id: uuid.UUID):
    """(review, reviewer's name) or (None, None)."""
    row = (
        await session.execute(
            select(SessionReview, User.display_name)
            .outerjoin(User, User.id == SessionReview.reviewer_id)
            .where(SessionReview.session_id == session_id)
        )
    ).first()
    return (row[0], row[1]) if row else (None, None)


async def comments_of(
    session: AsyncSession, *, session_id: uuid.UUID
) -> list[tuple[ReviewComment, str | None]]:
    author = aliased(User)
    rows = await session.execute(
        select(ReviewComment, author.display_name)
        .outerjoin(author, author.id == ReviewComment.author_id)
        .where(ReviewComment.session_id == session_id)
        .order_by(ReviewComment.created_at, ReviewComment.id)
    )
    return [(c, name) for c, name in rows]


async def turn_exists(session: AsyncSession, *, session_id: uuid.UUID, seq: int) -> bool:
    found = await session.scalar(
        select(Turn.seq).where(Turn.session_id == session_id, Turn.seq == seq)
    )
    return found is not None


async def add_comment(
    session: AsyncSession,
    *,
    tenant_id: uuid.UUID,
    session_id: uuid.UUID,
    seq: int,
    author_id: uuid.UUID,
    text: str,
) -> ReviewComment:
    comment = ReviewComment(
        tenant_id=tenant_id, session_id=session_id, seq=seq, author_id=author_id, text=text
    )
    session.add(comment)
    await session.flush()
    await session.refresh(comment)
    return comment


async def set_review(
    session: AsyncSession,
    *,
    tenant_id: uuid.UUID,
    session_id: uuid.UUID,
    reviewer_id: uuid.UUID,
    score: float,
    passed: bool,
    reason: str,
) -> SessionReview:
    """The manager's adjusted score (a later one replaces theirs; the evaluator's stays)."""
    review = await session.get(SessionReview, session_id, with_for_update=True)
    now = datetime.now(UTC)
    if review is None:
        review = SessionReview(
            tenant_id=tenant_id,
            session_id=session_id,
            created_at=now,
            updated_at=now,
            reviewer_id=reviewer_id,
            score=score,
            passed=passed,
            reason=reason,
        )
        session.add(review)
    else:
        review.reviewer_id, review.score, review.passed, review.reason = (
            reviewer_id,
            score,
            passed,
            reason,
        )
        review.updated_at = now
    await session.flush()
    return review
