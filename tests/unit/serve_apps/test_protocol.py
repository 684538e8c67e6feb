import json

import pytest

from serve_apps.conversation.protocol import (
    FrameError,
    Ping,
    Resume,
    TraineeTurn,
    parse_client_frame,
    server_events,
)


def parse(frame, limit=100):
    raw = frame if isinstance(frame, str | bytes) else json.dumps(frame)
    return parse_client_frame(raw, max_message_chars=limit)


def test_valid_frames_parse_to_their_types():
    assert parse({"type": "turn", "client_turn_id": "c-1", "text": "Hello"}) == TraineeTurn(
        client_turn_id="c-1", text="Hello"
    )
    assert parse({"type": "resume", "last_seq": 4}) == Resume(last_seq=4)
    assert parse({"type": "ping"}) == Ping()
    assert parse(b'{"type": "ping"}') == Ping()


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("{not json", "invalid_json"),
        ("", "invalid_json"),
        ("[1, 2]", "invalid_frame"),
        ({"type": "shout", "text": "hi"}, "invalid_frame"),
        ({"text": "no type"}, "invalid_frame"),
        ({"type": "turn", "text": "missing id"}, "invalid_frame"),
        ({"type": "turn", "client_turn_id": "a b", "text": "hi"}, "invalid_frame"),
        ({"type": "turn", "client_turn_id": "x" * 65, "text": "hi"}, "invalid_frame"),
        ({"type": "turn", "client_turn_id": "c", "text": ""}, "invalid_frame"),
        ({"type": "turn", "client_turn_id": "c", "text": "   \n"}, "invalid_frame"),
        ({"type": "turn", "client_turn_id": "c", "text": 42}, "invalid_frame"),
        ({"type": "turn", "client_turn_id": "c", "text": "hi", "extra": 1}, "invalid_frame"),
        ({"type": "resume", "last_seq": -1}, "invalid_frame"),
        ({"type": "turn", "client_turn_id": "c", "text": "x" * 101}, "message_too_long"),
    ],
)
def test_bad_frames_raise_a_typed_error(frame, code):
    with pytest.raises(FrameError) as caught:
        parse(frame)
    assert caught.value.event.code == code
    assert caught.value.event.type == "error"
    assert caught.value.event.message


def test_too_long_message_names_the_client_turn():
    with pytest.raises(FrameError) as caught:
        parse({"type": "turn", "client_turn_id": "c-9", "text": "x" * 101})
    assert caught.value.event.client_turn_id == "c-9"
    assert "101" in caught.value.event.message


def test_server_events_form_one_discriminated_union():
    for raw in [
        {"type": "ack", "client_turn_id": "c", "seq": 1},
        {"type": "token", "reply_to": 1, "speaker": "p", "text": "Hi"},
        {"type": "reply_done", "seq": 2, "reply_to": 1, "speaker": "p", "text": "Hi"},
        {"type": "turn", "seq": 1, "speaker": "trainee", "text": "Hello"},
        {"type": "pong"},
        {"type": "error", "code": "invalid_json", "message": "bad"},
    ]:
        assert server_events.validate_python(raw).type == raw["type"]
