"""Past sessions, and the manager's review of one.

A mixin of the gateway deployment. ``GET /v1/sessions`` lists the sessions the caller may see
(trainees their own, managers their teams', admins the company's) with the evaluator's score
and the manager's. A manager or admin reviews a session: timestamped comments on its turns,
and an adjusted score with a reason, stored beside the evaluator's report, which stays as it
was (so the two can be compared; the analytics routes use the evaluator's).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import Query, Request
from pydantic import BaseModel, ConfigDict, Field

from db import people_repository as people
from db import repositories as repo
from db import review_repository as reviews
from db import training_repository as training
from db.engine import tenant_transaction
from serve_apps.contracts.specs import StorableText
from serve_apps.contracts.wire import MAX_SEQ
from serve_apps.gateway.api import api
from serve_apps.gateway.errors import APIError
from serve_apps.gateway.identity import Identity

REVIEWERS = ("admin", "manager")


class SessionSummaryOut(BaseModel):
    id: uuid.UUID
    user_id: uuid.UUID
    trainee: str
    scenario: str
    scenario_title: str
    mode: str
    status: str
    created_at: datetime
    score: float | None = Field(description="The evaluator's score (None: not scored).")
    passed: bool | None
    reviewed_score: float | None = Field(description="The manager's adjusted score, if any.")


class ReviewCommentIn(StorableText):
    model_config = ConfigDict(extra="forbid")

    seq: int = Field(..., ge=1, le=MAX_SEQ, description="The turn the comment is about.")
    text: str = Field(..., min_length=1, max_length=4000)


class ReviewCommentOut(BaseModel):
    id: uuid.UUID
    seq: int
    text: str
    author: str
    created_at: datetime


class AdjustedScoreIn(StorableText):
    model_config = ConfigDict(extra="forbid")

    score: float = Field(..., ge=0, le=100)
    reason: str = Field(..., min_length=3, max_length=4000)


class AdjustedScoreOut(BaseModel):
    score: float
    passed: bool = Field(description="Against the rubric's pass score.")
    reason: str
    reviewer: str
    created_at: datetime
    updated_at: datetime


class SessionReviewOut(BaseModel):
    session_id: uuid.UUID
    ai_score: float | None = Field(description="The evaluator's score, kept as it was.")
    ai_passed: bool | None
    adjusted: AdjustedScoreOut | None
    comments: list[ReviewCommentOut]


class ReviewRoutes:
    # Provided by the gateway deployment this is mixed into.
    sessions: Any
    _identity_from: Any
    _audit: Any

    @api.get("/v1/sessions", response_model=list[SessionSummaryOut], tags=["training"])
    async def list_sessions(
        self,
        request: Request,
        user_id: uuid.UUID | None = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
    ) -> list[SessionSummaryOut]:
        """Past sessions, newest first: trainees their own, managers their teams', admins
        everyone's; ``user_id`` narrows to one person."""
        who = await self._identity_from(request)
        async with tenant_transaction(self.sessions, who.tenant_id) as session:
            visible = await people.visible_user_ids(session, user_id=who.user_id, role=who.role)
            if user_id is not None:
                if visible is not None and user_id not in visible:
                    raise APIError(404, "user_not_found", "no such trainee among your teams")
                visible = {user_id}
            rows = await reviews.list_sessions(session, user_ids=visible, limit=limit)
        return [SessionSummaryOut(**row.__dict__) for row in rows]

    async def _visible_session(self, session: Any, who: Identity, session_id: uuid.UUID):
        visible = await people.visible_user_ids(session, user_id=who.user_id, role=who.role)
        try:
            found = await repo.get_training_session(session, session_id=session_id)
        except repo.NotFoundError:
            found = None
        if found is None or (visible is not None and found.user_id not in visible):
            raise APIError(404, "session_not_found", "no such training session")
        return found

    async def _review_out(self, session: Any, session_id: uuid.UUID) -> SessionReviewOut:
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

    def _reviewer(self, who: Identity, training_session: Any) -> None:
        who.require(*REVIEWERS)
        if training_session.user_id == who.user_id:
            raise APIError(403, "own_session", "a session is reviewed by someone else")

    @api.get("/v1/sessions/{session_id}/review", response_model=SessionReviewOut, tags=["training"])
    async def session_review(self, session_id: uuid.UUID, request: Request) -> SessionReviewOut:
        """The manager's review beside the evaluator's score (the trainee sees theirs)."""
        who = await self._identity_from(request)
        async with tenant_transaction(self.sessions, who.tenant_id) as session:
            await self._visible_session(session, who, session_id)
            return await self._review_out(session, session_id)

    @api.post(
        "/v1/sessions/{session_id}/review/comments",
        response_model=ReviewCommentOut,
        status_code=201,
        tags=["training"],
    )
    async def add_review_comment(
        self, session_id: uuid.UUID, body: ReviewCommentIn, request: Request
    ) -> ReviewCommentOut:
        """Comment on one turn of a session of your teams (managers, admins)."""
        who = await self._identity_from(request)
        async with tenant_transaction(self.sessions, who.tenant_id) as session:
            training_session = await self._visible_session(session, who, session_id)
            self._reviewer(who, training_session)
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

    @api.put(
        "/v1/sessions/{session_id}/review/score",
        response_model=SessionReviewOut,
        tags=["training"],
    )
    async def adjust_score(
        self, session_id: uuid.UUID, body: AdjustedScoreIn, request: Request
    ) -> SessionReviewOut:
        """The manager's adjusted score with a reason; the evaluator's report is kept."""
        who = await self._identity_from(request)
        async with tenant_transaction(self.sessions, who.tenant_id) as session:
            training_session = await self._visible_session(session, who, session_id)
            self._reviewer(who, training_session)
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
            await self._audit(
                session,
                who,
                request,
                "session.review",
                str(session_id),
                ai_score=evaluation.score,
                score=body.score,
            )
            return await self._review_out(session, session_id)
