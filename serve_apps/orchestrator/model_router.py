"""The orchestrator reaches each model version through its own Serve application.

An ML engineer's swap or canary brings a model version up as an application of its own beside
the product's (``serve_apps/app.py:build_model_app``); the gateway names, for each turn, the
version its session uses (``TurnRequest.npc_model``). The router resolves that route to a
handle once and keeps it, so a turn reaches the version its session was given and no handle
is bound at build time: the product's application never restarts for a model change.

The agents keep one ``ChatEngine`` each (the persona's, the judge's); ``RoutedChatEngine``
is that engine, and sends each call to the version of the request being answered (a context
variable set per request, so concurrent turns of different versions never mix).
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

from serve_apps.contracts.models import ModelRoute
from serve_apps.orchestrator.chat_engine import ChatDelta, ServeLLMChatEngine

_NPC_ROUTE: contextvars.ContextVar[ModelRoute | None] = contextvars.ContextVar(
    "npc_route", default=None
)
_JUDGE_ROUTE: contextvars.ContextVar[ModelRoute | None] = contextvars.ContextVar(
    "judge_route", default=None
)


class ModelRouter:
    """Handles of the model versions' deployments, resolved by name on first use."""

    def __init__(self) -> None:
        self._engines: dict[str, ServeLLMChatEngine] = {}

    def engine(self, route: ModelRoute) -> ServeLLMChatEngine:
        engine = self._engines.get(route.version)
        if engine is None:
            from ray import serve

            handle = serve.get_deployment_handle(route.deployment_name, app_name=route.app_name)
            engine = ServeLLMChatEngine(handle, route.model_id, version=route.version)
            self._engines[route.version] = engine
        return engine


@contextlib.contextmanager
def routed(npc: ModelRoute | None, judge: ModelRoute | None) -> Iterator[None]:
    """The versions the calls made inside answer with (None: the configured ones)."""
    npc_token, judge_token = _NPC_ROUTE.set(npc), _JUDGE_ROUTE.set(judge)
    try:
        yield
    finally:
        _NPC_ROUTE.reset(npc_token)
        _JUDGE_ROUTE.reset(judge_token)


class RoutedChatEngine:
    """A ``ChatEngine`` whose calls go to the request's version of one role."""

    def __init__(self, router: ModelRouter, configured: ModelRoute) -> None:
        self._router = router
        self._configured = configured
        self._current = _NPC_ROUTE if configured.role == "npc" else _JUDGE_ROUTE

    @property
    def route(self) -> ModelRoute:
        return self._current.get() or self._configured

    @property
    def model_id(self) -> str:
        return self.route.model_id

    @property
    def version(self) -> str:
        return self.route.version

    def _engine(self) -> ServeLLMChatEngine:
        return self._router.engine(self.route)

    def stream_chat(
        self,
        messages: list[dict[str, str]],
        *,
        max_tokens: int,
        temperature: float,
        stop: Sequence[str] = (),
        repetition_penalty: float | None = None,
        continue_final_message: bool = False,
    ) -> AsyncIterator[ChatDelta]:
        return self._engine().stream_chat(
            messages,
            max_tokens=max_tokens,
            temperature=temperature,
            stop=stop,
            repetition_penalty=repetition_penalty,
            continue_final_message=continue_final_message,
        )

    async def complete_json(
        self, messages: list[dict[str, str]], *, schema: dict[str, Any], max_tokens: int
    ) -> str:
        return await self._engine().complete_json(messages, schema=schema, max_tokens=max_tokens)

    async def count_tokens(self, text: str) -> int:
        return await self._engine().count_tokens(text)

    async def check_health(self) -> None:
        await self._engine().check_health()

    async def engine_info(self) -> dict[str, Any]:
        return await self._engine().engine_info()
