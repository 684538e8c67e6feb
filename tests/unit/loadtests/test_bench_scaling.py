"""The scaling bench's arithmetic on fixed samples (unit: no cluster; the bench itself runs
on real local Ray clusters)."""

import json
from pathlib import Path

import yaml

from loadtests.bench.scaling import (
    SCALED,
    ConversationOutcome,
    replica_counts,
    summarize_run,
    write_scaling_serve_config,
)
from loadtests.bench.turn import TurnSample, timed_turn

REPO = Path(__file__).resolve().parents[3]


def _report(gateway: list[tuple[str, str]], orchestrator: list[tuple[str, str]]) -> dict:
    """A ``cluster_report()``-shaped dict: (state, node) per replica."""

    def replicas(pairs):
        return [{"replica_id": str(i), "state": s, "node": n} for i, (s, n) in enumerate(pairs)]

    return {
        "nodes": [],
        "deployments": {
            "salesboost/Gateway": {"replicas": replicas(gateway)},
            "salesboost/TrainingOrchestrator": {"replicas": replicas(orchestrator)},
            "salesboost/Embedder": {"replicas": replicas([("RUNNING", "head")] * 3)},
        },
    }


def test_only_running_replicas_of_the_scaled_deployments_count():
    sample = replica_counts(
        _report(
            [("ReplicaState.RUNNING", "head"), ("ReplicaState.STARTING", "worker-1")],
            [("ReplicaState.RUNNING", "head"), ("ReplicaState.RUNNING", "worker-1")],
        )
    )
    assert sample["Gateway"] == 1 and sample["Gateway_nodes"] == ["head"]
    assert sample["TrainingOrchestrator"] == 2
    assert sample["TrainingOrchestrator_nodes"] == ["head", "worker-1"]
    assert "Embedder" not in sample


def _sample(t: float, gateway: int, orchestrator: int, target: int | None = None) -> dict:
    return {
        "t_s": t,
        "Gateway": gateway,
        "Gateway_nodes": ["head"],
        "Gateway_target": target if target is not None else gateway,
        "TrainingOrchestrator": orchestrator,
        "TrainingOrchestrator_nodes": ["head", "worker-1"][:orchestrator],
        "TrainingOrchestrator_target": target if target is not None else orchestrator,
    }


def test_scale_up_is_when_every_scaled_deployment_has_two_and_down_counts_from_the_load_end():
    timeline = [
        _sample(0, 1, 1),
        _sample(1, 1, 1, target=2),  # Serve has decided; nothing new runs yet
        _sample(2, 1, 2),  # the orchestrator alone: not yet scaled up
        _sample(4, 2, 2),
        _sample(30, 2, 2),  # the load ends at 30 s
        _sample(36, 1, 2),
        _sample(42.04, 1, 1),
    ]
    outcomes = [
        ConversationOutcome(
            [TurnSample(0, 0.5, 1.0, 10), TurnSample(5, 1.5, 2.0, 10)], failed=["overloaded"]
        ),
        ConversationOutcome([TurnSample(1, 1.0, 1.5, 10)], failed=[]),
    ]
    run = summarize_run(outcomes, timeline, load_s=30)
    assert run["scale_decided_s"] == 1
    assert run["scale_up_s"] == 4
    assert run["scale_down_s"] == 12
    assert run["turns"] == 3 and run["failed_turns"] == 1
    assert run["failures_by_code"] == {"overloaded": 1}
    assert run["ttft_ms_p50"] == 1000
    assert run["turns_per_s"] == 0.1
    assert run["max_replicas"] == {"TrainingOrchestrator": 2, "Gateway": 2}
    assert run["nodes_hosting_scaled"] == ["head", "worker-1"]


def test_a_run_that_never_scales_says_so():
    run = summarize_run(
        [ConversationOutcome([], ["ConnectionClosed"])], [_sample(0, 1, 1), _sample(12, 1, 1)], 10
    )
    assert run["scale_up_s"] is None and run["ttft_ms_p50"] is None
    assert run["scale_down_s"] is None  # nothing came down: nothing went up
    assert run["failed_turns"] == 1


def test_deployments_that_scale_at_different_times_count_from_the_later():
    # The gateway is back at one before the orchestrator gets its second: both did scale.
    timeline = [_sample(0, 1, 1), _sample(3, 2, 1), _sample(6, 1, 1), _sample(9, 1, 2)]
    assert summarize_run([], timeline, load_s=20)["scale_up_s"] == 9


def test_resent_and_lost_turns_are_counted_per_turn():
    outcomes = [
        ConversationOutcome([TurnSample(0, 1.0, 2.0, 10)], [], resent=1),
        ConversationOutcome([], ["ConnectionClosedError: 1011"] * 3, resent=2),
    ]
    run = summarize_run(outcomes, [_sample(0, 1, 1)], load_s=10)
    assert run["resent_turns"] == 3
    assert run["failed_turns"] == 3
    assert run["failures_by_code"] == {"ConnectionClosedError: 1011": 3}


def test_the_scaling_config_changes_only_the_scaled_deployments(tmp_path):
    base = REPO / "cluster" / "serve_local.yaml"
    written = yaml.safe_load(
        write_scaling_serve_config(base, tmp_path / "scaling.yaml").read_text()
    )
    original = yaml.safe_load(base.read_text())
    for before, after in zip(
        original["applications"][0]["deployments"],
        written["applications"][0]["deployments"],
        strict=True,
    ):
        if before["name"] in SCALED:
            assert after["autoscaling_config"]["max_replicas"] == 2
        else:
            assert after == before


class FakeSocket:
    """A socket that answers a sent turn with given events (unit: no gateway)."""

    def __init__(self, events: list[dict]) -> None:
        self.events = list(events)
        self.sent: list[dict] = []

    async def send(self, frame: str) -> None:
        self.sent.append(json.loads(frame))

    async def recv(self) -> str:
        return json.dumps(self.events.pop(0))


async def test_a_timed_turn_takes_only_its_own_events():
    ws = FakeSocket(
        [
            {"type": "reply_done", "reply_to": 1, "text": "pushed, for the turn before"},
            {"type": "ack", "client_turn_id": "mine", "seq": 3, "duplicate": False},
            {"type": "error", "code": "unavailable", "client_turn_id": "other"},
            {"type": "token", "reply_to": 1, "text": "old"},
            {"type": "token", "reply_to": 3, "text": "new"},
            {"type": "reply_done", "reply_to": 3, "output_tokens": 5, "timing": None},
        ]
    )
    sample, event = await timed_turn(ws, "Hello", "mine")
    assert event["reply_to"] == 3 and sample is not None and sample.output_tokens == 5
    assert ws.sent[0]["client_turn_id"] == "mine" and not ws.events


async def test_a_timed_turn_ends_on_its_own_error():
    ws = FakeSocket([{"type": "error", "code": "unavailable", "client_turn_id": "mine"}])
    assert await timed_turn(ws, "Hello", "mine") == (
        None,
        {"type": "error", "code": "unavailable", "client_turn_id": "mine"},
    )
