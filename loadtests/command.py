"""``salesboost loadtest``: validate the profile, start a stack unless given ``--url``, run
locust in a child process (``loadtests/run.py``), and add what only this process sees: the
CPU (``meta``), and, for a stack it started, Serve's replicas and each process's CPU over
time.

Locust runs in a child because importing it monkey-patches the standard library with
gevent, and this process may be Ray's driver (the stack it started).
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from loadtests.profile import Profile, load_profile, resolve_profile_path
from loadtests.report import capacity_level
from serve_apps.settings import Settings

Progress = Callable[[str], None]
REPO = Path(__file__).resolve().parents[1]
# module → the distribution that provides it (both in the `load` extra).
NEEDED = {"locust": "locust", "websocket": "websocket-client"}
WARM_UP_S = 30  # capacity: an unmeasured run before the first level


class LoadTestError(Exception):
    """Something to tell the user before (or instead of) a run: a missing dependency, a bad
    profile, a load test that did not finish."""


def missing_dependencies() -> list[str]:
    return [dist for module, dist in NEEDED.items() if importlib.util.find_spec(module) is None]


def check_ready(profile_name: str) -> Profile:
    """The profile, once locust and websocket-client import and the profile validates."""
    missing = missing_dependencies()
    if missing:
        raise LoadTestError(
            f"salesboost loadtest needs {' and '.join(missing)} (the load extra): "
            "`make install`, or `.venv/bin/pip install -e '.[load]'`"
        )
    try:
        return load_profile(profile_name)
    except (OSError, ValueError, yaml.YAMLError) as exc:  # ValidationError is a ValueError
        detail = str(exc) if not isinstance(exc, ValidationError) else f"\n{exc}"
        raise LoadTestError(f"profile {profile_name!r}: {detail}") from None


class Monitor:
    """Readings every ``every_s`` in a thread: Serve's RUNNING replicas per deployment (when
    this process is the stack's driver) and the CPU of the machine's busiest processes."""

    def __init__(self, every_s: float, serve: bool) -> None:
        self.every_s = every_s
        self.serve = serve
        self.replicas: list[dict[str, Any]] = []
        self.cpu: list[dict[str, Any]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="loadtest-monitor", daemon=True)
        self._started = 0.0

    def __enter__(self) -> Monitor:
        self._started = time.monotonic()
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        import psutil

        processes: dict[int, psutil.Process] = {}
        while not self._stop.wait(self.every_s):
            t_s = round(time.monotonic() - self._started, 1)
            self.cpu.append({"t_s": t_s, "processes": _cpu_by_process(processes)})
            if self.serve:
                try:
                    self.replicas.append({"t_s": t_s, **_running_replicas()})
                except Exception as exc:  # a reading that failed is a gap, not a failed run
                    self.replicas.append({"t_s": t_s, "error": str(exc)[:200]})


def _cpu_by_process(seen: dict[int, Any], top: int = 8) -> dict[str, float]:
    """CPU % since the last reading of the busiest processes, named by their title (Ray's
    workers set theirs: ``ray::ServeReplica:salesboost:Gateway``)."""
    import psutil

    usage: dict[str, float] = {}
    alive = set()
    for process in psutil.process_iter(["pid"]):
        pid = process.info["pid"]
        alive.add(pid)
        process = seen.setdefault(pid, process)
        try:
            percent = process.cpu_percent(None)  # the first reading of a process is 0
            title = " ".join(process.cmdline()[:2])[:80] or process.name()
        except (psutil.Error, OSError):
            continue
        if percent > 0:
            label = f"{title} [{pid}]"
            usage[label] = round(percent, 1)
    for pid in set(seen) - alive:
        del seen[pid]
    return dict(sorted(usage.items(), key=lambda kv: -kv[1])[:top])


def _running_replicas() -> dict[str, Any]:
    from cluster.local import cluster_report

    report = cluster_report()
    return {
        "replicas": {
            name: sum(1 for r in d["replicas"] if "RUNNING" in r["state"])
            for name, d in report["deployments"].items()
        }
    }


def _child_env() -> dict[str, str]:
    """The environment of the locust process: it imports this checkout's code, installed or
    not."""
    paths = (str(REPO), os.environ.get("PYTHONPATH", ""))
    return {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in paths if p)}


def _locust(
    base_url: str,
    profile_path: Path,
    *,
    users: int,
    spawn_rate: float,
    run_time_s: float,
    json_path: Path,
    html: Path | None = None,
    stages: list[tuple[float, int]] | None = None,
) -> dict[str, Any]:
    """One locust run in a child process; its report."""
    command = [
        sys.executable,
        "-m",
        "loadtests.run",
        f"--url={base_url}",
        f"--profile={profile_path.resolve()}",
        f"--users={users}",
        f"--spawn-rate={spawn_rate}",
        f"--run-time={run_time_s}",
        f"--json={json_path.resolve()}",
    ] + ([f"--html={html.resolve()}"] if html is not None else [])
    command += [f"--stage={at_s}:{count}" for at_s, count in stages or []]
    finished = subprocess.run(command, env=_child_env(), check=False)
    if finished.returncode != 0:
        raise LoadTestError(f"the locust run exited with {finished.returncode}")
    return json.loads(json_path.read_text())


def _stack_settings(settings: Settings) -> Settings:
    # With development sign-in every trainee is the one demo trainee from this one address:
    # the per-user and per-address limits would refuse a crowd that, signed in one by one,
    # they let through. A stack given with --url keeps its own limits.
    return settings.model_copy(
        update={"rate_limit_ip_per_min": 100_000, "rate_limit_user_per_min": 100_000}
    )


def _meta(url: str | None, profile: Profile, started_at: str) -> dict[str, Any]:
    from loadtests.bench.turn import engine_meta

    return {
        "started_at": started_at,
        "stack": url if url is not None else "started for the run",
        "cpu_count": os.cpu_count(),
        "max_tokens": profile.max_tokens if url is None else "the stack's own",
        **engine_meta(),
    }


def _prepare(json_path: Path) -> None:
    try:  # before a stack's start, not after the run
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.touch()
    except OSError as exc:
        raise LoadTestError(str(exc)) from None


def run_loadtest(
    settings: Settings,
    *,
    profile: str,
    users: int | None,
    spawn_rate: float | None,
    run_time_s: int | None,
    json_path: Path,
    html: Path | None,
    url: str | None,
    progress: Progress = print,
) -> dict[str, Any]:
    from loadtests.bench.turn import bench_stack

    chosen = check_ready(profile)
    users = users or chosen.ramp.users
    spawn_rate = spawn_rate or chosen.ramp.spawn_rate
    run_time_s = run_time_s or chosen.ramp.run_time_s
    _prepare(json_path)
    started_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    with bench_stack(
        _stack_settings(settings), url=url, max_tokens=chosen.max_tokens, progress=progress
    ) as base_url:
        progress(
            f"locust: {users} users ({chosen.name}), {spawn_rate}/s, {run_time_s} s "
            f"against {base_url}"
        )
        with Monitor(chosen.report_every_s, serve=url is None) as monitor:
            result = _locust(
                base_url,
                resolve_profile_path(profile),
                users=users,
                spawn_rate=spawn_rate,
                run_time_s=run_time_s,
                json_path=json_path,
                html=html,
            )
    if url is None:
        result["replicas"] = monitor.replicas
    result["cpu_by_process"] = monitor.cpu
    result["meta"] = _meta(url, chosen, started_at)
    json_path.write_text(json.dumps(result, indent=2))
    return result


def run_capacity(
    settings: Settings,
    *,
    profile: str,
    slo_ttft_p95_ms: float,
    levels: list[int],
    step_s: int,
    json_path: Path,
    url: str | None,
    progress: Progress = print,
) -> dict[str, Any]:
    """Step the number of concurrent trainee sessions up through ``levels`` (trainees only,
    with the profile's pacing) on one stack, each level a fresh run of ``step_s``, until the
    SLO breaks: the capacity is the largest level that held it, every level below included."""
    from loadtests.bench.turn import bench_stack

    chosen = check_ready(profile)
    if not levels or any(n < 1 for n in levels):
        raise LoadTestError("--levels: one or more numbers of sessions, each 1 or more")
    _prepare(json_path)
    trainees_only = chosen.model_copy(
        update={"users": chosen.users.model_copy(update={"manager": 0, "admin": 0, "knowledge": 0})}
    )
    if trainees_only.users.trainee == 0:
        raise LoadTestError(f"profile {chosen.name!r} has no trainees to step up")
    started_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    result: dict[str, Any] = {
        "capacity_sessions": 0,
        "slo": {"ttft_p95_ms": slo_ttft_p95_ms, "failures": "none but rate_limited"},
        "levels": [],
    }
    with tempfile.TemporaryDirectory(prefix="loadtest-capacity-") as tmp:
        profile_path = Path(tmp) / f"{chosen.name}-trainees.yaml"
        profile_path.write_text(yaml.safe_dump(trainees_only.model_dump()))
        with bench_stack(
            _stack_settings(settings), url=url, max_tokens=chosen.max_tokens, progress=progress
        ) as base_url:
            # A fresh engine's first turns are slow (8 s to a first token, where a warm one
            # takes 0.4 s on 2 cores): they would break the first level's SLO on their own.
            progress(f"capacity: warming up, {min(levels)} sessions for {WARM_UP_S} s")
            _locust(
                base_url,
                profile_path,
                users=min(levels),
                spawn_rate=min(levels),
                run_time_s=WARM_UP_S,
                json_path=Path(tmp) / "warm-up.json",
            )
            for sessions in sorted(set(levels)):
                progress(f"capacity: {sessions} trainee sessions for {step_s} s")
                report = _locust(
                    base_url,
                    profile_path,
                    users=sessions,
                    # Everyone in within a tenth of the step, so that most of it is at level.
                    spawn_rate=max(sessions / max(step_s * 0.1, 1), 0.1),
                    run_time_s=step_s,
                    json_path=Path(tmp) / f"level-{sessions}.json",
                )
                level = capacity_level(sessions, report, slo_ttft_p95_ms)
                result["levels"].append(level)
                progress(f"  {level}")
                if not level["held"]:
                    break
                result["capacity_sessions"] = sessions
    result["meta"] = {
        **_meta(url, chosen, started_at),
        "step_s": step_s,
        "warm_up_s": WARM_UP_S,
    }
    json_path.write_text(json.dumps(result, indent=2))
    return result


def run_surge(
    settings: Settings,
    *,
    profile: str,
    sessions: int,
    factor: float,
    before_s: int,
    surge_s: int,
    after_s: int,
    slo_ttft_p95_ms: float,
    json_path: Path,
    progress: Progress = print,
) -> dict[str, Any]:
    """Overload that degrades cleanly (issue 20): ``sessions`` trainees (what the deployment
    holds; admission control's limit is set to it), then ``factor`` times as many for
    ``surge_s``, then ``sessions`` again. The extra ones should be refused at once (503 /
    ``overloaded``) while the admitted conversations keep the SLO, with no other failure,
    and the windows after the surge back within it soon (``recovery_s``)."""
    from loadtests.bench.turn import bench_stack
    from loadtests.report import surge_summary

    chosen = check_ready(profile)
    if sessions < 1 or factor <= 1:
        raise LoadTestError("--sessions 1 or more and --factor over 1")
    _prepare(json_path)
    trainees_only = chosen.model_copy(
        update={"users": chosen.users.model_copy(update={"manager": 0, "admin": 0, "knowledge": 0})}
    )
    surge_users = max(sessions + 1, round(sessions * factor))
    surge_from, surge_until = float(WARM_UP_S + before_s), float(WARM_UP_S + before_s + surge_s)
    run_time_s = WARM_UP_S + before_s + surge_s + after_s
    started_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    stack_settings = _stack_settings(settings).model_copy(
        update={"max_live_conversations": sessions}
    )
    with tempfile.TemporaryDirectory(prefix="loadtest-surge-") as tmp:
        profile_path = Path(tmp) / f"{chosen.name}-trainees.yaml"
        profile_path.write_text(yaml.safe_dump(trainees_only.model_dump()))
        with bench_stack(
            stack_settings, url=None, max_tokens=chosen.max_tokens, progress=progress
        ) as base_url:
            progress(
                f"surge: {sessions} sessions (the admission limit), {surge_users} from "
                f"{surge_from:g} s to {surge_until:g} s, {run_time_s} s in all"
            )
            report = _locust(
                base_url,
                profile_path,
                users=sessions,
                # The surge arrives within a few seconds, as a class starting at once does.
                spawn_rate=max(float(surge_users - sessions) / 5, 1.0),
                run_time_s=run_time_s,
                json_path=Path(tmp) / "surge.json",
                stages=[(surge_from, surge_users), (surge_until, sessions)],
            )
    result = {
        "surge": surge_summary(
            report,
            surge_from_s=surge_from,
            surge_until_s=surge_until,
            slo_ttft_p95_ms=slo_ttft_p95_ms,
            measured_from_s=WARM_UP_S,  # a fresh engine's first turns are slow
        ),
        "sessions": sessions,
        "surge_sessions": surge_users,
        "phases_s": {
            "warm_up": [0, WARM_UP_S],
            "before": [WARM_UP_S, surge_from],
            "surge": [surge_from, surge_until],
            "after": [surge_until, run_time_s],
        },
        "failures_by_code": report["failures_by_code"],
        "requests": report["requests"],
        "time_series": report["time_series"],
        "meta": _meta(None, chosen, started_at),
    }
    json_path.write_text(json.dumps(result, indent=2))
    return result
