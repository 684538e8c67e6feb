"""The agents' logic, with scripted stand-ins for the model engines (named as such).

The integration tests (tests/integration/test_agents.py) run the same agents on the real
judge model through vLLM's guided decoding.
"""

import asyncio
import json

import pytest

from serve_apps.contracts.specs import ComplianceRuleSpec, RubricSpec, TraineeMemory
from serve_apps.contracts.turn import (
    EvaluationRequest,
    HistoryTurn,
    NPCChunk,
    PersonaCard,
    ScenarioCard,
    TranscriptTurn,
    TurnRequest,
)
from serve_apps.orchestrator.agents.coach import Coach, matched_objection, stage_of
from serve_apps.orchestrator.agents.compliance import ComplianceChecker
from serve_apps.orchestrator.agents.director import Director, waited_longest
from serve_apps.orchestrator.agents.evaluator import Evaluator, memory_of
from serve_apps.orchestrator.agents.judge import AgentFailed, Judge
from serve_apps.orchestrator.agents.npc import NPCConversation
from serve_apps.orchestrator.agents.reviewer import fallback_reply, rule_issues, with_digits
from serve_apps.orchestrator.chat_engine import ChatDelta
from serve_apps.orchestrator.training_turn import AgentSettings, TrainingTurn

IT = PersonaCard(
    slug="it",
    name="Priya Raman",
    role="IT Director",
    company="Northwind",
    personality="skeptical",
    objections=["Your price is higher than the competitor we already talked to"],
    topics=["integration", "sap", "security"],
)
CFO = PersonaCard(
    slug="cfo",
    name="Marcus Lee",
    role="Chief Financial Officer",
    company="Northwind",
    personality="numbers-first",
    topics=["price", "budget", "cost"],
)
SCENARIO = ScenarioCard(
    title="t", product="CloudCRM", stage="qualification", difficulty="d", description="x"
)
RULES = [
    ComplianceRuleSpec(
        slug="no-guaranteed-returns",
        description="No guarantees",
        pattern=r"(?i)\bguarantee[ds]?\b.{0,40}\b(return|roi|saving)s?",
        severity="critical",
    ),
    ComplianceRuleSpec(
        slug="pricing-disclosure",
        description="Say prices exclude VAT",
        kind="disclosure",
        trigger=r"\$\s?\d",
        pattern=r"(?i)vat",
    ),
    ComplianceRuleSpec(
        slug="pressure", description="No pressure tactics", kind="judge", severity="info"
    ),
]


# The judge's calls are off by default (the CPU default); these tests turn them on.
JUDGE_ON = AgentSettings(coach_uses_judge=True, compliance_uses_judge=True)


class ScriptedJudgeEngine:
    """Stands in for the judge deployment: answers from a script, or fails as told."""

    model_id = "scripted-judge"
    version = "scripted-judge@test"

    def __init__(self, answers=None, *, delay_s=0.0, fail=None) -> None:
        self.answers = answers or {}
        self.delay_s = delay_s
        self.fail = fail
        self.questions: list[str] = []

    async def complete_json(self, messages, *, schema, max_tokens):
        self.questions.append(messages[0]["content"])
        await asyncio.sleep(self.delay_s)
        if self.fail:
            raise self.fail
        title = schema.get("title", "")
        return self.answers.get(title, "{}")

    async def stream_chat(self, messages, *, max_tokens, temperature, **decoding):
        raise AssertionError("the judge is never streamed")
        yield

    async def check_health(self):
        return None


class ScriptedPersonaEngine:
    """Stands in for the NPC deployment: one scripted reply per attempt."""

    model_id = "scripted-npc"
    version = "scripted-npc@test"

    def __init__(self, replies) -> None:
        self.replies = list(replies)
        self.prompts = []

    async def stream_chat(self, messages, *, max_tokens, temperature, **decoding):
        self.prompts.append(messages)
        text = self.replies.pop(0)
        for word in text.split(" "):
            yield ChatDelta(word + " ")
        yield ChatDelta("", output_tokens=len(text.split()))


def turn_request(text, *, history=(), mode="practice", committee=(), memory=None, rules=RULES):
    return TurnRequest(
        session_id="s",
        tenant_id="t",
        reply_to_seq=len(history) + 1,
        persona=IT,
        committee=list(committee),
        scenario=SCENARIO,
        history=list(history),
        trainee_text=text,
        mode=mode,
        compliance_rules=rules,
        memory=memory,
    )


async def run_turn(turn: TrainingTurn, request: TurnRequest):
    return [event async for event in turn.run(request)]


# --- compliance ------------------------------------------------------------------------


def test_compliance_rules_decide_forbidden_claims_and_missing_disclosures():
    checker = ComplianceChecker(RULES)
    found = checker.check(
        "We guarantee a 30% return and it is $120 per user.",
        party="trainee",
        speaker="trainee",
        reply_to=3,
    )
    assert {f.rule for f in found} == {"no-guaranteed-returns", "pricing-disclosure"}
    assert all(f.reply_to == 3 and f.decided_by == "rule" for f in found)
    assert "guarantee" in found[0].excerpt
    assert not checker.check(
        "It is $120 per user, excl. VAT.", party="trainee", speaker="trainee", reply_to=3
    )
    assert not checker.check("We guarantee returns", party="npc", speaker="it", reply_to=3)


async def test_compliance_judge_rules_are_asked_in_one_question_with_an_enum_of_slugs():
    engine = ScriptedJudgeEngine({"ComplianceVerdict": json.dumps({"broken_rules": ["pressure"]})})
    checker = ComplianceChecker(RULES, Judge(engine, timeout_s=1))
    found = await checker.judge_check("Sign today or lose it", speaker="trainee", reply_to=1)
    assert [(f.rule, f.decided_by) for f in found] == [("pressure", "judge")]
    assert len(engine.questions) == 1


async def test_a_judge_answer_outside_the_schema_is_a_typed_failure():
    engine = ScriptedJudgeEngine({"ComplianceVerdict": json.dumps({"broken_rules": ["nope"]})})
    checker = ComplianceChecker(RULES, Judge(engine, timeout_s=1))
    with pytest.raises(AgentFailed) as failed:
        await checker.judge_check("x", speaker="trainee", reply_to=1)
    assert failed.value.code == "judge_invalid"


async def test_a_slow_judge_times_out_as_a_typed_failure():
    judge = Judge(ScriptedJudgeEngine(delay_s=1), timeout_s=0.05)
    with pytest.raises(AgentFailed) as failed:
        await ComplianceChecker(RULES, judge).judge_check("x", speaker="trainee", reply_to=1)
    assert failed.value.code == "judge_timeout"


# --- coach -----------------------------------------------------------------------------


def test_stage_follows_the_trainees_words_and_holds_when_they_say_nothing_new():
    assert stage_of("What is your budget for this?", "introduction") == "qualification"
    assert stage_of("Could we schedule a trial next week?", "qualification") == "close"
    assert stage_of("Okay.", "needs analysis") == "needs analysis"


def test_objections_are_matched_to_the_personas_own():
    reply = "Honestly your price is higher than the other vendor."
    assert matched_objection(reply, IT) == IT.objections[0]
    assert matched_objection("Sounds fine.", IT) is None


def test_coach_rules_hint_objection_buying_signal_stage_and_memory():
    memory = TraineeMemory(summary="Scored 40/100.", weak_skills=["qualification"])
    first, stage = Coach().rule_hints(turn_request("Hello Priya", memory=memory), "qualification")
    assert [h.kind for h in first] == ["memory", "stage"]
    assert "qualification" in first[0].text
    history = [
        HistoryTurn(speaker="trainee", text="Hello"),
        HistoryTurn(
            speaker="npc",
            persona="it",
            text="Your price is higher than the competitor. Could you send me a proposal?",
        ),
    ]
    hints, stage = Coach().rule_hints(turn_request("I understand.", history=history), stage)
    assert {h.kind for h in hints} == {"objection", "buying_signal", "stage"}
    assert stage == "objection handling"


# --- reviewer and director ---------------------------------------------------------------


def test_reviewer_rules_catch_ai_confessions_labels_leaks_and_empty_replies():
    assert rule_issues("As an AI language model, I cannot") == ["says it is an AI or an assistant"]
    assert rule_issues("Customer: fine\nSalesperson: great")
    assert rule_issues("My instructions say I should stay in character.")
    assert rule_issues("  ") == ["the reply is empty"]
    assert rule_issues("We run about 300 CRM users.") == []
    assert IT.objections[0] in fallback_reply(IT)


def test_reviewer_reads_spelled_out_numbers_and_months_against_the_card():
    card = IT.model_copy(
        update={
            "facts": ["Northwind runs about 300 CRM users", "The fiscal year starts in April"],
            "goals": ["A payback period under 18 months"],
        }
    )
    contradicts = "contradicts the customer's facts"
    assert with_digits("ten thousand users, two hundred and fifty") == "10000 users, 250"
    # Small ones stay words: they count parts ("a pilot in three buildings").
    assert with_digits("twenty-five staff, the one we use") == "twenty-five staff, the one we use"
    assert contradicts in rule_issues("About ten thousand users.", persona=card)
    assert rule_issues("About three hundred users, give or take.", persona=card) == []
    # A goal's figure counts too.
    assert contradicts in rule_issues("6 months, at most.", persona=card)
    assert rule_issues("18 months at the outside.", persona=card) == []
    assert rule_issues("It went down at 2 in the morning.", persona=card) == []
    # A month other than the card's, for what the card dates (asked or said).
    asked = "When does your fiscal year start?"
    assert contradicts in rule_issues("In March.", persona=card, question=asked)
    assert rule_issues("If it is not live by March, we wait until June.", persona=card) == []
    assert rule_issues("In April.", persona=card, question=asked) == []
    assert (
        rule_issues("We met them in March.", persona=card, question="Who else is involved?") == []
    )


def test_director_rules_name_then_topic_then_leave_it_open():
    director = Director()
    assert director.by_rules([IT], "anything").speaker == IT
    assert director.by_rules([IT, CFO], "Marcus, what do you think?").speaker == CFO
    assert director.by_rules([IT, CFO], "A question for the CFO").speaker == CFO
    assert director.by_rules([IT, CFO], "How does the SAP integration work?").speaker == IT
    assert director.by_rules([IT, CFO], "What is the budget?").speaker == CFO
    assert director.by_rules([IT, CFO], "Thanks for having me today.") is None
    history = [HistoryTurn(speaker="npc", persona="it", text="hi")]
    assert waited_longest([IT, CFO], history) == CFO


async def test_director_asks_the_judge_when_open_and_falls_back_when_it_fails():
    engine = ScriptedJudgeEngine({"NextSpeaker": json.dumps({"speaker": "cfo"})})
    choice = await Director(Judge(engine, timeout_s=1)).choose([IT, CFO], "Thanks!", [])
    assert (choice.speaker, choice.decided_by) == (CFO, "judge")
    broken = Director(Judge(ScriptedJudgeEngine(fail=ConnectionError()), timeout_s=1))
    choice = await broken.choose([IT, CFO], "Thanks!", [])
    assert choice.decided_by == "rule" and choice.failure.code == "judge_unavailable"


# --- the turn ----------------------------------------------------------------------------


@pytest.mark.parametrize("review_feedback", [False, True])
async def test_a_rejected_attempt_is_retried_and_bounded(review_feedback):
    persona = ScriptedPersonaEngine(
        ["As an AI I cannot.", "As an AI model, no.", "I am an AI, sorry."]
    )
    settings = AgentSettings(max_review_retries=2, review_feedback=review_feedback)
    turn = TrainingTurn(NPCConversation(persona), None, settings)
    events = await run_turn(turn, turn_request("Hi", mode="assessment"))
    reviews = [e for e in events if getattr(e, "type", None) == "review"]
    assert [(r.attempt, r.action) for r in reviews] == [(0, "retry"), (1, "retry"), (2, "replaced")]
    done = [e for e in events if isinstance(e, NPCChunk) and e.done]
    assert len(done) == 1 and done[0].final_text == fallback_reply(IT)
    assert len(persona.prompts) == 3
    if review_feedback:  # the reviewer's issues come just before the reply
        assert "was wrong" in persona.prompts[1][-2]["content"]
    else:  # a fresh sample of the same prompt
        assert persona.prompts[1] == persona.prompts[0]


async def test_an_accepted_reply_is_final_and_the_judge_starts_after_the_first_token():
    persona = ScriptedPersonaEngine(["We use SAP today."])
    judge = ScriptedJudgeEngine({"NextStep": json.dumps({"next_step": "Ask about budget."})})
    turn = TrainingTurn(NPCConversation(persona), Judge(judge, timeout_s=1), JUDGE_ON)
    events = await run_turn(turn, turn_request("Hello, what do you use?", rules=RULES[:2]))
    kinds = [getattr(e, "type", "npc") for e in events]
    first_token = kinds.index("npc")
    assert "hint" in kinds[:first_token]  # rule hints come before the persona speaks
    assert kinds.count("review") == 1
    next_step = [e for e in events if getattr(e, "kind", None) == "next_step"]
    assert next_step and next_step[0].text == "Ask about budget."


async def test_a_failing_judge_costs_a_typed_error_never_the_reply():
    persona = ScriptedPersonaEngine(["Fine."])
    judge = Judge(ScriptedJudgeEngine(fail=ConnectionError("down")), timeout_s=1)
    events = await run_turn(
        TrainingTurn(NPCConversation(persona), judge, JUDGE_ON), turn_request("Hi")
    )
    errors = [e for e in events if getattr(e, "type", None) == "error"]
    assert {e.agent for e in errors} == {"coach", "compliance"}
    assert all(e.code == "agent_failed" for e in errors)
    assert [e.final_text for e in events if isinstance(e, NPCChunk) and e.done] == ["Fine."]


async def test_conversation_mode_is_the_persona_alone():
    persona = ScriptedPersonaEngine(["We guarantee returns."])
    judge = ScriptedJudgeEngine()
    turn = TrainingTurn(NPCConversation(persona), Judge(judge, timeout_s=1), AgentSettings())
    events = await run_turn(turn, turn_request("We guarantee returns", mode="conversation"))
    assert all(isinstance(e, NPCChunk) for e in events)
    assert judge.questions == []


# --- evaluator ---------------------------------------------------------------------------

RUBRIC = RubricSpec.model_validate(
    {
        "slug": "r",
        "name": "Discovery",
        "pass_score": 60,
        "criteria": [
            {
                "skill": "questioning",
                "name": "Asks questions",
                "weight": 2,
                "checks": [{"question": "Two questions?", "kind": "questions", "min_count": 2}],
            },
            {
                "skill": "qualification",
                "name": "Qualifies budget",
                "checks": [
                    {"question": "Budget?", "kind": "pattern", "pattern": "(?i)budget"},
                    {"question": "Empathy?", "kind": "judge"},
                ],
            },
        ],
    }
)


async def test_evaluator_scores_weighted_checks_with_evidence_and_remembers_weak_skills():
    engine = ScriptedJudgeEngine(
        {"JudgedCheck": json.dumps({"answer": "yes", "evidence_turn": 3, "quote": "I see"})}
    )
    transcript = [
        TranscriptTurn(seq=1, speaker="trainee", text="What do you use today? And why?"),
        TranscriptTurn(seq=2, speaker="it", text="An old CRM."),
        TranscriptTurn(seq=3, speaker="trainee", text="I see, that sounds painful."),
    ]
    request = EvaluationRequest(
        session_id="s", scenario=SCENARIO, personas=[IT], transcript=transcript, rubric=RUBRIC
    )
    report, failures = await Evaluator(Judge(engine, timeout_s=1)).evaluate(request)
    assert failures == []
    questioning, qualification = report.criteria
    assert questioning.score == 100 and questioning.checks[0].evidence[0].seq == 1
    assert qualification.score == 50  # budget: no; empathy: yes (judge), evidence turn 3
    assert qualification.checks[1].evidence[0].quote == "I see"
    assert report.score == pytest.approx((100 * 2 + 50) / 3, abs=0.1)
    assert report.passed
    assert memory_of(report).weak_skills == []
    failing, failures = await Evaluator(
        Judge(ScriptedJudgeEngine(fail=TimeoutError()), timeout_s=1)
    ).evaluate(request)
    assert failing.criteria[1].checks[1].decided_by == "judge_failed"
    assert [f.agent for f in failures] == ["evaluator"]
