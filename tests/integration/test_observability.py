"""What ops see of a conversation on the real stack: one trace per turn across the Serve
graph, the product's metrics on Ray's metrics endpoint, JSON logs with the ids that find a
turn again, and no secret or message text in any of them."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from prometheus_client.parser import text_string_to_metric_families

from serve_apps.telemetry.span_files import SpanRecord, TraceTree
from tests.integration.conftest import active_model_engine, complete_turn_trace
from tests.integration.content_api import SAY_NOTHING, add_compliance_rule
from tests.integration.wsclient import connect, new_session, recv, send_turn

pytestmark = pytest.mark.integration

DEMO_TRAINEE = {"X-Dev-Tenant": "demo", "X-Dev-User": "trainee@demo.salesboost.local"}
RIVAL_TRAINEE = {"X-Dev-Tenant": "rival", "X-Dev-User": "trainee@rival.example"}


# --- reading what the stack exported -----------------------------------------------------


def _has(tree: TraceTree, name: str) -> bool:
    return any(s.name == name for s in tree.spans())


def _named(tree: TraceTree, prefix: str) -> list[SpanRecord]:
    return [s for s in tree.spans() if s.name.startswith(prefix)]


def _scrape(metrics_url: str) -> dict[tuple[str, frozenset], float]:
    text = httpx.get(metrics_url, timeout=10).text
    samples: dict[tuple[str, frozenset], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            key = (sample.name, frozenset(sample.labels.items()))
            samples[key] = samples.get(key, 0.0) + sample.value
    return samples


def _total(samples: dict, name: str, **labels: str) -> float:
    """The sum over every process's series of ``name`` with these labels."""
    wanted = set(labels.items())
    return sum(v for (n, lbls), v in samples.items() if n == name and wanted <= lbls)


# Ray's metrics agent takes what processes recorded every RAY_metrics_report_interval_ms
# (10 s by default).
EXPORT_INTERVAL_S = 11


def _settled(metrics_url: str, name: str) -> dict[tuple[str, frozenset], float]:
    """A scrape once what earlier tests recorded of ``name`` has been exported."""
    samples = _scrape(metrics_url)
    for _ in range(6):
        time.sleep(EXPORT_INTERVAL_S)
        again = _scrape(metrics_url)
        if _total(again, name) == _total(samples, name):
            return again
        samples = again
    raise AssertionError(f"{name} kept changing with no traffic")


def _wait_for(condition: Callable[[], bool], timeout_s: float = 45) -> None:
    """Ray's metrics agent exports what processes recorded every few seconds."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("the metrics did not reach the expected values in time")
        time.sleep(1)


@pytest.fixture(scope="module")
def metrics_url(stack) -> str:
    return f"http://{stack.metrics_targets[0]}/metrics"


@pytest.fixture(scope="module")
def say_nothing_rule(base_url, rival_admin) -> None:
    """A rule every persona reply breaks in the rival company: each turn is reviewed, retried
    twice and replaced (the reviewer's retry path, on the real engine). Through the API: its
    write invalidates the content cache."""
    add_compliance_rule(base_url, rival_admin, SAY_NOTHING)


# --- traces ------------------------------------------------------------------------------


async def test_one_turn_is_one_trace_from_the_gateway_to_the_engine_and_the_database(stack):
    session_id = await new_session(stack.base_url, mode="practice")
    async with connect(stack.base_url, session_id) as ws:
        events = await send_turn(ws, "Hi Priya, what does the migration package cost?")
    (ack,) = [e for e in events if e["type"] == "ack"]

    tree = complete_turn_trace(stack.settings.trace_dir, session_id, ack["seq"])
    root = tree.root.span
    assert root.name == "turn" and root.parent_id is None
    assert root.attributes["salesboost.mode"] == "practice"
    # One trace: every span of it is reached from the root by its parent links.
    assert [node.span.name for node, _ in tree.walk() if node.orphan] == []
    assert {s.trace_id for s in tree.spans()} == {root.trace_id}
    by_id = {s.span_id: s for s in tree.spans()}

    def parent(span: SpanRecord) -> SpanRecord:
        assert span.parent_id is not None
        return by_id[span.parent_id]

    for name in ("store_turn", "model.stream_turn", "store_reply"):
        (span,) = _named(tree, name)
        assert parent(span) == root, name
    # Serve's own spans carry the context across every handle call: the orchestrator, the
    # knowledge service, the embedder and the LLM deployment each handled the turn.
    replicas = {s.attributes.get("deployment") for s in _named(tree, "replica_handle_request")}
    assert {"TrainingOrchestrator", "KnowledgeService", "Embedder"} <= replicas
    assert any(str(d).startswith("llm-") or "LLM" in str(d) for d in replicas), replicas
    (orchestrator,) = [
        s
        for s in _named(tree, "replica_handle_request")
        if s.attributes.get("deployment") == "TrainingOrchestrator"
    ]
    assert parent(parent(orchestrator)).name == "model.stream_turn"  # through the router
    # The seller's knowledge (a price question needs it) is the orchestrator's to ask for,
    # once the persona's first token is out: never on the first token's path.
    (seller,) = _named(tree, "retrieve.seller_knowledge")
    assert parent(seller) == orchestrator and seller.attributes["chunks"] > 0
    first_attempt = _named(tree, "persona.attempt")[0]
    first_token_ns = first_attempt.start_ns + first_attempt.attributes["ttft_ms"] * 1e6
    assert seller.start_ns >= first_token_ns - 1e6  # the clocks of one machine, to a ms
    (embed,) = _named(tree, "retrieval.embed")
    assert parent(embed).attributes.get("deployment") == "KnowledgeService"
    # The agents: the trainee's compliance rules, the persona's attempt, its review.
    attempts = _named(tree, "persona.attempt")
    assert [a.attributes["attempt"] for a in attempts] == list(range(len(attempts)))
    assert len(_named(tree, "reviewer")) == len(attempts)
    assert _named(tree, "compliance.trainee_rules")
    # The database and Redis by OpenTelemetry's instrumentations, under the gateway's steps.
    systems = {s.attributes.get("db.system") for s in tree.spans()}
    assert {"postgresql", "redis"} <= systems
    (stored,) = _named(tree, "store_turn")
    assert any(
        s.parent_id == stored.span_id and s.attributes.get("db.system") == "postgresql"
        for s in tree.spans()
    )


async def test_a_retried_attempt_is_a_span_of_its_own(stack, say_nothing_rule):
    session_id = await new_session(stack.base_url, headers=RIVAL_TRAINEE, mode="assessment")
    query = f"?dev_tenant=rival&dev_user={RIVAL_TRAINEE['X-Dev-User']}"
    async with connect(stack.base_url, session_id, query) as ws:
        events = await send_turn(ws, "Hello, what CRM do you use today?")
    assert [r["action"] for r in events if r["type"] == "review"] == ["retry", "retry", "replaced"]
    (ack,) = [e for e in events if e["type"] == "ack"]

    tree = complete_turn_trace(stack.settings.trace_dir, session_id, ack["seq"])
    attempts = _named(tree, "persona.attempt")
    assert [a.attributes["attempt"] for a in attempts] == [0, 1, 2]
    assert all(a.attributes["ttft_ms"] > 0 for a in attempts)  # each attempt's own
    assert [r.attributes["issues"] > 0 for r in _named(tree, "reviewer")] == [True] * 3
    # Each attempt asked the LLM deployment on its own.
    for attempt in attempts:
        assert any(s.parent_id == attempt.span_id for s in tree.spans()), attempt


# --- metrics -----------------------------------------------------------------------------


async def test_the_metrics_endpoint_counts_what_the_conversation_did(
    stack, metrics_url, say_nothing_rule
):
    before = _settled(metrics_url, "ray_salesboost_turns_total")
    session_id = await new_session(stack.base_url, headers=RIVAL_TRAINEE, mode="assessment")
    query = f"?dev_tenant=rival&dev_user={RIVAL_TRAINEE['X-Dev-User']}"
    async with connect(stack.base_url, session_id, query) as ws:
        first = await send_turn(ws, "Hello, what CRM do you use today?")
        second = await send_turn(
            ws, "We guarantee a 30% return. Who else would be involved in choosing a CRM?"
        )
    reviews = [e["action"] for e in first + second if e["type"] == "review"]
    assert reviews.count("replaced") == 2
    findings = [e for e in first + second if e["type"] == "compliance"]
    assert findings and {f["speaker"] for f in findings} == {"trainee"}

    # What the conversation did, counted where it happened: the gateway (turns, times) and
    # the orchestrator (reviews, findings), each exported by its own process.
    expected = {
        ("ray_salesboost_turns_total", ("mode", "assessment"), ("outcome", "replaced")): 2,
        ("ray_salesboost_reviews_total", ("action", "retry")): reviews.count("retry"),
        ("ray_salesboost_reviews_total", ("action", "replaced")): 2,
        ("ray_salesboost_turn_ttft_seconds_count", ("mode", "assessment")): 2,
        ("ray_salesboost_turn_duration_seconds_count", ("mode", "assessment")): 2,
        ("ray_salesboost_compliance_findings_total", ("party", "trainee")): len(findings),
    }

    def deltas(samples: dict) -> dict:
        return {
            key: _total(samples, key[0], **dict(key[1:])) - _total(before, key[0], **dict(key[1:]))
            for key in expected
        }

    _wait_for(lambda: all(d >= expected[k] for k, d in deltas(_scrape(metrics_url)).items()))
    await asyncio.sleep(EXPORT_INTERVAL_S)  # and nothing more comes: each counted once
    after = _scrape(metrics_url)
    assert deltas(after) == expected

    def delta(name: str, **labels: str) -> float:
        return _total(after, name, **labels) - _total(before, name, **labels)

    # Serve's and vLLM's own metrics come from the same endpoint.
    names = {name for name, _ in after}
    assert any(n.startswith("ray_serve_") for n in names)
    assert any(n.startswith("ray_vllm") for n in names), sorted(n for n in names if "llm" in n)
    assert _total(after, "ray_salesboost_dependency_up", dependency="database") >= 1


async def test_seller_knowledge_is_counted_by_whether_the_turn_needed_it(stack, metrics_url):
    name = "ray_salesboost_seller_retrievals_total"
    before = _settled(metrics_url, name)
    searched = _total(before, "ray_salesboost_retrieval_seconds_count", stage="total")
    session_id = await new_session(stack.base_url, mode="practice")
    async with connect(stack.base_url, session_id) as ws:
        await send_turn(ws, "Thanks for making the time today, Priya.")
        await send_turn(ws, "What does the migration package cost?")

    def counted(samples: dict, outcome: str) -> float:
        return _total(samples, name, outcome=outcome) - _total(before, name, outcome=outcome)

    # The orchestrator counts the turns, the knowledge service times the one search the
    # priced turn asked for: two processes, each exported on its own 10 s cycle.
    _wait_for(
        lambda: (
            (samples := _scrape(metrics_url))
            and counted(samples, "not_needed") >= 1
            and counted(samples, "retrieved") >= 1
            and _total(samples, "ray_salesboost_retrieval_seconds_count", stage="total") > searched
        )
    )
    assert counted(_scrape(metrics_url), "failed") == 0


async def test_a_forced_agent_failure_is_counted_once(stack, metrics_url):
    """A judge that cannot answer in time, on the real engine, in this process (a Ray
    driver: its metrics go through the same agent as the replicas')."""
    from serve_apps.contracts.turn import PersonaCard, ScenarioCard, TurnRequest
    from serve_apps.orchestrator.agents.judge import Judge
    from serve_apps.orchestrator.agents.npc import NPCConversation
    from serve_apps.orchestrator.training_turn import AgentSettings, TrainingTurn

    engine = active_model_engine(stack.base_url)
    labels = {"agent": "coach", "code": "judge_timeout"}
    before = _total(_scrape(metrics_url), "ray_salesboost_agent_failures_total", **labels)
    turn = TrainingTurn(
        NPCConversation(engine),
        Judge(engine, timeout_s=0.001),
        AgentSettings(coach_uses_judge=True),
    )
    request = TurnRequest(
        session_id="s",
        tenant_id="t",
        reply_to_seq=1,
        persona=PersonaCard(
            slug="it", name="Priya", role="IT Director", company="Northwind", personality="dry"
        ),
        scenario=ScenarioCard(
            title="t",
            product="CloudCRM",
            stage="qualification",
            difficulty="easy",
            description="First call.",
        ),
        trainee_text="Hello, what do you use today?",
        max_tokens=16,
        mode="practice",
    )
    events = [event async for event in turn.run(request)]
    assert [getattr(e, "code", None) for e in events].count("agent_failed") == 1

    def counted() -> float:
        return _total(_scrape(metrics_url), "ray_salesboost_agent_failures_total", **labels)

    _wait_for(lambda: counted() - before >= 1)
    await asyncio.sleep(EXPORT_INTERVAL_S)  # a second export must not count it again
    assert counted() - before == 1


# --- logs, and what must never be in logs or spans ---------------------------------------


def _ray_logs_dir() -> Path:
    import ray

    return Path(ray._private.worker._global_node.get_session_dir_path()) / "logs"


def _product_log_lines(logs_dir: Path) -> list[dict]:
    lines = []
    for path in logs_dir.rglob("*"):
        if not path.is_file() or path.suffix not in (".err", ".out", ".log"):
            continue
        for raw in path.read_text(errors="replace").splitlines():
            if raw.startswith("{") and '"logger": "salesboost' in raw:
                lines.append(json.loads(raw))
    return lines


async def test_logs_are_json_lines_with_the_ids_of_their_turn(stack):
    session_id = await new_session(stack.base_url, mode="practice")
    async with connect(stack.base_url, session_id) as ws:
        await ws.send("{not json")  # a rejected frame: the gateway logs it, without it
        assert (await recv(ws))["type"] == "error"
        events = await send_turn(ws, "What do you use for your CRM today?")
    (ack,) = [e for e in events if e["type"] == "ack"]
    tree = complete_turn_trace(stack.settings.trace_dir, session_id, ack["seq"])

    deadline = time.monotonic() + 20
    while True:  # standard error reaches Ray's log files a moment later
        ours = [
            line
            for line in _product_log_lines(_ray_logs_dir())
            if line.get("session_id") == session_id
        ]
        answered = [line for line in ours if line["message"] == "turn answered"]
        if answered or time.monotonic() > deadline:
            break
        await asyncio.sleep(1)
    assert ours, "no product log line carries the session id"
    for line in ours:
        assert {"time", "level", "logger", "message", "component", "tenant_id"} <= set(line)
    rejected = [line for line in ours if "rejected frame" in line["message"]]
    assert rejected and rejected[0]["component"] == "gateway" and rejected[0].get("request_id")
    (turn_line,) = answered
    assert turn_line["turn_seq"] == ack["seq"]
    assert turn_line["trace_id"] == tree.trace_id and turn_line["span_id"]


async def test_no_secret_or_message_text_in_logs_or_spans(stack, owner_db_url, second_tenant):
    from serve_apps.gateway.auth import hash_password

    canary = f"CANARY{uuid.uuid4().hex[:12]}"
    password = f"pw-{canary}-secret"
    engine = sa.create_engine(owner_db_url)
    with engine.begin() as conn:
        tenant = conn.execute(sa.text("SELECT id FROM tenants WHERE slug = 'rival'")).scalar_one()
        conn.execute(sa.text("SELECT set_config('app.tenant_id', :t, true)"), {"t": str(tenant)})
        conn.execute(
            sa.text("UPDATE users SET password_hash = :h WHERE email = 'manager@rival.example'"),
            {"h": hash_password(password)},
        )
    engine.dispose()
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=30) as http:
        wrong = await http.post(
            "/v1/auth/login",
            json={"tenant": "rival", "email": "manager@rival.example", "password": canary},
        )
        assert wrong.status_code == 401
        tokens = (
            await http.post(
                "/v1/auth/login",
                json={"tenant": "rival", "email": "manager@rival.example", "password": password},
            )
        ).json()
        bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
        session_id = await new_session(stack.base_url, headers=bearer, mode="practice")
        ticket = (await http.post("/v1/auth/ws-ticket", headers=bearer)).json()["ticket"]
    message = f"My secret phrase is {canary}, what is your budget?"
    async with connect(stack.base_url, session_id, f"?ticket={ticket}") as ws:
        await send_turn(ws, message)
    complete_turn_trace(stack.settings.trace_dir, session_id, 1)
    await asyncio.sleep(2)  # the replicas' last lines reach their log files

    secrets = {
        "message text": canary,
        "password": password,
        "access token": tokens["access_token"],
        "refresh token": tokens["refresh_token"],
        "websocket ticket": ticket,
        "signing secret": stack.secret_env["SALESBOOST_SECRET_KEY"],
    }
    places = [
        *(p for p in _ray_logs_dir().rglob("*") if p.is_file()),
        *(p for p in stack.settings.trace_dir.rglob("*") if p.is_file()),
    ]
    assert any(p.suffix == ".jsonl" for p in places)
    found = []
    for path in places:
        content = path.read_bytes().decode(errors="replace")
        found += [(what, path.name) for what, value in secrets.items() if value in content]
    assert found == []


# --- the local observability stack -------------------------------------------------------


def test_a_local_prometheus_scrapes_the_product_with_the_alert_rules_loaded(stack):
    """What `salesboost up --observability` adds: a real Prometheus on Ray's metrics."""
    stack._start_prometheus(port=_free_local_port())  # beside a Prometheus already here
    try:
        prometheus = stack.prometheus
        deadline = time.monotonic() + 60
        while not prometheus.query("ray_salesboost_turns_total"):
            assert time.monotonic() < deadline, "Prometheus never scraped the product's metrics"
            time.sleep(2)
        assert prometheus.query('up{job="ray"} == 1')
        rules = {rule.name for rule in prometheus.rules()}
        assert {"SalesBoostTurnTTFTHigh", "SalesBoostDependencyDown"} <= rules
        assert all(rule.health != "err" for rule in prometheus.rules())
        firing = {a.name for a in prometheus.alerts() if a.state == "firing"}
        assert "SalesBoostDependencyDown" not in firing
    finally:
        stack.prometheus.stop()
        stack.prometheus = None


def _free_local_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
