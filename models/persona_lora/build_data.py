"""Expand the hand-written dialogues into the adapter's training rows.

``dialogues/*.yaml`` is what the team writes: persona and scenario cards (none of them the
demo tenant's) and conversations, each a list of turns, ``[salesperson's line, reply]`` or,
in a buying committee, ``[salesperson's line, speaker's slug, reply]``. Every persona turn
becomes one example, with the turns before it as its history, in ``data/train.jsonl`` or
``data/valid.jsonl`` (a file's ``split``; the valid split's personas and companies appear in
no training row).

    python -m models.persona_lora.build_data          # writes data/*.jsonl
    python -m models.persona_lora.build_data --check  # fails when they are out of date
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from models.persona_lora.data import (
    PACKAGE_DIR,
    TRAIN_FILE,
    VALID_FILE,
    PersonaExample,
    PersonaTurn,
    Split,
    write_examples,
)
from serve_apps.contracts.knowledge import RetrievedChunk
from serve_apps.contracts.turn import HistoryTurn, PersonaCard, PersonaPapers, ScenarioCard

DIALOGUES_DIR = PACKAGE_DIR / "dialogues"


class PersonaSource(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    role: str
    company: str
    personality: str
    goals: list[str] = Field(default_factory=list)
    objections: list[str] = Field(default_factory=list)
    facts: list[str] = Field(default_factory=list)
    hidden: list[str] = Field(default_factory=list)
    topics: list[str] = Field(default_factory=list)


class PaperSource(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: str
    text: str


class PapersSource(BaseModel):
    """What the persona has read in this conversation (as the gateway would retrieve it)."""

    model_config = ConfigDict(extra="forbid")

    own: list[PaperSource] = Field(default_factory=list)
    vendor_website: list[PaperSource] = Field(default_factory=list)


class ConversationSource(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    scenario: str
    personas: list[str] = Field(..., min_length=1)
    papers: PapersSource | None = None
    turns: list[list[str]] = Field(..., min_length=1)

    @model_validator(mode="after")
    def _turn_shapes(self) -> ConversationSource:
        for index, turn in enumerate(self.turns):
            if len(turn) == 2 and len(self.personas) == 1:
                continue
            if len(turn) == 3 and turn[1] in self.personas:
                continue
            raise ValueError(
                f"{self.id} turn {index}: [line, reply] for one persona, [line, speaker, reply] "
                f"with a speaker of {self.personas} in a committee; got {turn!r}"
            )
        return self


class DialogueFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    split: Split
    personas: dict[str, PersonaSource] = Field(default_factory=dict)
    scenarios: dict[str, ScenarioCard] = Field(default_factory=dict)
    conversations: list[ConversationSource] = Field(default_factory=list)


def _papers(conversation: ConversationSource) -> PersonaPapers:
    if conversation.papers is None:
        return PersonaPapers()

    def chunks(kind: str, papers: list[PaperSource]) -> list[RetrievedChunk]:
        return [
            RetrievedChunk(
                chunk_id=f"{conversation.id}-{kind}-{index}",
                document_id=f"{conversation.id}-{kind}-{index}",
                title=paper.title,
                score=1.0,
                text=paper.text,
            )
            for index, paper in enumerate(papers)
        ]

    return PersonaPapers(
        own=chunks("own", conversation.papers.own),
        vendor_website=chunks("website", conversation.papers.vendor_website),
    )


def expand(
    conversation: ConversationSource,
    cards: dict[str, PersonaCard],
    scenario: ScenarioCard,
    split: Split,
) -> list[PersonaExample]:
    """One example per persona turn, with every earlier turn as its history."""
    personas = [cards[slug] for slug in conversation.personas]
    papers = _papers(conversation)
    history: list[HistoryTurn] = []
    examples: list[PersonaExample] = []
    for index, turn in enumerate(conversation.turns):
        line, reply = turn[0], turn[-1]
        speaker = turn[1] if len(turn) == 3 else personas[0].slug
        examples.append(
            PersonaExample(
                id=f"{conversation.id}-{index}",
                conversation=conversation.id,
                split=split,
                speaker=speaker,
                turn=PersonaTurn(
                    persona=personas[0],
                    committee=personas if len(personas) > 1 else [],
                    scenario=scenario,
                    history=list(history),
                    trainee_text=line,
                    persona_papers=papers,
                ),
                reply=reply,
            )
        )
        history += [
            HistoryTurn(speaker="trainee", text=line),
            HistoryTurn(speaker="npc", text=reply, persona=speaker),
        ]
    return examples


def build(dialogues_dir: Path = DIALOGUES_DIR) -> dict[Split, list[PersonaExample]]:
    """Every example of every dialogue file, by split, in file and turn order."""
    files = sorted(dialogues_dir.glob("*.yaml"))
    if not files:
        raise FileNotFoundError(f"no dialogues in {dialogues_dir}")
    out: dict[Split, list[PersonaExample]] = {"train": [], "valid": []}
    seen_personas: set[str] = set()
    seen_conversations: set[str] = set()
    for path in files:
        source = DialogueFile.model_validate(yaml.safe_load(path.read_text()))
        if repeated := seen_personas & source.personas.keys():
            raise ValueError(f"{path.name}: persona slugs defined twice: {sorted(repeated)}")
        seen_personas |= source.personas.keys()
        cards = {
            slug: PersonaCard(slug=slug, **card.model_dump())
            for slug, card in source.personas.items()
        }
        for conversation in source.conversations:
            if conversation.id in seen_conversations:
                raise ValueError(f"{path.name}: conversation {conversation.id!r} twice")
            seen_conversations.add(conversation.id)
            missing = [slug for slug in conversation.personas if slug not in cards]
            if missing or conversation.scenario not in source.scenarios:
                raise ValueError(
                    f"{path.name} {conversation.id}: unknown personas {missing} or scenario "
                    f"{conversation.scenario!r} (cards are defined in the same file)"
                )
            out[source.split] += expand(
                conversation, cards, source.scenarios[conversation.scenario], source.split
            )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="fail when data/ is out of date")
    args = parser.parse_args(argv)
    built = build()
    targets: dict[Split, Path] = {"train": TRAIN_FILE, "valid": VALID_FILE}
    stale = []
    for split, path in targets.items():
        if args.check:
            current = path.read_text() if path.exists() else ""
            tmp = path.with_suffix(".check")
            write_examples(tmp, built[split])
            if tmp.read_text() != current:
                stale.append(path.name)
            tmp.unlink()
        else:
            write_examples(path, built[split])
        print(f"{split}: {len(built[split])} examples -> {path}")
    if stale:
        print(f"out of date: {stale}; run python -m models.persona_lora.build_data")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
