"""The embedder deployment: FlagEmbedding dense embeddings for queries and documents.

Each replica serves its configured model and any other embedder version a request names
(``embedder=``: the settings a knowledge-base version records), loaded the first time it is
asked for and kept while in use (``loaded_models.py``): an embedder swap builds the new
versions with the new model while searches on the live ones go on with the old.

The knowledge service reaches it through :class:`RemoteEmbedder`, which looks like the
in-process :class:`retrieval.embedder.Embedder` to the indexing and search code.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import numpy as np
from ray import serve

from models.encoders import EncoderDeploymentSettings
from retrieval.embedder import Embedder, EmbedderRecord
from serve_apps.connections import Connections
from serve_apps.knowledge.config import EmbedderConfig
from serve_apps.knowledge.encoder_routing import active_settings_now
from serve_apps.knowledge.loaded_models import LoadedModels
from serve_apps.knowledge.loop_calls import ReplicaLoopCaller
from serve_apps.telemetry.logs import configure_logging

log = logging.getLogger("salesboost.knowledge")


def load_embedder(settings: EncoderDeploymentSettings) -> Embedder:
    """The embedder ``settings`` describe, loaded and warmed up (a model folder that is not
    there, or gives vectors of another size than its config says, fails here)."""
    embedder = Embedder(
        spec=settings.embedding_spec(),
        device=settings.device,
        use_fp16=settings.use_fp16,
        batch_size=settings.batch_size,
        record=settings.embedder_record(),
    )
    embedder.warm_up()
    return embedder


# Serve options come from the config (EmbedderConfig, serve_apps/app.py).
@serve.deployment(name="Embedder")
class EmbedderDeployment:
    def __init__(self, config: EmbedderConfig) -> None:
        configure_logging("embedder")
        self._configured = config.encoder
        self._models: LoadedModels[EncoderDeploymentSettings, Embedder] = LoadedModels(
            pinned_version=config.encoder.version,
            pinned=load_embedder(config.encoder),
            load=load_embedder,
            capacity=config.other_versions_kept,
        )
        self._settings: dict[str, EncoderDeploymentSettings] = {}
        # Since a swap, the knowledge bases' live versions are the active embedder's.
        active = active_settings_now("embedder", Connections().redis_url)
        if active is not None and active.accelerator == config.encoder.accelerator:
            self._models.preload(active.version, active)

    def _version(self, embedder: str | None) -> tuple[str, EncoderDeploymentSettings]:
        """The version a request names (its settings as canonical JSON; None: the
        configured one), validated once per replica."""
        if embedder is None:
            return self._configured.version, self._configured
        if embedder not in self._settings:
            settings = EncoderDeploymentSettings.model_validate(json.loads(embedder))
            if settings.kind != "embedder":
                raise ValueError(f"a {settings.kind} config is no embedder")
            if settings.accelerator != self._configured.accelerator:
                raise ValueError(
                    f"accelerator={settings.accelerator}: this deployment's replicas run on "
                    f"{self._configured.accelerator}"
                )
            self._settings[embedder] = settings
        settings = self._settings[embedder]
        return settings.version, settings

    async def _model(self, embedder: str | None) -> Embedder:
        version, settings = self._version(embedder)
        return await self._models.get(version, settings)

    async def embed_query(self, text: str, embedder: str | None = None) -> np.ndarray:
        # Loaded before joining a batch: a version that fails to load (a swap's probe of a
        # bad model) fails its own request, not the queries batched with it.
        await self._model(embedder)
        return await self._embed_queries(text, embedder)

    # Trainee turns that arrive together (a class practising at once) share one forward pass:
    # nothing waits for a batch to fill, but what queues while one runs goes in the next.
    @serve.batch(max_batch_size=16, batch_wait_timeout_s=0)
    async def _embed_queries(
        self, texts: list[str], embedders: list[str | None]
    ) -> list[np.ndarray]:
        # One forward pass per version in the batch (a swap's rebuild sends the new one's).
        out: list[np.ndarray | None] = [None] * len(texts)
        for embedder in dict.fromkeys(embedders):
            indexes = [i for i, e in enumerate(embedders) if e == embedder]
            model = await self._model(embedder)
            vectors = await asyncio.to_thread(model.embed_queries, [texts[i] for i in indexes])
            for i, vector in zip(indexes, vectors, strict=True):
                out[i] = vector
        return [vector for vector in out if vector is not None]

    async def embed_documents(self, texts: list[str], embedder: str | None = None) -> np.ndarray:
        model = await self._model(embedder)
        return await asyncio.to_thread(model.embed_documents, texts)

    async def loaded_versions(self) -> list[str]:
        """The versions this replica holds (the configured one first)."""
        return self._models.versions

    async def check_health(self) -> None:
        await self.embed_query("health")


def embedder_argument(record: EmbedderRecord | None) -> str | None:
    """What a request names its embedder by: the version's settings as canonical JSON
    (hashable, so that a batch groups by it); None for the configured one."""
    return None if record is None else json.dumps(record.settings, sort_keys=True)


class RemoteEmbedder:
    """One embedder version of the embedder deployment, behind the in-process embedder's
    interface.

    Its blocking methods are for worker threads: each call is made on the replica's loop
    through ``loop`` and the thread waits for the answer.
    """

    def __init__(
        self,
        handle: Any,
        record: EmbedderRecord,
        loop: ReplicaLoopCaller,
        *,
        configured: bool,
        timeout_s: float = 60.0,
    ) -> None:
        """``configured``: the deployment's own model (asked for without settings)."""
        self._handle = handle
        self._loop = loop
        self.record = record
        self._argument = None if configured else embedder_argument(record)
        self._timeout_s = timeout_s

    @property
    def dim(self) -> int:
        return self.record.dim

    def warm_up(self) -> None:
        """The deployment warms its configured model up when it starts, others when first
        asked for them."""

    def embed_query(self, text: str) -> np.ndarray:
        return self._loop.call(
            lambda: self._handle.embed_query.remote(text, self._argument), self._timeout_s
        )

    async def embed_query_async(self, text: str, timeout_s: float | None = None) -> np.ndarray:
        """The same, from an event loop (no worker thread held while the embedder works)."""
        return await asyncio.wait_for(
            self._handle.embed_query.remote(text, self._argument), timeout_s or self._timeout_s
        )

    def embed_documents(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return self._loop.call(
            lambda: self._handle.embed_documents.remote(texts, self._argument), self._timeout_s
        )


class ServedEmbedders:
    """Every embedder version of the deployment, as the knowledge bases' versions record
    them (a :class:`retrieval.knowledge_base.EmbedderDirectory`)."""

    def __init__(
        self, handle: Any, configured: EncoderDeploymentSettings, loop: ReplicaLoopCaller
    ) -> None:
        self._handle = handle
        self._loop = loop
        self.configured = RemoteEmbedder(
            handle, configured.embedder_record(), loop, configured=True
        )
        self._versions: dict[str, RemoteEmbedder] = {
            self.configured.record.version: self.configured
        }

    def embedder_for(self, record: EmbedderRecord) -> RemoteEmbedder:
        found = self._versions.get(record.version)
        if found is None:
            # A model loading for the first time takes longer than an embedding.
            found = RemoteEmbedder(
                self._handle, record, self._loop, configured=False, timeout_s=300.0
            )
            self._versions[record.version] = found
        return found
