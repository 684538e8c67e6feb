import json

import pytest

from serve_apps.contracts.wire import (
    FrameError,
    Ping,
    Resume,
    TraineeTurn,
    parse_client_frame,
    parse_last_seq,
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


@pytest.mark.parametrize("last_seq", [2**31, 10**30, -1, "1", True, 1.0, None, [1]], ids=repr)
def test_resume_takes_only_a_json_integer_that_a_sequence_number_can_be(last_seq):
    """Strict, as the string fields are (``client_turn_id: 5`` is refused too): no ``"1"``,
    ``true`` or ``1.0``; and within PostgreSQL's integer, so nothing out of range reaches it."""
    with pytest.raises(FrameError) as caught:
        parse({"type": "resume", "last_seq": last_seq})
    assert caught.value.event.code == "invalid_frame"
    assert "last_seq" in caught.value.event.message


def test_resume_takes_the_whole_range():
    assert parse({"type": "resume", "last_seq": 2**31 - 1}) == Resume(last_seq=2**31 - 1)
    assert parse({"type": "resume", "last_seq": 0}) == Resume(last_seq=0)


def test_string_fields_are_strict_too():
    with pytest.raises(FrameError):
        parse({"type": "turn", "client_turn_id": 5, "text": "hi"})


@pytest.mark.parametrize("char", ["\x01", "\x07", "\x1b", "\x1f"], ids=repr)
def test_control_characters_are_refused_but_tabs_and_newlines_are_text(char):
    with pytest.raises(FrameError) as caught:
        parse({"type": "turn", "client_turn_id": "c", "text": f"hi{char}there"})
    assert caught.value.event.code == "invalid_frame"
    assert parse({"type": "turn", "client_turn_id": "c", "text": "hi\tthere\r\n"}).text


@pytest.mark.parametrize(
    "raw", ["2147483648", "99999999999", "-1", "+1", " 1", "1.0", "", "x", "١"], ids=repr
)
def test_last_seq_on_connect_is_decimal_digits_in_range(raw):
    with pytest.raises(ValueError, match="last_seq"):
        parse_last_seq(raw)


def test_last_seq_on_connect():
    assert parse_last_seq(None) is None
    assert parse_last_seq("0") == 0 and parse_last_seq("2147483647") == 2**31 - 1


def test_the_longest_message_in_any_script_fits_the_default_frame_limit():
    """4-byte UTF-8 characters, sent as is: what the terminal client sends."""
    from serve_apps.settings import Settings

    settings = Settings()
    frame = json.dumps(
        {"type": "turn", "client_turn_id": "c" * 64, "text": "😀" * settings.max_message_chars},
        ensure_ascii=False,
    )
    assert len(frame.encode()) <= settings.max_frame_bytes
    parse_client_frame(frame, max_message_chars=settings.max_message_chars)


def test_settings_refuse_a_frame_limit_too_small_for_the_longest_message():
    from serve_apps.settings import Settings

    with pytest.raises(ValueError, match="max_frame_bytes"):
        Settings(max_message_chars=4000, max_frame_bytes=16_000)
