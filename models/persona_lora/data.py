"""The persona adapter's training examples: what the orchestrator gives the persona, and its reply.

A row holds the *structured* turn (the persona and scenario cards, the earlier turns, the
salesperson's new line, the persona's papers) and the reply the persona should give. The
prompt is never stored: it is built by the production builder, ``npc_messages``, and
rendered with the model's chat template the way the engine renders it
(``continue_final_message``: the reply continues the assistant line "<Name>:"), so the
training data and what the served model reads cannot drift apart.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from serve_apps.contracts.turn import (
    HistoryTurn,
    PersonaCard,
    PersonaPapers,
    ScenarioCard,
    TurnRequest,
)
from serve_apps.orchestrator.npc_prompt import npc_messages

PACKAGE_DIR = Path(__file__).resolve().parent
DATA_DIR = PACKAGE_DIR / "data"
TRAIN_FILE = DATA_DIR / "train.jsonl"
VALID_FILE = DATA_DIR / "valid.jsonl"
TENANT = "persona-lora"

Split = Literal["train", "valid"]


class PersonaTurn(BaseModel):
    """The fields of a ``TurnRequest`` the persona's prompt is built from."""

    model_config = ConfigDict(extra="forbid")

    persona: PersonaCard = Field(..., description="The lead persona (the first of the scenario).")
    committee: list[PersonaCard] = Field(default_factory=list)
    scenario: ScenarioCard
    history: list[HistoryTurn] = Field(default_factory=list)
    trainee_text: str = Field(..., min_length=1)
    persona_papers: PersonaPapers = Field(default_factory=PersonaPapers)


class PersonaExample(BaseModel):
    """One persona reply to learn: the turn it answers and the reply itself."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(..., min_length=1)
    conversation: str = Field(..., min_length=1)
    split: Split
    speaker: str = Field(..., description="The slug of the persona who replies.")
    turn: PersonaTurn
    reply: str = Field(..., min_length=1)

    def speaker_card(self) -> PersonaCard:
        for card in self.turn.committee or [self.turn.persona]:
            if card.slug == self.speaker:
                return card
        raise ValueError(f"{self.id}: speaker {self.speaker!r} is not a persona of the turn")

    def turn_request(self) -> TurnRequest:
        return TurnRequest(
            session_id=self.conversation,
            tenant_id=TENANT,
            reply_to_seq=len(self.turn.history) + 1,
            **self.turn.model_dump(),
        )

    def messages(self) -> list[dict[str, str]]:
        """The chat messages production sends for this turn, ending with "<Name>:"."""
        return npc_messages(self.turn_request(), speaker=self.speaker_card())


def render_prompt(tokenizer: Any, example: PersonaExample) -> str:
    """The prompt text exactly as the engine renders it for the persona (loadtests/bench
    ``direct_conversation``; vLLM's chat endpoint with ``continue_final_message``)."""
    return str(
        tokenizer.apply_chat_template(
            example.messages(),
            add_generation_prompt=False,
            continue_final_message=True,
            tokenize=False,
        )
    )


def target_text(example: PersonaExample) -> str:
    """What the model writes after "<Name>:" (the engine's reply starts with a space)."""
    return " " + example.reply


def load_examples(path: Path) -> list[PersonaExample]:
    with path.open() as fh:
        return [PersonaExample.model_validate_json(line) for line in fh if line.strip()]


def write_examples(path: Path, examples: Iterable[PersonaExample]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as fh:
        for example in examples:
            fh.write(json.dumps(example.model_dump(mode="json"), ensure_ascii=False) + "\n")


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
