"""The seller's knowledge still grounds whoever sells, now that it is asked only for turns
that need it and cut to the sentences that match them (issue 20's cheaper turn).

On the demo discovery call (knowledge base ``product``: the CloudCRM pricing FAQ and product
sheet), fixed price and product questions bring the coach's ``knowledge`` hint with the right
document cited, a wrong figure brings the claims check's finding with the chunk that
contradicts it, and a turn of small talk asks the knowledge base nothing (its trace has no
``retrieve.seller_knowledge`` span).
"""

from __future__ import annotations

import pytest

from tests.integration.conftest import complete_turn_trace
from tests.integration.wsclient import connect, drain, new_session, send_turn

pytestmark = pytest.mark.integration

PRICING_FAQ = "CloudCRM pricing and contract FAQ"
PRODUCT_SHEET = "CloudCRM Enterprise — product sheet"

# (the trainee's question, the document the hint must cite, facts one of which its sentence
# must hold)
QUESTIONS = [
    ("What does the fixed-price migration package cost?", PRICING_FAQ, ("48,000",)),
    ("Is there a free sandbox or trial we could use first?", PRICING_FAQ, ("sandbox",)),
    ("Does CloudCRM integrate with SAP and Outlook?", PRODUCT_SHEET, ("SAP", "Outlook")),
    ("How much is it per user?", PRICING_FAQ, ("65 USD", "58 USD", "40 USD")),
    ("How long does a migration take?", PRODUCT_SHEET, ("10 to 14 weeks",)),
]


def _of(events: list[dict], kind: str) -> list[dict]:
    return [e for e in events if e["type"] == kind]


async def test_price_and_product_questions_bring_the_cited_knowledge_hint(stack):
    session_id = await new_session(stack.base_url, mode="practice")
    missed = []
    async with connect(stack.base_url, session_id) as ws:
        for question, title, facts in QUESTIONS:
            events = await send_turn(ws, question)
            events += await drain(ws, quiet_s=5)
            hints = [h for h in _of(events, "hint") if h["kind"] == "knowledge"]
            cited = [(c["title"], h["text"]) for h in hints for c in h["citations"]]
            if not any(t == title and any(f in text for f in facts) for t, text in cited):
                missed.append((question, cited))
    assert missed == []


async def test_a_wrong_figure_is_caught_against_the_cited_chunk(stack):
    session_id = await new_session(stack.base_url, mode="practice")
    async with connect(stack.base_url, session_id) as ws:
        events = await send_turn(ws, "Our migration package is a fixed 30,000 USD, all included.")
        events += await drain(ws, quiet_s=5)
    findings = [f for f in _of(events, "compliance") if f["rule"] == "claims-match-knowledge"]
    assert findings, [e["type"] for e in events]
    assert findings[0]["source"]["title"] == PRICING_FAQ
    assert "48,000" in findings[0]["description"]


async def test_small_talk_asks_the_knowledge_base_nothing(stack):
    session_id = await new_session(stack.base_url, mode="practice")
    async with connect(stack.base_url, session_id) as ws:
        small_talk = await send_turn(ws, "Thanks for making the time today, Priya.")
        priced = await send_turn(ws, "What does the migration package cost?")
        await drain(ws, quiet_s=5)
    (first,) = _of(small_talk, "ack")
    (second,) = _of(priced, "ack")
    trace_dir = stack.settings.trace_dir
    names = {s.name for s in complete_turn_trace(trace_dir, session_id, first["seq"]).spans()}
    assert "retrieve.seller_knowledge" not in names and "model.stream_turn" in names
    priced_names = {
        s.name for s in complete_turn_trace(trace_dir, session_id, second["seq"]).spans()
    }
    assert "retrieve.seller_knowledge" in priced_names
