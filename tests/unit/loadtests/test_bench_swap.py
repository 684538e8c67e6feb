"""The swap bench's arithmetic on fixed, timed turns."""

from __future__ import annotations

from loadtests.bench.swap import TurnRecord, summarize_swap


def _turn(sent: float, first: float, done_at: float, *, done: int = 1, error=None) -> TurnRecord:
    return TurnRecord(sent=sent, times=[first, done_at], first_token=first, done=done, error=error)


def test_failures_duplicates_pauses_and_windows():
    turns = [
        _turn(0.0, 0.3, 1.0),  # before the swap (10-20)
        _turn(9.0, 9.4, 11.5),  # overlaps its start: during; a 2.1 s pause
        _turn(15.0, 15.5, 16.0, done=2),  # answered twice
        TurnRecord(sent=18.0, times=[18.2], error="model_unavailable"),
        TurnRecord(sent=19.0),  # never answered
        _turn(25.0, 25.2, 26.0),  # after
    ]
    turns[-1].retries = 1  # told `unavailable` once, answered when sent again
    out = summarize_swap(turns, swap_start=10.0, swap_end=20.0)
    assert out["turns"] == 6
    assert out["failed_turns"] == 2
    assert out["duplicated_turns"] == 1
    assert out["retried_turns"] == 1
    assert out["errors"] == ["model_unavailable"]
    assert out["longest_pause_ms"] == {"overall": 2100.0, "around_the_swap": 2100.0}
    assert out["ttft_ms"]["before"] == {"p50": 300.0, "p95": 300.0, "turns": 1}
    assert out["ttft_ms"]["during"]["turns"] == 2  # the two with a first token
    assert out["ttft_ms"]["after"] == {"p50": 200.0, "p95": 200.0, "turns": 1}
