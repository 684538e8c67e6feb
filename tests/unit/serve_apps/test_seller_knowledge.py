"""The seller's knowledge is asked only for turns that need it, after the persona's first
token, and its failure costs only the hint (fakes of the knowledge handle, named as such)."""

from __future__ import annotations

import asyncio

import pytest

from serve_apps.contracts.knowledge import RetrievedChunk
from serve_apps.contracts.turn import PersonaCard, ScenarioCard, TurnRequest
from serve_apps.orchestrator.seller_knowledge import SellerKnowledge, needs_knowledge

CHUNK = RetrievedChunk(chunk_id="c", document_id="d", title="FAQ", score=1.0, text="48,000 USD.")


@pytest.mark.parametrize(
    "line",
    [
        "What does the Professional edition cost per seat?",
        "We could do 20% off if you sign this quarter.",
        "Does it integrate with Outlook?",
        "How long does the data migration take?",
        "Is there a sandbox we can try?",
        "How much is it per user?",
    ],
)
def test_price_and_product_turns_need_knowledge(line: str):
    assert needs_knowledge(line)


@pytest.mark.parametrize(
    "line",
    [
        "Hi Priya, thanks for making the time today.",
        "Who else on your side would be involved in choosing?",
        "What made you look at new tools this quarter?",
        "That makes sense. How is your team feeling about it?",
    ],
)
def test_small_talk_and_discovery_do_not(line: str):
    assert not needs_knowledge(line)


class FakeKnowledgeHandle:
    """Stands in for the KnowledgeService handle: records what is asked."""

    def __init__(self, fail: bool = False, delay_s: float = 0) -> None:
        self.asked: list[dict] = []
        self.retrieve = self
        self._fail = fail
        self._delay_s = delay_s

    def remote(self, **kwargs):
        self.asked.append(kwargs)
        return self._answer()

    async def _answer(self) -> list[RetrievedChunk]:
        await asyncio.sleep(self._delay_s)
        if self._fail:
            raise ConnectionError("knowledge service down")
        return [CHUNK]


def _request(text: str, *, knowledge_base: str | None = "product", grounding=None):
    return TurnRequest(
        tenant_id="t",
        session_id="s",
        reply_to_seq=1,
        persona=PersonaCard(
            slug="p", name="Priya Shah", role="IT director", company="Northwind", personality="calm"
        ),
        scenario=ScenarioCard(
            title="Discovery",
            product="CRM",
            stage="discovery",
            difficulty="easy",
            description="A call.",
        ),
        trainee_text=text,
        knowledge_base=knowledge_base,
        grounding=grounding,
    )


def _seller(handle, timeout_s: float = 1.0) -> SellerKnowledge:
    return SellerKnowledge(handle, top_k=3, token_budget=100, timeout_s=timeout_s)


async def test_a_price_question_is_retrieved_with_its_budget():
    handle = FakeKnowledgeHandle()
    chunks = await _seller(handle).for_turn(_request("What does migration cost?"))
    assert chunks == [CHUNK]
    assert handle.asked == [
        {
            "tenant_id": "t",
            "knowledge_base": "product",
            "query": "What does migration cost?",
            "top_k": 3,
            "token_budget": 100,
        }
    ]


async def test_small_talk_costs_no_retrieval():
    handle = FakeKnowledgeHandle()
    assert await _seller(handle).for_turn(_request("Thanks for your time, Priya.")) == []
    assert handle.asked == []


async def test_no_knowledge_base_no_retrieval_and_given_chunks_are_used_as_given():
    handle = FakeKnowledgeHandle()
    assert await _seller(handle).for_turn(_request("Price?", knowledge_base=None)) == []
    given = await _seller(handle).for_turn(_request("Hello", grounding=[CHUNK]))
    assert given == [CHUNK] and handle.asked == []


@pytest.mark.parametrize("handle", [FakeKnowledgeHandle(fail=True), FakeKnowledgeHandle(delay_s=1)])
async def test_a_failing_or_late_service_leaves_the_turn_without_chunks(handle):
    assert await _seller(handle, timeout_s=0.05).for_turn(_request("Price per seat?")) == []
