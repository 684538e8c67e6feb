"""``salesboost loadtest`` on the session's stack: a short locust run of a few users (issue
20). It checks the report's fields, that every answered turn gave one ``ttft`` and one
``turn`` event, and that a turn refused with an ``error`` event (a message over
SALESBOOST_MAX_MESSAGE_CHARS: ``message_too_long``) is counted as a failure under its code.
No timing is asserted: the run shares two cores with the stack.

The command runs as a subprocess, as a user runs it: locust monkey-patches the standard
library with gevent on import, which this process (the stack's Ray driver) must not have.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
OVERSIZE = 2500  # over the test stack's 1,984 characters, under its 8,192-byte frame limit


def test_a_short_load_test_counts_turns_and_failures_by_code(base_url: str, tmp_path: Path):
    profile = tmp_path / "short.yaml"
    profile.write_text(
        yaml.safe_dump(
            {
                "seed": 7,
                "users": {"trainee": 3, "manager": 1, "admin": 1, "knowledge": 1},
                "think": {"min_s": 1, "max_s": 3},
                "trainee": {
                    "mode": "conversation",  # the persona alone: a short test
                    "turns_per_session": 3,
                    # Invited trainees sign in with a password and open the WebSocket with a
                    # ticket (the web app's path); development headers are the default.
                    "sign_in": "invite",
                    "oversize_turn_chars": OVERSIZE,
                    "reply_timeout_s": 120,
                },
                "report_every_s": 5,
            }
        )
    )
    report_path, html_path = tmp_path / "load.json", tmp_path / "load.html"
    finished = subprocess.run(
        [
            sys.executable,
            "-c",
            "from serve_apps.cli import app; app()",  # what the salesboost script runs
            "loadtest",
            f"--url={base_url}",
            f"--profile={profile}",
            "--users=6",
            "--spawn-rate=6",
            "--run-time=20",
            f"--json={report_path}",
            f"--html={html_path}",
        ],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert finished.returncode == 0, finished.stdout[-3000:] + finished.stderr[-3000:]
    report = json.loads(report_path.read_text())

    for field in (
        "requests",
        "failures_by_code",
        "failures_by_name",
        "turns_per_s",
        "output_tokens_per_s",
        "time_series",
        "meta",
        "config",
        "cpu_by_process",
    ):
        assert field in report, field
    assert report["meta"]["cpu"], report["meta"]
    requests = report["requests"]
    for name in ("connect", "ttft", "turn"):
        stats = requests[name]
        assert stats["type"] == "WS"
        assert set(stats) >= {"count", "failures", "p50_ms", "p95_ms", "p99_ms"}

    # Every turn that was answered gave one ttft and one turn (the run drains its turns in
    # flight before it stops the users, so none is cut between the two).
    assert requests["turn"]["count"] >= 1, requests
    assert requests["ttft"]["count"] == requests["turn"]["count"], requests
    assert requests["ttft"]["failures"] == 0
    assert report["turns"] == requests["turn"]["count"]
    assert report["output_tokens"] > 0 and report["output_tokens_per_s"] > 0

    # Each session's oversized first turn: an error event, counted under its code, and the
    # only kind of failure in the run.
    assert report["failures_by_name"]["turn"].get("message_too_long", 0) >= 1, report
    assert set(report["failures_by_code"]) == {"message_too_long"}, report["failures_by_code"]
    assert requests["turn"]["failures"] == report["failures_by_code"]["message_too_long"]
    # Goodput counts by session: every trainee turn is its session's, each session had its
    # oversized turn refused and at least one answered.
    sessions = report["sessions"]
    assert sessions and len(sessions) <= requests["turn"]["count"]
    assert (
        sum(o["failures"].count("message_too_long") for o in sessions)
        == (report["failures_by_code"]["message_too_long"])
    )
    assert all(o["ttft_max_ms"] is None or o["ttft_max_ms"] > 0 for o in sessions)

    # The product's sign-in path was taken: invitation, password, ticket.
    for name in ("POST /v1/auth/login", "POST /v1/auth/ws-ticket", "POST /v1/sessions"):
        assert requests[name]["count"] >= 1 and requests[name]["failures"] == 0, name

    points = report["time_series"]
    assert points and all(
        set(p) >= {"t_s", "users", "ttft_ms_p95", "turn_ms_p95", "failures"} for p in points
    )
    assert max(p["users"] for p in points) >= 1
    assert "locust" in html_path.read_text().lower()
