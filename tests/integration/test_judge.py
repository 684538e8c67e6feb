"""The judge on the real engine: every agent's answer type comes back parsed (guided JSON),
and a judge that fails costs a typed error, never the persona's reply.

These drive the agents in the test process through a Serve handle to the running LLM
deployment (the same engine the stack's orchestrator uses).
"""

from __future__ import annotations

import pytest

from serve_apps.contracts.turn import NPCChunk, PersonaCard, ScenarioCard, TurnRequest
from serve_apps.orchestrator.agents.coach import NextStep
from serve_apps.orchestrator.agents.director import Director
from serve_apps.orchestrator.agents.evaluator import JudgedCheck
from serve_apps.orchestrator.agents.judge import AgentFailed, Judge
from serve_apps.orchestrator.agents.npc import NPCConversation
from serve_apps.orchestrator.agents.reviewer import JudgedReply
from serve_apps.orchestrator.chat_engine import ServeLLMChatEngine
from serve_apps.orchestrator.training_turn import AgentSettings, TrainingTurn
from tests.integration.conftest import active_model_engine

pytestmark = pytest.mark.integration

IT = PersonaCard(
    slug="it", name="Priya", role="IT Director", company="Northwind", personality="skeptical"
)
CFO = PersonaCard(slug="cfo", name="Marcus", role="CFO", company="Northwind", personality="careful")


@pytest.fixture(scope="module")
def engine(stack) -> ServeLLMChatEngine:
    # The judge's version: an application of its own (docs/model-lifecycle.md).
    return active_model_engine(stack.base_url, "judge")


@pytest.mark.parametrize("answer_type", [NextStep, JudgedCheck, JudgedReply])
async def test_every_answer_type_parses_from_the_real_engine(engine, answer_type):
    answer = await Judge(engine, timeout_s=60).ask(
        "test",
        answer_type,
        instructions="You assess a salesperson in a practice call. Answer as asked.",
        material="[1] trainee: What is your budget?\n[2] it: About 180,000 USD.",
        max_tokens=128,
    )
    assert isinstance(answer, answer_type)


async def test_the_directors_pick_is_one_of_the_personas(engine):
    choice = await Director(Judge(engine, timeout_s=60)).choose(
        [IT, CFO], "Thanks both of you for coming today.", []
    )
    assert choice.decided_by == "judge" and choice.speaker in (IT, CFO)


async def test_an_answer_cut_short_is_a_typed_invalid_answer(engine):
    with pytest.raises(AgentFailed) as failed:
        await Judge(engine, timeout_s=60).ask(
            "test", NextStep, instructions="Suggest a next step.", material="Hi", max_tokens=2
        )
    assert failed.value.code == "judge_invalid"


async def test_a_judge_that_times_out_costs_an_error_event_not_the_reply(engine):
    judge = Judge(engine, timeout_s=0.001)  # no real answer comes this fast
    turn = TrainingTurn(NPCConversation(engine), judge, AgentSettings(coach_uses_judge=True))
    request = TurnRequest(
        session_id="s",
        tenant_id="t",
        reply_to_seq=1,
        persona=IT,
        scenario=ScenarioCard(
            title="t",
            product="CloudCRM",
            stage="qualification",
            difficulty="easy",
            description="First call.",
        ),
        trainee_text="Hello, what do you use today?",
        max_tokens=24,
        mode="practice",
    )
    events = [event async for event in turn.run(request)]
    errors = [e for e in events if getattr(e, "type", None) == "error"]
    assert [(e.agent, e.code) for e in errors] == [("coach", "agent_failed")]
    (done,) = [e for e in events if isinstance(e, NPCChunk) and e.done]
    assert done.final_text and done.output_tokens


async def test_the_engine_counts_a_reply_with_its_own_tokenizer(engine):
    # The fallback when a stream carries no usage: the same count the engine reports for the
    # text it generated.
    deltas = [
        d
        async for d in engine.stream_chat(
            [{"role": "user", "content": "Say hello to the sales team."}],
            max_tokens=12,
            temperature=0,
        )
    ]
    text = "".join(d.text for d in deltas)
    (reported,) = [d.output_tokens for d in deltas if d.output_tokens is not None]
    assert text and await engine.count_tokens(text) == reported
