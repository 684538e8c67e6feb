"""One trainee turn with every agent at work, as a stream of typed events.

    compliance rules (trainee) ─► director ─► coach rules ─► persona streams attempt 0
        └─ on its first token: semantic and knowledge-claim rules (the embedder), the
           coach's knowledge hint, and (when on) the judge's hint and rules start beside it
    reviewer on the attempt ─► accepted, or a retry with feedback (bounded), or a safe line
    ─► the reply that counts (``NPCChunk(done=True)``) ─► late answers

The seller's knowledge chunks retrieved for the turn (``grounding``) go to the coach and to
the check of the trainee's claims; the persona never reads them (it speaks as the vendor
when it does, on the bundled model).

On the CPU default every judge call is off (``AgentSettings``): the one engine that plays
the persona would answer them behind the persona's own reply, seconds late or not at all
within their timeout; rules, the embedder's semantic checks and the reviewer decide. An
optional agent that fails is a typed ``agent_failed`` event that is stored, not shown.

Persona tokens are provisional until the reviewer's verdict: the first token is not held
back for the review (TTFT stays the persona's own), and a rejected attempt is retracted by
a ``review`` event with ``action: retry``. The conversation's own code stores every event.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable

from opentelemetry import trace
from pydantic import BaseModel, ConfigDict, Field

from serve_apps.contracts.knowledge import RetrievedChunk
from serve_apps.contracts.turn import NPCChunk, TurnRequest
from serve_apps.contracts.wire import (
    ComplianceFinding,
    ErrorEvent,
    Hint,
    Review,
    TurnTaking,
)
from serve_apps.orchestrator.agents.coach import Coach, knowledge_hint, stage_from_history
from serve_apps.orchestrator.agents.compliance import ComplianceChecker
from serve_apps.orchestrator.agents.director import Director
from serve_apps.orchestrator.agents.judge import AgentFailed, Judge
from serve_apps.orchestrator.agents.npc import NPCConversation
from serve_apps.orchestrator.agents.reviewer import (
    Reviewer,
    fallback_reply,
    feedback_message,
)
from serve_apps.orchestrator.seller_knowledge import SellerKnowledge
from serve_apps.orchestrator.semantic import SemanticMatcher
from serve_apps.telemetry import tracing
from serve_apps.telemetry.metrics import product_metrics

log = logging.getLogger("salesboost.orchestrator")

TurnEvent = NPCChunk | Hint | ComplianceFinding | Review | TurnTaking | ErrorEvent


class AgentSettings(BaseModel):
    """How the agents work; the ``agents`` argument of the Serve application."""

    model_config = ConfigDict(extra="forbid")

    # The judge's calls are off by default: on the CPU default one engine plays the persona
    # and would answer them behind it, past their timeout (each turn of the demo printed
    # "the coach could not answer (judge_timeout)"). Turn them on with a GPU judge.
    judge_timeout_s: float = Field(10, gt=0, le=120, description="One judge answer, at most.")
    coach_uses_judge: bool = Field(False, description="The judge suggests the next move.")
    reviewer_uses_judge: bool = Field(
        False,
        description="The judge reviews what rules let pass (worth it with a judge model that "
        "judges well; the bundled 135M model does not).",
    )
    director_uses_judge: bool = Field(False, description="The judge picks when rules cannot.")
    compliance_uses_judge: bool = Field(False, description="The judge decides `judge` rules.")
    evaluator_uses_judge: bool = Field(
        False, description="The judge answers `judge` rubric checks (off: they count neither way)."
    )
    max_review_retries: int = Field(2, ge=0, le=5, description="Regenerations per reply.")
    review_feedback: bool = Field(
        False,
        description="A rejected reply's issues are told to the persona before its next attempt. "
        "Off by default: the bundled 135M model repeats the correction to the salesperson "
        '("One to three short spoken sentences that answer…") instead of following it, so a '
        "retry is a fresh sample. Worth turning on with a larger persona model.",
    )
    knowledge_top_k: int = Field(
        3,
        ge=0,
        le=20,
        description="The seller's chunks asked for a turn that needs them (a figure or a "
        "product term), for the coach's hint and the claims check (0: none).",
    )
    knowledge_token_budget: int = Field(
        160,
        ge=16,
        le=2000,
        description="Tokens of those chunks, cut to the sentences that match the turn: every "
        "sentence is embedded to find the hint and the contradicted claim.",
    )
    knowledge_timeout_s: float = Field(
        2.0, gt=0, le=30, description="Past this, the hint and the claims check go without."
    )
    knowledge_hint_threshold: float = Field(
        0.5,
        ge=0,
        le=1,
        description="The coach cites a knowledge sentence this similar to the trainee's turn.",
    )


def agent_error(failure: AgentFailed, reply_to: int | None) -> ErrorEvent:
    """An optional agent's failure as the typed event that is stored, counted once here."""
    product_metrics().agent_failures.inc(1, tags={"agent": failure.agent, "code": failure.code})
    return ErrorEvent(
        code="agent_failed",
        message=f"the {failure.agent} could not answer ({failure.code}); the conversation goes on",
        agent=failure.agent,
        reply_to=reply_to,
    )


class TrainingTurn:
    def __init__(
        self,
        npc: NPCConversation,
        judge: Judge | None,
        settings: AgentSettings,
        matcher: SemanticMatcher | None = None,
        seller_knowledge: SellerKnowledge | None = None,
    ) -> None:
        self._npc = npc
        self._seller_knowledge = seller_knowledge or SellerKnowledge(
            None,
            top_k=settings.knowledge_top_k,
            token_budget=settings.knowledge_token_budget,
            timeout_s=settings.knowledge_timeout_s,
        )
        self._judge = judge
        self._settings = settings
        self._matcher = matcher
        self._coach = Coach(judge if settings.coach_uses_judge else None)
        self._reviewer = Reviewer(
            judge if settings.reviewer_uses_judge else None,
            max_retries=settings.max_review_retries,
            matcher=matcher,
        )
        self._director = Director(judge if settings.director_uses_judge else None)

    async def run(self, request: TurnRequest) -> AsyncIterator[TurnEvent]:
        if request.mode == "conversation":  # the persona alone
            async for chunk in self._npc.stream_reply(request):
                yield chunk
            return
        seq = request.reply_to_seq
        compliance = ComplianceChecker(
            request.compliance_rules,
            self._judge if self._settings.compliance_uses_judge else None,
            self._matcher,
        )
        with tracing.span("compliance.trainee_rules", {"rules": len(request.compliance_rules)}):
            findings = compliance.check(
                request.trainee_text, party="trainee", speaker="trainee", reply_to=seq
            )
        for finding in findings:
            yield finding

        with tracing.span("director", {"personas": len(request.personas)}):
            choice = await self._director.choose(
                request.personas, request.trainee_text, request.history
            )
        if choice.failure is not None:
            yield agent_error(choice.failure, seq)
        if len(request.personas) > 1:
            yield TurnTaking(
                reply_to=seq,
                speaker=choice.speaker.slug,
                reason=choice.reason,
                decided_by=choice.decided_by,
            )

        coaching = request.mode == "practice"
        stage = stage_from_history(request.history, request.scenario.stage)
        if coaching:
            with tracing.span("coach.rules"):
                hints, stage = self._coach.rule_hints(request, stage)
            for hint in hints:
                yield hint

        # Work that must not compete with the persona's first token starts after it.
        def judge_work() -> list[Awaitable[list[TurnEvent]]]:
            work: list[Awaitable[list[TurnEvent]]] = []
            hints_knowledge = coaching and self._matcher is not None
            # The seller's chunks, asked once for whoever reads them, beside the reply.
            seller: asyncio.Future[list[RetrievedChunk]] | None = None
            if hints_knowledge or compliance.checks_claims:
                seller = asyncio.ensure_future(self._seller_knowledge.for_turn(request))

            async def semantic_rules() -> list[ComplianceFinding]:
                return await compliance.semantic_check(
                    request.trainee_text,
                    party="trainee",
                    speaker="trainee",
                    reply_to=seq,
                    knowledge=await seller if compliance.checks_claims and seller else None,
                )

            async def coach_hint() -> Hint | None:
                chunks = await seller if seller is not None else []
                if not chunks or self._matcher is None:
                    return None
                threshold = self._settings.knowledge_hint_threshold
                return await knowledge_hint(self._matcher, request, chunks, threshold)

            if compliance.has_semantic_rules:
                work.append(
                    _as_events(semantic_rules(), seq, "compliance", "compliance.semantic_rules")
                )
            if hints_knowledge:
                work.append(_as_events(coach_hint(), seq, "coach", "coach.knowledge_hint"))
            if coaching and self._coach.uses_judge:
                work.append(
                    _as_events(self._coach.next_step(request, stage), seq, name="coach.judge")
                )
            if compliance.has_judge_rules:
                work.append(
                    _as_events(
                        compliance.judge_check(
                            request.trainee_text, speaker="trainee", reply_to=seq
                        ),
                        seq,
                        name="compliance.judge_rules",
                    )
                )
            return work

        late: list[asyncio.Task[list[TurnEvent]]] = []
        judge_started = False
        final: NPCChunk | None = None
        output_tokens = 0
        feedback: list[dict[str, str]] = []
        # The agents that start beside the persona are spans of the turn, not of its attempt.
        turn_span = trace.get_current_span()
        for attempt in range(self._reviewer.max_retries + 1):
            done: NPCChunk | None = None
            with tracing.span(
                "persona.attempt",
                {
                    "attempt": attempt,
                    "speaker": choice.speaker.slug,
                    # Which card the prompt was built from: an edit reaches the next turn.
                    "persona.card": choice.speaker.fingerprint(),
                },
            ) as attempt_span:
                asked = time.perf_counter()
                first_token = True
                async for chunk in self._npc.stream_reply(
                    request, speaker=choice.speaker, attempt=attempt, feedback=feedback
                ):
                    if first_token:
                        attempt_span.add_event("first_token")
                        attempt_span.set_attribute(
                            "ttft_ms", round((time.perf_counter() - asked) * 1000, 1)
                        )
                        first_token = False
                    if not judge_started:
                        with trace.use_span(turn_span):
                            late = [asyncio.ensure_future(w) for w in judge_work()]
                        judge_started = True
                    if chunk.done:
                        done = chunk
                    else:
                        yield chunk
                    for event in _finished(late):
                        yield event
                assert done is not None
                tracing.set_attributes(
                    attempt_span,
                    {"output_tokens": done.output_tokens, "finish_reason": done.finish_reason},
                )
            output_tokens += done.output_tokens or 0
            text = done.final_text or ""
            with tracing.span("reviewer", {"attempt": attempt}) as review_span:
                npc_findings = compliance.check(
                    text, party="npc", speaker=choice.speaker.slug, reply_to=seq
                )
                cut = done.finish_reason == "length" and not done.trimmed
                issues = await self._reviewer.rule_issues(
                    text,
                    persona=choice.speaker,
                    scenario=request.scenario,
                    question=request.trainee_text,
                    cut=cut,
                )
                issues += [
                    f"breaks the rule {f.rule!r}" for f in npc_findings if f.severity == "critical"
                ]
                judge_failure: AgentFailed | None = None
                if not issues and self._reviewer.uses_judge:
                    try:
                        issues = await self._reviewer.judge_issues(
                            text, persona=choice.speaker, scenario=request.scenario
                        )
                    except AgentFailed as failure:
                        judge_failure = failure
                review_span.set_attribute("issues", len(issues))
            if judge_failure is not None:
                yield agent_error(judge_failure, seq)
            last_attempt = attempt == self._reviewer.max_retries
            if not issues:
                yield Review(
                    reply_to=seq,
                    speaker=choice.speaker.slug,
                    attempt=attempt,
                    passed=True,
                    action="accepted",
                )
                for finding in npc_findings:
                    yield finding
                final = done
                break
            action = "replaced" if last_attempt else "retry"
            yield Review(
                reply_to=seq,
                speaker=choice.speaker.slug,
                attempt=attempt,
                passed=False,
                issues=issues,
                action=action,
            )
            if last_attempt:
                final = done.model_copy(update={"final_text": fallback_reply(choice.speaker)})
                break
            if self._settings.review_feedback:
                feedback = [feedback_message(choice.speaker, issues)]
        assert final is not None
        yield final.model_copy(update={"output_tokens": output_tokens or None})

        for event in await _gather_late(late, self._settings.judge_timeout_s):
            yield event


def _finished(tasks: list[asyncio.Task[list[TurnEvent]]]) -> list[TurnEvent]:
    """The events of judge work that has finished, each task's only once."""
    events: list[TurnEvent] = []
    for task in list(tasks):
        if task.done():
            tasks.remove(task)
            events.extend(task.result())
    return events


async def _gather_late(
    tasks: list[asyncio.Task[list[TurnEvent]]], timeout_s: float
) -> list[TurnEvent]:
    if not tasks:
        return []
    done, pending = await asyncio.wait(tasks, timeout=timeout_s + 1)
    for task in pending:  # the judge's own timeout should have ended these; be sure
        task.cancel()
    return [event for task in done for event in task.result()]


async def _as_events(
    work: Awaitable[Hint | list[ComplianceFinding] | list[Hint] | None],
    seq: int,
    agent: str | None = None,
    name: str = "agent",
) -> list[TurnEvent]:
    """One agent's answer as events (a span of its own, ``name``), or its failure as a typed
    error event (stored for the report, not shown to the trainee)."""
    try:
        with tracing.span(name):
            answer = await work
    except AgentFailed as failure:
        log.info("turn %s: %s", seq, failure)
        return [agent_error(failure, seq)]
    except Exception as exc:  # an agent bug must not cost the trainee the reply
        log.exception("turn %s: agent failed", seq)
        product_metrics().agent_failures.inc(
            1, tags={"agent": agent or "judge", "code": "exception"}
        )
        return [
            ErrorEvent(
                code="agent_failed",
                message=f"an agent failed: {type(exc).__name__}",
                agent=agent,
                reply_to=seq,
            )
        ]
    if answer is None:
        return []
    return list(answer) if isinstance(answer, list) else [answer]
