"""An encoder replica's models: the configured one always, other versions loaded once when
first asked for and the least recently used let go past the bound."""

from __future__ import annotations

import asyncio

import pytest

from serve_apps.knowledge.loaded_models import LoadedModels


class CountingLoader:
    """Loads a 'model' (its name) slowly, counting the loads."""

    def __init__(self) -> None:
        self.loads: list[str] = []

    def __call__(self, settings: str) -> str:
        self.loads.append(settings)
        return f"model {settings}"


async def test_versions_load_once_and_the_least_recently_used_goes():
    loader = CountingLoader()
    models = LoadedModels(pinned_version="a", pinned="model a", load=loader, capacity=2)
    assert await models.get("a", "a") == "model a" and loader.loads == []
    # Asked for together, a version loads once.
    got = await asyncio.gather(*(models.get("b", "b") for _ in range(5)))
    assert got == ["model b"] * 5 and loader.loads == ["b"]
    await models.get("c", "c")
    await models.get("b", "b")  # b is now the most recently used
    await models.get("d", "d")  # past the bound: c goes, the configured one never
    assert models.versions == ["a", "b", "d"]
    await models.get("c", "c")
    assert loader.loads == ["b", "c", "d", "c"]


async def test_a_version_that_fails_to_load_is_not_kept():
    def failing(settings: str) -> str:
        raise FileNotFoundError(f"no model folder at {settings}")

    models = LoadedModels(pinned_version="a", pinned="model a", load=failing, capacity=1)
    with pytest.raises(FileNotFoundError, match="/models/e5"):
        await models.get("e5", "/models/e5")
    assert models.versions == ["a"]


def test_a_replica_loads_the_active_version_ahead_and_survives_one_that_fails():
    loader = CountingLoader()
    models = LoadedModels(pinned_version="a", pinned="model a", load=loader, capacity=2)
    models.preload("b", "b")
    models.preload("a", "a")  # the configured one is there already
    assert models.versions == ["a", "b"] and loader.loads == ["b"]

    def failing(settings: str) -> str:
        raise OSError("no model folder")

    models = LoadedModels(pinned_version="a", pinned="model a", load=failing, capacity=2)
    models.preload("e5", "/models/e5")  # logged; it loads on its first request instead
    assert models.versions == ["a"]
