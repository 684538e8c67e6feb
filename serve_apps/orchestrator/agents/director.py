"""The director of a buying committee: who answers the trainee's turn.

Rules first: the only persona; the one the trainee names (name or role); the one whose
topics the turn is about. When the turn is open, the judge model picks; when the judge
cannot, the persona who has waited longest speaks.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from pydantic import Field, create_model

from serve_apps.contracts.turn import HistoryTurn, PersonaCard
from serve_apps.orchestrator.agents.judge import AgentFailed, Judge

_WORDS = re.compile(r"[a-z0-9]+")
GENERIC_ROLE_WORDS = {"of", "the", "and", "head", "senior", "chief", "officer", "manager", "vp"}


@dataclass(frozen=True)
class TurnChoice:
    speaker: PersonaCard
    reason: str
    decided_by: Literal["rule", "judge"]
    failure: AgentFailed | None = None


def _words(text: str) -> list[str]:
    return _WORDS.findall(text.lower())


def _initials(role: str) -> str:
    return "".join(w[0] for w in _words(role) if w not in {"of", "the", "and"})


def _named(persona: PersonaCard, words: set[str]) -> bool:
    name_words = {w for w in _words(persona.name) if len(w) > 2}
    role_words = {w for w in _words(persona.role) if w not in GENERIC_ROLE_WORDS and len(w) > 1}
    initials = _initials(persona.role)
    return (
        bool(name_words & words)
        or (role_words and role_words <= words)
        or (len(initials) >= 2 and initials in words)
    )


def waited_longest(personas: list[PersonaCard], history: list[HistoryTurn]) -> PersonaCard:
    last_spoke = {p.slug: -1 for p in personas}
    for index, turn in enumerate(history):
        if turn.persona in last_spoke:
            last_spoke[turn.persona] = index
    return min(personas, key=lambda p: last_spoke[p.slug])


class Director:
    def __init__(self, judge: Judge | None = None) -> None:
        self._judge = judge

    def by_rules(self, personas: list[PersonaCard], trainee_text: str) -> TurnChoice | None:
        if len(personas) == 1:
            return TurnChoice(personas[0], "the only persona", "rule")
        words = set(_words(trainee_text))
        named = [p for p in personas if _named(p, words)]
        if len(named) == 1:
            return TurnChoice(named[0], "named by the trainee", "rule")
        hits = {p.slug: len(words & {t.lower() for t in p.topics}) for p in personas}
        best = max(hits.values())
        leaders = [p for p in personas if hits[p.slug] == best]
        if best > 0 and len(leaders) == 1:
            return TurnChoice(leaders[0], "the turn is about their topics", "rule")
        return None

    async def choose(
        self, personas: list[PersonaCard], trainee_text: str, history: list[HistoryTurn]
    ) -> TurnChoice:
        decided = self.by_rules(personas, trainee_text)
        if decided is not None:
            return decided
        fallback = waited_longest(personas, history)
        if self._judge is None:
            return TurnChoice(fallback, "waited longest", "rule")
        slugs = tuple(p.slug for p in personas)
        pick_type = create_model("NextSpeaker", speaker=(Literal[slugs], Field(...)))
        listing = "\n".join(f"- {p.slug}: {p.name}, {p.role}" for p in personas)
        try:
            pick = await self._judge.ask(
                "director",
                pick_type,
                instructions=(
                    "Several customers sit in a sales meeting. Pick who should answer the "
                    f"salesperson's last words.\nCustomers:\n{listing}"
                ),
                material=f"The salesperson said: {trainee_text}",
                max_tokens=24,
            )
        except AgentFailed as failure:
            return TurnChoice(fallback, "waited longest (the judge failed)", "rule", failure)
        speaker = next(p for p in personas if p.slug == pick.speaker)  # type: ignore[attr-defined]
        return TurnChoice(speaker, "picked by the judge", "judge")
