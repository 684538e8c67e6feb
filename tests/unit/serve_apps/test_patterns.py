"""A company's regular expressions are searched with a deadline: a pattern that backtracks
catastrophically gives up on its text instead of holding the replica's event loop, a session
skips that rule on that turn (the other rules still decide), a rubric check counts the turn
as no match, and trying the rule says why it cannot be used."""

from __future__ import annotations

import logging

import pytest

from serve_apps.contracts.specs import ComplianceRuleSpec, RubricSpec
from serve_apps.contracts.turn import EvaluationRequest, TranscriptTurn
from serve_apps.gateway.errors import APIError
from serve_apps.gateway.schemas.content import RuleTryIn
from serve_apps.gateway.use_cases.content import try_rule
from serve_apps.orchestrator.agents.compliance import ComplianceChecker
from serve_apps.orchestrator.agents.evaluator import Evaluator
from serve_apps.orchestrator.agents.patterns import PatternTimeout, compile_pattern, search
from tests.unit.serve_apps.test_agents import IT, SCENARIO

# Exponential backtracking on a run of a's that does not end the text: the regex package
# does not optimise this one away (it does for (a+)+$).
BACKTRACKS = r"(a|aa)+$"
TRAP = "a" * 60 + "!"


def test_a_backtracking_pattern_gives_up_and_a_sane_one_still_matches():
    with pytest.raises(PatternTimeout, match="backtracks too much"):
        search(compile_pattern(BACKTRACKS), TRAP)
    match = search(compile_pattern(r"(?i)guarantee"), "We GUARANTEE it.")
    assert match is not None and match.group() == "GUARANTEE"


def _rule(slug: str, pattern: str) -> ComplianceRuleSpec:
    return ComplianceRuleSpec.model_validate(
        {"slug": slug, "description": "No promises.", "kind": "forbidden", "pattern": pattern}
    )


def test_a_session_skips_the_slow_rule_on_that_turn_and_the_others_still_decide(caplog):
    checker = ComplianceChecker([_rule("slow", BACKTRACKS), _rule("promise", "guarantee")])
    with caplog.at_level(logging.WARNING, logger="salesboost.compliance"):
        findings = checker.check(
            f"We guarantee it. {TRAP}", party="trainee", speaker="trainee", reply_to=3
        )
    assert [f.rule for f in findings] == ["promise"]
    assert "'slow' skipped on turn 3" in caplog.text
    with pytest.raises(PatternTimeout):
        checker.check(TRAP, party="trainee", speaker="trainee", reply_to=3, strict=True)


async def test_trying_a_slow_rule_is_a_422_that_says_why():
    body = RuleTryIn.model_validate(
        {
            "rule": {"slug": "r", "description": "No promises.", "pattern": BACKTRACKS},
            "sentence": TRAP,
        }
    )
    with pytest.raises(APIError) as refused:
        await try_rule(None, body)
    assert refused.value.status == 422 and refused.value.code == "pattern_too_slow"
    assert "backtracks too much" in refused.value.message


async def test_a_rubric_pattern_that_gives_up_counts_the_turn_as_no_match(caplog):
    rubric = RubricSpec.model_validate(
        {
            "slug": "r",
            "name": "Confirms",
            "pass_score": 50,
            "criteria": [
                {
                    "skill": "closing",
                    "name": "Confirms",
                    "checks": [
                        {"question": "Slow?", "kind": "pattern", "pattern": BACKTRACKS},
                        {"question": "Confirms?", "kind": "pattern", "pattern": "(?i)confirm"},
                    ],
                }
            ],
        }
    )
    transcript = [
        TranscriptTurn(seq=1, speaker="trainee", text=TRAP),
        TranscriptTurn(seq=2, speaker="trainee", text="Can you confirm the date?"),
    ]
    request = EvaluationRequest(
        session_id="s", scenario=SCENARIO, personas=[IT], transcript=transcript, rubric=rubric
    )
    with caplog.at_level(logging.WARNING, logger="salesboost.evaluator"):
        report, failures = await Evaluator(None).evaluate(request)
    slow, confirms = report.criteria[0].checks
    assert not slow.passed and slow.evidence == []
    assert confirms.passed and confirms.evidence[0].seq == 2
    assert "skipped on turn 1" in caplog.text and failures == []
