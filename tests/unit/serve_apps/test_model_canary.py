"""The canary of the persona's model: which sessions draw the candidate, the routing
document's canary states, the lifecycle's canary, promotion and rollback (on a real Redis,
with a fake Serve controller and probe: no engine starts here), and the comparison's
arithmetic."""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from db.model_version_repository import ReplyRow, SessionRow
from models.llm import LLMDeploymentSettings
from serve_apps.app import MODEL_CONFIGS_DIR
from serve_apps.model_lifecycle import changes as changes_module
from serve_apps.model_lifecycle.changes import ChangeRefused, route_of
from serve_apps.model_lifecycle.comparison import compare_versions
from serve_apps.model_lifecycle.deployment import ModelLifecycle
from serve_apps.model_lifecycle.replay import ReplayStore
from serve_apps.model_lifecycle.routing import (
    Canary,
    CanaryStateError,
    ModelRouting,
    RoleRouting,
    RoutingStore,
    canary_draw,
)

SEED = 7


def _settings(name: str) -> LLMDeploymentSettings:
    return LLMDeploymentSettings.from_file(MODEL_CONFIGS_DIR / f"{name}.yaml")


ACTIVE = route_of("npc", _settings("npc_cpu"))
CANDIDATE = route_of("npc", _settings("npc_cpu_candidate"))
JUDGE = route_of("judge", _settings("npc_cpu"))  # the judge shares the NPC's config


def _routing(canary: Canary | None = None) -> ModelRouting:
    return ModelRouting(
        roles={"npc": RoleRouting(active=ACTIVE, canary=canary), "judge": RoleRouting(active=JUDGE)}
    )


def _canary(share: int = 20, seed: int = SEED) -> Canary:
    return Canary(candidate=CANDIDATE, share=share, seed=seed, started_at=time.time())


# Which sessions draw the candidate.


def test_a_sessions_draw_is_seeded_and_the_same_every_time():
    session_id = uuid.uuid4()
    assert canary_draw(session_id, SEED) == canary_draw(str(session_id), SEED)
    assert 0 <= canary_draw(session_id, SEED) < 100
    ids = [uuid.UUID(int=n) for n in range(200)]
    # Another seed draws other sessions.
    assert [canary_draw(i, 1) for i in ids] != [canary_draw(i, 2) for i in ids]
    # The same seed and share take the same sessions, in any process (no salted hash()).
    taken = {i for i in ids if _canary(share=30).takes(i)}
    assert taken == {
        i for i in ids if Canary.model_validate_json(_canary(share=30).model_dump_json()).takes(i)
    }
    assert canary_draw(uuid.UUID(int=0), 0) == pytest.approx(
        int("54605b0ca1e1301e", 16) * 100 / 2**64
    )


@pytest.mark.parametrize("share", [1, 20, 50, 99])
def test_the_share_of_many_sessions_is_the_canarys(share):
    canary = _canary(share=share)
    ids = [uuid.uuid4() for _ in range(20_000)]
    taken = sum(canary.takes(i) for i in ids) / len(ids)
    # Five standard deviations of a binomial share over 20,000 sessions: under 1.5 points.
    tolerance = 5 * (share / 100 * (1 - share / 100) / len(ids)) ** 0.5
    assert abs(taken - share / 100) < tolerance


def test_a_new_session_gets_its_draw_and_keeps_it_for_every_turn():
    routing = _routing(_canary(share=50))
    ids = [uuid.uuid4() for _ in range(100)]
    given = {i: routing.assign("npc", i) for i in ids}
    assert set(given.values()) == {ACTIVE, CANDIDATE}
    for session_id, route in given.items():
        assert route == (CANDIDATE if canary_draw(session_id, SEED) < 50 else ACTIVE)
        # Each turn asks for the session's version: it answers while it is served.
        assert routing.route_for("npc", route.version) == route
    assert routing.route_for("npc", None) == ACTIVE  # a session from before the canary
    assert routing.route_for("npc", "gone@0000000000") == ACTIVE  # a retired version
    assert routing.route_for("judge", CANDIDATE.version) == JUDGE  # the judge has no canary
    # Without a canary every session gets the active version.
    assert {_routing().assign("npc", i) for i in ids} == {ACTIVE}


# The routing document's canary states.


def test_a_canary_starts_only_beside_an_active_version_that_is_another():
    started = _routing().with_canary("npc", _canary())
    assert started.canary("npc").candidate == CANDIDATE
    assert started.route("npc") == ACTIVE
    assert started.apps_in_use() == {ACTIVE.app_name, CANDIDATE.app_name}
    assert started.serving() == [ACTIVE, CANDIDATE, JUDGE]
    with pytest.raises(CanaryStateError, match="a canary of npc runs"):
        started.with_canary("npc", _canary(share=30))
    same = Canary(candidate=ACTIVE, share=20, seed=1, started_at=0)
    with pytest.raises(ValueError, match="already answers") as refused:
        _routing().with_canary("npc", same)
    assert not isinstance(refused.value, CanaryStateError)  # bad input (422), not a conflict
    with pytest.raises(ValueError):
        Canary(candidate=CANDIDATE, share=100, seed=1, started_at=0)
    with pytest.raises(ValueError):
        Canary(candidate=CANDIDATE, share=0, seed=1, started_at=0)


def test_promote_and_rollback_end_the_canary_and_move_every_session():
    running = _routing().with_canary("npc", _canary(share=50))
    promoted = running.promoted("npc")
    assert promoted.route("npc") == CANDIDATE and promoted.canary("npc") is None
    assert promoted.route_for("npc", ACTIVE.version) == CANDIDATE  # moved at its next turn
    assert promoted.route_for("npc", CANDIDATE.version) == CANDIDATE
    # The old active version's application stays while the judge uses it.
    assert promoted.apps_in_use() == {CANDIDATE.app_name, JUDGE.app_name}

    rolled_back = running.rolled_back("npc")
    assert rolled_back.route("npc") == ACTIVE and rolled_back.canary("npc") is None
    assert rolled_back.route_for("npc", CANDIDATE.version) == ACTIVE
    assert CANDIDATE.app_name not in rolled_back.apps_in_use()
    assert rolled_back.route("judge") == JUDGE

    for end in (ModelRouting.promoted, ModelRouting.rolled_back):
        with pytest.raises(CanaryStateError, match="no canary of npc"):
            end(_routing(), "npc")
        with pytest.raises(CanaryStateError, match="no canary of npc"):
            end(promoted, "npc")  # ended already


async def test_the_canary_is_in_the_document_every_replica_reads(redis):
    configured = {"npc": ACTIVE, "judge": JUDGE}
    writer, reader = RoutingStore(redis, configured), RoutingStore(redis, configured)
    await writer.write(_routing().with_canary("npc", _canary(share=35)))
    read = await reader.read(fresh=True)
    assert read.canary("npc").share == 35 and read.canary("npc").seed == SEED
    session_id = uuid.uuid4()
    assert read.assign("npc", session_id) == _routing(_canary(share=35)).assign("npc", session_id)
    # A document written before canaries existed reads as one without.
    await redis.set(
        "salesboost:model-routing",
        '{"roles": {"npc": {"active": ' + CANDIDATE.model_dump_json() + "}}}",
    )
    old = await reader.read(fresh=True)
    assert old.route("npc") == CANDIDATE and old.canary("npc") is None

    await writer.count_canary_session("npc", CANDIDATE.version)
    await writer.count_canary_session("npc", CANDIDATE.version)
    await writer.count_canary_session("npc", ACTIVE.version)
    assert await reader.canary_sessions("npc") == {CANDIDATE.version: 2, ACTIVE.version: 1}
    await writer.reset_canary_sessions("npc")
    assert await reader.canary_sessions("npc") == {}


# The lifecycle's canary, promotion and rollback: the real routing store on Redis, a fake
# Serve controller that records the applications, a fake probe.


class FakeServeControl:
    """The applications Serve would run; a candidate named in ``fails`` does not start."""

    def __init__(self, apps: set[str], fails: set[str] = frozenset()) -> None:
        self.apps = set(apps)
        self.fails = fails
        self.removed: list[str] = []

    async def applications(self) -> dict[str, dict[str, Any]]:
        return {name: {"name": name} for name in self.apps}

    async def runtime_env(self) -> dict[str, Any]:
        return {}

    async def add(self, application: dict[str, Any]) -> None:
        self.apps.add(application["name"])

    async def remove(self, name: str) -> None:
        self.apps.discard(name)
        self.removed.append(name)

    async def wait_running(self, name: str, timeout_s: float) -> None:
        if name in self.fails:
            raise RuntimeError(f"{name}: DEPLOY_FAILED: no model at /nonexistent")


def assembled(redis, monkeypatch, replay_engine: Any = None) -> Any:
    """The lifecycle's parts on the real routing store, the fake Serve controller and a fake
    probe (and the replay engine given), the routing caches waited out at once."""
    monkeypatch.setattr(changes_module, "ROUTING_CACHE_S", 0.01)
    models = ModelLifecycle.func_or_class.__new__(ModelLifecycle.func_or_class)
    models._assemble(
        RoutingStore(redis, {"npc": ACTIVE, "judge": JUDGE}),
        ReplayStore(redis),
        replay_engine,
        FakeServeControl({"salesboost", ACTIVE.app_name}),
    )

    async def fake_probe(route):
        return None

    models._candidates.probe = fake_probe
    return models


@pytest.fixture
def lifecycle(redis, monkeypatch):
    return assembled(redis, monkeypatch)


async def _settled(models, role: str = "npc") -> dict[str, Any]:
    """The role's status once its change is no longer under way."""
    for _ in range(200):
        if not models._tasks:
            return (await models.status())["roles"][role]
        await asyncio.sleep(0.01)
    raise AssertionError("the change did not end")


CANDIDATE_JSON = _settings("npc_cpu_candidate").model_dump(mode="json")


async def test_a_canary_comes_up_beside_the_active_version_and_promotes(lifecycle):
    started = await lifecycle.canary("npc", CANDIDATE_JSON, 20, SEED)
    assert started["kind"] == "canary" and started["seed"] == SEED
    assert started["previous"] == ACTIVE.version
    npc = await _settled(lifecycle)
    assert npc["last_swap"]["state"] == "canary", npc["last_swap"]
    assert npc["canary"]["candidate"]["version"] == CANDIDATE.version
    assert npc["canary"]["share"] == 20 and npc["canary"]["sessions"] == {}
    assert npc["active"]["version"] == ACTIVE.version
    assert lifecycle._serve.apps == {"salesboost", ACTIVE.app_name, CANDIDATE.app_name}

    with pytest.raises(ChangeRefused, match="a canary of npc runs"):
        await lifecycle.canary("npc", CANDIDATE_JSON, 30, SEED)
    with pytest.raises(ChangeRefused, match="a canary of npc runs"):
        await lifecycle.swap("npc", CANDIDATE_JSON)

    promoted = await lifecycle.promote("npc")
    assert promoted["kind"] == "promote" and promoted["candidate"] == CANDIDATE.version
    npc = await _settled(lifecycle)
    assert npc["last_swap"]["state"] == "done"
    assert npc["active"]["version"] == CANDIDATE.version and npc["canary"] is None
    # The old version is the judge's too: its application stays.
    assert lifecycle._serve.removed == []
    with pytest.raises(ChangeRefused, match="no canary of npc"):
        await lifecycle.promote("npc")


async def test_a_rollback_retires_the_candidate(lifecycle):
    await lifecycle.canary("npc", CANDIDATE_JSON, 50, SEED)
    await _settled(lifecycle)
    rolled_back = await lifecycle.rollback("npc")
    assert rolled_back["previous"] == CANDIDATE.version
    npc = await _settled(lifecycle)
    assert npc["last_swap"]["kind"] == "rollback" and npc["last_swap"]["state"] == "done"
    assert npc["active"]["version"] == ACTIVE.version and npc["canary"] is None
    assert lifecycle._serve.removed == [CANDIDATE.app_name]
    assert lifecycle._serve.apps == {"salesboost", ACTIVE.app_name}
    with pytest.raises(ChangeRefused, match="no canary of npc"):
        await lifecycle.rollback("npc")


async def test_a_candidate_that_fails_to_start_changes_nothing(lifecycle):
    lifecycle._serve.fails = {CANDIDATE.app_name}
    await lifecycle.canary("npc", CANDIDATE_JSON, 20, SEED)
    npc = await _settled(lifecycle)
    assert npc["last_swap"]["state"] == "failed"
    assert "nothing changed" in npc["last_swap"]["message"]
    assert "DEPLOY_FAILED" in npc["last_swap"]["message"]
    assert npc["canary"] is None and npc["active"]["version"] == ACTIVE.version
    assert lifecycle._serve.apps == {"salesboost", ACTIVE.app_name}
    with pytest.raises(ChangeRefused, match="no canary"):
        await lifecycle.promote("npc")
    # The role is unlocked: a canary can start again.
    lifecycle._serve.fails = set()
    await lifecycle.canary("npc", CANDIDATE_JSON, 20, SEED)
    assert (await _settled(lifecycle))["last_swap"]["state"] == "canary"


async def test_one_change_of_a_role_at_a_time_and_bad_canaries(lifecycle):
    assert await lifecycle._routing.lock("npc", 60)  # a swap of npc is under way
    with pytest.raises(ChangeRefused, match="already running"):
        await lifecycle.canary("npc", CANDIDATE_JSON, 20, SEED)
    await lifecycle._routing.unlock("npc")
    with pytest.raises(ValueError, match="share"):
        await lifecycle.canary("npc", CANDIDATE_JSON, 100, SEED)
    with pytest.raises(ValueError, match="share"):
        await lifecycle.canary("npc", CANDIDATE_JSON, 0, SEED)
    with pytest.raises(ValueError, match="swap it instead"):
        await lifecycle.canary("judge", CANDIDATE_JSON, 20, SEED)
    with pytest.raises(ValueError, match="already answers"):
        await lifecycle.canary("npc", _settings("npc_cpu").model_dump(mode="json"), 20, SEED)
    started = await lifecycle.canary("npc", CANDIDATE_JSON, 20)  # no seed: a random one
    assert isinstance(started["seed"], int) and started["seed"] >= 0
    await _settled(lifecycle)


# The comparison's arithmetic, on a small fixed set of rows.

S1, S2, S3, S4, S5 = (uuid.UUID(int=n) for n in range(1, 6))
OLD, NEW = "m@old", "m@new"
SINCE = datetime(2026, 12, 1, tzinfo=UTC)


def _reply(session_id, model, ttft=None, reviews=1, rejections=0, errors=0) -> ReplyRow:
    return ReplyRow(session_id, model, ttft, reviews, rejections, errors)


def test_compare_counts_each_version_from_the_rows():
    replies = [
        _reply(S1, OLD, 300.0),
        _reply(S1, OLD, 500.0, reviews=2, rejections=1),
        _reply(S2, OLD, 400.0, errors=1),
        _reply(S3, NEW, 200.0),
        _reply(S3, NEW, None),  # stored before the time was kept
        _reply(S4, OLD, 900.0),  # S4 was moved from OLD to NEW mid-way
        _reply(S4, NEW, 100.0, reviews=0),
    ]
    sessions = [
        SessionRow(S1, OLD, 70.0, 0),
        SessionRow(S2, OLD, 80.0, 1),
        SessionRow(S3, NEW, 90.0, 2),
        SessionRow(S4, OLD, 10.0, 0),  # mixed: its score counts for neither
        SessionRow(S5, NEW, None, 1),  # no reply yet: assigned, its one turn unanswered
    ]
    comparison = compare_versions(
        replies, sessions, role="npc", scope="demo", since=SINCE, active=OLD, candidate=NEW
    )
    old, new = comparison.versions
    assert (old.version, old.serving, new.version, new.serving) == (
        OLD,
        "active",
        NEW,
        "candidate",
    )
    assert comparison.mixed_sessions == 1
    assert (old.sessions_assigned, old.sessions, old.turns) == (3, 2, 4)
    assert (new.sessions_assigned, new.sessions, new.turns) == (2, 1, 3)
    assert old.scored_sessions == 2 and old.score_mean == 75.0
    assert old.score_stddev == pytest.approx(statistics.stdev([70.0, 80.0]))  # 7.07
    assert new.scored_sessions == 1 and new.score_mean == 90.0 and new.score_stddev is None
    assert (old.reviews, old.rejections, old.rejection_rate) == (5, 1, 0.2)
    assert (new.reviews, new.rejections, new.rejection_rate) == (2, 0, 0.0)
    assert old.ttft_p50_ms == 450.0 and old.ttft_turns == 4  # median of 300, 400, 500, 900
    assert new.ttft_p50_ms == 150.0 and new.ttft_turns == 2
    assert (old.unanswered_turns, new.unanswered_turns) == (1, 3)
    assert (old.agent_errors, new.agent_errors) == (1, 0)


def test_compare_lists_the_routed_versions_even_without_rows():
    comparison = compare_versions(
        [_reply(S1, "m@retired", 100.0)],
        [SessionRow(S1, None, 50.0, 0)],
        role="npc",
        scope="demo",
        since=SINCE,
        active=OLD,
        candidate=NEW,
    )
    assert [(v.version, v.serving, v.turns) for v in comparison.versions] == [
        (OLD, "active", 0),
        (NEW, "candidate", 0),
        ("m@retired", None, 1),
    ]
    retired = comparison.versions[2]
    assert retired.sessions == 1 and retired.score_mean == 50.0 and retired.rejection_rate == 0
    assert comparison.versions[0].rejection_rate is None  # no verdicts: no rate
    assert compare_versions([], [], role="npc", scope="demo", since=SINCE).versions == []


async def test_a_restart_drops_the_versions_no_application_serves(lifecycle):
    """Redis kept a routing to a canary's candidate and a swapped-in judge; the restarted
    stack deployed only the Serve config's applications."""
    swapped_judge = JUDGE.model_copy(update={"version": "judge@swapped", "app_name": "llm-gone"})
    kept = _routing(_canary(share=35))
    await lifecycle._routing.write(
        ModelRouting(roles={**kept.roles, "judge": RoleRouting(active=swapped_judge)})
    )
    lifecycle._serve.apps = {"salesboost", ACTIVE.app_name, JUDGE.app_name}

    dropped = await lifecycle.reconcile()
    assert len(dropped) == 2, dropped
    routing = await lifecycle._routing.read(fresh=True)
    assert routing.route("npc") == ACTIVE and routing.canary("npc") is None
    assert routing.route("judge") == JUDGE  # the Serve config's version again
    assert await lifecycle.reconcile() == []  # nothing more to drop
    # While a change holds a role's lock, the routing is left to that change.
    await lifecycle._routing.write(kept)
    assert await lifecycle._routing.lock("npc", 60)
    assert await lifecycle.reconcile() == []
    assert (await lifecycle._routing.read(fresh=True)).canary("npc") is not None
