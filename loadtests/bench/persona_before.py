"""The persona's prompt as it was before issue 22, kept to measure against (``salesboost bench
quality --persona before``): a second-person card, the seller's knowledge excerpts last
before the new turn, a new assistant message, 160 tokens, no stop sequences, no trimming."""

from __future__ import annotations

from serve_apps.contracts.knowledge import RetrievedChunk
from serve_apps.contracts.turn import (
    HistoryTurn,
    PersonaCard,
    ScenarioCard,
    TurnRequest,
)

# A small model forgets its instructions in a long context; keep the recent turns that fit.
MAX_TOKENS = 160
MAX_HISTORY_CHARS = 4000
# The same for reference material from the knowledge base; every character is prefilled
# before the first token of every reply (1,500 characters took TTFT from 0.2 s to 0.9 s here).
MAX_GROUNDING_CHARS = 900
MAX_CHARS_PER_CHUNK = 400


def _bullets(items: list[str]) -> str:
    return "\n".join(f"- {item}" for item in items) if items else "- (none)"


def persona_system_prompt(
    persona: PersonaCard, scenario: ScenarioCard, others: list[PersonaCard] | None = None
) -> str:
    colleagues = (
        "Also in the meeting, from your company: "
        + "; ".join(f"{p.name} ({p.role})" for p in others)
        + ". Speak only for yourself.\n"
        if others
        else ""
    )
    return (
        f"You are {persona.name}, {persona.role} at {persona.company}. "
        f"A salesperson is talking to you about: {scenario.product}.\n"
        f"Situation: {scenario.description} (stage: {scenario.stage}, "
        f"difficulty: {scenario.difficulty}).\n"
        f"Your personality: {persona.personality}\n"
        f"Your goals:\n{_bullets(persona.goals)}\n"
        f"Objections you raise when relevant:\n{_bullets(persona.objections)}\n"
        f"Facts you know:\n{_bullets(persona.facts)}\n"
        f"Keep to yourself unless the salesperson earns it with good questions:\n"
        f"{_bullets(persona.hidden)}\n"
        f"{colleagues}"
        "Stay in character as the customer. Never say you are an AI or an assistant. "
        "Answer in one to three short sentences, as spoken dialogue."
    )


def grounding_prompt(chunks: list[RetrievedChunk], budget_chars: int = MAX_GROUNDING_CHARS) -> str:
    """The knowledge-base excerpts the persona may draw on, best first, within a budget."""
    lines: list[str] = []
    used = 0
    for number, chunk in enumerate(chunks, start=1):
        room = min(MAX_CHARS_PER_CHUNK, budget_chars - used)
        text = " ".join(chunk.text.split())[: max(0, room)]
        if not text:
            break
        used += len(text)
        lines.append(f"[{number}] {chunk.title}: {text}")
    return (
        "What you have read about the product (use it when it is relevant; do not quote it "
        "word for word, and do not claim more than it says):\n" + "\n".join(lines)
    )


def recent_history(
    history: list[HistoryTurn], budget_chars: int = MAX_HISTORY_CHARS
) -> list[HistoryTurn]:
    kept: list[HistoryTurn] = []
    used = 0
    for turn in reversed(history):
        used += len(turn.text)
        if used > budget_chars:
            break
        kept.append(turn)
    kept.reverse()
    return kept


def npc_messages(
    request: TurnRequest,
    grounding: list[RetrievedChunk] | None = None,
    *,
    speaker: PersonaCard | None = None,
    feedback: list[dict[str, str]] | None = None,
) -> list[dict[str, str]]:
    """OpenAI-style chat messages: the trainee is the ``user``, the persona the ``assistant``.

    The knowledge excerpts go just before the new trainee turn, not into the opening system
    prompt: they change every turn, and everything before them (persona and history) then
    stays the same prompt prefix from turn to turn, which vLLM's prefix cache does not
    prefill again. A small model also heeds text near the end of its context best.

    In a buying committee the speaking persona's own lines are ``assistant`` turns and its
    colleagues' lines are quoted, attributed, in the ``user`` turns. A reviewer's
    ``feedback`` on a rejected attempt comes last.
    """
    speaker = speaker or request.persona
    others = [p for p in request.personas if p.slug != speaker.slug]
    names = {p.slug: f"{p.name} ({p.role})" for p in others}
    messages = [
        {"role": "system", "content": persona_system_prompt(speaker, request.scenario, others)}
    ]
    for turn in recent_history(request.history):
        if turn.speaker == "trainee":
            messages.append({"role": "user", "content": turn.text})
        elif turn.persona in names:
            messages.append({"role": "user", "content": f"[{names[turn.persona]}]: {turn.text}"})
        else:
            messages.append({"role": "assistant", "content": turn.text})
    if grounding:
        messages.append({"role": "system", "content": grounding_prompt(grounding)})
    messages.append({"role": "user", "content": request.trainee_text})
    messages.extend(feedback or [])
    return messages
