"""One trainee turn with every agent at work, as a stream of typed events.

    compliance rules (trainee) ─► director ─► coach rules ─► persona streams attempt 0
        └─ on its first token: the judge's coach hint and compliance rules start beside it
    reviewer on the attempt ─► accepted, or a retry with feedback (bounded), or a safe line
    ─► the reply that counts (``NPCChunk(done=True)``) ─► late judge answers

Persona tokens are provisional until the reviewer's verdict: the first token is not held
back for the review (TTFT stays the persona's own), and a rejected attempt is retracted by
a ``review`` event with ``action: retry``. The conversation's own code stores every event.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable

from pydantic import BaseModel, ConfigDict, Field

from serve_apps.conversation.protocol import (
    ComplianceFinding,
    ErrorEvent,
    Hint,
    Review,
    TurnTaking,
)
from serve_apps.knowledge.contracts import RetrievedChunk
from serve_apps.orchestrator.agents.coach import Coach, stage_from_history
from serve_apps.orchestrator.agents.compliance import ComplianceChecker
from serve_apps.orchestrator.agents.director import Director
from serve_apps.orchestrator.agents.judge import AgentFailed, Judge
from serve_apps.orchestrator.agents.npc import NPCConversation
from serve_apps.orchestrator.agents.reviewer import (
    Reviewer,
    fallback_reply,
    feedback_message,
    rule_issues,
)
from serve_apps.orchestrator.contracts import NPCChunk, TurnRequest

log = logging.getLogger("salesboost.orchestrator")

TurnEvent = NPCChunk | Hint | ComplianceFinding | Review | TurnTaking | ErrorEvent


class AgentSettings(BaseModel):
    """How the agents work; the ``agents`` argument of the Serve application."""

    model_config = ConfigDict(extra="forbid")

    judge_timeout_s: float = Field(10, gt=0, le=120, description="One judge answer, at most.")
    coach_uses_judge: bool = Field(True, description="The judge suggests the next move.")
    reviewer_uses_judge: bool = Field(
        False,
        description="The judge reviews what rules let pass (worth it with a judge model that "
        "judges well; the bundled 135M model does not).",
    )
    director_uses_judge: bool = Field(True, description="The judge picks when rules cannot.")
    max_review_retries: int = Field(2, ge=0, le=5, description="Regenerations per reply.")


def agent_error(failure: AgentFailed, reply_to: int | None) -> ErrorEvent:
    return ErrorEvent(
        code="agent_failed",
        message=f"the {failure.agent} could not answer ({failure.code}); the conversation goes on",
        agent=failure.agent,
        reply_to=reply_to,
    )


class TrainingTurn:
    def __init__(self, npc: NPCConversation, judge: Judge | None, settings: AgentSettings) -> None:
        self._npc = npc
        self._judge = judge
        self._settings = settings
        self._coach = Coach(judge if settings.coach_uses_judge else None)
        self._reviewer = Reviewer(
            judge if settings.reviewer_uses_judge else None,
            max_retries=settings.max_review_retries,
        )
        self._director = Director(judge if settings.director_uses_judge else None)

    async def run(
        self, request: TurnRequest, grounding: list[RetrievedChunk]
    ) -> AsyncIterator[TurnEvent]:
        if request.mode == "conversation":  # the persona alone
            async for chunk in self._npc.stream_reply(request, grounding):
                yield chunk
            return
        seq = request.reply_to_seq
        compliance = ComplianceChecker(request.compliance_rules, self._judge)
        for finding in compliance.check(
            request.trainee_text, party="trainee", speaker="trainee", reply_to=seq
        ):
            yield finding

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
            hints, stage = self._coach.rule_hints(request, stage)
            for hint in hints:
                yield hint

        # Judge work that must not compete with the persona's first token starts after it.
        def judge_work() -> list[Awaitable[list[TurnEvent]]]:
            work: list[Awaitable[list[TurnEvent]]] = []
            if coaching and self._coach.uses_judge:
                work.append(_as_events(self._coach.next_step(request, stage), seq))
            if compliance.has_judge_rules:
                work.append(
                    _as_events(
                        compliance.judge_check(
                            request.trainee_text, speaker="trainee", reply_to=seq
                        ),
                        seq,
                    )
                )
            return work

        late: list[asyncio.Task[list[TurnEvent]]] = []
        judge_started = False
        final: NPCChunk | None = None
        output_tokens = 0
        feedback: list[dict[str, str]] = []
        for attempt in range(self._reviewer.max_retries + 1):
            done: NPCChunk | None = None
            async for chunk in self._npc.stream_reply(
                request, grounding, speaker=choice.speaker, attempt=attempt, feedback=feedback
            ):
                if not judge_started:
                    late = [asyncio.ensure_future(w) for w in judge_work()]
                    judge_started = True
                if chunk.done:
                    done = chunk
                else:
                    yield chunk
                for event in _finished(late):
                    yield event
            assert done is not None
            output_tokens += done.output_tokens or 0
            text = done.final_text or ""
            npc_findings = compliance.check(
                text, party="npc", speaker=choice.speaker.slug, reply_to=seq
            )
            issues = rule_issues(text) + [
                f"breaks the rule {f.rule!r}" for f in npc_findings if f.severity == "critical"
            ]
            if not issues and self._reviewer.uses_judge:
                try:
                    issues = await self._reviewer.judge_issues(
                        text, persona=choice.speaker, scenario=request.scenario
                    )
                except AgentFailed as failure:
                    yield agent_error(failure, seq)
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


async def _as_events(work: Awaitable[Hint | list[ComplianceFinding]], seq: int) -> list[TurnEvent]:
    """One agent's judge answer as events, or its failure as a typed error event."""
    try:
        answer = await work
    except AgentFailed as failure:
        log.info("turn %s: %s", seq, failure)
        return [agent_error(failure, seq)]
    except Exception as exc:  # an agent bug must not cost the trainee the reply
        log.exception("turn %s: agent failed", seq)
        return [
            ErrorEvent(
                code="agent_failed", message=f"an agent failed: {type(exc).__name__}", reply_to=seq
            )
        ]
    return list(answer) if isinstance(answer, list) else [answer]
