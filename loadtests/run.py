"""One headless locust run in this process (``Environment`` and ``LocalRunner``), and the
report: ``python -m loadtests.run --url URL --profile P ... --json FILE [--html FILE]``.

``salesboost loadtest`` starts this as a child process (after starting a stack, unless given
``--url``): importing locust monkey-patches the standard library with gevent, which the
process that drives Ray must never have.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import gevent
import gevent.event
from locust.env import Environment
from locust.exception import CatchResponseError
from locust.html import get_html_report
from locust.stats import stats_history

from loadtests.profile import Profile, load_profile
from loadtests.report import Sample, UsersPoint, build_report
from loadtests.users import DRAIN, WSFailure, user_classes

QUIT_TIMEOUT_S = 10


def failure_code(exception: BaseException | None) -> str | None:
    """What the report counts a failure as: the server's code (an ``error`` event's, an HTTP
    error body's), or the kind of exception for anything else (a refused connection)."""
    if exception is None:
        return None
    if isinstance(exception, WSFailure | CatchResponseError):
        return str(exception)[:80] or type(exception).__name__
    return type(exception).__name__


def run_load(
    url: str,
    profile: Profile,
    *,
    users: int,
    spawn_rate: float,
    run_time_s: float,
    html: Path | None = None,
    stages: list[tuple[float, int]] | None = None,
) -> dict[str, Any]:
    """``users`` from the start; ``stages``: (seconds from the start, users) changes after it,
    each spawned or stopped at ``spawn_rate`` (a surge and its end)."""
    environment = Environment(user_classes=user_classes(profile), host=url)
    samples: list[Sample] = []
    points: list[UsersPoint] = []
    started = time.monotonic()

    def record(
        request_type: str,
        name: str,
        response_time: float,
        exception: BaseException | None = None,
        context: dict[str, Any] | None = None,
        **_: Any,
    ) -> None:
        samples.append(
            Sample(
                t_s=time.monotonic() - started,
                request_type=request_type,
                name=name,
                response_time_ms=float(response_time),
                failure=failure_code(exception),
                output_tokens=int((context or {}).get("output_tokens") or 0),
                session=(context or {}).get("session"),
            )
        )

    environment.events.request.add_listener(record)
    runner = environment.create_local_runner()

    def count_users() -> None:
        # Finer than the report's windows, so that each window's last reading is fresh.
        while True:
            points.append(UsersPoint(time.monotonic() - started, runner.user_count))
            gevent.sleep(min(1.0, profile.report_every_s))

    watchers = [gevent.spawn(stats_history, runner), gevent.spawn(count_users)]

    finished = gevent.event.Event()

    def stop() -> None:
        # No new turns after the run time; the turns in flight finish (at most one reply
        # timeout), so that every ttft has its turn.
        DRAIN.stopping.set()
        deadline = time.monotonic() + profile.trainee.reply_timeout_s
        while DRAIN.in_flight > 0 and time.monotonic() < deadline:
            gevent.sleep(0.1)
        # Bounded: a user killed while asleep between tasks was once seen not to die (locust
        # 2.47 joins it without a timeout); nothing is measured after this point anyway.
        gevent.spawn(runner.quit).join(timeout=QUIT_TIMEOUT_S)
        finished.set()

    runner.start(users, spawn_rate=spawn_rate)
    for at_s, count in stages or []:
        gevent.spawn_later(at_s, runner.start, count, spawn_rate)
    # The loop's clock is cached from its last turn (the imports ran before it): without
    # this, the run would stop that much early.
    gevent.get_hub().loop.update_now()
    gevent.spawn_later(run_time_s, stop)
    # Not runner.greenlet.join(): that group can empty (and return) before the run time.
    finished.wait()
    duration_s = time.monotonic() - started
    gevent.killall(watchers)
    report = build_report(samples, points, duration_s, profile.report_every_s)
    report["config"] = {
        "url": url,
        "profile": profile.model_dump(),
        "users": users,
        "spawn_rate": spawn_rate,
        "run_time_s": run_time_s,
        "stages": [list(stage) for stage in stages or []],
    }
    if html is not None:
        html.parent.mkdir(parents=True, exist_ok=True)
        html.write_text(get_html_report(environment, show_download_link=False))
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--profile", default="default")
    parser.add_argument("--users", type=int)
    parser.add_argument("--spawn-rate", type=float)
    parser.add_argument("--run-time", type=float, help="seconds")
    parser.add_argument("--json", type=Path, required=True)
    parser.add_argument("--html", type=Path)
    parser.add_argument(
        "--stage",
        action="append",
        default=[],
        metavar="AT_S:USERS",
        help="from AT_S seconds on, USERS users (repeatable)",
    )
    args = parser.parse_args(argv)
    stages = [(float(at), int(count)) for at, count in (s.split(":") for s in args.stage)]
    profile = load_profile(args.profile)
    report = run_load(
        args.url.rstrip("/"),
        profile,
        users=args.users or profile.ramp.users,
        spawn_rate=args.spawn_rate or profile.ramp.spawn_rate,
        run_time_s=args.run_time or profile.ramp.run_time_s,
        html=args.html,
        stages=stages,
    )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
