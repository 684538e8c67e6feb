"""The NPC persona's chat prompt and decoding: a customer a small model can keep playing.

Measured on the bundled SmolLM2-135M (``salesboost bench quality``, docs/quality.md), what
keeps it a customer is a prompt it can hold on to:

- a short first-person card ("I am Priya, IT Director at Northwind. I am the customer..."),
  not a page of second-person instructions;
- a few in-character example exchanges made from the card itself (a greeting, a fact, an
  objection), as earlier turns of the conversation;
- every line of the conversation with its speaker's name (``Salesperson: ...``,
  ``Priya: ...``), and the reply started with the persona's name, so the model continues
  *her* line; a new speaker's name is a stop sequence;
- no seller documents: given the vendor's product sheet as its own reading, the model
  continued as the vendor. The seller's knowledge base grounds the coach and the check of
  the trainee's claims; the persona reads only papers of its own company (a buyer-side
  knowledge base), framed as such, and, where the scenario says it has read the vendor's
  public website, that material framed as what the website claims, never as its own offer.

Replies are kept to spoken length by the token budget, and :func:`trim_reply` cuts what
the budget cut mid-sentence back to the last whole sentence.
"""

from __future__ import annotations

from dataclasses import dataclass

from retrieval.excerpts import SENTENCE_END
from serve_apps.contracts.knowledge import RetrievedChunk
from serve_apps.contracts.turn import (
    HistoryTurn,
    PersonaCard,
    PersonaPapers,
    ScenarioCard,
    TurnRequest,
)

# A small model forgets its card in a long context; keep the recent turns that fit.
MAX_HISTORY_CHARS = 2400
# The persona's own papers, when a scenario gives it some: every character is prefilled
# before the first token of every reply.
MAX_DOCUMENT_CHARS = 600
MAX_CHARS_PER_DOCUMENT = 300
SALESPERSON = "Salesperson"


@dataclass(frozen=True)
class PersonaDecoding:
    """How the persona's reply is sampled (the engine's request fields of the same names)."""

    stop: tuple[str, ...]
    repetition_penalty: float = 1.15
    # The reply continues the assistant line that starts with the persona's name.
    continue_final_message: bool = True


def first_name(persona: PersonaCard) -> str:
    return persona.name.split()[0] if persona.name.split() else persona.name


def _sentence(text: str) -> str:
    text = " ".join(text.split()).rstrip()
    return text if text[-1:] in ".!?" else text + "."


def _first_person(item: str) -> str:
    """A card item as the persona would say it ("I ..." stays, anything else as it is)."""
    return _sentence(item[:1].upper() + item[1:])


def persona_card(
    persona: PersonaCard, scenario: ScenarioCard, others: list[PersonaCard] | None = None
) -> str:
    """The system prompt: the persona's card in the first person, short."""
    lines = [
        f"I am {persona.name}, {persona.role} at {persona.company}. I am the customer: a "
        f"salesperson is trying to sell me {scenario.product.rstrip('.')}. I do not sell "
        "anything, I decide whether to buy.",
        f"Me: {_sentence(persona.personality)}",
    ]
    if persona.facts:
        lines.append("True about us: " + " ".join(_sentence(f) for f in persona.facts))
    if persona.goals:
        lines.append("What I want: " + " ".join(_sentence(g) for g in persona.goals))
    if persona.objections:
        lines.append("What worries me: " + " ".join(_sentence(o) for o in persona.objections))
    if persona.hidden:
        lines.append(
            "I say this only when asked a sharp question about it: "
            + " ".join(_sentence(h) for h in persona.hidden)
        )
    if others:
        lines.append(
            "Also in the meeting, from my company: "
            + "; ".join(f"{p.name} ({p.role})" for p in others)
            + ". I speak only for myself."
        )
    lines.append(
        f"I answer the salesperson's question in one to three short spoken sentences, as "
        f"{first_name(persona)}, in my own words."
    )
    return "\n".join(lines)


def example_exchanges(persona: PersonaCard) -> list[tuple[str, str]]:
    """A few in-character exchanges from the card: (salesperson's line, persona's reply)."""
    examples = [
        (
            "Hi, thanks for making the time today. How are you?",
            "Fine, thanks. I have about twenty minutes, so let's get to the point.",
        )
    ]
    if persona.facts:
        examples.append(
            ("Can you tell me a little about your situation?", _first_person(persona.facts[0]))
        )
    if persona.objections:
        examples.append(
            (
                "Our product is the best on the market, you will love it.",
                f"Everyone says that. {_first_person(persona.objections[0])}",
            )
        )
    return examples


def _excerpts(chunks: list[RetrievedChunk], budget_chars: int) -> tuple[list[str], int]:
    lines: list[str] = []
    used = 0
    for chunk in chunks:
        room = min(MAX_CHARS_PER_DOCUMENT, budget_chars - used)
        text = " ".join(chunk.text.split())[: max(0, room)]
        if not text:
            break
        used += len(text)
        lines.append(f"- {chunk.title}: {text}")
    return lines, used


def documents_prompt(papers: PersonaPapers) -> str:
    """What the persona has read, best first, within one budget: its own company's papers,
    then the vendor's website as the vendor's claims (a small model takes a document it
    reads as its own voice, so the website is never put as something the persona offers)."""
    own, used = _excerpts(papers.own, MAX_DOCUMENT_CHARS)
    website, _ = _excerpts(papers.vendor_website, MAX_DOCUMENT_CHARS - used)
    parts = []
    if own:
        parts.append("Papers from my own company that I have in front of me:\n" + "\n".join(own))
    if website:
        parts.append(
            "What the vendor's website claims (their words, not mine; I may doubt them):\n"
            + "\n".join(website)
        )
    return "\n".join(parts)


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


def persona_decoding(speaker: PersonaCard, others: list[PersonaCard]) -> PersonaDecoding:
    """Stop where the model starts another speaker's line (a small model writes the
    salesperson's next line, or a script, when it is not stopped)."""
    names = [SALESPERSON, "User", "Customer", first_name(speaker)] + [first_name(p) for p in others]
    stops = [f"\n{name}:" for name in names] + [f"{SALESPERSON}:", "\n\n"]
    return PersonaDecoding(stop=tuple(dict.fromkeys(stops)))


def npc_messages(
    request: TurnRequest,
    *,
    speaker: PersonaCard | None = None,
    feedback: list[dict[str, str]] | None = None,
) -> list[dict[str, str]]:
    """OpenAI-style chat messages: the salesperson's lines are ``user`` turns, the persona's
    ``assistant`` turns, each with its speaker's name; the last message is the persona's
    line begun with its name, for the engine to continue (``continue_final_message``).

    ``request.persona_papers`` are what the persona has read (never the seller's knowledge
    base), just before the new turn. In a buying committee the speaking persona's own lines
    are ``assistant`` turns and its colleagues' lines are quoted, with their names, in the
    ``user`` turns. A reviewer's ``feedback`` on a rejected attempt comes just before the
    reply.

    Everything before the new turn (card, examples, history) stays the same prompt prefix
    from turn to turn, which vLLM's prefix cache does not prefill again.
    """
    speaker = speaker or request.persona
    name = first_name(speaker)
    others = [p for p in request.personas if p.slug != speaker.slug]
    names = {p.slug: first_name(p) for p in others}
    messages = [{"role": "system", "content": persona_card(speaker, request.scenario, others)}]
    for line, reply in example_exchanges(speaker):
        messages.append({"role": "user", "content": f"{SALESPERSON}: {line}"})
        messages.append({"role": "assistant", "content": f"{name}: {reply}"})
    pending: list[str] = []  # colleagues' lines go with the salesperson's next turn
    for turn in recent_history(request.history):
        if turn.speaker == "trainee":
            pending.append(f"{SALESPERSON}: {turn.text}")
            messages.append({"role": "user", "content": "\n".join(pending)})
            pending = []
        elif turn.persona in names:
            pending.append(f"{names[turn.persona]}: {turn.text}")
        else:
            messages.append({"role": "assistant", "content": f"{name}: {turn.text}"})
    if papers := documents_prompt(request.persona_papers):
        messages.append({"role": "system", "content": papers})
    pending.append(f"{SALESPERSON}: {request.trainee_text}")
    messages.append({"role": "user", "content": "\n".join(pending)})
    messages.extend(feedback or [])
    messages.append({"role": "assistant", "content": f"{name}:"})
    return messages


# --- what comes back ----------------------------------------------------------------------


def ends_a_sentence(text: str) -> bool:
    text = text.rstrip()
    ends = list(SENTENCE_END.finditer(text))
    return bool(ends) and ends[-1].end() == len(text)


def clean_reply(text: str, speaker: PersonaCard) -> str:
    """The reply as the trainee reads it: without a repeated name prefix or stray labels."""
    text = text.strip()
    for prefix in (f"{speaker.name}:", f"{first_name(speaker)}:"):
        if text.startswith(prefix):
            text = text[len(prefix) :].strip()
    return text.strip().strip('"').strip()


def trim_reply(text: str) -> tuple[str, bool]:
    """The reply up to its last whole sentence, and whether anything was cut.

    A reply the token budget stopped mid-sentence ends with its last full sentence; one
    without any full sentence is returned as it is (the reviewer rejects it as cut off)."""
    stripped = text.rstrip()
    ends = list(SENTENCE_END.finditer(stripped))
    if not ends or ends[-1].end() == len(stripped):
        return stripped, False
    return stripped[: ends[-1].end()].rstrip(), True
