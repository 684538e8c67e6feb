"""Stored sessions replayed against a candidate version (``salesboost models replay``).

Each stored session's trainee turns are sent again, in order, as the gateway sends a live
turn (``TurnRequest``: the same persona, scenario, rules and papers, the candidate's
``npc_model``) to the orchestrator's ``stream_turn``: the training turn that answers live
conversations, with its reviewer. The history each turn reads holds the candidate's earlier
replies in place of the stored ones. The evaluator then scores both transcripts over the
same turns, with the same rubric and judge, now; the score recorded when the session ended
is kept beside them.

Nothing here writes a table: the stored sessions come in as data (the caller read them, as
its company) and the replayed turns live in memory and in the report (Redis, for a day).

The report puts, per session and over all of them, the stored version beside the candidate:

- ``score``: the evaluator's; over several sessions the mean of those both sides were scored on;
- ``reviews``, ``rejections``, ``rejection_rate``: the reviewer's verdicts on the attempts of
  the replies, and those that did not pass (the stored ones are the stored verdicts);
- ``reply_chars_mean``, ``output_tokens_mean``: the length of the replies that count (the
  tokens over every attempt, as the product counts them);
- ``ttft_p50_ms``: the median wait for the first token (stored: what the trainee waited,
  kept since that column exists; candidate: from the turn's start, its papers read, to the
  first token, measured where the replay runs);
- ``cut_replies`` of ``cut_known``: replies the token budget stopped. The candidate's are
  known from the engine; a stored reply's only when it had one attempt (its tokens then are
  that attempt's, and the budget in force now stopped it when they reach it).
"""

from __future__ import annotations

import asyncio
import logging
import statistics
import time
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import Any, Literal, Protocol

from pydantic import BaseModel, Field

from serve_apps.contracts.models import ModelRole, ModelRoute
from serve_apps.contracts.replay import ReplayTurnSettings, StoredExchange, StoredSession
from serve_apps.contracts.turn import (
    EvaluationReport,
    EvaluationRequest,
    HistoryTurn,
    NPCChunk,
    PersonaPapers,
    TranscriptTurn,
    TurnRequest,
)
from serve_apps.contracts.wire import Review

log = logging.getLogger("ray.serve.salesboost.models")

REPLAY_KEY = "salesboost:model-replay:{replay_id}"
# The status and report are the caller's to fetch for a day.
REPLAY_TTL_S = 24 * 3600
# A turn's reply (every attempt, the reviewer's verdicts and the late agents) within this.
TURN_TIMEOUT_S = 120.0
EVALUATION_TIMEOUT_S = 120.0
# No turn starts after this: the sessions left are reported as not replayed.
REPLAY_DEADLINE_S = 1800.0
# Sessions replayed at once (each one's turns in order): the engine batches them, and a live
# conversation beside them still gets its share.
REPLAY_CONCURRENCY = 2


# The report.


class ReplySide(BaseModel):
    """One side's reply to a trainee turn: stored, or the candidate's."""

    text: str | None = Field(None, description="None: no reply.")
    speaker: str | None = None
    model: str | None = None
    chars: int | None = None
    output_tokens: int | None = None
    first_token_ms: float | None = None
    reviews: int = 0
    rejections: int = 0
    cut: bool | None = Field(
        None, description="The token budget stopped it; None: not known (a stored reply)."
    )


class ReplayedTurn(BaseModel):
    seq: int = Field(description="The stored trainee turn's sequence number.")
    trainee: str
    stored: ReplySide
    candidate: ReplySide


class SideNumbers(BaseModel):
    """One side's numbers, over one session's replies or every replayed session's."""

    replies: int = 0
    unanswered: int = Field(0, description="Trainee turns without a reply.")
    score: float | None = Field(
        None,
        description="The evaluator's score now; over several sessions the mean over "
        "`scored_sessions`, the sessions both sides were scored on.",
    )
    scored_sessions: int = 0
    reviews: int = 0
    rejections: int = 0
    rejection_rate: float | None = None
    reply_chars_mean: float | None = None
    output_tokens_mean: float | None = None
    ttft_p50_ms: float | None = None
    ttft_turns: int = Field(0, description="Replies whose time to first token is known.")
    cut_replies: int = 0
    cut_known: int = Field(0, description="Replies of which it is known whether they were cut.")


class SessionReplay(BaseModel):
    session_id: str
    started_at: datetime
    mode: str
    ended: bool
    stored_versions: list[str] = Field(description="The versions of its stored replies.")
    state: Literal["replayed", "failed"]
    error: str | None = None
    truncated: bool = False
    recorded_score: float | None = Field(
        None, description="The score stored when the session ended (its evaluator then)."
    )
    evaluation_error: str | None = None
    stored: SideNumbers
    candidate: SideNumbers
    turns: list[ReplayedTurn]


class ReplayReport(BaseModel):
    role: ModelRole
    candidate_version: str
    judge_version: str | None
    scope: str = Field(description="Whose sessions: the company's slug.")
    sessions_asked: int
    replayed: int
    failed: int
    stored_versions: list[str]
    stored: SideNumbers = Field(description="Over the sessions replayed to the end.")
    candidate: SideNumbers = Field(description="Over the same sessions.")
    sessions: list[SessionReplay]
    started_at: float
    finished_at: float


ReplayState = Literal["deploying", "probing", "replaying", "done", "failed"]


class ReplayStatus(BaseModel):
    """Where a replay is, and its report once it is done."""

    replay_id: str
    role: ModelRole
    tenant_id: str = Field(description="The company whose sessions: only it reads this.")
    scope: str
    candidate: str
    state: ReplayState
    message: str = ""
    sessions_total: int
    sessions_done: int = 0
    started_at: float
    updated_at: float
    report: ReplayReport | None = None


class ReplayStore:
    """Replays' statuses and reports in Redis, each for ``REPLAY_TTL_S``."""

    def __init__(self, redis: Any) -> None:
        self._redis = redis

    async def put(self, status: ReplayStatus) -> None:
        key = REPLAY_KEY.format(replay_id=status.replay_id)
        await self._redis.set(key, status.model_dump_json(), ex=REPLAY_TTL_S)

    async def get(self, replay_id: str) -> ReplayStatus | None:
        raw = await self._redis.get(REPLAY_KEY.format(replay_id=replay_id))
        return ReplayStatus.model_validate_json(raw) if raw else None


# The arithmetic.


def stored_side(exchange: StoredExchange, max_tokens: int) -> ReplySide:
    """A stored reply as one side of a turn; whether the budget cut it is known only when it
    had one attempt that was not replaced."""
    if exchange.reply is None:
        return ReplySide()
    one_attempt = exchange.reviews <= 1 and exchange.rejections == 0
    cut = (
        exchange.output_tokens >= max_tokens
        if one_attempt and exchange.output_tokens is not None
        else None
    )
    return ReplySide(
        text=exchange.reply,
        speaker=exchange.speaker,
        model=exchange.model,
        chars=len(exchange.reply),
        output_tokens=exchange.output_tokens,
        first_token_ms=exchange.first_token_ms,
        reviews=exchange.reviews,
        rejections=exchange.rejections,
        cut=cut,
    )


def side_numbers(replies: Sequence[ReplySide], scores: Sequence[float]) -> SideNumbers:
    """One side's numbers over ``replies`` (a reply without text: an unanswered turn) and the
    evaluator's ``scores`` of its sessions."""
    answered = [r for r in replies if r.text is not None]
    tokens = [r.output_tokens for r in answered if r.output_tokens is not None]
    ttfts = [r.first_token_ms for r in answered if r.first_token_ms is not None]
    known = [r.cut for r in answered if r.cut is not None]
    reviews = sum(r.reviews for r in answered)
    rejections = sum(r.rejections for r in answered)
    return SideNumbers(
        replies=len(answered),
        unanswered=len(replies) - len(answered),
        score=statistics.fmean(scores) if scores else None,
        scored_sessions=len(scores),
        reviews=reviews,
        rejections=rejections,
        rejection_rate=rejections / reviews if reviews else None,
        reply_chars_mean=statistics.fmean(r.chars or 0 for r in answered) if answered else None,
        output_tokens_mean=statistics.fmean(tokens) if tokens else None,
        ttft_p50_ms=statistics.median(ttfts) if ttfts else None,
        ttft_turns=len(ttfts),
        cut_replies=sum(known),
        cut_known=len(known),
    )


def session_numbers(
    turns: Sequence[ReplayedTurn], stored_score: float | None, candidate_score: float | None
) -> tuple[SideNumbers, SideNumbers]:
    return (
        side_numbers([t.stored for t in turns], [stored_score] if stored_score is not None else []),
        side_numbers(
            [t.candidate for t in turns], [candidate_score] if candidate_score is not None else []
        ),
    )


def build_report(
    sessions: Sequence[SessionReplay],
    *,
    role: ModelRole,
    candidate_version: str,
    judge_version: str | None,
    scope: str,
    sessions_asked: int,
    started_at: float,
) -> ReplayReport:
    """The totals over the sessions replayed to the end (a failed one's turns would compare
    a part of it with the whole); scores over the sessions both sides were scored on."""
    replayed = [s for s in sessions if s.state == "replayed"]
    both_scored = [
        s for s in replayed if s.stored.score is not None and s.candidate.score is not None
    ]
    stored_versions = sorted(
        {v for s in replayed for v in s.stored_versions}, key=lambda v: (v != candidate_version, v)
    )
    return ReplayReport(
        role=role,
        candidate_version=candidate_version,
        judge_version=judge_version,
        scope=scope,
        sessions_asked=sessions_asked,
        replayed=len(replayed),
        failed=len(sessions) - len(replayed),
        stored_versions=stored_versions,
        stored=side_numbers(
            [t.stored for s in replayed for t in s.turns],
            [s.stored.score for s in both_scored if s.stored.score is not None],
        ),
        candidate=side_numbers(
            [t.candidate for s in replayed for t in s.turns],
            [s.candidate.score for s in both_scored if s.candidate.score is not None],
        ),
        sessions=list(sessions),
        started_at=started_at,
        finished_at=time.time(),
    )


# Running a session again.


class ReplayEngine(Protocol):
    """What a replay asks of the cluster: the persona's papers for a turn, the training turn
    (the orchestrator's), and the evaluator."""

    async def papers(
        self, stored: StoredSession, text: str, settings: ReplayTurnSettings
    ) -> PersonaPapers: ...

    def stream_turn(self, request: TurnRequest) -> AsyncIterator[Any]: ...

    async def evaluate(self, request: EvaluationRequest) -> EvaluationReport: ...


class ServeReplayEngine:
    """The orchestrator's and the knowledge service's deployments, through their handles."""

    def __init__(self, orchestrator: Any, knowledge: Any) -> None:
        self._orchestrator = orchestrator
        self._knowledge = knowledge

    async def papers(
        self, stored: StoredSession, text: str, settings: ReplayTurnSettings
    ) -> PersonaPapers:
        from serve_apps.knowledge.grounding import read_papers

        if not (stored.customer_knowledge_base or stored.vendor_website_knowledge_base):
            return PersonaPapers()
        return await read_papers(
            self._knowledge,
            tenant_id=stored.tenant_id,
            own=stored.customer_knowledge_base,
            vendor_website=stored.vendor_website_knowledge_base,
            text=text,
            top_k=settings.grounding_top_k,
            timeout_s=settings.grounding_timeout_s,
            token_budget=settings.grounding_token_budget,
        )

    async def stream_turn(self, request: TurnRequest) -> AsyncIterator[Any]:
        response = self._orchestrator.options(stream=True).stream_turn.remote(request)
        finished = False
        try:
            async for event in response:
                yield event
            finished = True
        finally:
            if not finished:  # timed out or failed here: the orchestrator stops too
                response.cancel()

    async def evaluate(self, request: EvaluationRequest) -> EvaluationReport:
        report, _failures = await self._orchestrator.evaluate.remote(request)
        return report


class ReplayTurnFailed(RuntimeError):
    """A replayed turn got no reply: the session's replay stops there."""


async def candidate_reply(
    engine: ReplayEngine,
    stored: StoredSession,
    exchange: StoredExchange,
    history: list[HistoryTurn],
    *,
    candidate: ModelRoute,
    judge: ModelRoute | None,
    settings: ReplayTurnSettings,
    tag: str,
) -> ReplySide:
    """The candidate's reply to one stored trainee turn, after ``history`` (the trainee's
    turns and the candidate's replies before it), through the training turn the live
    conversations take."""
    began = time.perf_counter()
    papers = await engine.papers(stored, exchange.trainee_text, settings)
    request = TurnRequest(
        session_id=tag,
        tenant_id=stored.tenant_id,
        knowledge_base=stored.knowledge_base,
        reply_to_seq=exchange.seq,
        persona=stored.persona,
        committee=stored.committee,
        scenario=stored.scenario,
        history=list(history),
        trainee_text=exchange.trainee_text,
        persona_papers=papers,
        max_tokens=settings.max_tokens,
        temperature=settings.temperature,
        mode=stored.mode,
        compliance_rules=stored.compliance_rules,
        npc_model=candidate,
        judge_model=judge,
    )
    first_token_ms: float | None = None
    reviews = rejections = 0
    final: NPCChunk | None = None
    async for event in engine.stream_turn(request):
        if isinstance(event, NPCChunk):
            if event.done:
                final = event
            elif first_token_ms is None and event.text:
                first_token_ms = round((time.perf_counter() - began) * 1000, 1)
        elif isinstance(event, Review):
            reviews += 1
            rejections += not event.passed
    if final is None:
        raise ReplayTurnFailed("the turn ended without a reply")
    text = final.final_text or ""
    replaced = reviews > 0 and rejections == reviews  # every attempt rejected: the safe line
    return ReplySide(
        text=text,
        speaker=final.speaker,
        model=final.model,
        chars=len(text),
        output_tokens=final.output_tokens,
        first_token_ms=first_token_ms,
        reviews=reviews,
        rejections=rejections,
        cut=final.finish_reason == "length" and not replaced,
    )


def transcript(
    turns: Sequence[ReplayedTurn], side: Literal["stored", "candidate"], lead: str
) -> list[TranscriptTurn]:
    """The trainee's turns with one side's replies, numbered in order, as the evaluator reads
    a stored session (``lead``: who said a reply whose speaker is not known)."""
    said: list[TranscriptTurn] = []
    for turn in turns:
        said.append(TranscriptTurn(seq=len(said) + 1, speaker="trainee", text=turn.trainee))
        reply = turn.stored if side == "stored" else turn.candidate
        if reply.text is not None:
            said.append(
                TranscriptTurn(seq=len(said) + 1, speaker=reply.speaker or lead, text=reply.text)
            )
    return said


async def replay_session(
    engine: ReplayEngine,
    stored: StoredSession,
    *,
    candidate: ModelRoute,
    judge: ModelRoute | None,
    settings: ReplayTurnSettings,
    tag: str,
    deadline: float,
    turn_timeout_s: float = TURN_TIMEOUT_S,
    evaluation_timeout_s: float = EVALUATION_TIMEOUT_S,
) -> SessionReplay:
    """One stored session against the candidate; a turn that gets no reply in time (or
    starts after ``deadline``, a ``time.monotonic()``) ends it as failed, with the turns
    replayed before it."""
    history: list[HistoryTurn] = []
    turns: list[ReplayedTurn] = []
    error: str | None = None
    for exchange in stored.exchanges:
        if time.monotonic() > deadline:
            error = f"turn {exchange.seq}: the replay's deadline passed"
            break
        try:
            reply = await asyncio.wait_for(
                candidate_reply(
                    engine,
                    stored,
                    exchange,
                    history,
                    candidate=candidate,
                    judge=judge,
                    settings=settings,
                    tag=tag,
                ),
                turn_timeout_s,
            )
        except TimeoutError:
            error = f"turn {exchange.seq}: no reply within {turn_timeout_s:.0f} s"
            break
        except Exception as exc:
            log.warning("replay %s turn %s failed: %r", tag, exchange.seq, exc)
            error = f"turn {exchange.seq}: {exc}"
            break
        turns.append(
            ReplayedTurn(
                seq=exchange.seq,
                trainee=exchange.trainee_text,
                stored=stored_side(exchange, settings.max_tokens),
                candidate=reply,
            )
        )
        history.append(HistoryTurn(speaker="trainee", text=exchange.trainee_text))
        history.append(HistoryTurn(speaker="npc", text=reply.text or "", persona=reply.speaker))
    scores: tuple[float | None, float | None] = (None, None)
    evaluation_error = None
    if error is None and stored.rubric is not None:
        try:
            scores = await _scores(engine, stored, turns, judge, tag, evaluation_timeout_s)
        except Exception as exc:  # the turns still compare; the scores are left out
            log.warning("replay %s: evaluation failed: %r", tag, exc)
            evaluation_error = f"the evaluator did not answer: {exc!r}"
    stored_numbers, candidate_numbers = session_numbers(turns, *scores)
    return SessionReplay(
        session_id=stored.session_id,
        started_at=stored.started_at,
        mode=stored.mode,
        ended=stored.ended,
        stored_versions=sorted({e.model for e in stored.exchanges if e.model}),
        state="failed" if error else "replayed",
        error=error,
        truncated=stored.truncated,
        recorded_score=stored.recorded_score,
        evaluation_error=evaluation_error,
        stored=stored_numbers,
        candidate=candidate_numbers,
        turns=turns,
    )


async def _scores(
    engine: ReplayEngine,
    stored: StoredSession,
    turns: Sequence[ReplayedTurn],
    judge: ModelRoute | None,
    tag: str,
    timeout_s: float,
) -> tuple[float, float]:
    """The evaluator's score of the stored transcript and of the candidate's, over the same
    trainee turns, with the same rubric and judge."""
    assert stored.rubric is not None

    def request(side: Literal["stored", "candidate"]) -> EvaluationRequest:
        return EvaluationRequest(
            session_id=tag,
            scenario=stored.scenario,
            personas=stored.committee or [stored.persona],
            transcript=transcript(turns, side, stored.persona.slug),
            rubric=stored.rubric,
            judge_model=judge,
        )

    stored_report, candidate_report = await asyncio.wait_for(
        asyncio.gather(engine.evaluate(request("stored")), engine.evaluate(request("candidate"))),
        timeout_s,
    )
    return stored_report.score, candidate_report.score
