"""The load test's report from what the users recorded: plain arithmetic, no locust.

Every request the users make (HTTP, and the WebSocket's ``ttft`` and ``turn``) is one
:class:`Sample`, timed from the run's start; :func:`build_report` turns them, with the number
of users over time, into the JSON ``salesboost loadtest`` writes. Locust keeps its own
statistics too (its HTML report draws them); these are computed here so that the JSON has
exact percentiles (locust rounds response times into buckets) and failures by the server's
own ``error`` code.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# The WebSocket's request names: send → first token, send → reply_done.
TTFT = "ttft"
TURN = "turn"


@dataclass(frozen=True)
class Sample:
    t_s: float  # when the request ended, in seconds from the run's start
    request_type: str  # "WS", "GET", "POST"
    name: str
    response_time_ms: float
    failure: str | None = None  # the error's code; None when it succeeded
    output_tokens: int = 0  # a turn's reply_done.output_tokens
    session: str | None = None  # the training session a trainee's turn belongs to


@dataclass(frozen=True)
class UsersPoint:
    t_s: float
    users: int


def percentile(values: list[float], q: float) -> float | None:
    """Linear interpolation between closest ranks (numpy's default, as ``bench turn``)."""
    ordered = sorted(values)
    if not ordered:
        return None
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def _rounded(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value, digits)


def per_name(samples: Iterable[Sample]) -> dict[str, dict[str, Any]]:
    """Per request name: successes (``count``) and their percentiles, and failures. Failed
    requests are left out of the percentiles: a refusal in 2 ms is not a fast turn."""
    groups: dict[str, list[Sample]] = {}
    for sample in samples:
        groups.setdefault(sample.name, []).append(sample)
    out = {}
    for name, group in sorted(groups.items()):
        ok = [s.response_time_ms for s in group if s.failure is None]
        out[name] = {
            "type": group[0].request_type,
            "count": len(ok),
            "failures": len(group) - len(ok),
            "p50_ms": _rounded(percentile(ok, 50)),
            "p95_ms": _rounded(percentile(ok, 95)),
            "p99_ms": _rounded(percentile(ok, 99)),
            "mean_ms": _rounded(sum(ok) / len(ok) if ok else None),
        }
    return out


def failures_by_code(samples: Iterable[Sample]) -> dict[str, int]:
    counts = Counter(s.failure for s in samples if s.failure is not None)
    return dict(sorted(counts.items()))


def time_series(
    samples: list[Sample], users: list[UsersPoint], every_s: float, duration_s: float
) -> list[dict[str, Any]]:
    """One point per ``every_s`` window, at its end: the users running then, the TTFT and turn
    p95 of the turns that ended in the window, its requests and failures."""
    if every_s <= 0:
        raise ValueError("every_s must be positive")
    windows = max(1, math.ceil(duration_s / every_s - 1e-9))
    points = []
    for index in range(windows):
        start, end = index * every_s, min((index + 1) * every_s, duration_s)
        last = index == windows - 1
        inside = [s for s in samples if start <= s.t_s < end or (last and s.t_s >= end)]
        running = [p.users for p in users if p.t_s <= end]
        ttft = [s.response_time_ms for s in inside if s.name == TTFT and s.failure is None]
        turn = [s.response_time_ms for s in inside if s.name == TURN and s.failure is None]
        points.append(
            {
                "t_s": round(end, 1),
                "users": running[-1] if running else 0,
                "ttft_ms_p95": _rounded(percentile(ttft, 95)),
                "turn_ms_p95": _rounded(percentile(turn, 95)),
                "turns": len(turn),
                "requests": len(inside),
                "failures": sum(1 for s in inside if s.failure is not None),
            }
        )
    return points


def build_report(
    samples: list[Sample], users: list[UsersPoint], duration_s: float, every_s: float
) -> dict[str, Any]:
    turns = [s for s in samples if s.name == TURN and s.failure is None]
    output_tokens = sum(s.output_tokens for s in turns)
    return {
        "duration_s": round(duration_s, 1),
        "peak_users": max((p.users for p in users), default=0),
        "requests": per_name(samples),
        "failures": sum(1 for s in samples if s.failure is not None),
        "failures_by_code": failures_by_code(samples),
        # Per request name as well: the same code on a turn and on an HTTP route differ.
        "failures_by_name": {
            name: failures_by_code(s for s in samples if s.name == name)
            for name in sorted({s.name for s in samples if s.failure is not None})
        },
        "turns": len(turns),
        "turns_per_s": round(len(turns) / duration_s, 3) if duration_s > 0 else None,
        "output_tokens": output_tokens,
        "output_tokens_per_s": round(output_tokens / duration_s, 2) if duration_s > 0 else None,
        "time_series": time_series(samples, users, every_s, duration_s),
        "sessions": session_outcomes(samples),
    }


def session_outcomes(samples: Iterable[Sample]) -> list[dict[str, Any]]:
    """Each training session's turns, without its id: its slowest first token and the codes
    its turns failed with (what goodput counts against an SLO)."""
    by_session: dict[str, dict[str, Any]] = {}
    for sample in samples:
        if sample.session is None or sample.name not in (TTFT, TURN):
            continue
        outcome = by_session.setdefault(sample.session, {"ttft_max_ms": None, "failures": []})
        if sample.failure is not None:
            outcome["failures"].append(sample.failure)
        elif sample.name == TTFT:
            slowest = outcome["ttft_max_ms"]
            outcome["ttft_max_ms"] = max(slowest or 0.0, sample.response_time_ms)
    return list(by_session.values())


def goodput_sessions(outcomes: Iterable[dict[str, Any]], slo_ttft_ms: float) -> int:
    """Sessions whose every turn met the SLO (goodput in the DistServe sense): a first token
    within ``slo_ttft_ms`` for each, and no failure but the exempt ones."""
    return sum(
        1
        for o in outcomes
        if o["ttft_max_ms"] is not None
        and o["ttft_max_ms"] <= slo_ttft_ms
        and all(code in SLO_EXEMPT for code in o["failures"])
    )


# Failures that do not break the SLO: the product refusing load it was told to refuse.
SLO_EXEMPT = frozenset({"rate_limited"})


def capacity_level(sessions: int, report: dict[str, Any], slo_ttft_p95_ms: float) -> dict[str, Any]:
    """One level of the capacity search: whether ``sessions`` concurrent trainee sessions
    held the SLO (TTFT p95 at most ``slo_ttft_p95_ms`` and no failure other than
    ``rate_limited``), and why not."""
    ttft = report["requests"].get(TTFT, {})
    turn = report["requests"].get(TURN, {})
    breaking = {c: n for c, n in report["failures_by_code"].items() if c not in SLO_EXEMPT}
    p95 = ttft.get("p95_ms")
    if p95 is None:
        held, why = False, "no turn answered"
    elif breaking:
        held, why = False, f"failures {breaking}"
    elif p95 > slo_ttft_p95_ms:
        held, why = False, f"TTFT p95 {p95} ms over {slo_ttft_p95_ms:g} ms"
    else:
        held, why = True, "held"
    return {
        "sessions": sessions,
        "held": held,
        "why": why,
        "ttft_ms_p50": ttft.get("p50_ms"),
        "ttft_ms_p95": p95,
        "ttft_ms_p99": ttft.get("p99_ms"),
        "turn_ms_p95": turn.get("p95_ms"),
        "turns": report.get("turns"),
        "turns_per_s": report.get("turns_per_s"),
        "output_tokens_per_s": report.get("output_tokens_per_s"),
        "failures_by_code": report["failures_by_code"],
        # Sessions with turns in the level, and those whose every turn met the SLO.
        "sessions_measured": len(report.get("sessions", [])),
        "goodput_sessions": goodput_sessions(report.get("sessions", []), slo_ttft_p95_ms),
    }


# A refusal by admission control: what overload is meant to give newcomers, not a failure.
REFUSED = {"http_503", "overloaded"}


def surge_summary(
    report: dict[str, Any],
    *,
    surge_from_s: float,
    surge_until_s: float,
    slo_ttft_p95_ms: float,
    measured_from_s: float = 0.0,
) -> dict[str, Any]:
    """What a surge did, from a run's time series: the TTFT p95 of the turns answered before,
    during and after it, the refusals (503 / ``overloaded``) and the other failures, and how
    long after its end the windows stayed within the SLO (``recovery_s``: from the surge's
    end to the first window from which on every window with turns held the SLO)."""
    series = report["time_series"]
    every = series[1]["t_s"] - series[0]["t_s"] if len(series) > 1 else 0

    def phase(first: float, last: float) -> list[dict[str, Any]]:
        return [p for p in series if first < p["t_s"] <= last]

    def worst(points: list[dict[str, Any]]) -> float | None:
        values = [p["ttft_ms_p95"] for p in points if p["ttft_ms_p95"] is not None]
        return max(values) if values else None

    after = phase(surge_until_s, float("inf"))
    recovered_at = None
    for index, point in enumerate(after):
        rest = [p for p in after[index:] if p["ttft_ms_p95"] is not None]
        if rest and all(p["ttft_ms_p95"] <= slo_ttft_p95_ms for p in rest):
            recovered_at = point["t_s"] - every  # the window's start
            break
    failures = report["failures_by_code"]
    return {
        "slo_ttft_p95_ms": slo_ttft_p95_ms,
        "ttft_p95_ms_worst_window": {
            "before": worst(phase(measured_from_s, surge_from_s)),
            "during": worst(phase(surge_from_s, surge_until_s)),
            "after": worst(after),
        },
        "refused": sum(n for code, n in failures.items() if code in REFUSED),
        "other_failures": {c: n for c, n in failures.items() if c not in REFUSED | SLO_EXEMPT},
        "recovery_s": (
            None if recovered_at is None else round(max(0.0, recovered_at - surge_until_s), 1)
        ),
    }


def plot_capacity(result: dict[str, Any], path: Path) -> None:
    """The capacity curve: TTFT p50 and p95 per level against the SLO, and each level's
    sessions against its goodput sessions; the capacity marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    levels = result["levels"]
    sessions = [level["sessions"] for level in levels]
    figure, (latency, goodput) = plt.subplots(1, 2, figsize=(11, 3.8))
    for key, label in (("ttft_ms_p50", "TTFT p50"), ("ttft_ms_p95", "TTFT p95")):
        latency.plot(sessions, [level[key] for level in levels], marker="o", label=label)
    latency.axhline(result["slo"]["ttft_p95_ms"], color="grey", linestyle=":", label="SLO (p95)")
    latency.set_xlabel("concurrent trainee sessions")
    latency.set_ylabel("ms")
    latency.set_title(f"capacity: {result['capacity_sessions']} sessions")
    latency.legend()
    goodput.plot(sessions, sessions, color="grey", linestyle=":", label="sessions")
    goodput.plot(
        sessions,
        [level.get("goodput_sessions") for level in levels],
        marker="o",
        label="sessions with every turn in the SLO",
    )
    goodput.set_xlabel("concurrent trainee sessions")
    goodput.set_ylabel("sessions")
    goodput.set_title("goodput")
    goodput.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
