"""The replay of stored sessions against a candidate: which sessions it takes (the tenant's
only), how a session's turns are run again (the candidate's replies in its history), the
report's arithmetic on a small fixed input, and the lifecycle's replay (on a real Redis, with
a fake Serve controller and a fake orchestrator: no engine starts here)."""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy.dialects import postgresql

from db.model_version_repository import exchanges_of, replayable_sessions
from db.models import Speaker, Turn
from serve_apps.contracts.replay import ReplayTurnSettings, StoredExchange, StoredSession
from serve_apps.contracts.specs import RubricSpec
from serve_apps.contracts.turn import (
    EvaluationReport,
    EvaluationRequest,
    NPCChunk,
    PersonaCard,
    PersonaPapers,
    ScenarioCard,
    TurnRequest,
)
from serve_apps.contracts.wire import Review
from serve_apps.model_lifecycle.changes import ChangeRefused
from serve_apps.model_lifecycle.replay import (
    ReplayedTurn,
    ReplySide,
    SessionReplay,
    SideNumbers,
    build_report,
    replay_session,
    side_numbers,
    stored_side,
)
from tests.unit.serve_apps.test_model_canary import (
    ACTIVE,
    CANDIDATE,
    CANDIDATE_JSON,
    JUDGE,
    _settings,
    assembled,
)

TENANT = uuid.UUID(int=42)
PRIYA = PersonaCard(
    slug="priya", name="Priya", role="Head of Sales Ops", company="Acme", personality="Direct."
)
SCENARIO = ScenarioCard(
    title="Discovery", product="CloudCRM", stage="qualification", difficulty="easy", description="."
)
RUBRIC = RubricSpec(
    slug="discovery",
    name="Discovery",
    criteria=[
        {
            "skill": "questions",
            "name": "Asks",
            "checks": [{"question": "Asked?", "kind": "questions"}],
        }
    ],
)
SETTINGS = ReplayTurnSettings(max_tokens=24)


# Which sessions: the tenant's, ended or replied, newest first, N of them.


def test_the_selection_asks_for_the_tenants_sessions_only_newest_first():
    query = replayable_sessions(TENANT, 7)
    sql = " ".join(
        str(
            query.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True})
        ).split()
    )
    # The tenant named in the query, beside row-level security acting as it.
    assert f"training_sessions.tenant_id = '{TENANT}'" in sql
    # A trainee turn to replay, and the session ended or has a stored reply.
    assert "turns_1.speaker = 'trainee'" in sql
    assert "training_sessions.status = 'ended' OR (EXISTS" in sql
    assert "turns_2.speaker = 'npc'" in sql
    assert sql.endswith(
        "ORDER BY coalesce(training_sessions.ended_at, training_sessions.created_at) DESC, "
        "training_sessions.id LIMIT 7"
    )


def _turn(seq: int, speaker: Speaker, text: str, reply_to: int | None = None, **kw: Any) -> Turn:
    return Turn(seq=seq, speaker=speaker, content=text, reply_to_seq=reply_to, **kw)


def test_a_sessions_turns_become_its_exchanges():
    persona = uuid.uuid4()
    turns = [
        _turn(1, Speaker.trainee, "Hi"),
        _turn(
            2,
            Speaker.npc,
            "Hello.",
            reply_to=1,
            persona_id=persona,
            model="m@old",
            first_token_ms=80.0,
            output_tokens=5,
        ),
        _turn(3, Speaker.trainee, "Budget?"),  # unanswered (the model failed)
        _turn(4, Speaker.trainee, "Timeline?"),
        _turn(5, Speaker.npc, "Q3.", reply_to=4, persona_id=persona, model="m@old"),
    ]
    exchanges, truncated = exchanges_of(turns, {1: (1, 0), 4: (2, 1)}, {persona: "priya"})
    assert not truncated
    assert [(e.seq, e.trainee_text, e.reply) for e in exchanges] == [
        (1, "Hi", "Hello."),
        (3, "Budget?", None),
        (4, "Timeline?", "Q3."),
    ]
    first, unanswered, last = exchanges
    assert (first.speaker, first.model, first.first_token_ms, first.output_tokens) == (
        "priya",
        "m@old",
        80.0,
        5,
    )
    assert (first.reviews, first.rejections) == (1, 0)
    assert (unanswered.reviews, unanswered.speaker) == (0, None)
    assert (last.reviews, last.rejections) == (2, 1)
    kept, truncated = exchanges_of(turns, {}, {}, max_turns=2)
    assert [e.seq for e in kept] == [1, 3] and truncated


# The report's arithmetic, on a small fixed input.


def _exchange(seq: int, reply: str | None = "Fine.", **kw: Any) -> StoredExchange:
    return StoredExchange(seq=seq, trainee_text=f"turn {seq}", reply=reply, **kw)


def test_a_stored_reply_is_cut_when_known_from_its_one_attempt():
    one = stored_side(_exchange(1, output_tokens=24, reviews=1), max_tokens=24)
    assert one.cut is True and one.chars == 5
    assert stored_side(_exchange(1, output_tokens=12, reviews=0), max_tokens=24).cut is False
    # Two attempts: the tokens are both's, so whether the one that counts was cut is unknown.
    assert stored_side(_exchange(1, output_tokens=30, reviews=2, rejections=1), 24).cut is None
    assert stored_side(_exchange(1, output_tokens=None), 24).cut is None
    assert stored_side(_exchange(1, reply=None), 24) == ReplySide()


def _side(text: str | None, ttft=None, tokens=None, reviews=1, rejections=0, cut=None):
    return ReplySide(
        text=text,
        chars=len(text) if text is not None else None,
        output_tokens=tokens,
        first_token_ms=ttft,
        reviews=reviews,
        rejections=rejections,
        cut=cut,
    )


def test_one_sides_numbers():
    numbers = side_numbers(
        [
            _side("abcd", ttft=100.0, tokens=10, cut=False),
            _side("abcdefgh", ttft=300.0, tokens=20, reviews=3, rejections=2, cut=True),
            _side("ab", ttft=None, tokens=None),  # stored before times and tokens were kept
            _side(None, reviews=0),  # unanswered
        ],
        [70.0, 90.0],
    )
    assert numbers.model_dump(exclude={"reply_chars_mean"}) == SideNumbers(
        replies=3,
        unanswered=1,
        score=80.0,
        scored_sessions=2,
        reviews=5,
        rejections=2,
        rejection_rate=0.4,
        output_tokens_mean=15.0,
        ttft_p50_ms=200.0,
        ttft_turns=2,
        cut_replies=1,
        cut_known=2,
    ).model_dump(exclude={"reply_chars_mean"})
    assert numbers.reply_chars_mean == pytest.approx(14 / 3)
    empty = side_numbers([], [])
    assert empty.score is None and empty.rejection_rate is None and empty.ttft_p50_ms is None


def _session(
    n: int,
    turns: list[tuple[ReplySide, ReplySide]],
    scores: tuple[float | None, float | None],
    state="replayed",
) -> SessionReplay:
    replayed = [
        ReplayedTurn(seq=i + 1, trainee="t", stored=s, candidate=c)
        for i, (s, c) in enumerate(turns)
    ]
    stored = side_numbers([s for s, _ in turns], [scores[0]] if scores[0] is not None else [])
    candidate = side_numbers([c for _, c in turns], [scores[1]] if scores[1] is not None else [])
    return SessionReplay(
        session_id=str(uuid.UUID(int=n)),
        started_at=datetime(2026, 12, 1, tzinfo=UTC),
        mode="practice",
        ended=True,
        stored_versions=["m@old"],
        state=state,
        error=None if state == "replayed" else "turn 3: no reply within 120 s",
        stored=stored,
        candidate=candidate,
        turns=replayed,
    )


def test_the_totals_pool_the_replayed_sessions_and_score_those_both_sides_scored():
    sessions = [
        _session(
            1,
            [(_side("aa", 100.0, 10), _side("aaaa", 50.0, 12, cut=True))],
            (60.0, 80.0),
        ),
        _session(
            2,
            [
                (_side("bbbb", 300.0, 20), _side("bb", 70.0, 8, reviews=2, rejections=1)),
                (_side(None, reviews=0), _side("b", 90.0, 4, cut=False)),
            ],
            (70.0, 50.0),
        ),
        # Scored on one side only (the evaluator did not answer the other): no score counts.
        _session(3, [(_side("c", 500.0, 6), _side("cc", 30.0, 6))], (99.0, None)),
        # Failed part-way: none of its turns count.
        _session(4, [(_side("d" * 40, 900.0, 24), _side("d", 10.0, 1))], (None, None), "failed"),
    ]
    report = build_report(
        sessions,
        role="npc",
        candidate_version="m@new",
        judge_version="j@1",
        scope="demo",
        sessions_asked=5,
        started_at=time.time(),
    )
    assert (report.replayed, report.failed, report.sessions_asked) == (3, 1, 5)
    assert len(report.sessions) == 4 and report.stored_versions == ["m@old"]
    stored, candidate = report.stored, report.candidate
    assert (stored.replies, stored.unanswered, candidate.replies) == (3, 1, 4)
    assert (stored.score, candidate.score) == (65.0, 65.0)  # sessions 1 and 2
    assert stored.scored_sessions == candidate.scored_sessions == 2
    assert stored.ttft_p50_ms == 300.0  # 100, 300, 500
    assert candidate.ttft_p50_ms == statistics.median([50.0, 70.0, 90.0, 30.0])
    assert (candidate.reviews, candidate.rejections, candidate.rejection_rate) == (5, 1, 0.2)
    assert stored.reply_chars_mean == pytest.approx(7 / 3)
    assert candidate.output_tokens_mean == 7.5
    assert (candidate.cut_replies, candidate.cut_known, stored.cut_known) == (1, 2, 0)


# One session run again, on a fake orchestrator that answers with numbered replies.


class FakeReplayEngine:
    """Streams a reply per turn ("reply N", N counting the turns it answered) after a first
    token, with the reviewer's verdicts; scores a transcript 10 per reply saying "budget"."""

    def __init__(self, *, rejected_first: bool = False, stall_on_seq: int | None = None) -> None:
        self.requests: list[TurnRequest] = []
        self.evaluated: list[EvaluationRequest] = []
        self.rejected_first = rejected_first
        self.stall_on_seq = stall_on_seq

    async def papers(self, stored, text, settings) -> PersonaPapers:
        return PersonaPapers()

    async def stream_turn(self, request: TurnRequest):
        self.requests.append(request)
        if request.reply_to_seq == self.stall_on_seq:
            await asyncio.sleep(10)
        await asyncio.sleep(0.01)
        yield NPCChunk(text="reply", speaker="priya")
        if self.rejected_first:
            yield Review(
                reply_to=request.reply_to_seq,
                speaker="priya",
                attempt=0,
                passed=False,
                action="retry",
            )
        yield Review(
            reply_to=request.reply_to_seq,
            speaker="priya",
            attempt=0,
            passed=True,
            action="accepted",
        )
        text = f"reply {len(self.requests)} about the budget."
        yield NPCChunk(
            done=True,
            speaker="priya",
            final_text=text,
            output_tokens=24,
            model=request.npc_model.version if request.npc_model else None,
            finish_reason="length",
        )

    async def evaluate(self, request: EvaluationRequest) -> EvaluationReport:
        self.evaluated.append(request)
        budget = sum("budget" in t.text for t in request.transcript if t.speaker != "trainee")
        return EvaluationReport(
            rubric=request.rubric.slug,
            score=10.0 * budget,
            pass_score=70,
            passed=False,
            criteria=[],
            strengths=[],
            improvements=[],
            summary="",
        )


def _stored(exchanges: list[StoredExchange], tenant: str = str(TENANT), **kw: Any):
    return StoredSession(
        session_id=str(uuid.uuid4()),
        tenant_id=tenant,
        mode="practice",
        started_at=datetime(2026, 12, 1, tzinfo=UTC),
        ended=True,
        persona=PRIYA,
        committee=[PRIYA],
        scenario=SCENARIO,
        rubric=RUBRIC,
        exchanges=exchanges,
        **kw,
    )


async def test_a_sessions_turns_are_answered_by_the_candidate_after_its_own_replies():
    engine = FakeReplayEngine(rejected_first=True)
    stored = _stored(
        [
            _exchange(1, "We have no budget.", speaker="priya", model="m@old", reviews=1),
            _exchange(3, None),
            _exchange(4, "Q3.", speaker="priya", model="m@old", reviews=1),
        ],
        recorded_score=55.0,
    )
    replayed = await replay_session(
        engine,
        stored,
        candidate=CANDIDATE,
        judge=JUDGE,
        settings=SETTINGS,
        tag="s/replay-1",
        deadline=time.monotonic() + 60,
    )
    assert replayed.state == "replayed" and replayed.error is None
    assert [t.seq for t in replayed.turns] == [1, 3, 4]
    # Every turn went to the candidate, with the stored trainee turns and its own replies.
    first, second, third = engine.requests
    assert {r.npc_model for r in engine.requests} == {CANDIDATE}
    assert {r.judge_model for r in engine.requests} == {JUDGE}
    assert first.history == [] and first.trainee_text == "turn 1"
    assert [(h.speaker, h.text) for h in third.history] == [
        ("trainee", "turn 1"),
        ("npc", "reply 1 about the budget."),
        ("trainee", "turn 3"),
        ("npc", "reply 2 about the budget."),
    ]
    assert (third.max_tokens, third.mode, third.session_id) == (24, "practice", "s/replay-1")
    candidate = replayed.turns[0].candidate
    assert candidate.text == "reply 1 about the budget." and candidate.model == CANDIDATE.version
    assert (candidate.reviews, candidate.rejections, candidate.cut) == (2, 1, True)
    assert candidate.first_token_ms is not None and candidate.first_token_ms > 0
    assert replayed.turns[0].stored.text == "We have no budget."
    assert replayed.turns[1].stored == ReplySide()  # unanswered then
    # Both transcripts scored over the same trainee turns: stored 1 budget, candidate 3.
    assert (replayed.stored.score, replayed.candidate.score) == (10.0, 30.0)
    stored_transcript, candidate_transcript = (r.transcript for r in engine.evaluated)
    assert [t.speaker for t in stored_transcript] == [
        "trainee",
        "priya",
        "trainee",
        "trainee",
        "priya",
    ]
    assert [t.seq for t in candidate_transcript] == [1, 2, 3, 4, 5, 6]
    assert replayed.recorded_score == 55.0 and replayed.stored_versions == ["m@old"]
    assert (replayed.stored.unanswered, replayed.candidate.unanswered) == (1, 0)


async def test_a_turn_without_a_reply_in_time_fails_the_session_there():
    engine = FakeReplayEngine(stall_on_seq=3)
    stored = _stored([_exchange(1), _exchange(3), _exchange(4)])
    replayed = await replay_session(
        engine,
        stored,
        candidate=CANDIDATE,
        judge=None,
        settings=SETTINGS,
        tag="t",
        deadline=time.monotonic() + 60,
        turn_timeout_s=0.2,
    )
    assert replayed.state == "failed" and replayed.error == "turn 3: no reply within 0 s"
    assert [t.seq for t in replayed.turns] == [1] and engine.evaluated == []
    late = await replay_session(
        engine, stored, candidate=CANDIDATE, judge=None, settings=SETTINGS, tag="t", deadline=0
    )
    assert late.state == "failed" and "deadline" in late.error and late.turns == []


# The lifecycle's replay: the candidate up without traffic, removed after unless it was
# served; the roles locked while it runs; the report in Redis.


@pytest.fixture
def replaying(redis, monkeypatch):
    return assembled(redis, monkeypatch, FakeReplayEngine())


async def _replay_ended(models, replay_id: str) -> dict[str, Any]:
    for _ in range(500):
        status = await models.replay_status(replay_id)
        if status["state"] in ("done", "failed") and not models._tasks:
            return status
        await asyncio.sleep(0.01)
    raise AssertionError("the replay did not end")


def _two_sessions() -> list[StoredSession]:
    return [
        _stored([_exchange(1, "No budget.", model=ACTIVE.version, reviews=1)]),
        _stored([_exchange(1, "Hello.", model=ACTIVE.version), _exchange(3, "Bye.")]),
    ]


async def test_a_replay_brings_the_candidate_up_without_traffic_and_removes_it(replaying):
    routing_before = await replaying._routing.read(fresh=True)
    started = await replaying.replay("npc", CANDIDATE_JSON, _two_sessions(), SETTINGS, "demo")
    assert started["state"] == "deploying" and started["sessions_total"] == 2
    # While it runs, the versions of both roles stay as they are.
    with pytest.raises(ChangeRefused, match="a replay .* is already running"):
        await replaying.swap("npc", CANDIDATE_JSON)
    with pytest.raises(ChangeRefused, match="a replay"):
        await replaying.canary("npc", CANDIDATE_JSON, 20, 1)
    with pytest.raises(ChangeRefused, match="a replay"):
        await replaying.replay("npc", CANDIDATE_JSON, _two_sessions(), SETTINGS, "demo")
    status = await _replay_ended(replaying, started["replay_id"])
    assert status["state"] == "done", status
    report = status["report"]
    assert len(report["sessions"]) == 2 and report["replayed"] == 2
    assert report["candidate_version"] == CANDIDATE.version
    assert report["judge_version"] == JUDGE.version and report["scope"] == "demo"
    assert report["stored_versions"] == [ACTIVE.version]
    assert report["candidate"]["replies"] == report["stored"]["replies"] == 3
    # It came up and went; no turn was ever routed to it.
    assert CANDIDATE.app_name in replaying._serve.removed
    assert replaying._serve.apps == {"salesboost", ACTIVE.app_name}
    assert await replaying._routing.read(fresh=True) == routing_before
    # The roles are free again.
    assert await replaying._routing.lock_holder("npc") is None
    assert await replaying._routing.lock_holder("judge") is None
    assert await replaying._routing.lock("npc", 60)  # a swap may start


async def test_a_served_version_is_replayed_and_stays(replaying):
    judges_config = _settings("npc_cpu").model_dump(mode="json")  # the judge's application
    started = await replaying.replay("npc", judges_config, _two_sessions(), SETTINGS, "demo")
    status = await _replay_ended(replaying, started["replay_id"])
    assert status["state"] == "done" and status["report"]["candidate_version"] == ACTIVE.version
    assert replaying._serve.removed == []
    assert replaying._serve.apps == {"salesboost", ACTIVE.app_name}


async def test_a_candidate_that_does_not_start_changes_nothing(replaying):
    replaying._serve.fails = {CANDIDATE.app_name}
    started = await replaying.replay("npc", CANDIDATE_JSON, _two_sessions(), SETTINGS, "demo")
    status = await _replay_ended(replaying, started["replay_id"])
    assert status["state"] == "failed" and status["report"] is None
    assert "did not come up" in status["message"] and "DEPLOY_FAILED" in status["message"]
    assert replaying._serve.apps == {"salesboost", ACTIVE.app_name}
    assert replaying._replay_engine.requests == []
    assert await replaying._routing.lock_holder("npc") is None


async def test_bad_replays_are_refused(replaying):
    sessions = _two_sessions()
    assert await replaying._routing.lock("npc", 60)  # a swap of npc is under way
    with pytest.raises(ChangeRefused, match="a change of npc is already running"):
        await replaying.replay("npc", CANDIDATE_JSON, sessions, SETTINGS, "demo")
    assert await replaying._routing.lock_holder("judge") is None  # taken back
    await replaying._routing.unlock("npc")
    with pytest.raises(ValueError, match="replay npc"):
        await replaying.replay("judge", CANDIDATE_JSON, sessions, SETTINGS, "demo")
    with pytest.raises(ValueError, match="no stored session"):
        await replaying.replay("npc", CANDIDATE_JSON, [], SETTINGS, "demo")
    with pytest.raises(ValueError, match="at most 50"):
        await replaying.replay("npc", CANDIDATE_JSON, sessions * 26, SETTINGS, "demo")
    other = _stored([_exchange(1)], tenant=str(uuid.uuid4()))
    with pytest.raises(ValueError, match="one company"):
        await replaying.replay("npc", CANDIDATE_JSON, [*sessions, other], SETTINGS, "demo")
    with pytest.raises(ValueError, match="kv_cache_gib"):
        await replaying.replay(
            "npc", {**CANDIDATE_JSON, "kv_cache_gib": 0}, sessions, SETTINGS, "demo"
        )
    assert await replaying._routing.lock_holder("npc") is None
