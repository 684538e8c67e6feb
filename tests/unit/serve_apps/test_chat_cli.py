from serve_apps.cli.chat import describe, describe_score


def test_agent_events_are_one_line_each_and_accepted_reviews_stay_quiet():
    hint = {"type": "hint", "kind": "stage", "text": "Stage: close."}
    assert describe(hint) == "  [coach · stage] Stage: close."
    finding = {
        "type": "compliance",
        "severity": "critical",
        "speaker": "trainee",
        "description": "No guarantees",
        "excerpt": "we guarantee",
    }
    assert "critical" in describe(finding) and "we guarantee" in describe(finding)
    retry = {"type": "review", "passed": False, "action": "retry", "issues": ["says it is an AI"]}
    assert describe(retry) == "  [reviewer] reply trying again: says it is an AI"
    assert describe({"type": "review", "passed": True, "action": "accepted", "issues": []}) is None
    assert describe({"type": "turn_taking"}) is None


def test_the_score_lists_each_check_with_its_evidence():
    report = {
        "summary": "Scored 50/100.",
        "criteria": [
            {
                "name": "Asks questions",
                "score": 50.0,
                "checks": [
                    {"question": "Budget?", "passed": True, "evidence": [{"quote": "budget?"}]},
                    {"question": "Who signs?", "passed": False, "evidence": []},
                ],
            }
        ],
    }
    text = describe_score(report)
    assert "Scored 50/100." in text and "✔ Budget? — “budget?”" in text and "✘ Who signs?" in text


def test_a_turn_is_sent_as_utf8_and_the_longest_message_in_any_script_fits_the_frame():
    import json

    from serve_apps.cli.chat import turn_frame
    from serve_apps.contracts.wire import parse_client_frame
    from serve_apps.settings import Settings

    settings = Settings()
    for char in ("é", "中", "😀"):
        text = char * settings.max_message_chars
        frame = turn_frame(text, client_turn_id="c" * 64)
        assert char in frame and "\\u" not in frame
        assert len(frame.encode()) <= settings.max_frame_bytes, (char, len(frame.encode()))
        assert json.loads(frame)["text"] == text
        assert parse_client_frame(frame, max_message_chars=settings.max_message_chars).text == text
