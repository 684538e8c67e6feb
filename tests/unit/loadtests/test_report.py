"""The load test report's arithmetic on fixed samples (unit: no locust run, no stack)."""

import pytest

from loadtests.report import (
    TTFT,
    TURN,
    Sample,
    UsersPoint,
    build_report,
    capacity_level,
    failures_by_code,
    per_name,
    percentile,
    time_series,
)


def test_percentile_interpolates_between_ranks():
    values = [float(v) for v in range(1, 101)]  # 1..100
    assert percentile(values, 50) == pytest.approx(50.5)
    assert percentile(values, 95) == pytest.approx(95.05)
    assert percentile(values, 99) == pytest.approx(99.01)
    assert percentile([7.0], 95) == 7.0
    assert percentile([], 50) is None


def test_per_name_leaves_failures_out_of_the_percentiles():
    samples = [Sample(1, "WS", TURN, ms) for ms in (100.0, 200.0, 300.0)] + [
        Sample(2, "WS", TURN, 1.0, failure="message_too_long"),
        Sample(2, "GET", "GET /v1/analytics/overview", 40.0),
    ]
    stats = per_name(samples)
    assert stats[TURN]["count"] == 3
    assert stats[TURN]["failures"] == 1
    assert stats[TURN]["p50_ms"] == 200.0  # not pulled down by the 1 ms refusal
    assert stats[TURN]["mean_ms"] == 200.0
    assert stats["GET /v1/analytics/overview"]["type"] == "GET"
    assert stats["GET /v1/analytics/overview"]["p99_ms"] == 40.0


def test_a_name_with_only_failures_has_no_percentiles():
    stats = per_name([Sample(1, "WS", TURN, 5.0, failure="timeout")])
    assert stats[TURN] == {
        "type": "WS",
        "count": 0,
        "failures": 1,
        "p50_ms": None,
        "p95_ms": None,
        "p99_ms": None,
        "mean_ms": None,
    }


def test_failures_are_counted_by_code():
    samples = [
        Sample(1, "WS", TURN, 1, failure="message_too_long"),
        Sample(1, "WS", TURN, 1, failure="message_too_long"),
        Sample(1, "POST", "POST /v1/sessions", 1, failure="rate_limited"),
        Sample(1, "WS", TTFT, 1),
    ]
    assert failures_by_code(samples) == {"message_too_long": 2, "rate_limited": 1}


def test_throughput_counts_successful_turns_and_their_tokens():
    samples = [
        Sample(1, "WS", TURN, 900, output_tokens=40),
        Sample(2, "WS", TURN, 900, output_tokens=60),
        Sample(3, "WS", TURN, 5, failure="too_many_turns", output_tokens=0),
        Sample(3, "WS", TTFT, 300),
    ]
    report = build_report(samples, [UsersPoint(0, 2)], duration_s=20.0, every_s=5.0)
    assert report["turns"] == 2
    assert report["turns_per_s"] == 0.1
    assert report["output_tokens"] == 100
    assert report["output_tokens_per_s"] == 5.0
    assert report["failures"] == 1
    assert report["failures_by_code"] == {"too_many_turns": 1}
    assert report["failures_by_name"] == {TURN: {"too_many_turns": 1}}
    assert report["peak_users"] == 2


def test_time_series_windows():
    samples = [
        Sample(1.0, "WS", TTFT, 100),
        Sample(2.0, "WS", TTFT, 300),
        Sample(2.5, "WS", TURN, 1000),
        Sample(6.0, "WS", TTFT, 500),
        Sample(7.0, "WS", TURN, 2, failure="rate_limited"),
        Sample(10.4, "WS", TURN, 2000),  # after the last window's end: still counted in it
    ]
    users = [UsersPoint(0.0, 1), UsersPoint(4.0, 2), UsersPoint(8.0, 3)]
    points = time_series(samples, users, every_s=5.0, duration_s=10.0)
    assert [p["t_s"] for p in points] == [5.0, 10.0]
    assert [p["users"] for p in points] == [2, 3]
    assert points[0]["ttft_ms_p95"] == pytest.approx(290.0)
    assert points[0]["turn_ms_p95"] == 1000.0
    assert points[0]["failures"] == 0
    assert points[1]["ttft_ms_p95"] == 500.0
    assert points[1]["turns"] == 1
    assert points[1]["failures"] == 1
    assert points[1]["requests"] == 3


def test_time_series_of_a_short_run_has_one_partial_window():
    points = time_series([], [], every_s=5.0, duration_s=3.2)
    assert points == [
        {
            "t_s": 3.2,
            "users": 0,
            "ttft_ms_p95": None,
            "turn_ms_p95": None,
            "turns": 0,
            "requests": 0,
            "failures": 0,
        }
    ]
    with pytest.raises(ValueError):
        time_series([], [], every_s=0, duration_s=3)


def _load(ttft_p95: float | None, failures: dict[str, int]) -> dict:
    ttft = {"p50_ms": ttft_p95, "p95_ms": ttft_p95, "p99_ms": ttft_p95}
    return {"requests": {TTFT: ttft, TURN: {"p95_ms": 3000.0}}, "failures_by_code": failures}


@pytest.mark.parametrize(
    "ttft_p95, failures, held, why",
    [
        (1200.0, {}, True, "held"),
        (1500.0, {"rate_limited": 3}, True, "held"),  # refused load does not break the SLO
        (1501.0, {}, False, "TTFT p95 1501.0 ms over 1500 ms"),
        (900.0, {"timeout": 1}, False, "failures {'timeout': 1}"),
        (None, {}, False, "no turn answered"),
    ],
)
def test_a_capacity_level_holds_the_slo_or_says_why_not(ttft_p95, failures, held, why):
    level = capacity_level(8, _load(ttft_p95, failures), slo_ttft_p95_ms=1500)
    assert (level["sessions"], level["held"], level["why"]) == (8, held, why)
    assert level["ttft_ms_p95"] == ttft_p95


def test_a_surge_is_summed_up_by_phase_with_refusals_apart_and_its_recovery():
    from loadtests.report import surge_summary

    def window(t_s: float, p95: float | None) -> dict:
        return {"t_s": t_s, "ttft_ms_p95": p95}

    report = {
        # warm-up to 10 s, before to 30 s, surge to 60 s, after to 100 s; windows of 10 s
        "time_series": [
            window(10, 9000.0),  # a fresh engine: not measured
            window(20, 500.0),
            window(30, 600.0),
            window(40, 1400.0),
            window(50, 1800.0),
            window(60, 1200.0),
            window(70, 1700.0),  # still over after the surge ends
            window(80, 900.0),
            window(90, None),  # no turn ended here
            window(100, 700.0),
        ],
        "failures_by_code": {"http_503": 12, "overloaded": 3, "rate_limited": 2, "timeout": 1},
    }
    summary = surge_summary(
        report,
        surge_from_s=30,
        surge_until_s=60,
        slo_ttft_p95_ms=1500,
        measured_from_s=10,
    )
    assert summary["ttft_p95_ms_worst_window"] == {
        "before": 600.0,
        "during": 1800.0,
        "after": 1700.0,
    }
    assert summary["refused"] == 15
    assert summary["other_failures"] == {"timeout": 1}  # rate_limited is no failure of the SLO
    assert summary["recovery_s"] == 10.0  # from 60 s to the window starting at 70 s


def test_a_surge_that_never_recovers_says_so():
    from loadtests.report import surge_summary

    report = {
        "time_series": [{"t_s": 10, "ttft_ms_p95": 100.0}, {"t_s": 20, "ttft_ms_p95": 3000.0}],
        "failures_by_code": {},
    }
    summary = surge_summary(report, surge_from_s=0, surge_until_s=10, slo_ttft_p95_ms=1500)
    assert summary["recovery_s"] is None and summary["refused"] == 0


def test_goodput_counts_the_sessions_whose_every_turn_met_the_slo():
    from loadtests.report import goodput_sessions, session_outcomes

    samples = [
        # a: every first token in time
        Sample(1, "WS", TTFT, 400.0, session="a"),
        Sample(2, "WS", TURN, 2000.0, session="a"),
        Sample(3, "WS", TTFT, 1400.0, session="a"),
        # b: one first token late
        Sample(1, "WS", TTFT, 300.0, session="b"),
        Sample(4, "WS", TTFT, 1600.0, session="b"),
        # c: in time, but a turn failed
        Sample(1, "WS", TTFT, 300.0, session="c"),
        Sample(2, "WS", TURN, 1.0, failure="timeout", session="c"),
        # d: in time, one turn refused by a rate limit (exempt)
        Sample(1, "WS", TTFT, 500.0, session="d"),
        Sample(2, "WS", TURN, 1.0, failure="rate_limited", session="d"),
        # not a trainee's turn, or no session: left out
        Sample(1, "GET", "GET /v1/analytics/overview", 40.0),
        Sample(1, "WS", TTFT, 9000.0),
    ]
    outcomes = session_outcomes(samples)
    assert sorted(o["ttft_max_ms"] for o in outcomes) == [300.0, 500.0, 1400.0, 1600.0]
    assert goodput_sessions(outcomes, 1500) == 2  # a and d
    level = capacity_level(
        4,
        {"requests": {}, "failures_by_code": {}, "sessions": outcomes},
        1500,
    )
    assert (level["sessions_measured"], level["goodput_sessions"]) == (4, 2)


def test_the_capacity_curve_is_drawn(tmp_path):
    from loadtests.report import plot_capacity

    def level(sessions, p50, p95, good):
        return {
            "sessions": sessions,
            "ttft_ms_p50": p50,
            "ttft_ms_p95": p95,
            "goodput_sessions": good,
        }

    result = {
        "capacity_sessions": 8,
        "slo": {"ttft_p95_ms": 1500},
        "levels": [level(4, 300, 600, 4), level(8, 420, 1100, 7), level(12, 900, 2100, 5)],
    }
    path = tmp_path / "capacity.png"
    plot_capacity(result, path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
