"""The cross-encoder reranker deployment (FlagEmbedding's ``FlagReranker``), for GPU nodes.

Only deployed when the application names a reranker model (``reranker_model`` in the Serve
config, for example ``BAAI/bge-reranker-v2-m3``): no cross-encoder weights are bundled, so
the CPU default reranks inside Qdrant with late interaction instead (``retrieval/search.py``).

Each replica serves its configured cross-encoder and any other a request names
(``reranker=``: a reranker swap's settings), loaded the first time it is asked for
(``loaded_models.py``): a swap moves the next searches to the new one while the searches
that began on the old one finish there.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from ray import serve

from models.encoders import EncoderDeploymentSettings
from serve_apps.connections import Connections
from serve_apps.knowledge.config import RerankerConfig
from serve_apps.knowledge.encoder_routing import active_settings_now
from serve_apps.knowledge.loaded_models import LoadedModels
from serve_apps.knowledge.loop_calls import ReplicaLoopCaller
from serve_apps.telemetry import tracing
from serve_apps.telemetry.logs import configure_logging
from serve_apps.telemetry.metrics import product_metrics


class CrossEncoder:
    """One loaded cross-encoder: relevance scores in [0, 1] for query-passage pairs."""

    def __init__(self, settings: EncoderDeploymentSettings) -> None:
        from FlagEmbedding import FlagReranker

        if not settings.is_cross_encoder:
            raise ValueError(f"{settings.model}: not a cross-encoder")
        self._model = FlagReranker(
            settings.model,
            use_fp16=settings.use_fp16,
            devices=[settings.device],
            batch_size=settings.batch_size,
        )
        self._max_length = settings.reranker_max_length

    def score(self, query: str, passages: list[str]) -> list[float]:
        scores = self._model.compute_score(
            [[query, passage] for passage in passages],
            normalize=True,
            max_length=self._max_length,
        )
        return [float(s) for s in (scores if isinstance(scores, list) else [scores])]


# Serve options come from the config (RerankerConfig, serve_apps/app.py).
@serve.deployment(name="Reranker")
class RerankerDeployment:
    def __init__(self, config: RerankerConfig) -> None:
        configure_logging("reranker")
        self._configured = config.encoder
        self._models: LoadedModels[EncoderDeploymentSettings, CrossEncoder] = LoadedModels(
            pinned_version=config.encoder.version,
            pinned=CrossEncoder(config.encoder),
            load=CrossEncoder,
            capacity=config.other_versions_kept,
        )
        self._settings: dict[str, EncoderDeploymentSettings] = {}
        # Since a swap, searches are scored by the active cross-encoder.
        active = active_settings_now("reranker", Connections().redis_url)
        if (
            active is not None
            and active.is_cross_encoder
            and active.accelerator == config.encoder.accelerator
        ):
            self._models.preload(active.version, active)

    def _version(self, reranker: str | None) -> tuple[str, EncoderDeploymentSettings]:
        if reranker is None:
            return self._configured.version, self._configured
        if reranker not in self._settings:
            settings = EncoderDeploymentSettings.model_validate(json.loads(reranker))
            if not settings.is_cross_encoder:
                raise ValueError(f"{settings.model}: not a cross-encoder")
            if settings.accelerator != self._configured.accelerator:
                raise ValueError(
                    f"accelerator={settings.accelerator}: this deployment's replicas run on "
                    f"{self._configured.accelerator}"
                )
            self._settings[reranker] = settings
        settings = self._settings[reranker]
        return settings.version, settings

    async def score(
        self, query: str, passages: list[str], reranker: str | None = None
    ) -> list[float]:
        version, settings = self._version(reranker)
        model = await self._models.get(version, settings)
        return await asyncio.to_thread(model.score, query, passages)

    async def loaded_versions(self) -> list[str]:
        return self._models.versions


def reranker_argument(settings: EncoderDeploymentSettings | None) -> str | None:
    """What a request names its cross-encoder by (None: the configured one)."""
    return (
        None if settings is None else json.dumps(settings.model_dump(mode="json"), sort_keys=True)
    )


class RemoteReranker:
    """One cross-encoder of the reranker deployment as a :class:`retrieval.search.PassageScorer`.

    Blocking, for worker threads: each call is made on the replica's loop through ``loop``.
    """

    def __init__(
        self,
        handle: Any,
        loop: ReplicaLoopCaller,
        *,
        settings: EncoderDeploymentSettings | None = None,
        timeout_s: float = 30.0,
    ) -> None:
        """``settings``: the cross-encoder to ask for (None: the deployment's own)."""
        self._handle = handle
        self._loop = loop
        self._argument = reranker_argument(settings)
        self._timeout_s = timeout_s

    def score(self, query: str, passages: list[str]) -> list[float]:
        started = time.perf_counter()
        with tracing.span("retrieval.rerank", {"passages": len(passages)}):
            scores = self._loop.call(
                lambda: self._handle.score.remote(query, passages, self._argument),
                self._timeout_s,
            )
        product_metrics().retrieval.observe(time.perf_counter() - started, tags={"stage": "rerank"})
        return scores

    async def score_async(self, query: str, passages: list[str], timeout_s: float) -> list[float]:
        """The same from an event loop (a swap's probe: the first call loads the model)."""
        return await asyncio.wait_for(
            self._handle.score.remote(query, passages, self._argument), timeout_s
        )
