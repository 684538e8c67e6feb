"""A candidate version's Serve application brought up beside the others, as a swap, a canary
and a replay each start:

    deploy the candidate's application beside the others ─► wait until it runs
      ─► probe it (health, one token)

A candidate that does not come up or answer fails its change before anything routes to it:
what was added for it is removed, and the old version keeps answering.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from ray import serve

from serve_apps.contracts.models import ModelRoute
from serve_apps.model_lifecycle.serve_control import ServeControl, model_application

# A CPU engine starts in about a minute on an idle machine, several under load.
START_TIMEOUT_S = 900


class CandidateFailed(RuntimeError):
    """The candidate did not come up or did not answer; what was added for it is removed."""


class Candidates:
    """Brings candidates up through the Serve controller, and probes them."""

    def __init__(self, serve_control: ServeControl) -> None:
        self._serve = serve_control

    async def bring_up(
        self,
        candidate: ModelRoute,
        settings_json: dict[str, Any],
        step: Callable[..., Awaitable[None]],
    ) -> bool:
        """The candidate's application beside the others, running and answering; whether it
        was added (False: it runs already, as the other role's version). ``CandidateFailed``
        when it does not come up or answer, after removing what was added."""
        apps = await self._serve.applications()
        added = candidate.app_name not in apps
        if added:
            runtime_env = await self._serve.runtime_env()
            await self._serve.add(model_application(settings_json, candidate.app_name, runtime_env))
        try:
            await self._serve.wait_running(candidate.app_name, START_TIMEOUT_S)
            await step("probing")
            await self.probe(candidate)
        except Exception as exc:
            if added:
                await self._serve.remove(candidate.app_name)
            raise CandidateFailed(str(exc)) from exc
        return added

    async def probe(self, route: ModelRoute) -> None:
        """The version answers: its health check, and one token of a chat."""
        from serve_apps.orchestrator.chat_engine import ServeLLMChatEngine

        handle = serve.get_deployment_handle(route.deployment_name, app_name=route.app_name)
        engine = ServeLLMChatEngine(handle, route.model_id, version=route.version)
        await asyncio.wait_for(engine.check_health(), 60)
        reply = ""
        async for delta in engine.stream_chat(
            [{"role": "user", "content": "Say hello."}], max_tokens=2, temperature=0
        ):
            reply += delta.text
        if not reply:
            raise RuntimeError("the candidate answered nothing")
