"""A stored turn (a ``turns`` row) in the shapes its readers take, made here and nowhere else:
the frame a reconnecting client is replayed (the API's turn has the same fields), the history
the orchestrator reads, and the transcript the evaluator scores."""

from __future__ import annotations

import uuid

from db.models import Speaker, Turn
from serve_apps.contracts.knowledge import RetrievedChunk
from serve_apps.contracts.turn import HistoryTurn, TranscriptTurn
from serve_apps.contracts.wire import StoredTurn


def speaker_of(turn: Turn, persona_slugs: dict[uuid.UUID, str]) -> str:
    """Who said a turn, as events name it: the persona's slug for NPC turns, else ``trainee``."""
    if turn.persona_id is not None:
        return persona_slugs.get(turn.persona_id, turn.speaker.value)
    return turn.speaker.value


def citations_of(turn: Turn) -> list[RetrievedChunk]:
    return [RetrievedChunk.model_validate(c) for c in turn.citations or []]


def stored_turn(turn: Turn, persona_slugs: dict[uuid.UUID, str]) -> StoredTurn:
    return StoredTurn(
        seq=turn.seq,
        speaker=speaker_of(turn, persona_slugs),
        text=turn.content,
        client_turn_id=turn.client_turn_id,
        reply_to=turn.reply_to_seq,
        citations=citations_of(turn),
    )


def history_turn(turn: Turn, persona_slugs: dict[uuid.UUID, str]) -> HistoryTurn:
    return HistoryTurn(
        speaker="trainee" if turn.speaker == Speaker.trainee else "npc",
        text=turn.content,
        persona=persona_slugs.get(turn.persona_id) if turn.persona_id else None,
    )


def transcript_turn(turn: Turn, persona_slugs: dict[uuid.UUID, str]) -> TranscriptTurn:
    return TranscriptTurn(seq=turn.seq, speaker=speaker_of(turn, persona_slugs), text=turn.content)
