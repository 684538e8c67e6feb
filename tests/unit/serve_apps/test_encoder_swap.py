"""The embedder and reranker swaps' state machine (``serve_apps/knowledge/encoder_swap.py``)
on a real Redis, with a fake knowledge index standing in for the knowledge service's
knowledge bases (the rebuild itself runs for real in tests/unit/retrieval/
test_embedder_versions.py) and for the encoder deployments' probes."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from models.encoders import EncoderDeploymentSettings
from retrieval.embedder import EmbedderRecord
from serve_apps.app import MODEL_CONFIGS_DIR
from serve_apps.knowledge import encoder_routing
from serve_apps.knowledge.deployment import knowledge_bases_of_aliases
from serve_apps.knowledge.encoder_routing import EncoderChange, EncoderRoutingStore
from serve_apps.knowledge.encoder_swap import (
    EncoderChangeRefused,
    EncoderChanges,
    KnowledgeBaseRef,
    LiveState,
)

CONFIGURED = EncoderDeploymentSettings(kind="embedder", model="all-MiniLM-L6-v2")
CANDIDATE = EncoderDeploymentSettings.from_file(MODEL_CONFIGS_DIR / "embedder_cpu_candidate.yaml")
OLD, NEW = CONFIGURED.embedder_record(), CANDIDATE.embedder_record()
CROSS_ENCODER = EncoderDeploymentSettings(kind="reranker", model="/models/bge-reranker-v2-m3")
ACME = KnowledgeBaseRef("00000000-0000-4000-8000-00000000000a", "product")
ACME_FAQ = KnowledgeBaseRef("00000000-0000-4000-8000-00000000000a", "faq")
RIVAL = KnowledgeBaseRef("00000000-0000-4000-8000-00000000000b", "product")


class FakeKnowledgeIndex:
    """Knowledge bases as their versions (number -> the embedder that built it) and a live
    one; rebuilds add a version by the new embedder and make it live, as the real one does.
    Records what it was asked; can be told to fail, or to hold rebuilds until released."""

    def __init__(self, bases: list[KnowledgeBaseRef]) -> None:
        self.versions: dict[KnowledgeBaseRef, dict[int, EmbedderRecord]] = {
            base: {1: OLD} for base in bases
        }
        self.live_versions = {base: 1 for base in bases}
        self.failing: set[KnowledgeBaseRef] = set()
        self.failing_once: set[KnowledgeBaseRef] = set()
        self.probe_error: Exception | None = None
        self.probed: list[str] = []
        self.rebuilt: list[KnowledgeBaseRef] = []
        self.hold = asyncio.Event()
        self.hold.set()
        self.while_rebuilding: Any = None  # called once, during the first rebuild

    def live_embedder(self, base: KnowledgeBaseRef) -> str:
        return self.versions[base][self.live_versions[base]].version

    async def knowledge_bases(self) -> list[KnowledgeBaseRef]:
        return list(self.versions)

    async def live(self, base: KnowledgeBaseRef) -> LiveState | None:
        return LiveState(self.live_versions[base], self.live_embedder(base))

    async def rebuild(self, base: KnowledgeBaseRef, embedder: EmbedderRecord) -> int | None:
        await self.hold.wait()
        if self.while_rebuilding is not None:
            hook, self.while_rebuilding = self.while_rebuilding, None
            hook()
        if base in self.failing_once:
            self.failing_once.discard(base)
            raise RuntimeError(f"{base.name}: the live version changed while it was built")
        if base in self.failing:
            raise RuntimeError(f"Qdrant at /data/qdrant did not answer upsert for {base.name}")
        version = max(self.versions[base]) + 1
        self.versions[base][version] = embedder
        self.live_versions[base] = version
        self.rebuilt.append(base)
        return version

    async def restore(self, base: KnowledgeBaseRef, embedder_version: str) -> int | None:
        built = [v for v, r in self.versions[base].items() if r.version == embedder_version]
        if not built:
            return None
        self.live_versions[base] = max(built)
        return max(built)

    async def find_embedder(self, embedder_version: str) -> EmbedderRecord | None:
        for versions in self.versions.values():
            for record in versions.values():
                if record.version == embedder_version:
                    return record
        return None

    async def probe_embedder(self, embedder: EmbedderRecord) -> None:
        self.probed.append(embedder.version)
        if self.probe_error is not None:
            raise self.probe_error

    async def probe_reranker(self, reranker: EncoderDeploymentSettings) -> None:
        self.probed.append(reranker.version)
        if self.probe_error is not None:
            raise self.probe_error


@pytest.fixture(autouse=True)
def quick_routing_cache(monkeypatch):
    monkeypatch.setattr(encoder_routing, "ROUTING_CACHE_S", 0.01)


def _changes(redis, index, *, reranker_served: bool = False, reranker=None) -> EncoderChanges:
    routing = EncoderRoutingStore(redis, embedder=CONFIGURED, reranker=reranker)
    return EncoderChanges(routing, index, reranker_served=reranker_served)


async def _settled(changes: EncoderChanges, kind: str = "embedder") -> dict[str, Any]:
    for _ in range(500):
        if not changes._tasks:
            return (await changes.status())[kind]
        await asyncio.sleep(0.01)
    raise AssertionError("the change did not end")


CANDIDATE_JSON = CANDIDATE.model_dump(mode="json", exclude_defaults=True)


async def test_a_swap_rebuilds_every_companys_knowledge_bases_and_the_old_ones_restore(redis):
    index = FakeKnowledgeIndex([ACME, ACME_FAQ, RIVAL])
    changes = _changes(redis, index)
    assert (await changes.status())["embedder"]["active"] == OLD.version

    started = await changes.swap_embedder(CANDIDATE_JSON)
    assert (started["candidate"], started["previous"]) == (NEW.version, OLD.version)
    embedder = await _settled(changes)
    last = embedder["last_change"]
    assert last["state"] == "done", last
    assert (last["knowledge_bases"], last["switched"], last["failures"]) == (3, 3, [])
    assert index.probed == [NEW.version]  # it answered before anything was built
    assert embedder["active"] == NEW.version and embedder["configured"] is False
    assert all(index.live_embedder(b) == NEW.version for b in (ACME, ACME_FAQ, RIVAL))
    assert all(index.versions[b][1] == OLD for b in (ACME, ACME_FAQ, RIVAL))  # kept

    started = await changes.restore_embedder(OLD.version)
    assert started["action"] == "restore" and started["previous"] == NEW.version
    embedder = await _settled(changes)
    assert embedder["last_change"]["state"] == "done", embedder["last_change"]
    assert embedder["active"] == OLD.version and embedder["configured"] is True
    assert all(index.live_versions[b] == 1 for b in (ACME, ACME_FAQ, RIVAL))

    # A knowledge base made since, by the new one, has no version to restore: it is rebuilt.
    index.versions[RIVAL] = {1: OLD, 2: NEW, 3: NEW}
    index.versions[KnowledgeBaseRef(RIVAL.tenant_id, "fresh")] = {1: NEW}
    index.live_versions.update({RIVAL: 3, KnowledgeBaseRef(RIVAL.tenant_id, "fresh"): 1})
    await changes.swap_embedder(CANDIDATE_JSON)  # active: the new one again
    await _settled(changes)
    await changes.restore_embedder(OLD.version)
    last = (await _settled(changes))["last_change"]
    assert last["state"] == "done" and last["switched"] == 4, last
    assert index.live_versions[RIVAL] == 1
    fresh = KnowledgeBaseRef(RIVAL.tenant_id, "fresh")
    assert index.live_versions[fresh] == 2 and index.live_embedder(fresh) == OLD.version

    # Swapping to the embedder that already built everything changes nothing.
    await changes.swap_embedder(CONFIGURED.model_dump(mode="json", exclude_defaults=True))
    assert (await _settled(changes))["last_change"]["state"] == "unchanged"


async def test_a_failed_rebuild_leaves_that_knowledge_base_on_its_live_version(redis):
    index = FakeKnowledgeIndex([ACME, RIVAL])
    index.failing = {RIVAL}
    changes = _changes(redis, index)
    await changes.swap_embedder(CANDIDATE_JSON)
    embedder = await _settled(changes)
    last = embedder["last_change"]
    assert last["state"] == "partial" and last["switched"] == 1
    assert last["failures"] == [
        {
            "tenant_id": RIVAL.tenant_id,
            "knowledge_base": "product",
            "live_version": 1,
            "reason": "Qdrant at /data/qdrant did not answer upsert for product",
        }
    ]
    assert index.live_embedder(RIVAL) == OLD.version  # still searched by the old embedder
    assert index.live_embedder(ACME) == NEW.version
    assert embedder["active"] == NEW.version  # new versions are built by the new one

    # Run again once the cause is fixed: only what is left is rebuilt.
    index.failing = set()
    index.rebuilt.clear()
    await changes.swap_embedder(CANDIDATE_JSON)
    assert (await _settled(changes))["last_change"]["state"] == "done"
    assert index.rebuilt == [RIVAL]


async def test_a_rebuild_that_fails_once_is_tried_again_in_the_second_pass(redis):
    index = FakeKnowledgeIndex([ACME, RIVAL])
    index.failing_once = {RIVAL}
    changes = _changes(redis, index)
    await changes.swap_embedder(CANDIDATE_JSON)
    last = (await _settled(changes))["last_change"]
    assert (last["state"], last["switched"], last["failures"]) == ("done", 2, [])
    assert index.rebuilt == [ACME, RIVAL]
    assert index.live_embedder(RIVAL) == NEW.version


async def test_when_every_rebuild_fails_or_the_embedder_does_not_answer_nothing_changes(redis):
    index = FakeKnowledgeIndex([ACME, RIVAL])
    index.failing = {ACME, RIVAL}
    changes = _changes(redis, index)
    await changes.swap_embedder(CANDIDATE_JSON)
    embedder = await _settled(changes)
    assert embedder["last_change"]["state"] == "failed"
    assert len(embedder["last_change"]["failures"]) == 2
    assert embedder["active"] == OLD.version

    index.failing = set()
    index.probe_error = RuntimeError("no model folder at /models/e5 (no config.json)")
    await changes.swap_embedder(CANDIDATE_JSON)
    embedder = await _settled(changes)
    last = embedder["last_change"]
    assert last["state"] == "failed" and "nothing changed" in last["message"]
    assert "no model folder at /models/e5" in last["message"]
    assert index.rebuilt == [] and embedder["active"] == OLD.version


async def test_a_knowledge_base_made_during_the_swap_is_rebuilt_too(redis):
    index = FakeKnowledgeIndex([ACME])

    def upload_to_a_new_knowledge_base() -> None:
        index.versions[RIVAL] = {1: OLD}  # its first version, by the then active embedder
        index.live_versions[RIVAL] = 1

    index.while_rebuilding = upload_to_a_new_knowledge_base
    changes = _changes(redis, index)
    await changes.swap_embedder(CANDIDATE_JSON)
    last = (await _settled(changes))["last_change"]
    assert last["state"] == "done" and last["knowledge_bases"] == 2, last
    assert index.live_embedder(RIVAL) == NEW.version


async def test_one_embedder_change_at_a_time_and_knowledge_bases_wait_for_it(redis):
    index = FakeKnowledgeIndex([ACME])
    index.hold.clear()
    changes = _changes(redis, index)
    await changes.swap_embedder(CANDIDATE_JSON)
    with pytest.raises(EncoderChangeRefused, match="change of the embedder is already running"):
        await changes.swap_embedder(CANDIDATE_JSON)
    with pytest.raises(EncoderChangeRefused):
        await changes.restore_embedder(OLD.version)
    assert await changes.embedder_change_running()  # a re-index or a restore waits
    # The reranker is another lock.
    assert (await changes.swap_reranker({"kind": "reranker", "model": "late-interaction"}))[
        "state"
    ] == "unchanged"
    index.hold.set()
    assert (await _settled(changes))["last_change"]["state"] == "done"
    assert not await changes.embedder_change_running()


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"kind": "reranker", "model": "late-interaction"}, "kind: a reranker config"),
        ({"kind": "embedder", "model": "all-MiniLM-L6-v2", "dim": 768}, "gives 384-dimensional"),
        ({"kind": "embedder", "model": "e5-small"}, "nor the absolute path"),
        ({"kind": "embedder", "model": "/models/e5-small"}, "dim, pooling: required"),
        ({"kind": "embedder", "model": "all-MiniLM-L6-v2", "accelerator": "gpu"}, "run on cpu"),
        ({"kind": "embedder", "model": "all-MiniLM-L6-v2", "max_length": 4}, "max_length"),
    ],
)
async def test_a_config_that_is_not_an_embedder_here_is_refused(redis, config, message):
    changes = _changes(redis, FakeKnowledgeIndex([ACME]))
    with pytest.raises(ValueError, match=message):
        await changes.swap_embedder(config)
    assert not await changes.embedder_change_running()  # refused before locking


async def test_restoring_an_embedder_no_version_records_is_refused(redis):
    changes = _changes(redis, FakeKnowledgeIndex([ACME]))
    with pytest.raises(ValueError, match="no knowledge-base version kept was built by x@1"):
        await changes.restore_embedder("x@1")
    assert not await changes.embedder_change_running()


async def test_a_change_whose_replica_went_away_shows_as_interrupted(redis):
    routing = EncoderRoutingStore(redis, embedder=CONFIGURED, reranker=None)
    now = time.time()
    change = EncoderChange(
        kind="embedder",
        state="rebuilding",
        candidate=NEW.version,
        started_at=now,
        updated_at=now,
    )
    await routing.set_status(change)  # and no lock: it lapsed with its replica
    shown = await routing.status("embedder")
    assert shown is not None and shown.state == "interrupted"
    token = await routing.lock("embedder")
    assert token is not None and (await routing.status("embedder")).state == "rebuilding"
    # Only the holder renews or releases it.
    assert not await routing.renew("embedder", "someone-else")
    await routing.unlock("embedder", "someone-else")
    assert await routing.locked("embedder")
    assert await routing.renew("embedder", token)
    await routing.unlock("embedder", token)
    assert not await routing.locked("embedder")


async def test_the_reranker_swap_moves_the_next_searches_once_it_answers(redis):
    index = FakeKnowledgeIndex([ACME])
    changes = _changes(redis, index)  # no Reranker deployment: late interaction only
    with pytest.raises(ValueError, match="runs no Reranker deployment"):
        await changes.swap_reranker(CROSS_ENCODER.model_dump(mode="json"))

    configured = EncoderDeploymentSettings(kind="reranker", model="BAAI/bge-reranker-v2-m3")
    changes = _changes(redis, index, reranker_served=True, reranker=configured)
    routing = changes._routing
    assert (await routing.active_reranker()) == configured
    status = await changes.status()
    assert status["reranker"]["active"] == configured.version and status["reranker"]["configured"]

    started = await changes.swap_reranker(CROSS_ENCODER.model_dump(mode="json"))
    assert (started["candidate"], started["previous"]) == (
        CROSS_ENCODER.version,
        configured.version,
    )
    with pytest.raises(EncoderChangeRefused, match="change of the reranker"):
        await changes.swap_reranker({"kind": "reranker", "model": "late-interaction"})
    reranker = await _settled(changes, "reranker")
    assert reranker["last_change"]["state"] == "done" and index.probed == [CROSS_ENCODER.version]
    assert reranker["active"] == CROSS_ENCODER.version and not reranker["configured"]
    assert (await routing.active_reranker(fresh=True)) == CROSS_ENCODER

    # A cross-encoder that does not load changes nothing.
    index.probe_error = RuntimeError("not a cross-encoder")
    await changes.swap_reranker(configured.model_dump(mode="json"))
    reranker = await _settled(changes, "reranker")
    assert reranker["last_change"]["state"] == "failed"
    assert reranker["active"] == CROSS_ENCODER.version

    # Late interaction needs no model: no probe.
    index.probe_error = None
    await changes.swap_reranker({"kind": "reranker", "model": "late-interaction"})
    reranker = await _settled(changes, "reranker")
    assert reranker["last_change"]["state"] == "done" and reranker["active"] == "late-interaction"
    assert (await routing.active_reranker(fresh=True)) is None


def test_the_knowledge_bases_are_found_by_their_aliases():
    tenant = "0123456789abcdef0123456789abcdef"
    found = knowledge_bases_of_aliases(
        [
            f"kb.{tenant}_product",
            f"kb_{tenant}_product",  # the legacy alias of the same one
            f"kb.{tenant}_buyer-docs",
            "trainee_memory",
            "kb.t1_sales",  # not a company's (a benchmark's)
        ]
    )
    company = "01234567-89ab-cdef-0123-456789abcdef"
    assert found == [
        KnowledgeBaseRef(company, "buyer-docs"),
        KnowledgeBaseRef(company, "product"),
    ]


async def test_a_starting_encoder_replica_reads_the_active_versions(redis, tmp_path):
    from serve_apps.knowledge.encoder_routing import active_settings_now

    socket = redis.connection_pool.connection_kwargs["path"]
    url = f"unix://{socket}"
    assert active_settings_now("embedder", url) is None
    routing = EncoderRoutingStore(redis, embedder=CONFIGURED, reranker=None)
    await routing.set_active_embedder(NEW)
    assert active_settings_now("embedder", url) == CANDIDATE
    await routing.set_active_reranker(CROSS_ENCODER)
    assert active_settings_now("reranker", url) == CROSS_ENCODER
    assert active_settings_now("embedder", f"unix://{tmp_path}/no-redis.sock") is None
    assert active_settings_now("embedder", None) is None
