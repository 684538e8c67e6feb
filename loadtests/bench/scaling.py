"""``salesboost bench scaling``: the same step load of WebSocket conversations on a one-node
and on a two-node local Ray cluster (``salesboost up --nodes N``), with Serve autoscaling
the orchestrator and the gateway.

For each cluster size the bench starts the stack on a data directory of its own, lets it
settle at one replica per deployment, then opens every conversation at once (the step) and
holds them for their turns with reading time between turns. While they run and after, it
reads Serve's own view of the cluster every ``sample_s`` (the replicas of each deployment,
their state and their node, as ``salesboost cluster status`` shows them) until the scaled
deployments are back at one replica. It writes:

- per cluster size: TTFT p50/p95 and turn p50/p95 over every turn (a turn sent again is
  timed from its first send), turns per second, ``failed_turns`` (a turn that ended in an
  ``error`` event or a dropped socket; one told ``unavailable`` is sent again with its id,
  as the web app does, and counted in ``resent_turns``), ``scale_decided_s`` (from the step
  until Serve's target for every scaled deployment is two), ``scale_up_s`` (until each has a
  second replica RUNNING, which is when Serve routes to it), ``scale_down_s`` (from the end
  of the load until they are back at one), and the replicas over time;
- at the top: ``scale_up_s`` of the largest cluster, and ``failed_turns`` of all the runs
  (the goal: 0 while scaling).

On one machine the second node adds no cores: the point is the mechanism and what it costs
(how long a scale-up takes, whether a turn fails while replicas are added), not a speed-up.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from loadtests.bench.turn import (
    TurnSample,
    _percentile,
    engine_meta,
    think_time_s,
    timed_turn,
    trainee_line,
)
from serve_apps.settings import Settings

Progress = Callable[[str], None]

# The deployments a trainee's conversations load: one open WebSocket is one ongoing request
# at the gateway, one streaming turn one at the orchestrator.
SCALED = ("TrainingOrchestrator", "Gateway")


def scaling_autoscaling_config(max_replicas: int = 2) -> dict[str, Any]:
    """Targets a handful of conversations reach, with short delays, so that a step load on
    one machine scales within a minute or two and comes back down when quiet."""
    return {
        "min_replicas": 1,
        "max_replicas": max_replicas,
        "target_ongoing_requests": 1.5,
        "upscale_delay_s": 2,
        "downscale_delay_s": 10,
        "metrics_interval_s": 1,
        "look_back_period_s": 3,
    }


def write_scaling_serve_config(base: Path, out: Path) -> Path:
    """``base`` (the Serve config ``salesboost up`` deploys) with the scaled deployments'
    autoscaling from :func:`scaling_autoscaling_config`; everything else as it is."""
    config = yaml.safe_load(base.read_text())
    for deployment in config["applications"][0]["deployments"]:
        if deployment["name"] in SCALED:
            deployment["autoscaling_config"] = scaling_autoscaling_config()
    out.write_text(yaml.safe_dump(config))
    return out


@dataclass(frozen=True)
class ScalingBenchConfig:
    nodes: tuple[int, ...] = (1, 2)
    conversations: int = 6
    turns: int = 20
    think_ms: int = 1000
    max_tokens: int = 24
    scenario: str = "crm-discovery-call"
    sample_s: float = 2.0
    settle_timeout_s: float = 180
    scale_down_timeout_s: float = 180


# Errors a client answers by sending the turn again (same client_turn_id) after the wait the
# event names, as the web app does; a turn is failed only when it still fails after these.
RETRIED_CODES = ("unavailable", "reply_in_progress")
MAX_SENDS = 4


@dataclass
class ConversationOutcome:
    samples: list[TurnSample]
    failed: list[str]  # the error code (or exception) of each turn that did not complete
    resent: int = 0  # turns sent again (once or more) after ``unavailable``/``reply_in_progress``


async def step_conversation(
    base_url: str,
    scenario: str,
    turns: int,
    script: int,
    think_ms: int,
    stop: asyncio.Event | None = None,
) -> ConversationOutcome:
    """One trainee's conversation of the step: every turn counted, none allowed to stop the
    others (a failure is recorded, and the conversation goes on with its next turn). With
    ``stop``, it sends no more turns once that is set."""
    import httpx
    import websockets

    from serve_apps.contracts.wire import ws_url

    outcome = ConversationOutcome([], [])
    index = 0
    try:
        async with httpx.AsyncClient(base_url=base_url, timeout=60) as client:
            response = await client.post(
                "/v1/sessions", json={"scenario": scenario, "mode": "conversation"}
            )
            response.raise_for_status()
            session_id = response.json()["id"]
        url = ws_url(base_url, f"/v1/sessions/{session_id}/stream")
        async with websockets.connect(url) as ws:
            for index in range(turns):
                if stop is not None and stop.is_set():
                    break
                await asyncio.sleep(think_time_s(script, index + 1, think_ms))
                text, turn_id, first_sent = trainee_line(script, index), uuid.uuid4().hex, None
                for send in range(MAX_SENDS):
                    first_sent = first_sent or time.perf_counter()
                    sample, event = await timed_turn(ws, text, turn_id, first_sent)
                    if sample is not None or event.get("code") not in RETRIED_CODES:
                        break
                    if send < MAX_SENDS - 1:
                        outcome.resent += send == 0
                        await asyncio.sleep(event.get("retry_after_s") or 1)
                if sample is None:
                    outcome.failed.append(str(event.get("code")))
                else:
                    outcome.samples.append(sample)
            index = turns
    except Exception as exc:  # a refused session or a dropped socket: its turns failed
        # The turn in flight, and those it would still have sent.
        lost = 1 if stop is not None else turns - index
        outcome.failed += [f"{type(exc).__name__}: {exc}"[:160]] * lost
    return outcome


def replica_counts(report: dict[str, Any]) -> dict[str, Any]:
    """Serve's view at one moment: per scaled deployment, the replicas RUNNING (the ones
    Serve routes to), the nodes they run on, and the replicas Serve has decided on."""
    counts: dict[str, Any] = {}
    for deployment in SCALED:
        entries = [
            d for name, d in report["deployments"].items() if name.endswith(f"/{deployment}")
        ]
        running = [r for d in entries for r in d["replicas"] if "RUNNING" in r["state"]]
        counts[deployment] = len(running)
        counts[f"{deployment}_nodes"] = sorted({str(r["node"]) for r in running})
        counts[f"{deployment}_target"] = sum(d.get("target_replicas") or 0 for d in entries)
    return counts


def settled(counts: dict[str, Any]) -> bool:
    return all(counts[d] == 1 for d in SCALED)


def _first_time_all(timeline: list[dict[str, Any]], reached: Callable[[dict, str], bool]):
    """When every scaled deployment had reached something, each at its own first sample
    (the later of those times), or None if one never did."""
    firsts = [next((s["t_s"] for s in timeline if reached(s, d)), None) for d in SCALED]
    known = [t for t in firsts if t is not None]
    return max(known) if len(known) == len(firsts) else None


def summarize_run(
    outcomes: list[ConversationOutcome], timeline: list[dict[str, Any]], load_s: float
) -> dict[str, Any]:
    """One cluster size's figures from its conversations and its replica counts over time
    (``t_s`` from the step, when each count was read; the load ended ``load_s`` after it)."""
    samples = [s for o in outcomes for s in o.samples]
    failed = [code for o in outcomes for code in o.failed]
    ttft = [s.ttft_s * 1000 for s in samples]
    turn = [s.turn_s * 1000 for s in samples]
    up = _first_time_all(timeline, lambda s, d: s[d] >= 2)
    decided = _first_time_all(timeline, lambda s, d: s.get(f"{d}_target", 0) >= 2)
    down = None
    if up is not None:
        down = next(
            (s["t_s"] - load_s for s in timeline if s["t_s"] >= load_s and settled(s)), None
        )
    failures: dict[str, int] = {}
    for code in failed:
        failures[code] = failures.get(code, 0) + 1

    def rounded(value: float | None, digits: int = 1) -> float | None:
        return None if value is None else round(value, digits)

    return {
        "turns": len(samples),
        "failed_turns": len(failed),
        "failures_by_code": failures,
        "resent_turns": sum(o.resent for o in outcomes),
        "ttft_ms_p50": rounded(_percentile(ttft, 50) if ttft else None),
        "ttft_ms_p95": rounded(_percentile(ttft, 95) if ttft else None),
        "turn_ms_p50": rounded(_percentile(turn, 50) if turn else None),
        "turn_ms_p95": rounded(_percentile(turn, 95) if turn else None),
        "turns_per_s": round(len(samples) / load_s, 3) if load_s > 0 else None,
        "load_s": round(load_s, 1),
        "scale_decided_s": rounded(decided),
        "scale_up_s": rounded(up),
        "scale_down_s": rounded(down),
        "max_replicas": {d: max((s[d] for s in timeline), default=0) for d in SCALED},
        "nodes_hosting_scaled": sorted(
            {n for s in timeline for d in SCALED for n in s[f"{d}_nodes"]}
        ),
        "replicas": [{**s, "t_s": round(s["t_s"], 2)} for s in timeline],
    }


async def _step_load(
    base_url: str, config: ScalingBenchConfig, read_counts: Callable[[], dict[str, Any]]
) -> dict[str, Any]:
    timeline: list[dict[str, Any]] = []
    step = time.monotonic()
    pending = {
        asyncio.create_task(
            step_conversation(base_url, config.scenario, config.turns, script, config.think_ms)
        )
        for script in range(config.conversations)
    }
    loads = list(pending)

    async def record() -> dict[str, Any]:
        counts = await asyncio.to_thread(read_counts)
        entry = {"t_s": time.monotonic() - step, **counts}  # when it was read
        timeline.append(entry)
        return entry

    while pending:
        await record()
        _, pending = await asyncio.wait(pending, timeout=config.sample_s)
    load_s = time.monotonic() - step
    outcomes = [task.result() for task in loads]
    quiet_until = time.monotonic() + config.scale_down_timeout_s
    while time.monotonic() < quiet_until:  # until back at one replica each
        if settled(await record()):
            break
        await asyncio.sleep(config.sample_s)
    return summarize_run(outcomes, timeline, load_s)


def _wait_settled(read_counts: Callable[[], dict[str, Any]], timeout_s: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    counts = read_counts()
    while not settled(counts):
        if time.monotonic() > deadline:
            raise TimeoutError(f"not at one replica each {timeout_s:.0f} s after start: {counts}")
        time.sleep(2)
        counts = read_counts()
    return counts


def run_one_cluster(
    nodes: int, config: ScalingBenchConfig, settings: Settings, progress: Progress
) -> dict[str, Any]:
    from cluster.local import cluster_report
    from cluster.local_stack import Stack

    data_dir = Path(tempfile.mkdtemp(prefix=f"bench-scaling-{nodes}-"))
    try:
        serve_config = write_scaling_serve_config(
            settings.serve_config, data_dir / "serve_scaling.yaml"
        )
        bench_settings = settings.model_copy(
            update={
                "data_dir": data_dir / "data",
                "models_dir_override": settings.models_dir,
                "serve_config": serve_config,
                "npc_max_tokens": config.max_tokens,
                # The step is many conversations from one address and one user.
                "rate_limit_ip_per_min": 100_000,
                "rate_limit_user_per_min": 100_000,
                "rate_limit_tenant_per_min": 100_000,
            }
        )
        with Stack(bench_settings, progress=progress, nodes=nodes) as stack:
            stack.start()

            def read_counts() -> dict[str, Any]:
                return replica_counts(cluster_report())

            before = _wait_settled(read_counts, config.settle_timeout_s)
            progress(f"{nodes} node(s): step of {config.conversations} conversations ({before})")
            result = asyncio.run(_step_load(stack.base_url, config, read_counts))
            result["nodes"] = [n["name"] for n in cluster_report()["nodes"] if n["alive"]]
            return result
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


def run_scaling_bench(
    config: ScalingBenchConfig, settings: Settings, progress: Progress = print
) -> dict[str, Any]:
    results: dict[str, Any] = {
        "meta": {
            "conversations": config.conversations,
            "turns_per_conversation": config.turns,
            "think_ms": config.think_ms,
            "max_tokens": config.max_tokens,
            "sample_s": config.sample_s,
            "scaled_deployments": list(SCALED),
            "autoscaling_config": scaling_autoscaling_config(),
            "ray_num_cpus": settings.ray_num_cpus,
            "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            **engine_meta(),
        }
    }
    for nodes in config.nodes:
        progress(f"--- {nodes} node(s)")
        run = run_one_cluster(nodes, config, settings, progress)
        results[f"nodes_{nodes}"] = run
        progress(
            f"  scale_up_s {run['scale_up_s']}, failed_turns {run['failed_turns']}, "
            f"TTFT p50/p95 {run['ttft_ms_p50']}/{run['ttft_ms_p95']} ms, "
            f"{run['turns_per_s']} turns/s"
        )
    multi = max(config.nodes)
    results["scale_up_s"] = results[f"nodes_{multi}"]["scale_up_s"]
    results["failed_turns"] = sum(results[f"nodes_{n}"]["failed_turns"] for n in config.nodes)
    return results


def plot(results: dict[str, Any], path: Path) -> None:
    """Replicas of each scaled deployment over time, one panel per cluster size."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = [k for k in results if k.startswith("nodes_")]
    figure, axes = plt.subplots(1, len(runs), figsize=(6 * len(runs), 3.5), squeeze=False)
    for axis, key in zip(axes[0], runs, strict=True):
        timeline = results[key]["replicas"]
        for deployment in SCALED:
            axis.step(
                [s["t_s"] for s in timeline],
                [s[deployment] for s in timeline],
                where="post",
                label=deployment,
            )
        axis.axvline(results[key]["load_s"], color="grey", linestyle=":", label="load ends")
        axis.set_title(
            f"{key.removeprefix('nodes_')} node(s): up in {results[key]['scale_up_s']} s, "
            f"{results[key]['failed_turns']} failed turns"
        )
        axis.set_xlabel("seconds from the step")
        axis.set_ylabel("RUNNING replicas")
        axis.set_yticks(range(0, 1 + max(results[key]["max_replicas"].values(), default=1)))
        axis.legend(loc="lower center")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
