"""The whole product on a real 2-node local Ray cluster (`salesboost up --nodes 2`: a head
and a worker, each its own `ray start` process): a conversation is served with replicas on
both nodes, and a step load of WebSocket conversations scales the orchestrator and the
gateway up, then down when quiet, read from Serve's own status."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from loadtests.bench.scaling import (
    SCALED,
    replica_counts,
    settled,
    step_conversation,
    write_scaling_serve_config,
)
from tests.integration.conftest import ENVIRONMENT_BEFORE_THE_STACK, REPO, _free_port
from tests.integration.wsclient import connect, new_session, send_turn

pytestmark = pytest.mark.integration

SALESBOOST = str(Path(sys.executable).parent / "salesboost")


@pytest.fixture(scope="module")
def two_nodes(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("multinode")
    port = _free_port()
    env = {
        **ENVIRONMENT_BEFORE_THE_STACK,
        "SALESBOOST_DATA_DIR": str(tmp / "data"),
        "SALESBOOST_MODELS_DIR": str(REPO / ".data" / "models"),
        "SALESBOOST_HTTP_PORT": str(port),
        "SALESBOOST_SERVE_CONFIG": str(
            write_scaling_serve_config(
                REPO / "cluster" / "serve_local.yaml", tmp / "serve_scaling.yaml"
            )
        ),
        "SALESBOOST_NPC_MAX_TOKENS": "16",
        "SALESBOOST_CPU_COMPILE_GRAPH": "false",  # as the session's stack (conftest.py)
        "SALESBOOST_RATE_LIMIT_USER_PER_MIN": "100000",
        "SALESBOOST_RATE_LIMIT_IP_PER_MIN": "100000",
        "SALESBOOST_RATE_LIMIT_TENANT_PER_MIN": "100000",
    }
    log = (tmp / "up.log").open("w+")
    process = subprocess.Popen(
        [SALESBOOST, "up", "--nodes", "2"], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    address = None
    try:
        deadline = time.monotonic() + 900
        while time.monotonic() < deadline:
            text = (tmp / "up.log").read_text()
            match = re.search(r"Ray head at (\S+)", text)
            address = match.group(1) if match else address
            assert process.poll() is None, f"salesboost up exited:\n{text[-4000:]}"
            # At a line's start: a traceback quotes the source line that prints it.
            if re.search(r"^SalesBoost is up at http", text, re.MULTILINE):
                break
            time.sleep(2)
        else:
            pytest.fail(f"not up within 900 s:\n{(tmp / 'up.log').read_text()[-4000:]}")
        yield {"base_url": f"http://127.0.0.1:{port}", "address": address, "env": env}
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(120)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(30)
        log.close()


def status(cluster: dict) -> dict:
    result = subprocess.run(
        [SALESBOOST, "cluster", "status", "--json", "--address", cluster["address"]],
        capture_output=True,
        text=True,
        timeout=120,
        env=cluster["env"],
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout[result.stdout.index("{") :])


async def _conversation(base_url: str, turns: int) -> tuple[int, int]:
    """(turns sent, turns answered with a ``reply_done``)."""
    session_id = await new_session(base_url)
    async with connect(base_url, session_id) as ws:
        sent = done = 0
        for i in range(turns):
            events = await send_turn(ws, f"Question {i}: what matters most to you in a CRM?")
            sent += 1
            done += events[-1]["type"] == "reply_done"
        return sent, done


async def test_a_conversation_is_served_with_replicas_on_both_nodes(two_nodes):
    assert await _conversation(two_nodes["base_url"], 2) == (2, 2)
    report = status(two_nodes)
    alive = [n for n in report["nodes"] if n["alive"]]
    assert len(alive) == 2
    hosting = {r["node"] for d in report["deployments"].values() for r in d["replicas"]}
    assert hosting == {n["name"] for n in alive}, report
    # Qdrant local mode: the knowledge service is on the node with the folder, alone.
    (knowledge,) = [d for n, d in report["deployments"].items() if n.endswith("/KnowledgeService")]
    (folder_node,) = [n["name"] for n in alive if n["qdrant_local_folder"]]
    assert [r["node"] for r in knowledge["replicas"]] == [folder_node]


async def test_a_step_load_scales_up_then_down(two_nodes):
    base_url = two_nodes["base_url"]
    # From a settled cluster: the conversation of the test before may have scaled a
    # deployment up (its downscale delay is 10 s).
    deadline = time.monotonic() + 180
    while not settled(counts := replica_counts(status(two_nodes))):
        assert time.monotonic() < deadline, f"not settled before the step: {counts}"
        await asyncio.sleep(3)
    step = time.monotonic()
    scaled = asyncio.Event()
    # Trainees' conversations (as the scaling bench holds them: a turn told `unavailable` is
    # sent again with its id) go on until both deployments have scaled, 200 turns at most.
    load = [
        asyncio.create_task(
            step_conversation(base_url, "crm-discovery-call", 200, script, 0, stop=scaled)
        )
        for script in range(6)
    ]
    scaled_up_s = None
    while time.monotonic() - step < 240 and not all(t.done() for t in load):
        counts = replica_counts(await asyncio.to_thread(status, two_nodes))
        if all(counts[d] >= 2 for d in SCALED):
            scaled_up_s = time.monotonic() - step
            break
        await asyncio.sleep(2)
    scaled.set()
    outcomes = await asyncio.gather(*load)
    assert [o.failed for o in outcomes] == [[]] * 6  # no turn failed while scaling
    assert all(o.samples for o in outcomes)  # every conversation was answered
    assert scaled_up_s is not None, f"did not scale up within 240 s: {counts}"
    quiet = time.monotonic()
    while time.monotonic() - quiet < 180:
        report = await asyncio.to_thread(status, two_nodes)
        if settled(replica_counts(report)):
            break
        await asyncio.sleep(3)
    else:
        pytest.fail(f"still scaled up 180 s after the load: {report['deployments']}")
