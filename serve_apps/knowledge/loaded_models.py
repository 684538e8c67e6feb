"""The models one encoder replica holds: its configured one always, and the versions it was
asked for since, the most recently used kept up to a bound.

An embedder or reranker swap does not start another deployment: each request names the
version it wants (the knowledge service sends the settings that version records), and a
replica loads a version the first time it is asked for it. So a knowledge-base version is
always searched by its own embedder, a restored one as much as the newest, even after a
restart; and a search that began on the old reranker finishes on it, since a model in use is
never taken from the request holding it (an evicted one goes when its last request ends).
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, TypeVar

Model = TypeVar("Model")
Settings = TypeVar("Settings")

log = logging.getLogger("salesboost.knowledge")


class LoadedModels(Generic[Settings, Model]):
    def __init__(
        self,
        *,
        pinned_version: str,
        pinned: Model,
        load: Callable[[Settings], Model],
        capacity: int = 2,
    ) -> None:
        """``pinned``: the configured model, never evicted; ``capacity``: how many others
        are kept (``load`` runs in a worker thread: loading takes seconds)."""
        if capacity < 1:
            raise ValueError(f"capacity={capacity}: keep at least one other version")
        self._pinned_version = pinned_version
        self._pinned = pinned
        self._load = load
        self._capacity = capacity
        self._others: OrderedDict[str, Model] = OrderedDict()
        self._loading: dict[str, asyncio.Lock] = {}

    @property
    def versions(self) -> list[str]:
        """The configured version, then the others, least recently used first."""
        return [self._pinned_version, *self._others]

    def preload(self, version: str, settings: Settings) -> None:
        """Load ``version`` now, in the replica's constructor (a failure is logged: the
        version loads on its first request instead)."""
        if version == self._pinned_version or version in self._others:
            return
        try:
            self._others[version] = self._load(settings)
        except Exception as exc:
            log.warning("%s not loaded ahead: %r", version, exc)

    async def get(self, version: str, settings: Settings) -> Model:
        if version == self._pinned_version:
            return self._pinned
        if version in self._others:
            self._others.move_to_end(version)
            return self._others[version]
        lock = self._loading.setdefault(version, asyncio.Lock())
        async with lock:  # concurrent first requests for a version load it once
            if version not in self._others:
                log.info("loading %s", version)
                model = await asyncio.to_thread(self._load, settings)
                self._others[version] = model
                while len(self._others) > self._capacity:
                    evicted, _ = self._others.popitem(last=False)
                    log.info("unloading %s (least recently used)", evicted)
            self._loading.pop(version, None)
            self._others.move_to_end(version)
            return self._others[version]
