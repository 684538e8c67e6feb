"""A stored turn in each reader's shape, from one place (db.transcript)."""

import uuid

from db.models import Speaker, Turn
from db.transcript import history_turn, stored_turn, transcript_turn

CFO = uuid.uuid4()
CHUNK = {"chunk_id": "c1", "document_id": "d1", "title": "Price list", "score": 0.9, "text": "x"}


def _turns():
    trainee = Turn(seq=1, speaker=Speaker.trainee, content="Price?", client_turn_id="t-1")
    reply = Turn(
        seq=2,
        speaker=Speaker.npc,
        persona_id=CFO,
        reply_to_seq=1,
        content="Ten.",
        citations=[CHUNK],
    )
    return trainee, reply


def test_the_replayed_turn_names_the_persona_and_keeps_its_citations():
    trainee, reply = _turns()
    assert stored_turn(trainee, {CFO: "cfo"}).model_dump(exclude={"citations"}) == {
        "type": "turn",
        "seq": 1,
        "speaker": "trainee",
        "text": "Price?",
        "client_turn_id": "t-1",
        "reply_to": None,
    }
    replayed = stored_turn(reply, {CFO: "cfo"})
    assert (replayed.speaker, replayed.reply_to) == ("cfo", 1)
    assert [c.chunk_id for c in replayed.citations] == ["c1"]
    assert stored_turn(reply, {}).speaker == "npc"  # a persona since removed


def test_history_and_transcript_shapes():
    trainee, reply = _turns()
    assert [history_turn(t, {CFO: "cfo"}).model_dump() for t in (trainee, reply)] == [
        {"speaker": "trainee", "text": "Price?", "persona": None},
        {"speaker": "npc", "text": "Ten.", "persona": "cfo"},
    ]
    assert [transcript_turn(t, {CFO: "cfo"}).model_dump() for t in (trainee, reply)] == [
        {"seq": 1, "speaker": "trainee", "text": "Price?"},
        {"seq": 2, "speaker": "cfo", "text": "Ten."},
    ]
