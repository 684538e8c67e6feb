"""Cache invalidation on the real stack: editing a persona through the API changes the next
turn's prompt (no stale cache), in every replica.

What the prompt was built from is read back from the turn's trace: each persona attempt's
span names the card its prompt was built from (``persona.card``, a hash of the card), and
the turn's ``content.read`` span says how the content cache answered. The generation a write
bumps is in Redis, which every gateway replica reads; the conversation that runs across the
edit and one opened after it both get the edited card.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx
import pytest

from serve_apps.contracts.turn import PersonaCard
from serve_apps.telemetry.span_files import SpanRecord, TraceTree
from tests.integration.conftest import complete_turn_trace
from tests.integration.wsclient import connect, new_session, send_turn

pytestmark = pytest.mark.integration

DEMO_TRAINEE = {"X-Dev-Tenant": "demo", "X-Dev-User": "trainee@demo.salesboost.local"}
WS_QUERY = f"?dev_tenant=demo&dev_user={DEMO_TRAINEE['X-Dev-User']}"
# The discovery call's one persona: the lead, who speaks every turn.
PERSONA = "skeptical-it-director"
SCENARIO = "crm-discovery-call"


def _named(tree: TraceTree, name: str) -> list[SpanRecord]:
    return [s for s in tree.spans() if s.name == name]


def _prompt_cards(trace_dir: Path, session_id: str, events: list[dict]) -> set[str]:
    """The cards the turn's persona prompts were built from (one per attempt)."""
    (ack,) = [e for e in events if e["type"] == "ack"]
    assert events[-1]["type"] == "reply_done", events[-1]
    tree = complete_turn_trace(trace_dir, session_id, ack["seq"])
    attempts = _named(tree, "persona.attempt")
    assert attempts, [s.name for s in tree.spans()]
    return {a.attributes["persona.card"] for a in attempts}


def _cache_answer(trace_dir: Path, session_id: str, events: list[dict]) -> str:
    (ack,) = [e for e in events if e["type"] == "ack"]
    (read,) = _named(complete_turn_trace(trace_dir, session_id, ack["seq"]), "content.read")
    return read.attributes["content_cache"]


def _card(spec: dict) -> str:
    return PersonaCard.model_validate(spec).fingerprint()


async def test_editing_a_persona_through_the_api_changes_the_next_turns_prompt(stack, demo_admin):
    trace_dir = stack.settings.trace_dir
    async with httpx.AsyncClient(base_url=stack.base_url, headers=demo_admin, timeout=30) as admin:
        original = (await admin.get(f"/v1/personas/{PERSONA}")).json()
        fact = f"We renewed our CRM support contract until {uuid.uuid4().hex[:6]}."
        edit = {**original, "facts": [*original["facts"][:19], fact]}
        # Assessment mode: the persona's attempts are spans of their own (not in a
        # persona-only conversation).
        session_id = await new_session(
            stack.base_url, DEMO_TRAINEE, scenario=SCENARIO, mode="assessment"
        )
        try:
            async with connect(stack.base_url, session_id, WS_QUERY) as ws:
                before = await send_turn(ws, "Hello, what CRM do you use today?")
                updated = await admin.put(f"/v1/personas/{PERSONA}", json=edit)
                assert updated.status_code == 200, updated.text
                # What was stored (the API's own cleaning included) is what the prompt uses.
                edited = (await admin.get(f"/v1/personas/{PERSONA}")).json()
                assert fact in edited["facts"]
                after = await send_turn(ws, "When does your current contract end?")
            # A conversation opened after the edit, on whichever replica takes it.
            later_id = await new_session(
                stack.base_url, DEMO_TRAINEE, scenario=SCENARIO, mode="assessment"
            )
            async with connect(stack.base_url, later_id, WS_QUERY) as ws:
                later = await send_turn(ws, "Hello, who else is involved in choosing a CRM?")
        finally:
            restored = await admin.put(f"/v1/personas/{PERSONA}", json=original)
            assert restored.status_code == 200, restored.text

    assert _card(original) != _card(edited)
    assert _prompt_cards(trace_dir, session_id, before) == {_card(original)}
    assert _prompt_cards(trace_dir, session_id, after) == {_card(edited)}
    assert _prompt_cards(trace_dir, later_id, later) == {_card(edited)}
    # The first turn read what the socket's opening cached; the write made the next read a
    # miss (read from the database), whose entry the later conversation then read.
    assert _cache_answer(trace_dir, session_id, before) == "hit"
    assert _cache_answer(trace_dir, session_id, after) == "miss"
    assert _cache_answer(trace_dir, later_id, later) == "hit"
