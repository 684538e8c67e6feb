"""The persona's model versions side by side, from the stored rows (``salesboost models
compare``): what a canary is judged on before it is promoted or rolled back.

Per version:

- ``turns``: the replies it produced (``turns.model``), and from them the reviewer's verdicts
  on their attempts (``rejection_rate``: verdicts not passed over all verdicts), the agents'
  failures on them, and the median time to the first token the trainee waited
  (``ttft_p50_ms``, replies stored since the time was kept).
- ``sessions``: the sessions whose replies all came from it. Only these count towards its
  evaluator score (``score_mean``, ``score_stddev``, over ``scored_sessions``): a session
  moved to another version mid-way (a swap, a promotion, a rollback) is scored for both and
  counted in ``mixed_sessions`` instead.
- ``sessions_assigned``: the sessions it was given when they started (a canary's draw), with
  or without replies yet.
- ``unanswered_turns``: trainee turns with no stored reply (the model failed and the turn was
  not sent again, or the reply is being generated now), counted for the version the session
  was given (else the one that answered the rest of it).
"""

from __future__ import annotations

import statistics
import uuid
from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from db.model_version_repository import ReplyRow, SessionRow
from serve_apps.contracts.models import ModelRole


class VersionNumbers(BaseModel):
    version: str
    serving: Literal["active", "candidate"] | None = Field(
        None, description="What it is in the routing now; None: it answers no session."
    )
    sessions_assigned: int = 0
    sessions: int = Field(0, description="Sessions whose replies all came from it.")
    turns: int = 0
    scored_sessions: int = 0
    score_mean: float | None = None
    score_stddev: float | None = Field(None, description="Sample standard deviation.")
    reviews: int = 0
    rejections: int = 0
    rejection_rate: float | None = None
    ttft_p50_ms: float | None = None
    ttft_turns: int = Field(0, description="Replies whose time to first token was kept.")
    unanswered_turns: int = 0
    agent_errors: int = 0


class ModelComparison(BaseModel):
    role: ModelRole
    scope: str = Field(description="Whose rows: one company's slug, or every company's.")
    since: datetime = Field(description="Sessions started since then, and their turns.")
    versions: list[VersionNumbers]
    mixed_sessions: int = Field(0, description="Sessions answered by more than one version.")


class _Tally:
    def __init__(self) -> None:
        self.sessions_assigned = 0
        self.sessions = 0
        self.turns = 0
        self.scores: list[float] = []
        self.reviews = 0
        self.rejections = 0
        self.ttfts: list[float] = []
        self.unanswered_turns = 0
        self.agent_errors = 0

    def numbers(
        self, version: str, serving: Literal["active", "candidate"] | None
    ) -> VersionNumbers:
        n = len(self.scores)
        return VersionNumbers(
            version=version,
            serving=serving,
            sessions_assigned=self.sessions_assigned,
            sessions=self.sessions,
            turns=self.turns,
            scored_sessions=n,
            score_mean=statistics.fmean(self.scores) if n else None,
            score_stddev=statistics.stdev(self.scores) if n >= 2 else None,
            reviews=self.reviews,
            rejections=self.rejections,
            rejection_rate=self.rejections / self.reviews if self.reviews else None,
            ttft_p50_ms=statistics.median(self.ttfts) if self.ttfts else None,
            ttft_turns=len(self.ttfts),
            unanswered_turns=self.unanswered_turns,
            agent_errors=self.agent_errors,
        )


def compare_versions(
    replies: Iterable[ReplyRow],
    sessions: Iterable[SessionRow],
    *,
    role: ModelRole,
    scope: str,
    since: datetime,
    active: str | None = None,
    candidate: str | None = None,
) -> ModelComparison:
    """Each version's numbers from these rows (one company's, or every company's together);
    the active version first, then the candidate, then the others by their turns."""
    tallies: dict[str, _Tally] = defaultdict(_Tally)
    answered_by: dict[uuid.UUID, set[str]] = defaultdict(set)
    for reply in replies:
        tally = tallies[reply.model]
        tally.turns += 1
        tally.reviews += reply.reviews
        tally.rejections += reply.rejections
        tally.agent_errors += reply.agent_errors
        if reply.first_token_ms is not None:
            tally.ttfts.append(reply.first_token_ms)
        answered_by[reply.session_id].add(reply.model)
    mixed = 0
    for row in sessions:
        versions = answered_by.get(row.session_id, set())
        only = next(iter(versions)) if len(versions) == 1 else None
        if row.assigned is not None:
            tallies[row.assigned].sessions_assigned += 1
        if len(versions) > 1:
            mixed += 1
        elif only is not None:
            tallies[only].sessions += 1
            if row.score is not None:
                tallies[only].scores.append(row.score)
        charged = row.assigned or only
        if row.unanswered_turns and charged is not None:
            tallies[charged].unanswered_turns += row.unanswered_turns
    # The versions the routing names are listed, zeros and all.
    serving: dict[str, Literal["active", "candidate"]] = {}
    if candidate is not None:
        tallies.setdefault(candidate, _Tally())
        serving[candidate] = "candidate"
    if active is not None:
        tallies.setdefault(active, _Tally())
        serving[active] = "active"

    def order(item: tuple[str, _Tally]) -> tuple[int, int, str]:
        version, tally = item
        rank = 0 if version == active else 1 if version == candidate else 2
        return rank, -tally.turns, version

    return ModelComparison(
        role=role,
        scope=scope,
        since=since,
        versions=[
            tally.numbers(version, serving.get(version))
            for version, tally in sorted(tallies.items(), key=order)
        ],
        mixed_sessions=mixed,
    )
