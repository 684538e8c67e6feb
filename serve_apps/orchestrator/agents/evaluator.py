"""The evaluator: scores a finished session against its rubric.

Each check is a yes/no question decided by a rule (a pattern over the trainee's turns, a
count of questions), by the bundled embedder (a trainee sentence close enough to one of the
check's example phrasings) or by the judge model over the transcript; a criterion's score is
the weight of its checks that passed, and the session's score the criteria's weighted mean.
A judge check with no judge to answer it (the CPU default) counts neither way. Every yes
comes with evidence: the turn numbers and quotes, each a whole sentence.
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Literal

from pydantic import BaseModel, Field

from retrieval.excerpts import sentences
from serve_apps.contracts.specs import RubricCheck, RubricCriterion, TraineeMemory
from serve_apps.contracts.turn import (
    CheckResult,
    CriterionResult,
    EvaluationReport,
    EvaluationRequest,
    Evidence,
    TranscriptTurn,
)
from serve_apps.orchestrator.agents.compliance import whole_sentences
from serve_apps.orchestrator.agents.judge import AgentFailed, Judge
from serve_apps.orchestrator.agents.patterns import (
    Match,
    PatternTimeout,
    compile_pattern,
    search,
)
from serve_apps.orchestrator.semantic import SemanticMatcher

QUOTE_CHARS = 400
MAX_EVIDENCE = 3
TRANSCRIPT_CHARS = 3000  # what the judge reads: the end of the conversation
STRONG, WEAK = 75.0, 50.0
log = logging.getLogger("salesboost.evaluator")
_QUESTION = re.compile(r"[^.!?]*\?")


class JudgedCheck(BaseModel):
    answer: Literal["yes", "no"]
    evidence_turn: int | None = Field(None, description="The turn number that shows it.")
    quote: str = Field("", max_length=QUOTE_CHARS)


def _quote(text: str, match: Match[str] | None = None) -> str:
    """The sentence(s) the match is in, whole."""
    if match is None:
        return whole_sentences(text)
    return whole_sentences(text, match.start(), match.end())


def _transcript_text(transcript: list[TranscriptTurn]) -> str:
    lines = [f"[{t.seq}] {t.speaker}: {t.text}" for t in transcript]
    text = "\n".join(lines)
    return text[-TRANSCRIPT_CHARS:]


class Evaluator:
    def __init__(self, judge: Judge | None = None, matcher: SemanticMatcher | None = None) -> None:
        self._judge = judge
        self._matcher = matcher

    async def evaluate(
        self, request: EvaluationRequest
    ) -> tuple[EvaluationReport, list[AgentFailed]]:
        trainee = [t for t in request.transcript if t.speaker == "trainee"]
        failures: list[AgentFailed] = []
        criteria = await asyncio.gather(
            *(self._criterion(c, request, trainee, failures) for c in request.rubric.criteria)
        )
        scored = [c for c in criteria if c.scored]
        total_weight = sum(c.weight for c in scored)
        score = round(sum(c.score * c.weight for c in scored) / total_weight, 1) if scored else 0.0
        passed = score >= request.rubric.pass_score
        strengths = [c.name for c in scored if c.score >= STRONG]
        improvements = [
            f"{c.name}: {next(k.question for k in c.checks if _counts(k) and not k.passed)}"
            for c in scored
            if c.score < WEAK
        ]
        verdict = "passed" if passed else "not passed"
        summary = (
            f"Scored {score:.0f}/100 on {request.rubric.name} ({verdict}; pass mark "
            f"{request.rubric.pass_score:.0f}). "
            + (f"Strong: {', '.join(strengths)}. " if strengths else "")
            + (
                f"Work on: {', '.join(c.name for c in scored if c.score < WEAK)}."
                if improvements
                else ""
            )
        ).strip()
        report = EvaluationReport(
            rubric=request.rubric.slug,
            score=score,
            pass_score=request.rubric.pass_score,
            passed=passed,
            criteria=list(criteria),
            strengths=strengths,
            improvements=improvements,
            summary=summary,
        )
        return report, failures

    async def _criterion(
        self,
        criterion: RubricCriterion,
        request: EvaluationRequest,
        trainee: list[TranscriptTurn],
        failures: list[AgentFailed],
    ) -> CriterionResult:
        checks = await asyncio.gather(
            *(self._check(check, request, trainee, failures) for check in criterion.checks)
        )
        counted = [c for c in checks if _counts(c)]
        weight = sum(c.weight for c in counted)
        score = 100 * sum(c.weight for c in counted if c.passed) / weight if counted else 0.0
        return CriterionResult(
            skill=criterion.skill,
            name=criterion.name,
            weight=criterion.weight,
            score=round(score, 1),
            checks=list(checks),
            scored=bool(counted),
        )

    async def _check(
        self,
        check: RubricCheck,
        request: EvaluationRequest,
        trainee: list[TranscriptTurn],
        failures: list[AgentFailed],
    ) -> CheckResult:
        def result(passed: bool, evidence: list[Evidence], by="rule") -> CheckResult:
            return CheckResult(
                question=check.question,
                passed=passed,
                weight=check.weight,
                decided_by=by,
                evidence=evidence[:MAX_EVIDENCE],
            )

        if check.kind == "pattern":
            assert check.pattern is not None
            pattern = compile_pattern(check.pattern)
            evidence = []
            for t in trainee:
                try:
                    m = search(pattern, t.text)
                except PatternTimeout as exc:  # the turn counts as no match
                    log.warning(
                        "rubric check %r skipped on turn %d: %s", check.question, t.seq, exc
                    )
                    continue
                if m:
                    evidence.append(Evidence(seq=t.seq, quote=_quote(t.text, m)))
            return result(bool(evidence), evidence)
        if check.kind == "questions":
            asked = [
                (t, q.strip()) for t in trainee for q in _QUESTION.findall(t.text) if q.strip()
            ]
            evidence = [Evidence(seq=t.seq, quote=q[:QUOTE_CHARS]) for t, q in asked]
            return result(len(asked) >= check.min_count, evidence)
        if check.kind == "semantic":
            return await self._semantic(check, trainee, result)
        if not trainee:
            return result(False, [], "rule")
        if self._judge is None:
            return result(False, [], "not_checked")
        try:
            answer = await self._judge.ask(
                "evaluator",
                JudgedCheck,
                instructions=(
                    "You assess a salesperson in a practice sales call. Answer the question "
                    "about the salesperson with yes or no, and give the number of the turn "
                    f"that shows it and a short quote from it.\nQuestion: {check.question}"
                ),
                material=_transcript_text(request.transcript),
                max_tokens=128,
            )
        except AgentFailed as failure:
            failures.append(failure)
            return result(False, [], "judge_failed")
        seqs = {t.seq: t for t in trainee}
        evidence = []
        if answer.evidence_turn in seqs:
            turn = seqs[answer.evidence_turn]
            quote = answer.quote.strip()
            evidence.append(
                Evidence(
                    seq=turn.seq, quote=quote if quote and quote in turn.text else _quote(turn.text)
                )
            )
        return result(answer.answer == "yes", evidence, "judge")

    async def _semantic(self, check: RubricCheck, trainee: list[TranscriptTurn], result):
        """Yes when a trainee sentence is ``threshold`` close to one of the examples; the
        closest sentences (whole) are the evidence."""
        if self._matcher is None or not trainee:
            return result(False, [], "not_checked" if trainee else "rule")
        examples = tuple(check.examples)
        matches = await self._matcher.best_of_many([(sentences(t.text), examples) for t in trainee])
        hits = sorted(
            (
                (m.score, t.seq, m.sentence)
                for t, m in zip(trainee, matches, strict=True)
                if m is not None and m.score >= check.threshold
            ),
            reverse=True,
        )
        best = max((m.score for m in matches if m is not None), default=None)
        checked = result(
            bool(hits), [Evidence(seq=seq, quote=quote) for _, seq, quote in hits], "semantic"
        )
        return checked.model_copy(
            update={"similarity": round(best, 3) if best is not None else None}
        )


def _counts(check: CheckResult) -> bool:
    return check.decided_by != "not_checked"


def memory_of(report: EvaluationReport) -> TraineeMemory:
    """What the coach should know next time: the weak skills and the summary."""
    weak = [
        c.skill
        for c in sorted(report.criteria, key=lambda c: c.score)
        if c.scored and c.score < WEAK
    ]
    return TraineeMemory(summary=report.summary, weak_skills=weak)
