"""The real stack, started once per test session: embedded PostgreSQL and Redis, Ray Serve,
the gateway, the orchestrator and vLLM on the bundled model."""

from __future__ import annotations

import os
import random
import socket
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
# The test process's environment as it started: a second stack a test starts as a
# subprocess takes this one and its own settings, never the session stack's.
ENVIRONMENT_BEFORE_THE_STACK = dict(os.environ)


def _free_port() -> int:
    """A free port between Ray's worker ports (10002-19999) and the kernel's ephemeral range
    (32768 and up): the proxy binds it a minute later, after Ray's processes have opened many
    ephemeral ports, one of which once took a port picked there ("Failed to bind")."""
    for port in random.Random().sample(range(20_000, 32_000), 200):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port between 20000 and 32000")


@pytest.fixture(scope="session")
def stack(tmp_path_factory):
    from cluster.local_stack import Stack
    from serve_apps.settings import Settings

    data_dir = tmp_path_factory.mktemp("salesboost-data")
    port = _free_port()
    settings = Settings(
        data_dir=data_dir,
        # Prepared model folders are reused across runs (preparing takes about 20 s).
        models_dir_override=REPO / ".data" / "models",
        http_port=port,
        metrics_port=_free_port(),
        # The defaults, and the web app's own origin on this port (the browser tests).
        allowed_origins=[
            "http://127.0.0.1:8000",
            "http://localhost:8000",
            f"http://127.0.0.1:{port}",
        ],
        serve_config=REPO / "cluster" / "serve_local.yaml",
        # Each engine that starts (this one, and the candidates the lifecycle tests bring up)
        # starts in 30 s rather than 2 min: the tests measure behaviour, not decoding speed.
        cpu_compile_graph=False,
        npc_max_tokens=24,
        npc_temperature=0.7,
        max_message_chars=1984,  # 4 bytes a character and 256 of JSON: the frame limit
        max_frame_bytes=8192,
        max_upload_bytes=2 * 1024 * 1024,
        # Short, so that a turn can be made to wait longer than its generation lock lives
        # (test_hardening.py); renewed every 0.5 s.
        generation_lock_ttl_s=1.5,
        # The fuzzing run sends hundreds of requests a minute as one user; the limits have
        # their own tests (unit, on Redis) and the sign-in limit is checked here as set.
        rate_limit_ip_per_min=100_000,
        rate_limit_user_per_min=100_000,
        rate_limit_tenant_per_min=100_000,
    )
    with Stack(settings, progress=lambda line: print(f"[stack] {line}", flush=True)) as running:
        running.start()
        yield running
        _every_stored_reply_counts_its_tokens(running.migration_database_url)


def _every_stored_reply_counts_its_tokens(owner_db_url: str) -> None:
    """Every persona reply of the test session, in every company, was stored with its output
    tokens: a reply whose last chunk was lost (and its usage with it) fails the session."""
    import psycopg

    uncounted = []
    with psycopg.connect(owner_db_url.replace("+psycopg", "")) as conn:
        for (tenant_id,) in conn.execute("SELECT id FROM tenants").fetchall():
            conn.execute("SELECT set_config('app.tenant_id', %s, false)", (str(tenant_id),))
            uncounted += conn.execute(
                "SELECT session_id, seq FROM turns"
                " WHERE speaker = 'npc' AND (output_tokens IS NULL OR output_tokens <= 0)"
            ).fetchall()
    assert not uncounted, f"persona replies stored without output tokens: {uncounted}"


@pytest.fixture(scope="session")
def base_url(stack) -> str:
    return stack.base_url


@pytest.fixture(scope="session")
def owner_db_url(stack) -> str:
    return stack.migration_database_url


@pytest.fixture(scope="session")
def second_tenant(owner_db_url) -> dict:
    """Another company with its own trainee and scenario, for isolation checks."""
    from db.seed import DEMO_TENANT_FILE, seed_file

    data = yaml.safe_load(DEMO_TENANT_FILE.read_text())
    data["tenant"] = {"slug": "rival", "name": "Rival Corp"}
    data["users"] = [
        {"email": "trainee@rival.example", "display_name": "R", "role": "trainee"},
        {"email": "admin@rival.example", "display_name": "RA", "role": "admin"},
        {"email": "manager@rival.example", "display_name": "RM", "role": "manager"},
    ]
    path = Path(owner_db_url.split("host=")[-1]).parent / "rival.yaml"
    path.write_text(yaml.safe_dump(data))
    seed_file(owner_db_url, path)
    return {"X-Dev-Tenant": "rival", "X-Dev-User": "trainee@rival.example"}


@pytest.fixture(scope="session")
def rival_admin(second_tenant) -> dict:
    return {"X-Dev-Tenant": "rival", "X-Dev-User": "admin@rival.example"}


@pytest.fixture(scope="session")
def rival_manager(second_tenant) -> dict:
    return {"X-Dev-Tenant": "rival", "X-Dev-User": "manager@rival.example"}


@pytest.fixture(scope="session")
def demo_admin() -> dict:
    return {"X-Dev-Tenant": "demo", "X-Dev-User": "admin@demo.salesboost.local"}


@pytest.fixture(scope="session")
def app_db_url(stack) -> str:
    """The URL the app itself uses: the role that owns nothing and cannot bypass RLS."""
    return stack.database_url


def active_model_engine(base_url: str, role: str = "npc"):
    """A chat engine on the version that answers ``role`` now (a swap test may have moved it
    from the Serve config's), reached as the orchestrator reaches it."""
    import httpx
    from ray import serve

    from serve_apps.orchestrator.chat_engine import ServeLLMChatEngine

    admin = {"X-Dev-Tenant": "demo", "X-Dev-User": "admin@demo.salesboost.local"}
    response = httpx.get(f"{base_url}/v1/models", headers=admin, timeout=30)
    response.raise_for_status()
    route = response.json()["roles"][role]["active"]
    handle = serve.get_deployment_handle(route["deployment_name"], app_name=route["app_name"])
    return ServeLLMChatEngine(handle, route["model_id"], version=route["version"])


def complete_turn_trace(trace_dir: Path, session_id: str, seq: int, timeout_s: float = 30):
    """The turn's trace once its spans are flushed: the gateway's last child (store_reply)
    is there and no span waits for its parent. Each process's file exporter batches for
    0.5 s on its own, so a replica's outer span (it ends when its stream ends) can reach the
    files after the gateway's. A trace that still has orphans at the deadline is returned as
    it is, for the caller's assertion to name them."""
    import time

    from serve_apps.telemetry.span_files import read_spans, turn_traces

    deadline = time.monotonic() + timeout_s
    while True:
        traces = turn_traces(read_spans(trace_dir), session_id, seq)
        if traces and any(s.name == "store_reply" for s in traces[0].spans()):
            if not any(node.orphan for node, _ in traces[0].walk()):
                return traces[0]
            if time.monotonic() > deadline:
                return traces[0]
        elif time.monotonic() > deadline:
            raise AssertionError(f"no complete trace for session {session_id} turn {seq}")
        time.sleep(0.5)
