"""The persona adapter's training data (models/persona_lora): rows production can render,
replies the reviewer would accept, and nothing of the demo tenant or the probes the bench
measures the adapter on."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest
import yaml

from models.persona_lora.build_data import DIALOGUES_DIR, build
from models.persona_lora.data import TRAIN_FILE, VALID_FILE, PersonaExample, load_examples
from retrieval.excerpts import sentences
from serve_apps.orchestrator.agents.reviewer import rule_issues
from serve_apps.orchestrator.npc_prompt import SALESPERSON, first_name

REPO = Path(__file__).resolve().parents[2]
DEMO_TENANT = REPO / "db" / "seed" / "demo_tenant.yaml"
EVALSETS = REPO / "tests" / "evalsets"
# A reply is what a customer says aloud: no stage directions, markup or lists.
NOT_SPOKEN = re.compile(r"[*\[\]{}<>#_]|\(|\)|^\s*[-•]|\n")

TRAIN = load_examples(TRAIN_FILE)
VALID = load_examples(VALID_FILE)
ALL = TRAIN + VALID


def _normalized(text: str) -> str:
    return " ".join(re.findall(r"[a-z0-9]+", text.lower()))


def _texts(example: PersonaExample) -> list[str]:
    """Every piece of text in a row: cards, scenario, papers, history, line and reply."""
    turn = example.turn
    cards = [turn.persona, *turn.committee]
    texts = [json.dumps(card.model_dump()) for card in cards]
    texts.append(json.dumps(turn.scenario.model_dump()))
    texts += [chunk.title + " " + chunk.text for chunk in turn.persona_papers.chunks()]
    texts += [h.text for h in turn.history]
    return [*texts, turn.trainee_text, example.reply]


def test_the_data_files_are_built_from_the_dialogues():
    """data/*.jsonl is what ``python -m models.persona_lora.build_data`` makes of the
    hand-written dialogues, so neither is edited without the other."""
    built = build(DIALOGUES_DIR)
    assert [e.model_dump() for e in built["train"]] == [e.model_dump() for e in TRAIN]
    assert [e.model_dump() for e in built["valid"]] == [e.model_dump() for e in VALID]


def test_there_are_enough_replies_in_multi_turn_conversations():
    assert len(TRAIN) >= 300
    assert len(VALID) >= 20
    for split in (TRAIN, VALID):
        lengths = Counter(e.conversation for e in split)
        assert all(4 <= turns <= 8 for turns in lengths.values()), lengths
    assert len({e.id for e in ALL}) == len(ALL)


def test_several_industries_roles_and_committees():
    roles = {e.speaker_card().role for e in TRAIN}
    companies = {e.speaker_card().company for e in TRAIN}
    assert len(roles) >= 12 and len(companies) >= 10
    assert sum(1 for e in TRAIN if e.turn.committee) >= 16  # buying committees
    assert any(e.turn.persona_papers.chunks() for e in TRAIN)  # the persona's own papers


@pytest.mark.parametrize("example", ALL, ids=lambda e: e.id)
def test_every_row_renders_through_the_production_prompt(example):
    messages = example.messages()
    speaker = example.speaker_card()
    assert messages[0]["role"] == "system"
    assert messages[0]["content"].startswith(f"I am {speaker.name}, {speaker.role}")
    assert messages[-1] == {"role": "assistant", "content": f"{first_name(speaker)}:"}
    assert messages[-2]["role"] == "user"
    assert messages[-2]["content"].endswith(f"{SALESPERSON}: {example.turn.trainee_text}")
    # every earlier turn is in the prompt, the reply itself is not
    rendered = "\n".join(m["content"] for m in messages)
    assert all(h.text in rendered for h in example.turn.history)
    assert example.reply not in rendered


@pytest.mark.parametrize("example", ALL, ids=lambda e: e.id)
def test_every_reply_is_a_short_in_character_customer_line(example):
    reply = example.reply
    speaker = example.speaker_card()
    issues = rule_issues(
        reply,
        persona=speaker,
        question=example.turn.trainee_text,
        product=example.turn.scenario.product,
    )
    assert issues == [], issues
    assert 1 <= len(sentences(reply)) <= 3
    assert len(reply.split()) <= 50
    assert not NOT_SPOKEN.search(reply), reply
    assert reply[-1] in ".!?"
    assert not reply.lower().startswith((speaker.name.lower(), first_name(speaker).lower() + ":"))


def test_nothing_of_the_demo_tenant_or_the_probes_is_in_the_data():
    """The adapter is measured on the demo tenant's personas and the probe scripts: none of
    their names, companies, products or lines may be trained on."""
    tenant = yaml.safe_load(DEMO_TENANT.read_text())
    held_out: set[str] = {"cloudcrm"}
    for persona in tenant["personas"]:
        held_out |= {persona["name"], persona["name"].split()[0], persona["name"].split()[-1]}
        held_out.add(persona["company"].split("(")[0].strip())
        held_out.add(persona["company"].split()[0])
    for scenario in tenant["scenarios"]:
        held_out.add(scenario["product"].split(",")[0].strip())
    words = {_normalized(name) for name in held_out if len(name) > 3}
    assert {"priya", "marcus", "raman", "northwind", "cloudcrm"} <= words
    lines = [
        line
        for probes in (EVALSETS / "probes.jsonl", EVALSETS / "heldout" / "probes.jsonl")
        for probe in map(json.loads, probes.read_text().splitlines())
        for line in probe["lines"]
    ]
    lines += [
        json.loads(row)["trainee"]
        for row in (EVALSETS / "persona_replies.jsonl").read_text().splitlines()
    ]
    probe_lines = {_normalized(line) for line in lines}
    for example in ALL:
        for text in _texts(example):
            padded = f" {_normalized(text)} "
            assert not [w for w in words if f" {w} " in padded], (example.id, text)
            # a probe line inside a longer line counts too ("Miriam, <probe line>")
            assert not [p for p in probe_lines if f" {p} " in padded], (example.id, text)


def test_the_valid_split_is_held_out_from_training():
    """Validation personas, companies and products appear in no training row."""
    valid_names = set()
    for example in VALID:
        for card in [example.turn.persona, *example.turn.committee]:
            valid_names |= {card.name, card.company.split("(")[0].strip()}
        valid_names.add(example.turn.scenario.product.split(",")[0].strip())
    train_text = " ".join(_normalized(t) for example in TRAIN for t in _texts(example))
    for name in valid_names:
        assert f" {_normalized(name)} " not in f" {train_text} ", name


def test_the_sample_lines_are_unseen():
    """models.persona_lora.sample answers lines no dialogue has, as held-out personas."""
    from models.persona_lora.sample import UNSEEN_LINES, unseen_examples

    every_line = {_normalized(t) for e in ALL for t in _texts(e)}
    assert all(_normalized(line) not in every_line for _, line in UNSEEN_LINES)
    assert all(e.split == "valid" for e in unseen_examples())
